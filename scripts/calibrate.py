"""Calibration of the claims: false-positive rate, CI coverage and power, per claim.

Runs the analysis on synthetic cohorts over seeds and patient counts and reports, per claim,
cohort and number of patients:

- ``reproduced``: share of runs with the claim called reproduced. On the null cohort and
  wherever the truth says the claim does not hold (``expected`` not_reproduced: the
  near-size cohort, whose effects are 75-80 % of the claimed size, and the perturbations)
  it is the false-positive rate; where the claim holds it is the power;
- ``coverage``: share of runs whose 95% CI covers the true effect (claims whose truth is on
  the estimate's scale);
- ``testable``: runs in which the claim could be tested at all.

By default the statistics are calibrated alone (``--oracle``, see csfcart.pipeline: the
simulator's labels stand in for QC and annotation); ``--annotate`` runs QC, Harmony and
annotation as the workflow does (about 5x slower). Two worker processes by default.

    python scripts/calibrate.py --seeds 20 --patients 3 5 8 12 --out results/calibration

Writes runs.tsv (every claim of every run, as the runs finish: a stopped calibration resumes
where it stopped), calibration.tsv (the summary) and one figure per claim
(calibration_<claim>.png). About an hour on 2 cores with the defaults.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

ROOT = Path(__file__).parents[1]
COHORTS = ["csf_null_tiny", "csf_bcma_cart_tiny", "csf_near_size_tiny", "csf_depletion_only_tiny",
           "csf_ligand_only_tiny", "csf_dilution_tiny", "csf_high_ambient_tiny", "csf_small_tiny"]  # fmt: skip


def one_run(job: tuple[str, int, int, bool, bool, int | None]) -> pd.DataFrame:
    dataset, n, seed, oracle, communication, cells = job
    warnings.filterwarnings("ignore")
    from csfcart.pipeline import analyse, default_config
    from csfcart.simulate.cohort import load_cohort

    start = time.perf_counter()
    from dataclasses import replace

    base = load_cohort(ROOT / "config" / "datasets" / f"{dataset}.yaml")
    changes = {"n_patients": n, "seed": seed}
    if cells:  # median cells per sample, every compartment
        changes["compartments"] = {
            k: replace(c, cells_median=cells, cells_min=min(c.cells_min, cells), cells_max=max(c.cells_max, cells))
            for k, c in base.compartments.items()
        }
    table = analyse(base.with_changes(**changes), default_config(ROOT), communication=communication, oracle=oracle)
    table["dataset"], table["n_patients_design"], table["seed"] = dataset, n, seed
    table["seconds"] = time.perf_counter() - start
    return table


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    g = runs.groupby(["dataset", "claim_id", "n_patients_design"])
    table = g.agg(
        runs=("verdict", "size"),
        testable=("verdict", lambda v: int((v != "not_testable").sum())),
        expected=("expected_verdict", lambda v: v.mode().iat[0] if len(v.dropna()) else ""),
        reproduced=("verdict", lambda v: (v == "reproduced").mean()),
        coverage=("ci_covers_truth", lambda v: v.dropna().astype(float).mean() if v.notna().any() else float("nan")),
        with_ci=("ci_covers_truth", lambda v: int(v.notna().sum())),
    )
    return table.reset_index()


def plot_claim(summary: pd.DataFrame, claim: str) -> plt.Figure:
    s = summary[summary["claim_id"] == claim]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    for dataset, g in s.groupby("dataset"):
        g = g.sort_values("n_patients_design")
        style = "-o" if g["expected"].iat[0] == "reproduced" else "--s"
        axes[0].plot(g["n_patients_design"], g["reproduced"], style, label=f"{dataset} ({g['expected'].iat[0]})")
        axes[1].plot(g["n_patients_design"], g["coverage"], "-o", label=dataset)
    axes[0].axhline(0.05, color="black", lw=0.8, ls=":")
    axes[0].set_title(f"{claim}: share called reproduced\n(solid: claim holds - power; dashed: it does not)")
    axes[1].axhline(0.9, color="black", lw=0.8, ls=":")
    axes[1].set_title(f"{claim}: 95% CI coverage of the true effect (dotted: 0.9)")
    for ax in axes:
        ax.set_xlabel("patients")
        ax.set_ylim(-0.02, 1.02)
    axes[0].legend(fontsize=7, loc="center right")
    return fig


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cohorts", nargs="+", default=COHORTS)
    parser.add_argument("--patients", type=int, nargs="+", default=[3, 5, 8, 12])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--annotate", action="store_true", help="QC, Harmony and annotation instead of the labels")
    parser.add_argument("--communication", action="store_true", help="run LIANA too (C7; about 3x slower)")
    parser.add_argument("--cells", type=int, help="median cells per sample (default: the cohort's own)")
    parser.add_argument("--out", default="results/calibration")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [
        (d, n, args.first_seed + 1000 * n + k, not args.annotate, args.communication, args.cells)
        for d in args.cohorts
        for n in args.patients
        for k in range(args.seeds)
    ]
    start = time.perf_counter()
    done = pd.read_csv(out / "runs.tsv", sep="\t") if (out / "runs.tsv").is_file() else pd.DataFrame()
    if len(done):  # resume: runs already written are kept
        seen = set(zip(done["dataset"], done["n_patients_design"], done["seed"], strict=True))
        jobs = [j for j in jobs if (j[0], j[1], j[2]) not in seen]
    tables = [done] if len(done) else []
    with ProcessPoolExecutor(args.jobs) as pool:
        for i, table in enumerate(pool.map(one_run, jobs, chunksize=1), 1):
            tables.append(table)
            pd.concat(tables, ignore_index=True).to_csv(out / "runs.tsv", sep="\t", index=False)
            called = ", ".join(table.loc[table["verdict"] == "reproduced", "claim_id"]) or "none"
            d, n, seed = table[["dataset", "n_patients_design", "seed"]].iloc[0]
            print(f"[{i}/{len(jobs)}] {d} n={n} seed={seed}: reproduced {called}", flush=True)
    runs = pd.concat(tables, ignore_index=True)
    summary = summarise(runs)
    summary.to_csv(out / "calibration.tsv", sep="\t", index=False)
    for claim in summary["claim_id"].unique():
        fig = plot_claim(summary, claim)
        fig.savefig(out / f"calibration_{claim}.png", dpi=100)
        plt.close(fig)
    wide = summary.pivot_table(index=["claim_id", "dataset", "expected"], columns="n_patients_design",
                               values=["reproduced", "coverage"])  # fmt: skip
    print(wide.round(2).to_string())
    print(f"\n{len(jobs)} runs in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
