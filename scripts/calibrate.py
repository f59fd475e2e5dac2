"""Calibration of the claims: false-positive rate, CI coverage and power.

Runs the whole analysis (QC, Harmony, annotation, measurements, claims; in one process, see
csfcart.pipeline) on synthetic cohorts over seeds and patient counts, and reports per claim:

- false-positive rate: share of null-cohort runs with the claim called reproduced;
- coverage: share of runs whose 95% CI covers the true effect;
- power: share of effect-cohort runs with the claim called reproduced where it should be.

    python scripts/calibrate.py --null csf_null_tiny --effect csf_bcma_cart_tiny \
        --patients 3 5 8 12 --seeds 10 --out results/calibration

Tiny cohorts keep it affordable on 2 cores (about a minute per cohort of 5 patients).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

ROOT = Path(__file__).parents[1]


def run(dataset: str, patients: list[int], seeds: int, first_seed: int, communication: bool) -> pd.DataFrame:
    from csfcart.pipeline import analyse
    from csfcart.simulate.cohort import load_cohort

    base = load_cohort(ROOT / "config" / "datasets" / f"{dataset}.yaml")
    rows = []
    for n in patients:
        for k in range(seeds):
            seed = first_seed + 1000 * n + k
            start = time.perf_counter()
            table = analyse(base.with_changes(n_patients=n, seed=seed), communication=communication)
            table["dataset"], table["n_patients_design"], table["seed"] = dataset, n, seed
            rows.append(table)
            called = ", ".join(table.loc[table["verdict"] == "reproduced", "claim_id"]) or "none"
            print(f"{dataset} n={n} seed={seed}: reproduced {called} ({time.perf_counter() - start:.0f} s)", flush=True)
    return pd.concat(rows, ignore_index=True)


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    testable = runs[runs["verdict"] != "not_testable"]
    g = testable.groupby(["dataset", "claim_id", "n_patients_design"])
    table = g.agg(
        runs=("verdict", "size"),
        reproduced=("verdict", lambda v: (v == "reproduced").mean()),
        coverage=("ci_covers_truth", "mean"),
    )
    expected = g["expected_verdict"].agg(lambda v: v.mode().iat[0])
    table["expected"] = expected
    table["false_positive_rate"] = table["reproduced"].where(table["expected"] == "not_reproduced")
    table["power"] = table["reproduced"].where(table["expected"] == "reproduced")
    return table.reset_index()


def plot(summary: pd.DataFrame) -> plt.Figure:
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), layout="constrained")
    for ax, col, title in zip(
        axes,
        ["false_positive_rate", "coverage", "power"],
        ["False-positive rate (null cohort)", "95% CI coverage of the truth", "Power (effect cohort)"],
        strict=True,
    ):
        data = summary.dropna(subset=[col])
        for claim, g in data.groupby("claim_id"):
            g = g.groupby("n_patients_design")[col].mean()
            ax.plot(g.index, g.to_numpy(), "-o", label=claim)
        ax.set_title(title)
        ax.set_xlabel("patients")
        ax.set_ylim(-0.02, 1.02)
        if col == "false_positive_rate":
            ax.axhline(0.05, color="black", ls="--", lw=0.8)
        if col == "coverage":
            ax.axhline(0.95, color="black", ls="--", lw=0.8)
    axes[-1].legend(fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    return fig


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--null", default="csf_null_tiny")
    parser.add_argument("--effect", default="csf_bcma_cart_tiny")
    parser.add_argument("--patients", type=int, nargs="+", default=[3, 5, 8, 12])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--out", default="results/calibration")
    parser.add_argument("--no-communication", action="store_true", help="skip LIANA (C7 not testable; about 3x faster)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = pd.concat(
        [
            run(d, args.patients, args.seeds, args.first_seed, not args.no_communication)
            for d in (args.null, args.effect)
            if d
        ],
        ignore_index=True,
    )
    runs.to_csv(out / "runs.tsv", sep="\t", index=False)
    summary = summarise(runs)
    summary.to_csv(out / "summary.tsv", sep="\t", index=False)
    fig = plot(summary)
    fig.savefig(out / "calibration.png", dpi=110)
    null = runs[(runs["dataset"] == args.null) & (runs["verdict"] != "not_testable")]
    if len(null):
        print(
            f"\nnull cohort: {(null['verdict'] == 'reproduced').mean():.1%} of {len(null)} claim x seed pairs called reproduced"
        )
    print(summary.round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
