"""How time and peak memory grow with the number of cells: the whole DAG on cohorts of
increasing size.

    python scripts/benchmark_scale.py --cells 20000 40000 100000 [--dataset csf_bcma_cart]
        [--cores 2] [--out benchmarks/scale]

Each size is the dataset with as many patients as give about that many cells (the samples
keep their realistic size: a cohort grows by patients, as a multi-centre trial does). The
simulator writes the samples one by one, the workflow runs end to end (QC, integration,
annotation, pseudobulk, DE, communication, claims, figures), and Snakemake's benchmark file
of every job gives its wall time, CPU time and peak memory (max RSS). The script prints,
per rule, the summed seconds, the summed CPU seconds, the slowest job and the peak memory at
each size, and the growth exponent of each (the slope of log value on log cells, least
squares over the sizes). A job's wall time also counts its waits (for the disk, for a core
shared with the other job and with Snakemake); its CPU time is the work itself, so where
the two exponents part, the growth is in the waiting. The script draws the log-log figure
to ``<out>/scaling.png`` and writes the table to ``<out>/scaling.tsv``. The row
``workflow`` is Snakemake's wall time for the whole run (both cores working at once, so
below the jobs' sum). From the exponents it projects each
row to ``--project`` cells (a million by default), anchored at the largest size run: a plan
for the time and memory a larger cohort asks, not a measurement. A size already run is read
again, not rerun (delete its folder to rerun it).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from benchmark_workflow import rule_table  # noqa: E402


def cells_per_patient(dataset: Path) -> float:
    """Median cells a patient contributes (every compartment and visit), from the dataset."""
    from csfcart.simulate.cohort import load_cohort

    cohort = load_cohort(dataset)
    return float(sum(c.cells_median * len(c.timepoints) for c in cohort.compartments.values()))


def run_size(cells: int, args) -> Path:
    """Run the workflow on a cohort of about ``cells`` cells; return its results folder."""
    dataset = ROOT / "config" / "datasets" / f"{args.dataset}.yaml"
    patients = max(2, round(cells / cells_per_patient(dataset)))
    name = f"{args.dataset}_{cells // 1000}k"
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    config = out / f"{name}.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "dataset": name,
                "extends": f"{args.dataset}.yaml",
                "results": str(out / "results"),
                "simulation": {"n_patients": patients},
            }
        )
    )
    run = out / "results" / name
    wall = out / f"{name}.wall_s"
    if (run / "claims.tsv").exists():
        print(f"{name}: already run, reading {run}")
        return run
    print(f"{name}: {patients} patients, running with {args.cores} cores ...", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--cores",
            str(args.cores),
            "--configfile",
            str(config),
            "--workflow-profile",
            "workflow/profiles/default",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    (out / f"{name}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode:
        raise SystemExit(f"{name}: the workflow failed; see {out / f'{name}.log'}")
    seconds = time.perf_counter() - start
    wall.write_text(f"{seconds:.1f}\n")
    print(f"{name}: {seconds:.0f} s wall", flush=True)
    return run


def wall_of(run: Path) -> float:
    """Snakemake's wall time of the run (``nan`` for a run made before it was recorded)."""
    path = run.parents[1] / f"{run.name}.wall_s"
    return float(path.read_text()) if path.exists() else np.nan


def cells_of(run: Path) -> int:
    qc = pd.read_csv(run / "qc" / "summary.tsv", sep="\t")
    return int(qc.loc[qc["status"] == "ok", "cells_pass"].sum())


def exponent(x: np.ndarray, y: np.ndarray) -> float:
    ok = (x > 0) & (y > 0)
    return float(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0]) if ok.sum() >= 2 else np.nan


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, nargs="+", default=[20000, 40000, 100000])
    parser.add_argument("--dataset", default="csf_bcma_cart")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/scale")
    parser.add_argument("--project", type=int, default=1_000_000, help="cells to project the fits to")
    args = parser.parse_args()

    rows = []
    for target in args.cells:
        run = run_size(target, args)
        table = rule_table(run).reset_index()
        table["cells"] = cells_of(run)
        rows.append(table)
        rows.append(pd.DataFrame([{"rule": "workflow", "seconds": wall_of(run), "cells": table["cells"].iloc[0]}]))
    long = pd.concat(rows, ignore_index=True)
    total = (
        long[long["rule"] != "workflow"]
        .groupby("cells")
        .agg(seconds=("seconds", "sum"), cpu_seconds=("cpu_seconds", "sum"), peak_rss_mib=("peak_rss_mib", "max"))
        .reset_index()
    )
    total["rule"] = "all jobs"
    long = pd.concat([long, total], ignore_index=True)

    out = Path(args.out)
    wide = long.pivot_table(index="rule", columns="cells", values=["seconds", "cpu_seconds", "peak_rss_mib"])
    fits = pd.DataFrame(
        {
            f"{what}_exponent": {
                rule: exponent(g["cells"].to_numpy(float), g[column].to_numpy(float))
                for rule, g in long.groupby("rule")
            }
            for what, column in (("time", "seconds"), ("cpu", "cpu_seconds"), ("memory", "peak_rss_mib"))
        }
    )
    largest = long["cells"].max()
    at_largest = long[long["cells"] == largest].set_index("rule")
    projected = pd.DataFrame(
        {
            f"{column}@{args.project} (projected)": at_largest[column]
            * (args.project / largest) ** fits[f"{what}_exponent"]
            for what, column in (("time", "seconds"), ("memory", "peak_rss_mib"))
        }
    )
    wide.columns = [f"{what}@{cells}" for what, cells in wide.columns]
    table = wide.join(fits).join(projected).sort_values(f"seconds@{largest}", ascending=False)
    table.to_csv(out / "scaling.tsv", sep="\t")
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.3g}".format):
        print(table)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    heavy = table.index[:8]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), layout="constrained")
    for ax, what, label in ((axes[0], "seconds", "wall time, summed over jobs (s)"),
                            (axes[1], "peak_rss_mib", "peak memory of a job (MiB)")):  # fmt: skip
        for rule in heavy:
            g = long[long["rule"] == rule].sort_values("cells")
            ax.plot(g["cells"], g[what], "o-", lw=2 if rule == "all jobs" else 1, label=rule)
        ax.set(xscale="log", yscale="log", xlabel="cells after QC", ylabel=label)
    axes[1].axhline(20 * 1024, color="grey", ls="--", lw=0.8)
    axes[1].text(axes[1].get_xlim()[0], 20 * 1024, " 20 GiB", va="bottom", color="grey", fontsize=8)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{args.dataset}: growth with cells ({args.cores} cores)")
    fig.savefig(out / "scaling.png", dpi=120)
    print(f"table: {out / 'scaling.tsv'}\nfigure: {out / 'scaling.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
