"""Does the paired communication analysis find nothing where nothing changed?

Scores every CSF sample of a cohort with no treatment effect (default ``csf_null``) with
LIANA, one sample at a time as the workflow does, takes the paired change of every
interaction (csfcart.communication.paired_interactions) and reports the share of negative
estimates (about half on a null cohort) and the BH-significant calls (FDR 5 %; about none).
The simulator's labels stand in for annotation, so that what is measured is the
communication statistics alone. LR scores are skewed (bounded at 0, a long right tail): the
mean of two post-infusion visits lies above a single baseline draw more often than below
it although their means are equal, so the share of negative pooled estimates runs below one
half on a null cohort; one visit against baseline (``--visits d14``) is symmetric. The share
is not a mean of independent coin flips: a sample's depth moves all of its interactions
together (a deeper sample detects more barely expressed ligands and receptors, which then
score above 0; with the simulator's gene-wise batch effect switched off and the data scaled
linearly, one cohort's share stays where it was), so one cohort's share strays far from one
half (0.36 to 0.56 over 20 single-visit cohorts here, mean 0.48); ``--seeds`` repeats the
check over seeds.

The cells scored here keep their ambient soup (no QC) and carry the simulator's labels;
the workflow removes the soup per cluster and annotates. ``--table`` reads a workflow run's
``communication/interactions.tsv`` instead and reports the same figures for it (the
default ``csf_null`` run: 266,035 interactions tested, 0.475 of the non-zero estimates
negative, none BH-significant; scored here, 0.417).

    python scripts/communication_null.py [--dataset csf_null] [--patients 5]
    python scripts/communication_null.py --table results/csf_null/communication/interactions.tsv
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scanpy as sc

ROOT = Path(__file__).parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="csf_null")
    parser.add_argument("--patients", type=int, default=5)
    parser.add_argument("--min-cells", type=int, default=5)
    parser.add_argument("--visits", nargs="+", help="post-infusion visits to compare with baseline (default: all)")
    parser.add_argument("--out", help="write the interaction table here (TSV)")
    parser.add_argument("--depth", type=int, help="thin every cell to at most this many UMIs before scoring")
    parser.add_argument("--ambient", type=float, help="every sample's soup fraction (default: the dataset's draw)")
    parser.add_argument(
        "--seeds", type=int, nargs="+", help="simulation seeds to repeat the check with (default: the dataset's)"
    )
    parser.add_argument("--table", help="a workflow run's communication/interactions.tsv: report its figures")
    args = parser.parse_args()
    if args.table:
        report(pd.read_csv(args.table, sep="\t"), args.table)
        return 0
    warnings.filterwarnings("ignore")
    from csfcart.communication import paired_interactions, present_types, score_sample
    from csfcart.measure import sample_meta
    from csfcart.pipeline import oracle_anndata
    from csfcart.simulate.cohort import load_cohort
    from csfcart.simulate.model import CohortModel

    shares = []
    for seed in args.seeds or [None]:
        start = time.perf_counter()
        cohort = load_cohort(ROOT / "config" / "datasets" / f"{args.dataset}.yaml").with_changes(
            n_patients=args.patients
        )
        if seed is not None:
            cohort = cohort.with_changes(seed=seed)
        if args.ambient is not None:
            cohort = cohort.with_changes(ambient_fraction=(args.ambient, args.ambient))
        adata = oracle_anndata(CohortModel(cohort))
        keep = adata.obs["compartment"] == "CSF"
        if args.visits:
            keep &= adata.obs["timepoint"].isin([cohort.baseline, *args.visits])
        adata = adata[keep.to_numpy()].copy()
        if args.depth:
            sc.pp.downsample_counts(adata, counts_per_cell=args.depth, random_state=0)
        sc.pp.normalize_total(adata, target_sum=1e4)
        sc.pp.log1p(adata)
        scores = pd.concat(
            [
                score_sample(adata[(adata.obs["sample_id"] == s).to_numpy()].copy(), min_cells=args.min_cells, seed=0)
                for s in adata.obs["sample_id"].unique()
            ],
            ignore_index=True,
        )
        meta = sample_meta(adata.obs)
        means = pd.Series({s: float(adata[(adata.obs["sample_id"] == s).to_numpy()].X.mean()) for s in meta.index})
        print(f"mean log-normalised expression per sample: {means.min():.4f} to {means.max():.4f}")
        _, summary = paired_interactions(
            scores, meta, baseline=cohort.baseline, present=present_types(adata.obs, min_cells=args.min_cells)
        )
        visits = ", ".join(args.visits or cohort.compartments["CSF"].timepoints[1:])
        negative = report(
            summary,
            f"{args.dataset} (seed {cohort.seed}), {args.patients} patients, visits {visits} vs baseline, "
            f"{adata.n_obs} CSF cells, {len(scores)} scores",
        )
        print(f"{time.perf_counter() - start:.0f} s")
        shares.append(negative)
    if len(shares) > 1:
        print(f"share of negative estimates over {len(shares)} seeds: " + ", ".join(f"{v:.3f}" for v in shares)
              + f" (mean {np.mean(shares):.3f})")  # fmt: skip
    if args.out:
        summary.to_csv(args.out, sep="\t", index=False)
    return 0


def report(summary: pd.DataFrame, title: str) -> float:
    """Print the null check's figures of an interaction table; the share of negative estimates."""
    tested = summary.dropna(subset=["estimate"])
    moved = tested[tested["estimate"] != 0]
    negative = float((moved["estimate"] < 0).mean()) if len(moved) else np.nan
    calls = int((tested["p_adjusted"] < 0.05).sum())
    print(title)
    print(f"interactions tested: {len(tested)} ({len(moved)} with a non-zero change)")
    print(f"share of negative estimates: {negative:.3f}")
    print(f"BH-significant (FDR 5 %): {calls} ({calls / max(len(tested), 1):.3%})")
    print(f"lost by absence in at least one patient: {int((summary['lost_in_patients'] > 0).sum())}")
    return negative


if __name__ == "__main__":
    sys.exit(main())
