"""C7's strength readout on cohorts without any change, over many seeds: its mean must be 0.

    python scripts/c7_null_strength.py --seeds 20 --out results/calibration_statistics/c7_null_strength.tsv

Each seed simulates the dataset (default ``csf_null``: no effect of any kind) with its own
seed and runs the analysis in one process (QC, Harmony, annotation, measurements) up to the
ligand-receptor expression; the strength readout of C7 (``csfcart.claims.lr_strength``) is
then computed as the claims compute it. A readout whose pairs were chosen on each patient's
own baseline reads below 0 here (the pairs high at baseline by noise seem to fall); chosen on
pooled expression it reads about 0. Prints each seed's estimate and the mean over seeds with
its standard error. A benchmark, not a test: about 3 minutes a seed on 2 cores (``--oracle``,
the simulator's labels instead of QC, integration and annotation: about 20 seconds).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="csf_null")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--oracle", action="store_true", help="the simulator's cell labels instead of QC, integration and annotation"
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    from csfcart.claims import lr_strength
    from csfcart.pipeline import annotated, default_config, measurements, oracle_anndata
    from csfcart.registry import CLAIMS
    from csfcart.simulate.cohort import load_cohort
    from csfcart.simulate.model import CohortModel

    config = default_config(ROOT)
    base = load_cohort(ROOT / "config" / "datasets" / f"{args.dataset}.yaml")
    readout = next(r for r in CLAIMS["C7"].readouts if r.measure == "lr_strength")
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        start = time.perf_counter()
        cohort = base.with_changes(seed=seed)
        model = CohortModel(cohort)
        adata = oracle_anndata(model) if args.oracle else annotated(model, cohort, config)
        m = measurements(adata, config, communication=False)
        values = lr_strength(readout, m, cohort.baseline).values
        rows.append({"dataset": args.dataset, "seed": seed, "oracle": args.oracle, "patients": len(values),
                     "estimate": values.mean()})  # fmt: skip
        print(f"seed {seed}: {values.mean():+.3f} over {len(values)} patients ({time.perf_counter() - start:.0f} s)",
              flush=True)  # fmt: skip
    table = pd.DataFrame(rows)
    est = table["estimate"].to_numpy()
    se = est.std(ddof=1) / np.sqrt(len(est)) if len(est) > 1 else float("nan")
    print(f"mean over {len(est)} seeds: {est.mean():+.3f} (SE {se:.3f})")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out, sep="\t", index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
