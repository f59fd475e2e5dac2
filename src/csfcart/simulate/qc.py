"""Per-cell metrics of a simulated cohort and the figures to hold beside the real tables.

These read the truth on purpose: they describe the simulation, not an analysis of it.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp

from csfcart.plotting import CELL_TYPE_COLOURS, plot_stacked_composition

#: Real CSF clusters of Schafflick et al. 2020 -> simulated cell types.
REFERENCE_MAP: dict[str, list[str]] = {
    "Bc": ["naive_B", "memory_B"],
    "CD4_Tc": ["CD4_T", "Treg"],
    "NK": ["NK"],
    "CD8_Tc": ["CD8_T"],
    "class_mono": ["CD14_mono"],
    "nc_mono": ["CD16_mono", "border_macrophage", "microglia_like"],
    "mDC": ["mDC"],
    "pDC": ["pDC"],
    "plasma": ["plasma"],
}


def cell_metrics(simdir: str | Path) -> pd.DataFrame:
    """UMIs, genes and MT fraction per cell of a simulated cohort, joined to its truth."""
    simdir = Path(simdir)
    sheet = pd.read_csv(simdir / "samples.tsv", sep="\t")
    truth = pd.read_csv(simdir / "truth" / "cells.tsv.gz", sep="\t")
    frames = []
    for row in sheet.itertuples():
        d = simdir / row.path / "filtered_feature_bc_matrix"
        m = sp.csc_matrix(scipy.io.mmread(d / "matrix.mtx.gz"))  # genes x cells
        names = pd.read_csv(d / "features.tsv.gz", sep="\t", header=None)[1].to_numpy()
        barcodes = pd.read_csv(d / "barcodes.tsv.gz", header=None)[0].to_numpy()
        mt = np.char.startswith(names.astype(str), "MT-")
        total = np.asarray(m.sum(axis=0)).ravel()
        frames.append(
            pd.DataFrame(
                {
                    "sample_id": row.sample_id,
                    "barcode": barcodes,
                    "compartment": row.compartment,
                    "timepoint": row.timepoint,
                    "total_counts": total,
                    "n_genes": np.diff(m.indptr),
                    "pct_mt": 100 * np.asarray(m[mt].sum(axis=0)).ravel() / np.maximum(total, 1),
                }
            )
        )
    cells = pd.concat(frames, ignore_index=True)
    return cells.merge(truth, on=["sample_id", "barcode"], validate="one_to_one")


def composition(cells: pd.DataFrame) -> pd.DataFrame:
    """Percent of each true cell type (doublets and damaged cells excluded) per sample."""
    ok = cells[~cells["doublet"] & ~cells["damaged"]]
    return pd.crosstab(ok["sample_id"], ok["cell_type"], normalize="index") * 100


def plot_cell_metrics(cells: pd.DataFrame, reference_umis: pd.DataFrame | None = None) -> plt.Figure:
    """Box plots of UMIs, genes and MT % by true cell type; real CSF medians as diamonds."""
    ok = cells[~cells["doublet"] & ~cells["damaged"]]
    types = sorted(ok["cell_type"].unique())
    fig, axes = plt.subplots(3, 1, figsize=(10, 10), sharex=True, layout="constrained")
    for ax, col, label in zip(
        axes, ["total_counts", "n_genes", "pct_mt"], ["UMIs per cell", "genes per cell", "MT fraction (%)"], strict=True
    ):
        data = [ok.loc[ok["cell_type"] == t, col].to_numpy() for t in types]
        box = ax.boxplot(data, showfliers=False, patch_artist=True)
        for patch, t in zip(box["boxes"], types, strict=True):
            patch.set_facecolor(CELL_TYPE_COLOURS.get(t, "#bbbbbb"))
        ax.set_ylabel(label)
        if col == "total_counts":
            ax.set_yscale("log")
            if reference_umis is not None:
                for cluster, mapped in REFERENCE_MAP.items():
                    ref_rows = reference_umis[
                        reference_umis["clustering"].isin([cluster] if cluster != "CD8_Tc" else ["aCD8_Tc", "nCD8_Tc"])
                    ]
                    if ref_rows.empty:
                        continue
                    for t in mapped:
                        if t in types:
                            ax.plot(types.index(t) + 1, ref_rows["50%"].median(), "D", color="black", ms=6)
                ax.plot([], [], "D", color="black", label="real CSF median (Schafflick 2020)")
                ax.legend(loc="upper left", fontsize=9)
    axes[-1].set_xticks(range(1, len(types) + 1), types, rotation=45, ha="right")
    fig.suptitle("Simulated cells by true type (doublets and damaged cells excluded)")
    return fig


def plot_composition(comp: pd.DataFrame, reference: pd.DataFrame | None = None) -> plt.Figure:
    """Stacked bars of the true composition per sample, real CSF samples beside them."""
    bars = comp.copy()
    if reference is not None:
        ref = pd.DataFrame(index=reference["sample"])
        for cluster, mapped in REFERENCE_MAP.items():
            cols = ["aCD8_Tc", "nCD8_Tc"] if cluster == "CD8_Tc" else [cluster]
            ref[mapped[0]] = reference.set_index("sample")[cols].sum(axis=1)
        ref.index = ["real: " + s for s in ref.index]
        bars = pd.concat([bars, ref.fillna(0)]).fillna(0)
    return plot_stacked_composition(
        bars, "True composition per simulated sample (real CSF samples on the right, mapped to the simulated types)"
    )


def reference_table(name: str) -> pd.DataFrame:
    """A shipped table of real CSF figures (Schafflick et al. 2020, GSE138266)."""
    from importlib import resources

    with resources.files("csfcart.data").joinpath(name).open() as fh:
        return pd.read_csv(fh, sep="\t")


def write_figures(simdir: str | Path, outdir: str | Path) -> dict[str, Path]:
    """Write the figure set and a per-type summary table of a simulated cohort."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    cells = cell_metrics(simdir)
    out = {
        "metrics": outdir / "cell_metrics.png",
        "composition": outdir / "composition.png",
        "summary": outdir / "summary_by_cell_type.tsv",
    }
    fig = plot_cell_metrics(cells, reference_table("csf_umi_per_celltype_schafflick2020.tsv"))
    fig.savefig(out["metrics"], dpi=120)
    plt.close(fig)
    comp = (
        composition(cells[cells["compartment"] == "CSF"])
        if (cells["compartment"] == "CSF").any()
        else composition(cells)
    )
    fig = plot_composition(comp, reference_table("csf_composition_schafflick2020.tsv"))
    fig.savefig(out["composition"], dpi=120)
    plt.close(fig)
    ok = cells[~cells["doublet"] & ~cells["damaged"]]
    ok.groupby(["compartment", "cell_type"])[["total_counts", "n_genes", "pct_mt"]].median().round(2).to_csv(
        out["summary"], sep="\t"
    )
    return out
