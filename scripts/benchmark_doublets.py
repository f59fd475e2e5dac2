"""Doublet detection against the simulator's truth: seconds, recall and precision per sample.

Simulates the default cohort's design with samples of ``--cells`` cells (the truth says
which droplets hold two cells), then scores every sample with each method in ``--methods``
(``knn``: the workflow's own detector, :func:`csfcart.qc.score_doublets`; ``scrublet``:
scanpy's Scrublet, which the workflow used before) and prints per-method totals: seconds
per sample, recall and precision of the doublet calls. The simulation is reused when
``--out`` already holds it.

    python scripts/benchmark_doublets.py --cells 5000 --patients 2 --out /tmp/doublets
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

DATASET = Path(__file__).parents[1] / "config" / "datasets" / "csf_bcma_cart.yaml"


def simulate(out: Path, cells: int, patients: int, seed: int) -> Path:
    from csfcart.simulate.cohort import load_cohort
    from csfcart.simulate.write import simulate_cohort

    target = out / f"sim_{cells}_{patients}_{seed}"
    if (target / "truth" / "cells.tsv.gz").exists():
        return target
    cohort = load_cohort(DATASET)
    comps = {
        k: replace(c, cells_median=cells, cells_sdlog=0.0, cells_min=1, cells_max=10**6)
        for k, c in cohort.compartments.items()
    }
    cohort = cohort.with_changes(compartments=comps, n_patients=patients, seed=seed)
    return simulate_cohort(cohort, target)


def scrublet(adata, rate_per_1000: float, seed: int) -> np.ndarray:
    import anndata as ad
    import scanpy as sc

    expected = float(np.clip(rate_per_1000 * adata.n_obs / 1000, 0.005, 0.3))
    tmp = ad.AnnData(X=adata.layers["counts"].copy())
    sc.pp.scrublet(tmp, expected_doublet_rate=expected, random_state=seed, n_prin_comps=30, verbose=False)
    return tmp.obs["predicted_doublet"].to_numpy().astype(bool)


def knn(adata, rate_per_1000: float, seed: int) -> np.ndarray:
    from csfcart.qc import score_doublets

    score_doublets(adata, rate_per_1000=rate_per_1000, seed=seed)
    return adata.obs["predicted_doublet"].to_numpy().astype(bool)


METHODS = {"knn": knn, "scrublet": scrublet}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=5000, help="cells per sample")
    parser.add_argument("--patients", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--out", default="/tmp/csfcart-doublets")
    parser.add_argument("--rate-per-1000", type=float, default=0.008, help="qc.doublet_rate_per_1000")
    args = parser.parse_args()

    from csfcart.io import read_10x_mtx
    from csfcart.keys import COUNTS

    sim = simulate(Path(args.out), args.cells, args.patients, args.seed)
    truth = pd.read_csv(sim / "truth" / "cells.tsv.gz", sep="\t", dtype={"sample_id": str, "barcode": str})
    rows = []
    for sample_dir in sorted((sim / "counts").iterdir()):
        adata = read_10x_mtx(sample_dir)
        adata.layers[COUNTS] = adata.X.copy()
        t = truth[truth["sample_id"] == sample_dir.name].set_index("barcode").reindex(adata.obs_names)
        true = t["doublet"].astype(bool).to_numpy()
        for name in args.methods:
            start = time.perf_counter()
            called = METHODS[name](adata, args.rate_per_1000, args.seed)
            seconds = time.perf_counter() - start
            row = {"sample": sample_dir.name, "method": name, "cells": adata.n_obs, "seconds": round(seconds, 2),
                   "true": int(true.sum()), "called": int(called.sum()), "hits": int((called & true).sum())}  # fmt: skip
            print(json.dumps(row), flush=True)
            rows.append(row)
    table = pd.DataFrame(rows)
    table.to_csv(Path(args.out) / f"doublets_{args.cells}.tsv", sep="\t", index=False)
    total = table.groupby("method")[["cells", "seconds", "true", "called", "hits"]].sum()
    total["samples"] = table.groupby("method").size()
    total["seconds_per_sample"] = (total["seconds"] / total["samples"]).round(2)
    total["recall"] = (total["hits"] / total["true"]).round(3)
    total["precision"] = (total["hits"] / total["called"].clip(lower=1)).round(3)
    print(total[["samples", "cells", "seconds_per_sample", "true", "called", "recall", "precision"]].to_string())


if __name__ == "__main__":
    main()
