"""Time and peak memory of the simulator for cohorts of 10k, 100k and 1M cells.

Each size runs in its own process (peak RSS is per process). The cohort is the default
csf_bcma_cart design with as many patients as the size needs; samples hold up to 5,000 cells.

    python scripts/benchmark_simulate.py [--sizes 10000 100000 1000000] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATASET = Path(__file__).parents[1] / "config" / "datasets" / "csf_bcma_cart.yaml"


def run_one(n_cells: int, outdir: str) -> dict:
    from dataclasses import replace

    from csfcart.simulate.cohort import load_cohort
    from csfcart.simulate.write import simulate_cohort

    cohort = load_cohort(DATASET)
    samples_per_patient = sum(len(c.timepoints) for c in cohort.compartments.values())
    per_sample = min(5000, max(200, n_cells // samples_per_patient))
    comps = {
        k: replace(c, cells_median=per_sample, cells_sdlog=0.0, cells_min=1, cells_max=10**6)
        for k, c in cohort.compartments.items()
    }
    samples_per_patient = sum(len(c.timepoints) for c in comps.values())
    n_patients = max(1, round(n_cells / (per_sample * samples_per_patient)))
    cohort = cohort.with_changes(compartments=comps, n_patients=n_patients)
    start = time.perf_counter()
    out = simulate_cohort(cohort, Path(outdir) / f"sim_{n_cells}")
    seconds = time.perf_counter() - start
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {
        "target_cells": n_cells,
        "cells": n_patients * samples_per_patient * per_sample,
        "samples": n_patients * samples_per_patient,
        "seconds": round(seconds, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "disk_mib": round(size / 2**20, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--out", default=None, help="scratch directory (default: a temporary one)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    scratch = args.out or tempfile.mkdtemp(prefix="csfcart-bench-")
    if args.one:
        print(json.dumps(run_one(args.one, scratch)))
        return 0
    print(f"{'cells':>9} {'samples':>7} {'seconds':>8} {'peak MiB':>9} {'disk MiB':>9}")
    for n in args.sizes:
        proc = subprocess.run(
            [sys.executable, __file__, "--one", str(n), "--out", scratch], capture_output=True, text=True, check=True
        )
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(
            f"{r['cells']:>9} {r['samples']:>7} {r['seconds']:>8} {r['peak_rss_mib']:>9} {r['disk_mib']:>9}", flush=True
        )
        import shutil

        shutil.rmtree(Path(scratch) / f"sim_{n}", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
