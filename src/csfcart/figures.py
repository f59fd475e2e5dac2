"""The workflow's figures, drawn from the tables their compute rules wrote.

Compute rules write tables; each plot rule reads them and calls :func:`save_figures` with
its figure's name. The figure functions of the package return a Figure and never save (as
scanpy's ``pl`` functions with ``show=False``); here each is saved to the rule's output.
"""

from __future__ import annotations

import functools
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

from csfcart.timepoints import order_timepoints

# Each figure imports the module that draws it: a plot job is a process of its own, and
# importing them all (communication's statistics, anndata for QC) took about 3 s a job.


def read(path, **kw):
    return pd.read_csv(path, sep="\t", **kw)


def sample_of(path, suffix: str) -> str:
    """The sample id (or cell type) of a per-sample (per-cell-type) file named ``<sample><suffix>``."""
    return Path(path).name.removesuffix(suffix)


def composition(i, w):
    from csfcart.composition import long_fractions, plot_patient_lines, plot_stacked

    long = long_fractions(read(i.counts, index_col=0))
    return [plot_patient_lines(long), plot_stacked(long)]


def communication(i, w):
    from csfcart.communication import plot_axis_lines, plot_pair_heatmap, plot_top_changes

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
    from csfcart.plotting import plot_claim_patients, plot_claims

    table = read(i.claims)
    return [plot_claims(table), plot_claim_patients(read(i.patients), table)]


def tensor(i, w):
    from csfcart.communication import plot_tensor

    loadings, samples = read(i.loadings), read(i.samples, index_col=0)
    decomposed = samples.loc[samples.index.isin(set(loadings.loc[loadings["mode"] == "sample", "element"]))]
    return [plot_tensor(loadings, read(i.factors), samples, order_timepoints(decomposed["timepoint"].unique()))]


def qc_sample(i, w):
    from csfcart.qc import plot_qc

    def one(path):
        return plot_qc(read(path), sample_of(path, ".cells.tsv.gz"))

    return [functools.partial(one, p) for p in i.cells]


def qc_summary(i, w):
    from csfcart.qc import plot_summary

    return [plot_summary(read(i.table))]


def car_t(i, w):
    from csfcart.plotting import plot_car_fraction

    return [plot_car_fraction(read(i.table, index_col=0))]


def de(i, w):
    from csfcart.de import plot_volcanoes

    def one(table, status):
        return plot_volcanoes(read(table), read(status), sample_of(table, ".tsv"))

    return [functools.partial(one, t, s) for t, s in zip(i.tables, i.status, strict=True)]


def de_summary(i, w):
    from csfcart.de import plot_heatmap

    return [plot_heatmap(read(i.results))]


FIGURES = {
    "qc_sample": qc_sample,
    "qc_summary": qc_summary,
    "composition": composition,
    "car_t": car_t,
    "de": de,
    "de_summary": de_summary,
    "claims": claims,
    "communication": communication,
    "tensor": tensor,
}


#: the figures a forked worker draws (set before the fork, see :func:`save_figures`)
_DRAWERS: list = []


def _draw(item, path: str, dpi: int) -> None:
    import matplotlib.pyplot as plt

    fig = item() if callable(item) else item
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def _draw_forked(k: int, path: str, dpi: int) -> None:
    _draw(_DRAWERS[k], path, dpi)


def save_figures(figure: str, inputs, wildcards, outputs: Sequence[str], *, dpi: int = 110, threads: int = 1) -> None:
    """Draw ``figure`` from the tables in ``inputs`` and save one PNG per path in ``outputs``.

    A figure function returns the figures, or for one figure per sample or cell type a call
    per figure that draws it: those are drawn by ``threads`` forked processes (one figure is
    serial work), the others one by one, each saved and closed before the next is drawn."""
    global _DRAWERS
    items = FIGURES[figure](inputs, wildcards)
    if isinstance(items, list) and len(items) != len(outputs):
        raise ValueError(f"figure '{figure}' draws {len(items)} figures for {len(outputs)} outputs")
    forked = threads > 1 and len(outputs) > 1 and "fork" in multiprocessing.get_all_start_methods()
    if forked and isinstance(items, list) and all(callable(item) for item in items):
        _DRAWERS = items
        try:
            with ProcessPoolExecutor(min(threads, len(items)), mp_context=multiprocessing.get_context("fork")) as pool:
                list(pool.map(_draw_forked, range(len(items)), outputs, [dpi] * len(items)))
        finally:
            _DRAWERS = []
        return
    drawn = 0
    for item in items:
        if drawn < len(outputs):
            _draw(item, outputs[drawn], dpi)
        drawn += 1
    if drawn != len(outputs):
        raise ValueError(f"figure '{figure}' draws {drawn} figures for {len(outputs)} outputs")
