"""The workflow's figures, drawn from the tables their compute rules wrote.

Compute rules write tables; each plot rule reads them and calls :func:`save_figures` with
its figure's name. The figure functions of the package return a Figure and never save (as
scanpy's ``pl`` functions with ``show=False``); here each is saved to the rule's output.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from csfcart.communication import plot_axis_lines, plot_pair_heatmap, plot_tensor, plot_top_changes
from csfcart.composition import long_fractions, plot_patient_lines, plot_stacked
from csfcart.de import plot_heatmap, plot_volcanoes
from csfcart.plotting import plot_car_fraction, plot_claim_patients, plot_claims
from csfcart.qc import plot_qc, plot_summary
from csfcart.timepoints import order_timepoints


def read(path, **kw):
    return pd.read_csv(path, sep="\t", **kw)


def sample_of(path, suffix: str) -> str:
    """The sample id (or cell type) of a per-sample (per-cell-type) file named ``<sample><suffix>``."""
    return Path(path).name.removesuffix(suffix)


def composition(i, w):
    long = long_fractions(read(i.counts, index_col=0))
    return [plot_patient_lines(long), plot_stacked(long)]


def communication(i, w):
    interactions, samples = read(i.interactions), read(i.samples, index_col=0)
    legend = ("baseline", "after infusion")
    if "contrast" in interactions and interactions["contrast"].astype(str).str.contains("_vs_").any():
        legend = (str(interactions["contrast"].dropna().iloc[0]).split("_vs_")[-1], "other condition")
    csf = samples[samples["compartment"] == "CSF"]
    types = sorted({t for cell in csf["cell_types_present"].dropna() for t in str(cell).split(",") if t})
    return [
        plot_axis_lines(read(i.axis, index_col=0), order_timepoints(samples["timepoint"].unique())),
        plot_top_changes(interactions, legend=legend),
        plot_pair_heatmap(read(i.pairs), types),
    ]


def claims(i, w):
    table = read(i.claims)
    return [plot_claims(table), plot_claim_patients(read(i.patients), table)]


def tensor(i, w):
    loadings, samples = read(i.loadings), read(i.samples, index_col=0)
    decomposed = samples.loc[samples.index.isin(set(loadings.loc[loadings["mode"] == "sample", "element"]))]
    return [plot_tensor(loadings, read(i.factors), samples, order_timepoints(decomposed["timepoint"].unique()))]


FIGURES = {
    "qc_sample": lambda i, w: (plot_qc(read(p), sample_of(p, ".cells.tsv.gz")) for p in i.cells),
    "qc_summary": lambda i, w: [plot_summary(read(i.table))],
    "composition": composition,
    "car_t": lambda i, w: [plot_car_fraction(read(i.table, index_col=0))],
    "de": lambda i, w: (
        plot_volcanoes(read(t), read(s), sample_of(t, ".tsv")) for t, s in zip(i.tables, i.status, strict=True)
    ),
    "de_summary": lambda i, w: [plot_heatmap(read(i.results))],
    "claims": claims,
    "communication": communication,
    "tensor": tensor,
}


def save_figures(figure: str, inputs, wildcards, outputs: Sequence[str], *, dpi: int = 110) -> None:
    """Draw ``figure`` from the tables in ``inputs`` and save one PNG per path in ``outputs``
    (each saved and closed before the next is drawn)."""
    drawn = 0
    for fig in FIGURES[figure](inputs, wildcards):
        if drawn < len(outputs):
            fig.savefig(outputs[drawn], dpi=dpi)
        plt.close(fig)
        drawn += 1
    if drawn != len(outputs):
        raise ValueError(f"figure '{figure}' draws {drawn} figures for {len(outputs)} outputs")
