"""The perturbation suite: each variant's verdicts beside the verdicts its truth expects.

    python scripts/perturbations.py                 # full-size variants, one cohort each
    python scripts/perturbations.py --tiny --out results/perturbations.tsv

Each variant (config/datasets/, README "Swapping the dataset") breaks one assumption of the
analysis. The whole analysis runs in one process (csfcart.pipeline: QC, Harmony,
annotation, measurements, communication, claims) on the variant's own seed, and the table
gives, per claim, the verdict, the expected verdict (simulated/truth/claims.tsv) and the
estimate beside the true effect. Exits 1 when any verdict differs from the expected one.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SUITE = ["csf_bcma_cart", "csf_null", "csf_anti_cd20_like", "csf_depletion_only", "csf_ligand_only", "csf_dilution",
         "csf_dilution_strong", "csf_partial_program", "csf_near_size", "csf_high_ambient", "csf_small", "csf_weak_identity",
         "csf_unlisted_type"]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=SUITE)
    parser.add_argument("--tiny", action="store_true", help="use the _tiny variant of each dataset")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    from csfcart.pipeline import analyse, default_config
    from csfcart.simulate.cohort import load_cohort

    rows = []
    for name in args.datasets:
        name = f"{name}_tiny" if args.tiny else name
        start = time.perf_counter()
        table = analyse(load_cohort(ROOT / "config" / "datasets" / f"{name}.yaml"), default_config(ROOT))
        table.insert(0, "dataset", name)
        rows.append(table)
        wrong = table.loc[~table["verdict_matches"], "claim_id"].tolist()
        print(
            f"{name}: {len(table) - len(wrong)}/{len(table)} as expected ({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
    runs = pd.concat(rows, ignore_index=True)
    short = {"reproduced": "R", "contradicted": "x", "inconclusive": "-", "not_tested": "g", "not_reproduced": "-",
             "not_testable": "?"}  # fmt: skip
    cell = runs["verdict"].map(short) + "/" + runs["expected_verdict"].map(short).fillna(" ")
    grid = runs.assign(cell=cell).pivot(index="dataset", columns="claim_id", values="cell")
    print("\nverdict/expected (R reproduced, x contradicted, - inconclusive or not reproduced, g not tested, "
          "? not testable)")  # fmt: skip
    print(grid.reindex(runs["dataset"].unique()).fillna("").to_string())
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        runs.to_csv(args.out, sep="\t", index=False)
    return 0 if runs["verdict_matches"].all() else 1


if __name__ == "__main__":
    sys.exit(main())
