"""How real do the simulated counts look? Statistics of a count matrix, side by side with a
real 10x sample's.

The real figures are computed once from raw counts that ship inside a package on PyPI (see
``REFERENCE_SOURCE``) and kept in ``csfcart/data/realism_reference*.tsv`` with their
provenance, so nothing is downloaded: ``scripts/realism.py --reference <csv>`` recomputes
them from that file.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd
import scipy.sparse as sp

REFERENCE_SOURCE = (
    "celltypist 1.7.1 wheel (PyPI), celltypist/data/samples/sample_cell_by_gene.csv: "
    "559 cells x 32,786 genes of raw 10x UMI counts"
)

#: statistic -> what it says (the order of the printed table)
STATISTICS: dict[str, str] = {
    "library_size_sdlog": "SD of log UMIs per cell (spread of library sizes)",
    "genes_per_cell_slope": "slope of log genes per cell against log UMIs per cell",
    "genes_at_5000_umis": "genes per cell at 5,000 UMIs (fitted)",
    "mean_variance_slope": "slope of log variance against log mean over genes (mean >= 0.01)",
    "dispersion_median": "median overdispersion (var - mean) / mean^2 of genes with mean >= 0.1",
    "detection_at_mean_0.1": "share of cells detecting a gene of mean 0.1 UMI (median over genes)",
    "detection_at_mean_1": "share of cells detecting a gene of mean 1 UMI (median over genes)",
}
_BINS = np.logspace(-3, 2, 21)


def _gene_moments(counts: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = counts.shape[0]
    mean = np.asarray(counts.mean(axis=0)).ravel()
    sq = np.asarray(counts.multiply(counts).mean(axis=0)).ravel()
    var = (sq - mean**2) * n / max(n - 1, 1)
    detected = np.asarray((counts > 0).sum(axis=0)).ravel() / n
    return mean, var, detected


def count_statistics(counts) -> dict[str, float]:
    """The :data:`STATISTICS` of a cells x genes raw count matrix."""
    counts = sp.csr_matrix(counts, dtype=np.float64)
    lib = np.asarray(counts.sum(axis=1)).ravel()
    genes = np.asarray((counts > 0).sum(axis=1)).ravel()
    ok = lib > 0
    loglib, loggenes = np.log(lib[ok]), np.log(genes[ok])
    slope, intercept = np.polyfit(loglib, loggenes, 1)
    mean, var, detected = _gene_moments(counts)
    expressed = mean >= 0.01
    mv_slope = np.polyfit(np.log(mean[expressed]), np.log(np.maximum(var[expressed], 1e-12)), 1)[0]
    high = mean >= 0.1
    disp = (var[high] - mean[high]) / mean[high] ** 2

    def detection(at: float) -> float:
        m = (mean >= at / 1.5) & (mean <= at * 1.5)
        return float(np.median(detected[m])) if m.any() else np.nan

    return {
        "library_size_sdlog": float(np.std(loglib)),
        "genes_per_cell_slope": float(slope),
        "genes_at_5000_umis": float(np.exp(intercept + slope * np.log(5000))),
        "mean_variance_slope": float(mv_slope),
        "dispersion_median": float(np.median(disp)),
        "detection_at_mean_0.1": detection(0.1),
        "detection_at_mean_1": detection(1.0),
    }


def count_curves(counts) -> pd.DataFrame:
    """Binned curves over genes (variance and detection against mean) and cells (genes
    against UMIs), for the realism figure."""
    counts = sp.csr_matrix(counts, dtype=np.float64)
    mean, var, detected = _gene_moments(counts)
    rows = []
    which = np.digitize(mean, _BINS)
    for b in range(1, len(_BINS)):
        m = which == b
        if m.sum() >= 5:
            x = float(np.sqrt(_BINS[b - 1] * _BINS[b]))
            rows.append({"curve": "variance_vs_mean", "x": x, "y": float(np.median(var[m]))})
            rows.append({"curve": "detection_vs_mean", "x": x, "y": float(np.median(detected[m]))})
    lib = np.asarray(counts.sum(axis=1)).ravel()
    genes = np.asarray((counts > 0).sum(axis=1)).ravel()
    edges = np.logspace(np.log10(max(lib.min(), 1)), np.log10(lib.max() + 1), 13)
    which = np.digitize(lib, edges)
    for b in range(1, len(edges)):
        m = which == b
        if m.sum() >= 5:
            rows.append({"curve": "genes_vs_umis", "x": float(np.median(lib[m])), "y": float(np.median(genes[m]))})
    return pd.DataFrame(rows)


def simulated_statistics(cohort) -> tuple[dict[str, float], pd.DataFrame]:
    """Median :data:`STATISTICS` over a cohort's baseline CSF samples (drawn in memory,
    genes only) and the first sample's curves."""
    from csfcart.simulate.model import CohortModel

    model = CohortModel(cohort)
    per_sample, curves = [], None
    for i, meta in enumerate(model.samples):
        if meta["compartment"] != "CSF" or meta["timepoint"] != cohort.baseline:
            continue
        counts = model.draw_sample(i).counts[:, : len(model.genes)]
        per_sample.append(count_statistics(counts))
        if curves is None:
            curves = count_curves(counts)
    return pd.DataFrame(per_sample).median().to_dict(), curves


def reference_statistics() -> tuple[pd.Series, pd.DataFrame]:
    """The shipped real-sample statistics and curves."""
    data = resources.files("csfcart.data")
    stats = pd.read_csv(data.joinpath("realism_reference.tsv"), sep="\t", comment="#").set_index("statistic")
    curves = pd.read_csv(data.joinpath("realism_reference_curves.tsv"), sep="\t", comment="#")
    return stats["real"], curves


def compare(simulated: dict[str, float]) -> pd.DataFrame:
    """Simulated beside real, with their ratio and whether it lies within a factor of 2."""
    real, _ = reference_statistics()
    table = pd.DataFrame(
        {
            "statistic": list(STATISTICS),
            "simulated": [simulated[s] for s in STATISTICS],
            "real": [float(real[s]) for s in STATISTICS],
            "meaning": list(STATISTICS.values()),
        }
    )
    table["ratio"] = table["simulated"] / table["real"]
    table["within_2x"] = table["ratio"].between(0.5, 2.0)
    return table[["statistic", "simulated", "real", "ratio", "within_2x", "meaning"]]
