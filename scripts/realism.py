"""Realism of the simulated counts: statistics beside a real 10x sample's, and a figure.

    python scripts/realism.py                       # table (stdout) for the default cohort
    python scripts/realism.py --figure realism.png --out realism.tsv
    python scripts/realism.py --reference sample_cell_by_gene.csv   # recompute the shipped
                                                                    # real statistics once

The simulated side is every baseline CSF sample of a dataset (default csf_bcma_cart),
drawn in memory; each statistic is the median over samples. The real side is shipped in
src/csfcart/data/realism_reference*.tsv (see csfcart.simulate.realism.REFERENCE_SOURCE);
``--reference`` rebuilds it from the CSV inside the celltypist wheel, e.g.
``pip download celltypist==1.7.1 --no-deps`` and unzip: nothing is fetched at run time.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "src" / "csfcart" / "data"


def build_reference(csv: Path) -> None:
    from csfcart.simulate.realism import REFERENCE_SOURCE, count_curves, count_statistics

    table = pd.read_csv(csv, index_col=0)
    values = table.to_numpy(dtype=np.float64)
    rounded = np.round(values)
    if np.abs(values - rounded).max() > 1e-6:
        sys.exit(f"{csv}: not integer counts (largest distance from an integer {np.abs(values - rounded).max():g})")
    digest = hashlib.sha256(csv.read_bytes()).hexdigest()
    # statistics over the genes the simulator draws (its default universe), so that genes
    # per cell and library sizes compare like with like
    from csfcart.simulate.model import gene_universe

    shared = table.columns.isin(gene_universe(3000))
    header = (
        f"# {REFERENCE_SOURCE}\n# sha256 of the CSV: {digest}\n# recomputed by scripts/realism.py --reference; "
        f"statistics over the {int(shared.sum())} genes it shares with the simulator's 3,000\n"
    )
    stats = count_statistics(rounded[:, shared])
    text = pd.DataFrame({"statistic": list(stats), "real": list(stats.values())}).to_csv(sep="\t", index=False)
    (DATA / "realism_reference.tsv").write_text(header + text)
    curves = count_curves(rounded[:, shared]).to_csv(sep="\t", index=False)
    (DATA / "realism_reference_curves.tsv").write_text(header + curves)
    # which of the simulator's genes real immune cells express at all (the simulator keeps
    # the others silent in every cell type)
    listed = [g for g in (line.strip() for line in (DATA / "genes.txt").read_text().splitlines()) if g and g[0] != "#"]
    detected = pd.Series((rounded > 0).mean(axis=0), index=table.columns).groupby(level=0).max()
    genes = pd.DataFrame(
        {"gene": listed, "detected_fraction": detected.reindex(listed).fillna(0.0).round(4).to_numpy()}
    )
    (DATA / "gene_detection_reference.tsv").write_text(header + genes.to_csv(sep="\t", index=False))
    print(f"wrote {DATA / 'realism_reference.tsv'} from {table.shape[0]} cells x {table.shape[1]} genes")


def figure(sim_curves: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from csfcart.simulate.realism import reference_statistics

    _, real = reference_statistics()
    panels = [
        ("variance_vs_mean", "mean UMIs per cell (gene)", "variance", True),
        ("detection_vs_mean", "mean UMIs per cell (gene)", "share of cells detecting it", False),
        ("genes_vs_umis", "UMIs per cell", "genes per cell", True),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for ax, (curve, xlabel, ylabel, logy) in zip(axes, panels, strict=True):
        for label, frame, style in (("real 10x sample", real, "o-"), ("simulated", sim_curves, "s--")):
            c = frame[frame["curve"] == curve]
            ax.plot(c["x"], c["y"], style, label=label, ms=4)
        if curve == "variance_vs_mean":
            x = np.logspace(-3, 2, 50)
            ax.plot(x, x, ":", color="grey", label="Poisson (variance = mean)")
        ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(frameon=False)
    fig.suptitle("Simulated baseline CSF counts beside a real 10x sample (celltypist's bundled raw counts)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, help="rebuild the shipped real statistics from this CSV")
    parser.add_argument("--dataset", default="csf_bcma_cart")
    parser.add_argument("--figure", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.reference:
        build_reference(args.reference)
        return 0
    from csfcart.simulate.cohort import load_cohort
    from csfcart.simulate.realism import compare, simulated_statistics

    stats, curves = simulated_statistics(load_cohort(ROOT / "config" / "datasets" / f"{args.dataset}.yaml"))
    table = compare(stats)
    with pd.option_context("display.width", 200, "display.max_colwidth", 80):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    if args.out:
        table.to_csv(args.out, sep="\t", index=False)
    if args.figure:
        figure(curves, args.figure)
    return 0 if table["within_2x"].all() else 1


if __name__ == "__main__":
    sys.exit(main())
