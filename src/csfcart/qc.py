"""Per-sample quality control: MAD thresholds, doublets, ambient RNA.

Thresholds follow sc-best-practices: a cell is an outlier when its log total counts or log
genes lie more than ``nmads`` median absolute deviations from the sample's median, or its
mitochondrial fraction lies ``nmads`` MADs above the median or above a hard ceiling.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from csfcart.annotate import log_normalised
from csfcart.genesets import IG_PATTERN, is_immunoglobulin
from csfcart.keys import COUNTS, UNCORRECTED

if TYPE_CHECKING:  # imported where used: a QC job draws no figure, a plot job reads no AnnData
    import anndata as ad
    import matplotlib.pyplot as plt

#: genes expected in antibody-secreting / B cells only, used to estimate the ambient soup
AMBIENT_MARKERS = ["IGKC", "IGHG1", "IGHG2", "IGHG3", "IGHG4", "IGLC2", "IGLC1", "IGHA1", "JCHAIN", "IGHM"]
T_CELL_MARKERS = ["CD3D", "CD3E", "TRAC"]


def mad_outlier(values: np.ndarray, nmads: float, *, upper_only: bool = False) -> np.ndarray:
    """Cells more than ``nmads`` MADs from the median (above it, if ``upper_only``)."""
    med = np.median(values)
    mad = np.median(np.abs(values - med)) * 1.4826
    if mad == 0:
        return np.zeros(values.shape, dtype=bool)
    high = values > med + nmads * mad
    return high if upper_only else high | (values < med - nmads * mad)


#: Prefixes of mitochondrially encoded and ribosomal protein genes: human (MT-ND1, RPL13A)
#: and mouse (mt-Nd1, Rpl13a) symbols.
MT_PREFIXES = ("MT-", "mt-", "Mt-")
RIBO_PREFIXES = ("RPS", "RPL", "Rps", "Rpl")


def qc_metrics(adata: ad.AnnData) -> None:
    """Add total counts, genes, MT and ribosomal fractions to ``obs`` (from raw counts).

    The columns, names and dtypes of scanpy's ``calculate_qc_metrics(qc_vars=["mt", "ribo"],
    percent_top=None, log1p=True)`` (a test holds them equal), computed with scipy: a QC job
    then imports neither scanpy nor numba, which cost more than the metrics themselves."""
    counts = sp.csr_matrix(adata.layers[COUNTS])
    adata.var["mt"] = adata.var_names.str.startswith(MT_PREFIXES)
    adata.var["ribo"] = adata.var_names.str.startswith(RIBO_PREFIXES)
    total = np.asarray(counts.sum(axis=1), dtype=counts.dtype).ravel()
    genes = counts.getnnz(axis=1)
    real = np.result_type(counts.dtype, np.float32)
    obs = {
        "n_genes_by_counts": genes.astype(np.int32),
        "log1p_n_genes_by_counts": np.log1p(genes.astype(np.float64)),
        "total_counts": total,
        "log1p_total_counts": np.log1p(total),
    }
    for qc_var in ("mt", "ribo"):
        part = np.asarray(counts[:, adata.var[qc_var].to_numpy()].sum(axis=1), dtype=counts.dtype).ravel()
        obs[f"total_counts_{qc_var}"] = part
        obs[f"log1p_total_counts_{qc_var}"] = np.log1p(part)
        with np.errstate(divide="ignore", invalid="ignore"):
            obs[f"pct_counts_{qc_var}"] = (part / total * 100).astype(real)
    for key, value in obs.items():
        adata.obs[key] = value
    cells_by_gene = counts.getnnz(axis=0)
    gene_total = np.asarray(counts.sum(axis=0), dtype=counts.dtype).ravel()
    mean = gene_total.astype(np.float64) / max(counts.shape[0], 1)
    adata.var["n_cells_by_counts"] = cells_by_gene.astype(np.int64)
    adata.var["mean_counts"] = mean
    adata.var["log1p_mean_counts"] = np.log1p(mean)
    adata.var["pct_dropout_by_counts"] = (1 - cells_by_gene / max(counts.shape[0], 1)) * 100
    adata.var["total_counts"] = gene_total
    adata.var["log1p_total_counts"] = np.log1p(gene_total)


def settings_for(sample_id: str, qc: dict[str, Any]) -> dict[str, Any]:
    """The QC settings of one sample: the defaults with its per-sample overrides."""
    out = {k: v for k, v in qc.items() if k != "per_sample"}
    over = (qc.get("per_sample") or {}).get(sample_id, {})
    out.update({k: v for k, v in over.items() if k != "nmads"})
    out["nmads"] = {**qc["nmads"], **over.get("nmads", {})}
    return out


def flag_cells(adata: ad.AnnData, settings: dict[str, Any]) -> pd.DataFrame:
    """Per-cell pass/fail flags with the reason; thresholds in ``.attrs``."""
    obs = adata.obs
    nmads = settings["nmads"]
    flags = pd.DataFrame(index=obs.index)
    flags["low_quality_counts"] = mad_outlier(obs["log1p_total_counts"].to_numpy(), nmads["log1p_total_counts"])
    flags["low_quality_genes"] = mad_outlier(
        obs["log1p_n_genes_by_counts"].to_numpy(), nmads["log1p_n_genes_by_counts"]
    ) | (obs["n_genes_by_counts"].to_numpy() < settings["min_genes"])
    pct = obs["pct_counts_mt"].to_numpy()
    flags["high_mt"] = mad_outlier(pct, nmads["pct_counts_mt"], upper_only=True) | (pct > settings["max_pct_mt"])
    return flags


def _components(x: sp.csr_matrix, *, seed: int, n_genes: int, n_pcs: int):
    """Principal components of the log-normalised, scaled ``n_genes`` most variable genes;
    returns them with the fitted PCA, the genes, and their centre and scale (to project
    other droplets)."""
    from sklearn.decomposition import PCA

    norm = log_normalised(x)
    mean = np.asarray(norm.mean(axis=0)).ravel()
    var = np.asarray(norm.multiply(norm).mean(axis=0)).ravel() - mean**2
    genes = np.argsort(-var)[: min(n_genes, x.shape[1])]
    dense = norm[:, genes].toarray()
    centre, scale = dense.mean(axis=0), dense.std(axis=0) + 1e-6
    pca = PCA(min(n_pcs, x.shape[0] - 1, len(genes)), svd_solver="randomized", random_state=seed)
    return pca.fit_transform((dense - centre) / scale), pca, genes, centre, scale


def doublet_scores(
    counts: Any,
    *,
    expected_rate: float,
    seed: int,
    n_genes: int = 1000,
    n_pcs: int = 20,
    n_clusters: int = 6,
    folds: int = 3,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Doublet probability and calls per cell from artificial heterotypic doublets.

    The method follows scDblFinder's cluster-based route, in Python:

    1. log-normalised counts of the ``n_genes`` most variable genes, scaled, ``n_pcs``
       principal components (fitted on the observed cells); k-means clusters on them;
    2. as many artificial doublets as cells, each the summed counts of two cells from
       different clusters (a doublet of one type looks like a large singlet and cannot be
       told from one by expression), projected onto the same components;
    3. per droplet, real or artificial: the components, log total counts, log genes
       detected, and the share of artificial droplets among its nearest neighbours (at
       two neighbourhood sizes);
    4. a gradient-boosted classifier of artificial against observed droplets, trained
       twice: the second time without the observed droplets the first round scored
       highest (they are likely doublets). Each observed cell's score comes from a model
       fitted without it (``folds``-fold cross-fitting).

    Each droplet, real or artificial, is scored by a model fitted without it. The share of
    doublets among the cells is estimated from the high scores: above the artificial
    doublets' median score singlets are rare and half of the doublets lie, so twice the
    share of cells there estimates it. The calls are that many of the highest-scoring
    cells, at most the expected number of heterotypic doublets (``expected_rate`` times the
    cells, times the chance that two cells drawn at random come from different clusters):
    a sample without doublets loses few cells.
    """
    from sklearn.cluster import KMeans
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(seed)
    x = sp.csr_matrix(counts, dtype=np.float32)
    n = x.shape[0]
    z_obs, pca, genes, centre, scale = _components(x, seed=seed, n_genes=n_genes, n_pcs=n_pcs)
    k_clusters = int(min(n_clusters, max(2, n // 50)))
    clusters = KMeans(k_clusters, n_init=2, random_state=seed).fit_predict(z_obs[:, :10])
    share = np.bincount(clusters, minlength=k_clusters) / n
    heterotypic = float(1 - (share**2).sum())

    first, second = rng.integers(0, n, 4 * n), rng.integers(0, n, 4 * n)
    apart = clusters[first] != clusters[second]
    first, second = first[apart][:n], second[apart][:n]
    artificial = sp.csr_matrix(x[first] + x[second])
    m = artificial.shape[0]
    z_art = pca.transform((log_normalised(artificial, columns=genes).toarray() - centre) / scale)

    z = np.vstack([z_obs, z_art])
    label = np.r_[np.zeros(n), np.ones(m)]
    k = int(min(max(10, round(np.sqrt(n) / 2)), n + m - 1))
    neighbours = NearestNeighbors(n_neighbors=k + 1).fit(z).kneighbors(z, return_distance=False)[:, 1:]
    features = np.column_stack(
        [
            z,
            np.log1p(np.r_[np.asarray(x.sum(axis=1)).ravel(), np.asarray(artificial.sum(axis=1)).ravel()]),
            np.log1p(np.r_[np.diff(x.indptr), np.diff(artificial.indptr)]),
            label[neighbours].mean(axis=1),
            label[neighbours[:, : max(3, k // 4)]].mean(axis=1),
        ]
    )
    fold = rng.permutation(np.arange(n + m) % folds)
    expected = expected_rate * n * heterotypic
    score = np.zeros(n + m)
    negatives = np.ones(n + m, dtype=bool)
    for _ in range(2):
        new = np.zeros(n + m)
        for f in range(folds):
            train = negatives & (fold != f)
            model = HistGradientBoostingClassifier(max_iter=100, random_state=seed)
            model.fit(features[train], label[train])
            new[fold == f] = model.predict_proba(features[fold == f])[:, 1]
        score = new
        cut = np.quantile(score[:n], 1 - min(0.5, 2 * expected / n))
        negatives = np.r_[score[:n] < cut, np.ones(m, dtype=bool)]
    # share of observed droplets that are doublets: above the artificial doublets' median
    # score, singlets are rare, and half of the doublets lie there
    median = np.median(score[n:])
    estimated = float(np.mean(score[:n] > median) / np.mean(score[n:] > median))
    share = min(estimated, expected / n)
    order = np.argsort(-score[:n], kind="stable")
    called = np.zeros(n, dtype=bool)
    called[order[: round(share * n)]] = True
    score = score[:n]
    info = {
        "clusters": k_clusters,
        "heterotypic_share": round(heterotypic, 3),
        "expected": round(expected, 1),
        "estimated": round(estimated * n, 1),
    }
    return score, called, info


def score_doublets(adata: ad.AnnData, *, rate_per_1000: float, seed: int) -> None:
    """Doublet scores and calls into ``obs`` (``doublet_score``, ``predicted_doublet``).

    See :func:`doublet_scores`; ``rate_per_1000`` is the doublet rate per 1,000 cells
    loaded (10x: about 0.8 %), so the expected rate grows with the sample's cells.
    """
    if adata.n_obs < 100:
        adata.obs["doublet_score"] = 0.0
        adata.obs["predicted_doublet"] = False
        return
    expected = float(np.clip(rate_per_1000 * adata.n_obs / 1000, 0.005, 0.3))
    score, called, _ = doublet_scores(adata.layers[COUNTS], expected_rate=expected, seed=seed)
    adata.obs["doublet_score"] = score.astype(np.float32)
    adata.obs["predicted_doublet"] = called


def soup_profile(adata: ad.AnnData) -> tuple[np.ndarray, str]:
    """The sample's soup profile (share of each gene) and where it came from: the empty
    droplets of its raw matrix (``var['ambient_profile']``, set at ingest), else the summed
    counts of its cells, SoupX's stand-in without empty droplets, which misses the soup's
    excess of transcripts of cells that lyse readily (plasma cells): :func:`soup_from_cells`
    corrects it before it is used."""
    if "ambient_profile" in adata.var and float(adata.var["ambient_profile"].sum()) > 0:
        return adata.var["ambient_profile"].to_numpy(dtype=float), "empty droplets"
    summed = np.asarray(adata.layers[COUNTS].sum(axis=0)).ravel().astype(float)
    return summed / max(summed.sum(), 1.0), "cells"


#: pairs of (genes a cell type does not express, markers that pick the cells of that type):
#: the genes' counts in those cells come from the soup. Immunoglobulins in T cells tell the
#: soup where antibody-secreting cells shed into it; T-cell genes in myeloid and B cells tell
#: it wherever T cells, most of a CSF sample, are present
SOUP_PROBES = [
    (AMBIENT_MARKERS, T_CELL_MARKERS),
    (T_CELL_MARKERS, ["LYZ", "CD14", "S100A8", "S100A9", "FCN1", "C1QA", "C1QB", "MS4A1", "CD79A", "CD79B"]),
]


def _genes(adata: ad.AnnData, names) -> np.ndarray:
    """Column indices of ``names`` in ``adata``: the exact symbol, else the first one equal
    but for case (human and mouse symbols; real tables may hold both C1orf220 and C1ORF220)."""
    var = adata.var_names
    folded = pd.Series(np.arange(len(var)), index=var.str.upper())
    folded = folded[~folded.index.duplicated()]
    exact = var.get_indexer(list(names))
    idx = [i if i >= 0 else int(folded.get(n.upper(), -1)) for i, n in zip(exact, names, strict=True)]
    return np.asarray([i for i in idx if i >= 0], dtype=int)


def _type_cells(counts: sp.csr_matrix, total: np.ndarray, genes: np.ndarray, markers: np.ndarray):
    """Cells of the type the ``markers`` pick, and every cell's counts of ``genes`` (genes the
    type does not express): its markers at 0.5 % of the cell's UMIs and above those genes (a
    cell that makes them, or a doublet with one that does, is not one, even when a soup-rich
    sample lends it the markers)."""
    marker = np.asarray(counts[:, markers].sum(axis=1)).ravel()
    other = np.asarray(counts[:, genes].sum(axis=1)).ravel()
    return (marker >= 0.005 * total) & (other < marker), other


def estimate_ambient(adata: ad.AnnData, soup: np.ndarray, *, cells: np.ndarray | None = None,
                     probe_cells: int = 20, probes: list | None = None) -> float:  # fmt: skip
    """Fraction of UMIs from the ambient soup (SoupX's estimate from genes that a cell type
    does not express): for each pair of :data:`SOUP_PROBES`, the cells picked by the markers
    (at least 0.5 % of their UMIs, and more than the probe genes) and the counts of the genes
    they do not express there, over what the soup would put there (their UMIs x the soup's
    share of those genes); pooled over the pairs. ``cells``: the cells to use (those passing
    QC; doublets would count their partner's genes). NaN when no pair has ``probe_cells``
    cells or the soup holds none of the genes. ``probes``: the pairs to use (default all).
    """
    counts = adata.layers[COUNTS]
    use = np.ones(adata.n_obs, dtype=bool) if cells is None else np.asarray(cells, dtype=bool)
    total = np.asarray(counts.sum(axis=1)).ravel()
    found, expected = 0.0, 0.0
    for genes, markers in SOUP_PROBES if probes is None else probes:
        gi, mi = _genes(adata, genes), _genes(adata, markers)
        if not gi.size or not mi.size or soup[gi].sum() == 0:
            continue
        picked, probe = _type_cells(counts, total, gi, mi)
        picked &= use
        if picked.sum() < probe_cells:
            continue
        x = probe[picked]
        keep = x <= np.quantile(x, 0.99)  # the odd doublet QC let through
        found += x[keep].sum()
        expected += total[picked][keep].sum() * soup[gi].sum()
    return float(min(found / expected, 1.0)) if expected > 0 else float("nan")


def soup_from_cells(
    adata: ad.AnnData, profile: np.ndarray, cells: np.ndarray, *, probe_cells: int = 20
) -> tuple[np.ndarray, float]:
    """The soup profile and fraction of a sample without empty droplets (a filtered matrix).

    The cells' summed counts stand in for the soup (SoupX's fallback), but they miss its
    excess of what readily lysing cells release: antibody-secreting cells' immunoglobulins
    are several times richer in the soup than in the cells, so an estimate from
    immunoglobulins in T cells would come out several times too high. The fraction is
    therefore taken from the T-cell genes in myeloid and B cells alone (T cells, most of a
    CSF sample, are no richer in the soup than in the droplets), and the immunoglobulins'
    share of the soup from what the T cells carry of them at that fraction: their counts
    over ``fraction x the T cells' UMIs``. ``profile``: the cells' summed counts as shares
    (:func:`soup_profile`'s fallback). Returns the corrected profile and the fraction (NaN,
    with ``profile`` as given, when too few myeloid or B cells show it)."""
    counts = adata.layers[COUNTS]
    fraction = estimate_ambient(adata, profile, cells=cells, probe_cells=probe_cells, probes=SOUP_PROBES[1:])
    if not np.isfinite(fraction) or fraction <= 0:
        return profile, fraction
    ig = np.flatnonzero(is_immunoglobulin(adata.var_names))
    ti = _genes(adata, T_CELL_MARKERS)
    if not ig.size or not ti.size or profile[ig].sum() == 0:
        return profile, fraction
    total = np.asarray(counts.sum(axis=1)).ravel()
    picked, carried = _type_cells(counts, total, ig, ti)
    picked &= np.asarray(cells, dtype=bool)
    if picked.sum() < probe_cells:
        return profile, fraction
    x = carried[picked]
    keep = x <= np.quantile(x, 0.99)
    share = float(np.clip(x[keep].sum() / (fraction * total[picked][keep].sum()), 0.0, 0.5))
    out = profile.copy()
    rest = np.setdiff1d(np.arange(len(out)), ig)
    out[ig] *= share / out[ig].sum()
    out[rest] *= (1.0 - share) / out[rest].sum()
    return out, fraction


def sample_clusters(
    counts: sp.csr_matrix, *, seed: int, cells_per_cluster: int = 40, max_clusters: int = 20
) -> np.ndarray:
    """Coarse k-means clusters of one sample (log-normalised counts of the most variable
    genes, principal components), for removing the soup cluster by cluster."""
    from sklearn.cluster import KMeans

    n = counts.shape[0]
    k = int(min(max_clusters, max(1, n // cells_per_cluster)))
    if k == 1:
        return np.zeros(n, dtype=int)
    z, *_ = _components(sp.csr_matrix(counts, dtype=np.float32), seed=seed, n_genes=1000, n_pcs=20)
    return KMeans(k, n_init=2, random_state=seed).fit_predict(z[:, :10])


def remove_ambient(
    counts: sp.csr_matrix,
    fraction: float,
    soup: np.ndarray,
    *,
    clusters: np.ndarray,
    seed: int,
    keep: np.ndarray | None = None,
    iterations: int = 40,
) -> sp.csr_matrix:
    """Counts with the soup subtracted, cluster by cluster (SoupX's ``adjustCounts``).

    In each cluster the soup is expected to bring ``fraction x the cluster's UMIs x the
    soup's share`` of each gene; that many counts (at most all of them) are removed from the
    cluster's cells in proportion to what the soup puts into each cell (its UMIs), never more
    than a cell has: ``min(count, lambda x cell UMIs)``, with ``lambda`` per cluster and gene
    set by bisection. A gene a cluster does not express loses what the soup brought, one it
    expresses is barely touched, and a doublet's excess is not mistaken for soup in its
    neighbours. What the expectation leaves of the soup's own noise in genes a cell type
    cannot express is cleared by :func:`clear_foreign_genes`. Removed counts are rounded stochastically (seeded)
    so that counts stay integers with the right expectation. Genes flagged in ``keep`` (a
    transgene with its own correction) are left as they are.
    """
    x = sp.csr_matrix(counts, dtype=np.float64, copy=True)
    x.sum_duplicates()
    s = np.asarray(soup, dtype=float).copy()
    if keep is not None:
        s[np.asarray(keep, dtype=bool)] = 0.0
    _, member = np.unique(np.asarray(clusters), return_inverse=True)
    n_genes = x.shape[1]
    total = np.asarray(x.sum(axis=1)).ravel()
    rows = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
    group = member[rows] * n_genes + x.indices  # (cluster, gene) of each stored count
    n_groups = (member.max() + 1) * n_genes if member.size else 0
    observed = np.bincount(group, x.data, minlength=n_groups)
    umis = np.bincount(member, total)
    target = np.minimum(fraction * np.repeat(umis, n_genes) * np.tile(s, len(umis)), observed)
    cell = total[rows]
    lo, hi = np.zeros(n_groups), np.zeros(n_groups)
    np.maximum.at(hi, group, np.divide(x.data, cell, out=np.zeros_like(cell), where=cell > 0))
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        removed = np.bincount(group, np.minimum(x.data, mid[group] * cell), minlength=n_groups)
        over = removed > target
        hi = np.where(over, mid, hi)
        lo = np.where(over, lo, mid)
    cut = np.minimum(x.data, hi[group] * cell) * (target[group] > 0)
    rng = np.random.default_rng(seed)
    whole = np.floor(cut)
    cut = whole + (rng.random(cut.size) < cut - whole)
    x.data = np.maximum(x.data - cut, 0.0)
    x.eliminate_zeros()
    return sp.csr_matrix(x, dtype=np.float32)


#: genes a cell type cannot express, and the markers that pick its cells: in those cells
#: every count of the genes is soup (or a doublet partner's), whatever the soup's level.
#: ``IG_PATTERN`` stands for every immunoglobulin gene of the data
FOREIGN = [
    ([IG_PATTERN, "MS4A1", "CD79A", "CD79B", "LYZ", "S100A8", "S100A9", "CD14", "FCN1", "MS4A7", "LST1"],
     T_CELL_MARKERS),
    (T_CELL_MARKERS, ["LYZ", "CD14", "S100A8", "S100A9", "FCN1", "C1QA", "C1QB", "MS4A1", "CD79A", "CD79B"]),
]  # fmt: skip


def clear_foreign_genes(counts: sp.csr_matrix, adata: ad.AnnData) -> tuple[sp.csr_matrix, int]:
    """Counts with the :data:`FOREIGN` genes set to 0 in the cells of the type that cannot
    express them (picked as for the ambient estimate, :func:`_type_cells`). Subtracting the
    soup's expectation leaves its noise behind, which is large where the soup is rich
    (immunoglobulins at baseline) and falls with it after treatment, so it would read as a
    fall in T cells; cleared at every visit alike, it cannot. Returns the counts and the
    number of counts cleared."""
    x = sp.csr_matrix(counts, copy=True)
    total = np.asarray(x.sum(axis=1)).ravel()
    cleared = 0
    ig = np.flatnonzero(is_immunoglobulin(adata.var_names))
    for genes, markers in FOREIGN:
        gi = np.union1d(_genes(adata, [g for g in genes if g != IG_PATTERN]), ig if IG_PATTERN in genes else [])
        gi, mi = gi.astype(int), _genes(adata, markers)
        if not gi.size or not mi.size:
            continue
        cells, _ = _type_cells(x, total, gi, mi)
        rows = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
        hit = cells[rows] & np.isin(x.indices, gi)
        cleared += int(x.data[hit].sum())
        x.data[hit] = 0
    x.eliminate_zeros()
    return x, cleared


def run_qc(
    adata: ad.AnnData, qc: dict[str, Any], *, seed: int, car_feature: str | None
) -> tuple[ad.AnnData, pd.DataFrame, dict[str, Any]]:
    """QC one sample. Returns the passing cells, a per-cell table and a summary row.

    Cells are judged on their counts as read. The soup's profile comes from the empty
    droplets of the sample's raw matrix, or without one from the cells
    (:func:`soup_from_cells`; the summary's ``ambient_profile`` says which); with
    ``remove_ambient`` the estimated soup is then removed from ``layers['counts']``, which
    every later step uses; the counts as read stay in ``layers['counts_uncorrected']`` of
    the QC file. A sample whose fraction cannot be estimated (too few myeloid or B cells
    to show it) keeps its counts, its ``ambient_fraction`` empty. The CAR transcript (``car_feature``) is
    left as it is: the CAR+ fractions correct for its soup themselves."""
    sample_id = str(adata.obs["sample_id"].iloc[0])
    settings = settings_for(sample_id, qc)
    qc_metrics(adata)
    flags = flag_cells(adata, settings)
    if settings["doublets"]:
        score_doublets(adata, rate_per_1000=settings["doublet_rate_per_1000"], seed=seed)
        flags["doublet"] = adata.obs["predicted_doublet"].to_numpy()
    else:
        flags["doublet"] = False
    passed = ~flags.any(axis=1)
    adata.obs["qc_pass"] = passed.to_numpy()
    soup, source = soup_profile(adata)
    ambient = float("nan")
    if settings["ambient"] and source == "cells":
        soup, ambient = soup_from_cells(adata, soup, passed.to_numpy())
    elif settings["ambient"]:
        ambient = estimate_ambient(adata, soup, cells=passed.to_numpy())
    cells = pd.concat([adata.obs.drop(columns=["qc_pass"]), flags], axis=1)
    cells["qc_pass"] = passed
    n_pass = int(passed.sum())
    status = "ok" if n_pass >= settings["min_cells"] else "excluded"
    summary = {
        "sample_id": sample_id,
        "cells_in": adata.n_obs,
        "cells_pass": n_pass,
        "removed_counts": int(flags["low_quality_counts"].sum()),
        "removed_genes": int(flags["low_quality_genes"].sum()),
        "removed_mt": int(flags["high_mt"].sum()),
        "removed_doublets": int(flags["doublet"].sum()),
        "median_counts": float(adata.obs["total_counts"].median()),
        "median_genes": float(adata.obs["n_genes_by_counts"].median()),
        "median_pct_mt": float(adata.obs["pct_counts_mt"].median()),
        "ambient_fraction": round(ambient, 4),
        "ambient_profile": source,
        "ambient_removed": 0.0,
        "status": status,
        "reason": "" if status == "ok" else f"{n_pass} cells pass QC, fewer than qc.min_cells={settings['min_cells']}",
    }
    out = adata[passed.to_numpy()].copy()
    remove = settings["remove_ambient"] and np.isfinite(ambient) and ambient > 0
    if remove and out.n_obs:
        before = out.layers[COUNTS]
        keep = out.var_names.isin([car_feature]) if car_feature else None
        clusters = sample_clusters(before, seed=seed)
        corrected = remove_ambient(before, ambient, soup, clusters=clusters, seed=seed, keep=keep)
        out.layers[COUNTS], _ = clear_foreign_genes(corrected, out)
        out.layers[UNCORRECTED] = before
        summary["ambient_removed"] = round(1.0 - float(out.layers[COUNTS].sum()) / max(float(before.sum()), 1.0), 4)
    out.X = None  # the counts are stored once, in layers["counts"]
    return out, cells, summary


def plot_qc(cells: pd.DataFrame, title: str) -> plt.Figure:
    """Histograms of counts, genes and MT fraction; removed cells in orange."""
    import matplotlib.pyplot as plt

    # fixed margins: a constrained layout took half of each figure's time (30 per cohort)
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6), gridspec_kw={"wspace": 0.25})
    fig.subplots_adjust(left=0.045, right=0.99, bottom=0.15, top=0.87)
    passed = cells["qc_pass"].to_numpy()
    for ax, col, label in zip(
        axes[:3],
        ["total_counts", "n_genes_by_counts", "pct_counts_mt"],
        ["UMIs per cell", "genes per cell", "MT fraction (%)"],
        strict=True,
    ):
        values = cells[col].to_numpy()
        bins = (
            np.logspace(np.log10(max(values.min(), 1)), np.log10(max(values.max(), 2)), 40)
            if col != "pct_counts_mt"
            else 40
        )
        ax.hist(
            [values[passed], values[~passed]],
            bins=bins,
            stacked=True,
            histtype="stepfilled",  # one patch per group, not one per bar: much faster to draw
            color=["#4477AA", "#EE7733"],
            label=["kept", "removed"],
        )
        if col != "pct_counts_mt":
            ax.set_xscale("log")
            _plain_log_ticks(ax)
        ax.set_xlabel(label)
        ax.set_ylabel("cells")
    axes[0].legend()
    ax = axes[3]
    ax.scatter(cells["total_counts"], cells["pct_counts_mt"], s=3, c=np.where(passed, "#4477AA", "#EE7733"))
    ax.set_xscale("log")
    _plain_log_ticks(ax)
    ax.set_xlabel("UMIs per cell")
    ax.set_ylabel("MT fraction (%)")
    fig.suptitle(f"{title}: {passed.sum()} of {len(passed)} cells kept")
    return fig


def _plain_log_ticks(ax: plt.Axes) -> None:
    """A log x axis labelled 200, 500, 1000, ... (matplotlib's minor labels overlap when the
    range spans less than a decade); over wider ranges 300, 1000, 3000, ... or powers of ten,
    so that labels never run into each other."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    lo, hi = ax.get_xlim()
    decades = np.log10(max(hi, 1e-9) / max(lo, 1e-9))
    subs = (1.0, 2.0, 5.0) if decades <= 1.3 else (1.0, 3.0) if decades <= 2.6 else (1.0,)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def plot_summary(table: pd.DataFrame) -> plt.Figure:
    """Cells kept and removed per sample, with the reason; excluded samples marked."""
    import matplotlib.pyplot as plt

    t = table.set_index("sample_id")
    fig, ax = plt.subplots(figsize=(max(8, 0.32 * len(t) + 3), 4.5), layout="constrained")
    x = np.arange(len(t))
    ax.bar(x, t["cells_pass"], color="#4477AA", label="kept")
    ax.bar(x, t["cells_in"] - t["cells_pass"], bottom=t["cells_pass"], color="#EE7733", label="removed")
    for i, status in enumerate(t["status"]):
        if status != "ok":
            ax.text(i, t["cells_in"].iloc[i], "excluded", rotation=90, ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, t.index, rotation=90, fontsize=7)
    ax.set_ylabel("cells")
    ax.legend()
    ax.set_title("Cells per sample before and after QC")
    return fig
