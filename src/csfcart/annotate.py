"""Clustering, UMAP and marker-based cell-type annotation, with a CAR+ flag per cell.

Each cell is scored for every cell type of the marker table (scanpy's ``score_genes`` of its
markers, less that of the genes the type does not express, column ``negative``);
CAR-T cells are recognised by the CAR transcript per cluster (see :func:`annotate`);
scores are resolved per cluster: a cluster takes the type with the highest mean score,
unless that score is below ``min_score`` or within ``min_margin`` of the runner-up, in which
case it is labelled ``unassigned`` or ``low_confidence``, or unless the cluster does not
express the type's markers (:func:`cluster_evidence`), in which case it is ``unassigned``: a population the
marker table does not list is not forced into its nearest type. In a cluster whose cells
disagree with its label (a share of them score best for another type) a cell may take its
own best type: small populations on a continuum with a larger one (memory B cells beside
naive ones, border macrophages beside microglia-like cells, Treg among CD4 T cells) share
clusters at a cohort-wide resolution. It does so only with positive evidence for that type
(:func:`gated_moves`): an abundant type's 1-2 % of stray calls would otherwise swamp a rare
type, and after depletion be all that is left of it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from csfcart.errors import InputError
from csfcart.genesets import is_immunoglobulin
from csfcart.keys import (
    CAR_POSITIVE,
    CAR_T,
    CELL_TYPE,
    CLUSTER,
    CONFIDENCE,
    COUNTS,
    LOW_CONFIDENCE,
    OWN_LABEL,
    UNASSIGNED,
)
from csfcart.logs import step

log = logging.getLogger(__name__)


#: what the marker table's ``lineage`` column may say
LINEAGES = ("T", "NK", "B", "plasma", "myeloid", "microglia-like", "pDC", "other")


def _genes(value) -> list[str]:
    return [g.strip() for g in str(value).split(",") if g.strip()] if isinstance(value, str) else []


def marker_table(path: str | Path) -> pd.DataFrame:
    """The marker table: TSV with columns ``cell_type`` and ``markers`` (comma-separated
    symbols), and optionally ``negative`` (genes the type does not express: expression of
    them counts against it) and ``lineage`` (one of :data:`LINEAGES`)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: marker table not found. Fix: set annotation.markers to a TSV file")
    table = pd.read_csv(path, sep="\t", dtype=str, comment="#")
    for col in ("cell_type", "markers"):
        if col not in table.columns:
            raise InputError(f"{path}: column '{col}' missing. Fix: the table needs columns cell_type and markers")
    if table["cell_type"].duplicated().any():
        raise InputError(
            f"{path}: cell type '{table['cell_type'][table['cell_type'].duplicated()].iloc[0]}' listed twice. Fix: one row per type"
        )
    if "lineage" in table.columns:
        bad = table.loc[~table["lineage"].isin(LINEAGES), ["cell_type", "lineage"]]
        if len(bad):
            row = bad.iloc[0]
            raise InputError(
                f"{path}: row {row['cell_type']}: lineage '{row['lineage']}' is not known. "
                f"Fix: use one of {', '.join(LINEAGES)}"
            )
    table["markers"] = table["markers"].map(_genes)
    table["negative"] = (
        table["negative"].map(_genes) if "negative" in table.columns else [[] for _ in range(len(table))]
    )
    return table.set_index("cell_type")


def lineage_of(path: str | Path) -> dict[str, str]:
    """Cell type -> lineage, from the marker table's ``lineage`` column: every cell-type group
    the claims count or score (:mod:`csfcart.registry`: T cells, B lineage, plasma, myeloid,
    microglia-like) is derived from it."""
    table = marker_table(path)
    if "lineage" not in table.columns:
        raise InputError(
            f"{path}: column 'lineage' missing; the claims count cells by lineage. "
            f"Fix: add a column lineage saying, per row, one of {', '.join(LINEAGES)}"
        )
    return table["lineage"].to_dict()


def read_markers(path: str | Path) -> dict[str, list[str]]:
    """Positive markers per cell type (:func:`marker_table`)."""
    return marker_table(path)["markers"].to_dict()


# Up to this many cells the neighbours are exact (scikit-learn, distances by BLAS): on the
# default cohort's 41,809 cells x 20 dimensions about three times faster than pynndescent,
# whose compilation dominates below some 100,000 cells; above it, pynndescent's approximate
# neighbours (scanpy's default), whose cost grows near-linearly.
EXACT_NEIGHBOURS = 100_000


def cluster(adata: ad.AnnData, *, use_rep: str, n_neighbors: int, resolution: float, seed: int) -> None:
    """Neighbours on the integrated embedding and Leiden clusters into ``obs['cluster']``
    (the UMAP of the graph: :class:`UmapBeside`)."""
    import scanpy as sc

    n_neighbors = min(n_neighbors, adata.n_obs - 1)
    exact = adata.n_obs <= EXACT_NEIGHBOURS
    with step(f"{'exact' if exact else 'approximate'} neighbours of {adata.n_obs} cells on {use_rep}"):
        if exact:
            exact_neighbours(adata, use_rep=use_rep, n_neighbors=n_neighbors, seed=seed)
        else:
            sc.pp.neighbors(adata, use_rep=use_rep, n_neighbors=n_neighbors, random_state=seed)
    with step(f"Leiden clustering at resolution {resolution}"):
        sc.tl.leiden(
            adata,
            resolution=resolution,
            key_added=CLUSTER,
            flavor="igraph",
            n_iterations=2,
            directed=False,
            random_state=seed,
        )


def exact_neighbours(adata: ad.AnnData, *, use_rep: str, n_neighbors: int, seed: int) -> None:
    """``sc.pp.neighbors(adata, use_rep=..., transformer="sklearn")``: the same ``obsp`` and
    ``uns['neighbors']``, with the UMAP connectivities computed by :func:`fuzzy_connectivities`
    instead of umap-learn, whose import alone (it compiles pynndescent) takes longer than the
    exact neighbours of 40,000 cells."""
    import scanpy as sc

    neighbours = sc.Neighbors(adata)
    neighbours.compute_neighbors(n_neighbors, use_rep=use_rep, method=None, transformer="sklearn", random_state=seed)
    distances = neighbours.distances.tocsr()  # each row: the k - 1 others, nearest first
    n = adata.n_obs
    others = distances.indices.reshape(n, neighbours.n_neighbors - 1)
    indices = np.column_stack([np.arange(n), others])
    dists = np.column_stack([np.zeros(n, dtype=distances.dtype), distances.data.reshape(others.shape)])
    adata.uns["neighbors"] = {
        "connectivities_key": "connectivities",
        "distances_key": "distances",
        "params": {"n_neighbors": neighbours.n_neighbors, "method": "umap", "random_state": seed,
                   "metric": "euclidean", "use_rep": use_rep},
    }  # fmt: skip
    adata.obsp["distances"] = distances
    adata.obsp["connectivities"] = fuzzy_connectivities(indices, dists, n_neighbors=neighbours.n_neighbors)


#: umap-learn's constants (umap/umap_.py)
_SMOOTH_K_TOLERANCE = 1e-5
_MIN_K_DIST_SCALE = 1e-3
_FLOAT32_MAX = float(np.finfo(np.float32).max)


@functools.cache
def _umap_kernels() -> tuple[Callable, Callable]:
    """umap-learn's ``smooth_knn_dist`` (``local_connectivity=1``, ``bandwidth=1``) and
    ``compute_membership_strengths``, their loops as written there (BSD-3-Clause) and
    compiled by numba with the same options, so that they give the same float32 values;
    compiled once per process (about 3 s; umap-learn's import alone takes 10-13 s)."""
    import numba

    @numba.njit(locals={"psum": numba.float32, "lo": numba.float32, "mid": numba.float32, "hi": numba.float32},
                parallel=True)  # fmt: skip
    def smooth_knn(d, n_neighbors, n_iter):  # pragma: no cover - compiled
        target = np.log2(n_neighbors)
        rho = np.zeros(d.shape[0], dtype=np.float32)
        sigma = np.zeros(d.shape[0], dtype=np.float32)
        mean_distances = np.mean(d)
        for i in numba.prange(d.shape[0]):
            lo = 0.0
            hi = _FLOAT32_MAX
            mid = 1.0
            row = d[i]
            positive = row[row > 0.0]
            if positive.shape[0] >= 1:
                rho[i] = positive[0]
            for _ in range(n_iter):
                psum = 0.0
                for j in range(1, d.shape[1]):
                    above = d[i, j] - rho[i]
                    if above > 0:
                        psum += np.exp(-(above / mid))
                    else:
                        psum += 1.0
                if np.fabs(psum - target) < _SMOOTH_K_TOLERANCE:
                    break
                if psum > target:
                    hi = mid
                    mid = (lo + hi) / 2.0
                else:
                    lo = mid
                    if hi >= _FLOAT32_MAX:
                        mid *= 2
                    else:
                        mid = (lo + hi) / 2.0
            sigma[i] = mid
            if rho[i] > 0.0:
                if sigma[i] < _MIN_K_DIST_SCALE * np.mean(row):
                    sigma[i] = _MIN_K_DIST_SCALE * np.mean(row)
            elif sigma[i] < _MIN_K_DIST_SCALE * mean_distances:
                sigma[i] = _MIN_K_DIST_SCALE * mean_distances
        return sigma, rho

    @numba.njit(locals={"val": numba.float32})
    def memberships(indices, d, sigma, rho):  # pragma: no cover - compiled
        out = np.zeros(d.shape, dtype=np.float32)
        for i in range(d.shape[0]):
            for j in range(d.shape[1]):
                if indices[i, j] == i:
                    val = 0.0
                elif d[i, j] - rho[i] <= 0.0 or sigma[i] == 0.0:
                    val = 1.0
                else:
                    val = np.exp(-((d[i, j] - rho[i]) / sigma[i]))
                out[i, j] = val
        return out

    return smooth_knn, memberships


def fuzzy_connectivities(indices: np.ndarray, distances: np.ndarray, *, n_neighbors: int, n_iter: int = 64):
    """UMAP's fuzzy simplicial set of a k-nearest-neighbour graph, as umap-learn's
    ``fuzzy_simplicial_set`` computes it for scanpy (``local_connectivity=1``,
    ``set_op_mix_ratio=1``): its loops, compiled by numba, give the same float32 values.

    ``indices`` and ``distances`` are cells x k, each row the cell itself first (distance 0),
    then its neighbours, nearest first. Per cell, ``rho`` is the distance to its nearest
    neighbour at a distance above 0, and ``sigma`` the scale (binary search) at which the
    memberships ``exp(-(d - rho) / sigma)`` of the k - 1 others sum to log2(k); the graph is
    the fuzzy union ``A + A' - A o A'``. Returns the symmetric connectivities (CSR, float32).
    """
    import scipy.sparse as sp

    d = np.ascontiguousarray(distances, dtype=np.float32)
    indices = np.ascontiguousarray(indices, dtype=np.int64)
    n, k = d.shape
    smooth_knn, memberships = _umap_kernels()
    sigma, rho = smooth_knn(d, float(n_neighbors), n_iter)
    strength = memberships(indices, d, sigma, rho)
    graph = sp.coo_matrix((strength.ravel(), (np.repeat(np.arange(n), k), indices.ravel())), shape=(n, n))
    graph.eliminate_zeros()
    transpose = graph.transpose()
    union = graph + transpose - graph.multiply(transpose)  # the fuzzy union (umap's set_op_mix_ratio 1)
    union.eliminate_zeros()
    return sp.csr_matrix(union)


#: the most Lanczos vectors the UMAP's spectral start may ask for (:func:`lanczos_basis`)
LANCZOS_VECTORS = 128


@contextlib.contextmanager
def lanczos_basis(at_most: int):
    """Within the block, ARPACK's ``eigsh`` builds a Lanczos basis of at most ``at_most``
    vectors (and always more than twice the eigenvectors asked for).

    umap-learn's spectral start (the layout's default initialisation) asks ARPACK for the
    normalised Laplacian's smallest eigenvectors with a basis of sqrt(n) vectors: 945
    vectors of 893k float64 values, 6.7 GB beside the graph, and memory that grows as
    n^1.5. The eigenvectors are the same to ARPACK's tolerance with any basis that
    converges; measured on the neighbour graph of 893k cells, 128 vectors took 62 s and
    0.6 GB. Graphs under ``at_most``^2 cells (16,384 for 128) keep umap-learn's own basis, so
    their layout is scanpy's to the bit."""
    import scipy.sparse.linalg as sla

    eigsh = sla.eigsh

    def bounded(a, k=6, *args, ncv=None, **kwargs):
        if ncv is not None:
            ncv = min(ncv, max(at_most, 2 * k + 1))
        return eigsh(a, k, *args, ncv=ncv, **kwargs)

    sla.eigsh = bounded
    try:
        yield
    finally:
        sla.eigsh = eigsh


def _umap_of_graph(layout: ad.AnnData, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    import scanpy as sc

    with lanczos_basis(LANCZOS_VECTORS):
        sc.tl.umap(layout, random_state=seed)
    return layout.obsm["X_umap"], layout.uns["umap"]


def _prepare_umap() -> None:
    """Import umap-learn and compile its layout, on a ring of 64 cells (the layout's compiled
    code depends on the arrays' types, not their size; a spectral start, which compiles
    nothing, fails on a ring)."""
    import scanpy as sc
    import scipy.sparse as sp

    n = 64
    ring = sp.csr_matrix(sum(sp.eye(n, k=k, dtype=np.float32) for k in (-n + 1, -n + 2, -2, -1, 1, 2, n - 2, n - 1)))
    small = ad.AnnData(obs=pd.DataFrame(index=[str(i) for i in range(n)]))
    small.obsm["X"] = np.random.default_rng(0).normal(size=(n, 4)).astype(np.float32)
    small.obsp["connectivities"], small.obsp["distances"] = ring, ring
    small.uns["neighbors"] = {"connectivities_key": "connectivities", "distances_key": "distances",
                              "params": {"n_neighbors": 5, "method": "umap", "use_rep": "X"}}  # fmt: skip
    sc.tl.umap(small, random_state=0, init_pos="random")


class UmapBeside:
    """scanpy's UMAP of the neighbour graph, laid out in a forked process beside the annotation.

    Created before the neighbours are found: the process imports umap-learn and compiles its
    layout meanwhile (15-20 s that the rest of the annotation does not need). :meth:`start`
    sends it the graph, and :meth:`wait` stores ``obsm['X_umap']`` and ``uns['umap']``.
    UMAP runs on one core (a fixed random state makes it serial), as do the marker scores:
    side by side they take the longer of the two instead of the sum. The layout is the one
    ``sc.tl.umap`` gives in this process (same graph, same random state, ARPACK's basis
    bounded by :func:`lanczos_basis` in both). Where the platform
    cannot fork, or the process is lost, :meth:`wait` lays it out here.
    """

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._pending = None
        self._adata: ad.AnnData | None = None
        self._layout: ad.AnnData | None = None
        self._seed = 0
        if "fork" in multiprocessing.get_all_start_methods():
            self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
            self._pool.submit(_prepare_umap)

    def start(self, adata: ad.AnnData, *, seed: int) -> None:
        """Send ``adata``'s neighbour graph (``uns['neighbors']`` and its ``obsp``) to the process."""
        params = adata.uns["neighbors"]
        rep = params["params"].get("use_rep")
        self._adata, self._seed = adata, seed
        self._layout = ad.AnnData(
            obs=pd.DataFrame(index=adata.obs_names),
            obsm={rep: adata.obsm[rep]} if rep else {},
            obsp={k: adata.obsp[k] for k in (params["connectivities_key"], params["distances_key"])},
            uns={"neighbors": params},
        )
        if self._pool is not None:
            self._pending = self._pool.submit(_umap_of_graph, self._layout, seed)

    def wait(self) -> None:
        """Store the layout in the AnnData given to :meth:`start`."""
        with step("UMAP (computed beside the annotation)"):
            try:
                result = self._pending.result() if self._pending is not None else None
            except BrokenProcessPool:
                log.warning("the UMAP process was lost; laying out the UMAP in this process")
                result = None
            finally:
                self.close()
            if result is None:
                result = _umap_of_graph(self._layout, self._seed)
        self._adata.obsm["X_umap"], self._adata.uns["umap"] = result
        self._layout = None

    def close(self) -> None:
        """Stop the process (after :meth:`wait`, or when the annotation fails before it)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def log_normalised(
    counts: Any, *, columns: np.ndarray | None = None, block: int = 65536, in_place: bool = False
) -> sp.csr_matrix:
    """scanpy's ``normalize_total(target_sum=1e4)`` then ``log1p`` of ``counts`` (cells x
    genes), for the genes ``columns`` (all when None; each cell's library is always its
    count over all genes), as float32 CSR. Computed on one copy of the selected counts in
    place, ``block`` rows at a time: scanpy's functions hold a second copy of the matrix
    (1.4 GB more at 282k cells). ``in_place`` (all genes of float32 CSR counts): no copy at
    all, the counts themselves become the result (4.2 GB less at 893k cells)."""
    if in_place and (columns is not None or not _float32_csr(counts)):
        raise ValueError("log_normalised: in_place needs all genes of float32 CSR counts")
    counts = sp.csr_matrix(counts)
    library = np.asarray(counts.sum(axis=1, dtype=np.float64)).ravel()
    if in_place:
        x = counts
    else:
        x = sp.csr_matrix(counts if columns is None else counts[:, columns], dtype=np.float32, copy=True)
    scale = 1e4 / np.where(library > 0, library, 1.0)
    for start in range(0, x.shape[0], block):
        stop = min(start + block, x.shape[0])
        lo, hi = x.indptr[start], x.indptr[stop]
        x.data[lo:hi] *= np.repeat(scale[start:stop], np.diff(x.indptr[start : stop + 1])).astype(np.float32)
    np.log1p(x.data, out=x.data)
    return x


def normalise(adata: ad.AnnData, *, keep_counts: bool = True) -> None:
    """Log-normalised expression of all genes in ``X`` (:func:`log_normalised` of
    ``layers['counts']``). The annotation is the first step that needs it: the merged and
    integrated objects carry the counts alone. ``keep_counts=False`` turns the counts
    themselves into ``X`` (float32 CSR counts; others are copied) and drops the layer, so
    that the two are never held together."""
    if keep_counts:
        adata.X = log_normalised(adata.layers[COUNTS])
        return
    counts = adata.layers.pop(COUNTS)
    adata.X = log_normalised(counts, in_place=_float32_csr(counts))


def _float32_csr(counts: Any) -> bool:
    """Whether :func:`log_normalised` can turn ``counts`` into its result in place."""
    return sp.isspmatrix_csr(counts) and counts.dtype == np.float32


class GeneSetScorer:
    """scanpy's ``tl.score_genes`` (Seurat's module score) on the log-normalised ``X``, with
    the gene means it bins controls by computed once for all the sets scored.

    Each call of ``sc.tl.score_genes`` takes the mean of every gene over all cells, through
    two copies of the whole matrix (its NaN-aware mean): 28 calls on the marker table, 150 s
    and 2.8 GB beside the matrix at 282k cells. The matrix holds no NaN, so the means here
    are plain column means, taken once; binning, control sampling (numpy's legacy generator
    seeded with ``seed`` for each set, as scanpy seeds it) and the score follow scanpy
    1.11's ``score_genes`` step by step and give its values (``test_gene_set_scores_are_scanpys``).
    """

    def __init__(self, adata: ad.AnnData, *, seed: int, ctrl_size: int = 50, n_bins: int = 25) -> None:
        x = adata.X
        self.x = x if sp.issparse(x) else np.asarray(x)
        self.var_names = adata.var_names
        self.seed, self.ctrl_size, self.n_bins = seed, ctrl_size, n_bins
        means = np.asarray(self.x.sum(axis=0, dtype=np.float64)).ravel() / adata.n_obs
        avg = pd.Series(means, index=adata.var_names.astype("string"))
        avg = avg[np.isfinite(avg)]
        n_items = int(np.round(len(avg) / (n_bins - 1)))
        self.cut = avg.rank(method="min") // n_items

    def _row_means(self, genes: pd.Index) -> np.ndarray:
        part = self.x[:, self.var_names.get_indexer(genes)]
        return np.asarray(part.sum(axis=1, dtype=np.float64)).ravel() / len(genes)

    def __call__(self, genes: list[str]) -> np.ndarray:
        gene_list = pd.Index(genes).intersection(self.var_names)
        rng = np.random.RandomState(self.seed)
        control = pd.Index([], dtype="string")
        for cut in np.unique(self.cut.loc[gene_list]):
            pool = self.cut[self.cut == cut].index
            if self.ctrl_size < len(pool):
                pool = pool.to_series().sample(self.ctrl_size, random_state=rng).index
            control = control.union(pool.difference(gene_list))
        if len(control) == 0:
            raise RuntimeError(f"no control genes of like expression for the gene set {list(gene_list)}")
        return self._row_means(gene_list) - self._row_means(control)


def score_cell_types(
    adata: ad.AnnData, markers: dict[str, list[str]], *, seed: int, negative: dict[str, list[str]] | None = None
) -> pd.DataFrame:
    """Per-cell marker scores (cells x cell types) on the log-normalised ``X``: scanpy's
    ``score_genes`` (:class:`GeneSetScorer`) of the type's markers less that of its
    ``negative`` genes (each against control genes of like expression, so genes at
    background cost nothing on average): an NK cell expressing FCGR3A as a CD16 monocyte
    does still expresses GNLY and NKG7, which the monocyte's row lists as negative. Symbols
    are matched whatever their case, so the human table serves mouse symbols (Cd3e) too."""
    # symbols match exactly, else whatever their case (mouse Cd3e for the table's CD3E)
    folded = dict(zip(adata.var_names.str.upper(), adata.var_names, strict=True)) if adata.var_names.is_unique else {}
    scorer = GeneSetScorer(adata, seed=seed, ctrl_size=min(50, adata.n_vars // 4))

    def score(genes: list[str]) -> np.ndarray | None:
        present = [g if g in adata.var_names else folded.get(g.upper()) for g in genes]
        present = [g for g in present if g is not None]
        return scorer(present) if present else None

    scores = {}
    for cell_type, genes in markers.items():
        positive = score(genes)
        if positive is None:
            scores[cell_type] = np.full(adata.n_obs, np.nan)
            continue
        against = score((negative or {}).get(cell_type, []))
        scores[cell_type] = positive if against is None else positive - against
    return pd.DataFrame(scores, index=adata.obs_names)


def resolve_clusters(scores: pd.DataFrame, clusters: pd.Series, *, min_score: float, min_margin: float) -> pd.DataFrame:
    """One label per cluster from its cells' mean scores: ``unassigned`` when no type scores
    ``min_score`` (no listed type's markers), ``low_confidence`` when two types are within
    ``min_margin`` of each other."""
    means = scores.groupby(clusters.to_numpy(), observed=True).mean()
    ordered = np.sort(means.fillna(-np.inf).to_numpy(), axis=1)
    best = means.idxmax(axis=1)
    top, second = ordered[:, -1], ordered[:, -2] if means.shape[1] > 1 else np.full(len(means), -np.inf)
    label = np.where(top - second >= min_margin, best, LOW_CONFIDENCE)
    return pd.DataFrame(
        {
            "cell_type": np.where(top >= min_score, label, UNASSIGNED),
            "best_type": best,
            "best_score": top,
            "margin": top - second,
        },
        index=means.index,
    )


def group_moments(x: Any, codes: np.ndarray, n_groups: int, *, block: int = 16384) -> tuple[np.ndarray, np.ndarray]:
    """Per group (``codes``: each row's group, 0..n_groups-1) the sum and the sum of squares
    of every column of ``x`` (float64, groups x columns), ``block`` rows at a time: a copy of
    one block of squares instead of the whole matrix's."""
    sums = np.zeros((n_groups, x.shape[1]))
    squares = np.zeros((n_groups, x.shape[1]))
    for start in range(0, x.shape[0], block):
        part = x[start : start + block]
        part = sp.csr_matrix(part, dtype=np.float64) if sp.issparse(part) else np.asarray(part, dtype=np.float64)
        rows = codes[start : start + block]
        onehot = sp.csr_matrix((np.ones(len(rows)), (rows, np.arange(len(rows)))), shape=(n_groups, len(rows)))
        sums += np.asarray((onehot @ part).todense() if sp.issparse(part) else onehot @ part)
        squared = part.multiply(part) if sp.issparse(part) else part**2
        squares += np.asarray((onehot @ squared).todense() if sp.issparse(squared) else onehot @ squared)
    return sums, squares


def cluster_top_genes(adata: ad.AnnData, *, n: int = 8) -> pd.Series:
    """Each cluster's ``n`` most up-regulated genes against the other clusters (Welch's t of
    the log-normalised ``X``, the cluster against the rest, as scanpy's
    ``rank_genes_groups(method='t-test')`` ranks them; names joined by commas), to read
    beside the cluster's label. The clusters' moments come from one pass over the matrix
    (:func:`group_moments`): scanpy's function copies the rest of the cells once per
    cluster (2.2 GB beside the matrix at 282k cells)."""
    groups = adata.obs[CLUSTER].astype("category")
    names = groups.cat.categories.astype(str)
    if groups.nunique() < 2:
        return pd.Series("", index=sorted(set(groups.astype(str))))
    sums, squares = group_moments(adata.X, groups.cat.codes.to_numpy(), len(names))
    n_in = np.bincount(groups.cat.codes.to_numpy(), minlength=len(names)).astype(float)[:, None]
    n_out = adata.n_obs - n_in
    mean_in, mean_out = sums / n_in, (sums.sum(axis=0) - sums) / n_out
    with np.errstate(divide="ignore", invalid="ignore"):
        var_in = (squares / n_in - mean_in**2) * n_in / (n_in - 1)
        var_out = ((squares.sum(axis=0) - squares) / n_out - mean_out**2) * n_out / (n_out - 1)
        t = (mean_in - mean_out) / np.sqrt(var_in / n_in + var_out / n_out)
    t[~np.isfinite(t)] = 0
    top = {}
    for g, name in enumerate(names):
        n_top = min(n, t.shape[1])
        best = np.argpartition(t[g], -n_top)[-n_top:]
        best = best[np.argsort(t[g][best])[::-1]]
        top[name] = ",".join(adata.var_names[best].astype(str))
    return pd.Series(top, name="top_genes")


def mixed_clusters(
    scores: pd.DataFrame, clusters: pd.Series, table: pd.DataFrame, *, min_fraction: float, min_cells: int = 20
) -> tuple[list[str], pd.Series]:
    """Clusters in which at least ``min_fraction`` and ``min_cells`` of the cells score best
    for a type other than the cluster's best type, and every cell's own best type."""
    best = pd.Series(scores.columns[scores.fillna(-np.inf).to_numpy().argmax(axis=1)], index=scores.index)
    names = clusters.astype(str).to_numpy()
    other = pd.Series(best.to_numpy() != table["best_type"].reindex(names).to_numpy())
    stats = other.groupby(names).agg(["mean", "sum"])
    mixed = stats.index[(stats["mean"] >= min_fraction) & (stats["sum"] >= min_cells)].tolist()
    return mixed, best


def _detected(adata: ad.AnnData, genes: list[str], rows: np.ndarray | None = None) -> pd.DataFrame:
    """The cells ``rows`` (a boolean mask; all when None) x ``genes`` (those in the data),
    True where the cell has a count of the gene (the log-normalised ``X`` is above 0
    exactly there). Dense, so only for the few cells or genes a caller asks about."""
    present = [g for g in dict.fromkeys(genes) if g in adata.var_names]
    x = adata.X if rows is None else adata.X[np.flatnonzero(rows)]
    x = x[:, adata.var_names.get_indexer(present)]
    x = x.toarray() if sp.issparse(x) else np.asarray(x)
    names = adata.obs_names if rows is None else adata.obs_names[np.flatnonzero(rows)]
    return pd.DataFrame(x > 0, index=names, columns=present)


def _detected_per_group(adata: ad.AnnData, genes: list[str], groups: pd.Series) -> pd.DataFrame:
    """Per group of cells (``groups``: each cell's) the number of its cells with a count of
    each of ``genes`` (those in the data), summed on the sparse matrix (no dense copy)."""
    present = [g for g in dict.fromkeys(genes) if g in adata.var_names]
    x = sp.csr_matrix(adata.X[:, adata.var_names.get_indexer(present)], copy=True)
    codes, names = pd.factorize(groups.astype(str), sort=True)
    onehot = sp.csr_matrix((np.ones(len(codes)), (codes, np.arange(len(codes)))), shape=(len(names), len(codes)))
    x.data = (x.data > 0).astype(x.dtype)
    return pd.DataFrame(np.asarray((onehot @ x).todense()), index=names, columns=present)


#: a cell's move to another type needs half of the type's own markers, and at least this
#: many (:func:`gated_moves`)
MIN_EVIDENCE_GENES = 2
#: a marker is expressed in a cluster when detected in this share of its cells, and this
#: many times as often as in the cells of other lineages
CLUSTER_DETECTION, CLUSTER_ENRICHMENT = 0.2, 2.0


def cluster_evidence(
    adata: ad.AnnData, table: pd.DataFrame, markers: pd.DataFrame, lineage: dict[str, str]
) -> pd.Series:
    """Per cluster, the share of its best type's markers that the cluster expresses: detected
    in at least :data:`CLUSTER_DETECTION` of its cells and at least
    :data:`CLUSTER_ENRICHMENT` times as often as in the clusters of other lineages
    (immunoglobulins, which the soup puts everywhere, count for nothing). A population the
    marker table does not list (choroid plexus epithelium, neutrophils) scores highest for
    some type by the genes it happens to share, but expresses few of that type's markers."""
    clusters = adata.obs[CLUSTER].astype(str)
    genes = sorted({g for t in table["best_type"].unique() for g in markers.loc[t, "markers"]})
    hits = _detected_per_group(adata, genes, clusters)
    cells = clusters.value_counts().reindex(hits.index)
    share = hits.div(cells, axis=0)
    best_lineage = table["best_type"].map(lambda t: lineage.get(t, t))
    evidence = {}
    for name, best in table["best_type"].items():
        name = str(name)
        own = [g for g in markers.loc[best, "markers"] if g in hits.columns]
        own = [g for g, ig in zip(own, is_immunoglobulin(own), strict=True) if not ig]
        if not own:
            evidence[name] = 1.0
            continue
        others = best_lineage.index.astype(str)[(best_lineage != best_lineage[name]).to_numpy()]
        n_other = cells.reindex(others).fillna(0).sum()
        outside = hits.reindex(others)[own].sum() / n_other if n_other else pd.Series(0.0, index=own)
        inside = share.loc[name, own]
        expressed = (inside >= CLUSTER_DETECTION) & (inside >= CLUSTER_ENRICHMENT * outside)
        evidence[name] = float(expressed.mean())
    return pd.Series(evidence, name="marker_evidence")


def gated_moves(
    adata: ad.AnnData,
    own_best: pd.Series,
    cluster_label: pd.Series,
    markers: pd.DataFrame,
    lineage: dict[str, str],
    candidates: np.ndarray,
    car: np.ndarray | None = None,
    cluster_best: pd.Series | None = None,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Which ``candidates`` (cells of mixed clusters whose own best type differs from their
    cluster's label) may take their own best type, and a table of the moves per sample.

    The cluster's type C is its label, or for a ``low_confidence`` or ``unassigned`` cluster
    its best-scoring type (``cluster_best``, per cell). A cell moves to its own best type T:

    * with evidence: half of T's markers that C does not list, at least
      :data:`MIN_EVIDENCE_GENES` (all of them when fewer), immunoglobulins left out (B calls
      need MS4A1, CD79A/B, CD19, not the immunoglobulins every droplet carries from the
      soup; plasma calls MZB1, XBP1, PRDM1 and the like);
    * into another lineage, also without the genes T does not express (the marker table's
      ``negative``) that C's lineage is identified by (CD3D/E of a T-cell cluster for a B,
      plasma, myeloid or microglia-like call);
    * in a ``low_confidence`` cluster whose best type is of T's lineage (naive and memory B
      cells too alike to call the cluster either), on its scores alone: the lineage, by
      which every claim counts cells, is not in question;
    * to CAR_T only with the CAR transcript (``car``: the cells' CAR+ flag): the
      proliferation and cytotoxicity genes of its markers are what activated T cells of
      every kind express.

    Returns a boolean per cell (moves) and the table: sample_id, from_type, to_type,
    moved, kept (cells whose move lacked evidence)."""
    obs = adata.obs
    own = own_best.astype(str).to_numpy()
    label = cluster_label.astype(str).to_numpy()
    source = label.copy()
    if cluster_best is not None:
        unlisted = ~np.isin(label, markers.index)
        source[unlisted] = cluster_best.astype(str).to_numpy()[unlisted]
    lineage_markers: dict[str, set[str]] = {}
    for t, row in markers.iterrows():
        lineage_markers.setdefault(lineage.get(t, t), set()).update(row["markers"])
    moves = np.zeros(adata.n_obs, dtype=bool)
    pairs = pd.DataFrame({"from": source, "to": own})[candidates].drop_duplicates()
    needed = set()
    for to in pairs["to"].unique():
        needed.update(markers.loc[to, "markers"])
        needed.update(markers.loc[to, "negative"])
    detected = _detected(adata, sorted(needed), rows=candidates)  # dense for the candidates alone
    for src, to in pairs.itertuples(index=False):
        cells = candidates & (source == src) & (own == to)
        names = adata.obs_names[cells]
        known = src in markers.index
        same = known and lineage.get(src, src) == lineage.get(to, to)
        listed = set(markers.loc[src, "markers"]) if known else set()
        evidence = [g for g in markers.loc[to, "markers"] if g not in listed and g in detected.columns]
        evidence = [g for g, ig in zip(evidence, is_immunoglobulin(evidence), strict=True) if not ig]
        ok = np.zeros(int(cells.sum()), dtype=bool)
        if evidence:
            need = min(len(evidence), max(MIN_EVIDENCE_GENES, -(-len(evidence) // 2)))
            ok = detected.loc[names, evidence].sum(axis=1).to_numpy() >= need
            identity = lineage_markers.get(lineage.get(src, src), set()) if known and not same else set()
            conflict = [g for g in markers.loc[to, "negative"] if g in identity and g in detected.columns]
            if conflict:
                ok &= ~detected.loc[names, conflict].any(axis=1).to_numpy()
        if same:  # cells of an ambiguous cluster of one lineage keep their own type of it
            ok |= ~np.isin(label[cells], markers.index)
        if to == CAR_T:
            ok &= car[cells] if car is not None else False
        moves[np.flatnonzero(cells)[ok]] = True
    sample = obs["sample_id"].astype(str).to_numpy() if "sample_id" in obs else np.full(adata.n_obs, "")
    table = pd.DataFrame({"sample_id": sample, "from_type": label, "to_type": own, "moved": moves})[candidates]
    table = (
        table.groupby(["sample_id", "from_type", "to_type"], observed=True)["moved"]
        .agg(moved="sum", candidates="size")
        .reset_index()
    )
    table["kept"] = table.pop("candidates") - table["moved"]
    return moves, table


def marker_detection(adata: ad.AnnData, markers: pd.DataFrame) -> pd.DataFrame:
    """Per sample and called type: its cells and the share of them that detect the type's
    own markers (at least :data:`MIN_EVIDENCE_GENES` of them, immunoglobulins left out), so
    that a reader of real data, where no truth exists, can see a B call without B-cell genes.
    Types outside the marker table (``unassigned``, ``low_confidence``) have no share."""
    types = adata.obs[CELL_TYPE].astype(str)
    sample = adata.obs["sample_id"].astype(str) if "sample_id" in adata.obs else pd.Series("", index=adata.obs_names)
    listed = [t for t in types.unique() if t in markers.index]
    with_markers = pd.Series(np.nan, index=adata.obs_names)
    for t in listed:
        genes = [g for g in markers.loc[t, "markers"] if not is_immunoglobulin([g])[0]]
        cells = (types == t).to_numpy()
        detected = _detected(adata, genes, rows=cells)
        if detected.shape[1]:
            hits = detected.sum(axis=1).to_numpy()
            with_markers[cells] = (hits >= min(MIN_EVIDENCE_GENES, detected.shape[1])).astype(float)
    table = (
        pd.DataFrame({"sample_id": sample, "cell_type": types, "with_markers": with_markers})
        .groupby(["sample_id", "cell_type"], observed=True)["with_markers"]
        .agg(cells="size", share_with_markers="mean")
        .reset_index()
    )
    table["share_with_markers"] = table["share_with_markers"].round(3)
    return table


def flag_car(adata: ad.AnnData, car_feature: str | None) -> None:
    """``obs['car_positive']``: at least one UMI of the CAR transcript feature (read from the
    log-normalised ``X``, which is above 0 exactly where a cell has a count)."""
    if car_feature and car_feature in adata.var_names:
        col = adata.X[:, adata.var_names.get_loc(car_feature)]
        adata.obs[CAR_POSITIVE] = np.asarray(col.todense() if hasattr(col, "todense") else col).ravel() > 0
    else:
        adata.obs[CAR_POSITIVE] = False
    adata.uns["car_feature"] = car_feature or ""


def annotate(
    adata: ad.AnnData,
    *,
    markers: pd.DataFrame,
    use_rep: str,
    n_neighbors: int,
    resolution: float,
    min_score: float,
    min_margin: float,
    car_feature: str | None,
    seed: int,
    car_cluster_fraction: float,
    mixed_cluster_fraction: float,
    min_marker_share: float,
    umap: bool | UmapBeside = True,
) -> pd.DataFrame:
    """Cluster, score and label cells; returns the per-cluster table (its moves of single
    cells between types are in ``adata.uns['relabelled']``).

    ``markers``: the marker table (:func:`marker_table`). ``umap``: True lays out the UMAP of
    the neighbour graph (:class:`UmapBeside`) and stores it before returning; a
    :class:`UmapBeside` the caller made is sent the graph and left to the caller to wait for
    (:func:`write_annotated`); False lays out none.

    A cluster that expresses under ``min_marker_share`` of its best type's markers
    (:func:`cluster_evidence`) is ``unassigned``. A cluster in which at least
    ``car_cluster_fraction`` of cells carry the CAR transcript is labelled CAR_T (3'
    chemistry detects the transcript in only part of CAR-T cells, and no other cell carries
    it); 0 turns this off. In a cluster of mixed marker identity (:func:`mixed_clusters`,
    ``mixed_cluster_fraction``; 0 turns this off) a cell takes its own best-scoring type
    instead of the cluster's where it has the evidence :func:`gated_moves` asks for.
    """
    lineage = markers["lineage"].to_dict() if "lineage" in markers.columns else {}
    own = umap is True
    layout = UmapBeside() if own else (umap or None)
    try:
        cluster(adata, use_rep=use_rep, n_neighbors=n_neighbors, resolution=resolution, seed=seed)
        if layout is not None:
            layout.start(adata, seed=seed)
        with step(f"marker scores of {len(markers)} cell types"):
            scores = score_cell_types(
                adata, markers["markers"].to_dict(), seed=seed, negative=markers["negative"].to_dict()
            )
        table = resolve_clusters(scores, adata.obs[CLUSTER], min_score=min_score, min_margin=min_margin)
        table["marker_evidence"] = (
            cluster_evidence(adata, table, markers, lineage).reindex(table.index.astype(str)).to_numpy()
        )
        unlisted = ~table["cell_type"].isin([LOW_CONFIDENCE, UNASSIGNED]) & (
            table["marker_evidence"] < min_marker_share
        )
        table.loc[unlisted, "cell_type"] = UNASSIGNED
        clusters = adata.obs[CLUSTER].astype(str)
        labels = table["cell_type"].reindex(clusters).to_numpy()
        table["labelled_per_cell"] = False
        flag_car(adata, car_feature)
        relabelled = pd.DataFrame(columns=["sample_id", "from_type", "to_type", "moved", "kept"])
        if mixed_cluster_fraction > 0:
            mixed, best = mixed_clusters(scores, adata.obs[CLUSTER], table, min_fraction=mixed_cluster_fraction)
            candidates = clusters.isin(mixed).to_numpy() & (best.to_numpy() != labels)
            with step(f"evidence for {int(candidates.sum())} cells' own types in {len(mixed)} mixed clusters"):
                moves, relabelled = gated_moves(
                    adata,
                    best,
                    pd.Series(labels, index=adata.obs_names),
                    markers,
                    lineage,
                    candidates,
                    car=adata.obs[CAR_POSITIVE].to_numpy(dtype=bool) if car_feature in adata.var_names else None,
                    cluster_best=table["best_type"].reindex(clusters),
                )
            labels = np.where(moves, best.to_numpy(), labels)
            table.loc[mixed, "labelled_per_cell"] = True
        adata.uns["relabelled"] = {c: relabelled[c].tolist() for c in relabelled.columns}
        adata.obs[CELL_TYPE] = pd.Categorical(labels)
        adata.obs[CONFIDENCE] = table["margin"].reindex(clusters).to_numpy()
        adata.obsm["marker_scores"] = scores.to_numpy(dtype=np.float32)
        adata.uns["marker_score_types"] = list(scores.columns)
        car_share = adata.obs.groupby(CLUSTER, observed=True)[CAR_POSITIVE].mean().reindex(table.index)
        table["car_positive_fraction"] = car_share.to_numpy()
        car_clusters = car_share.index[(car_share >= car_cluster_fraction).to_numpy()]
        if len(car_clusters) and car_cluster_fraction > 0:
            table.loc[car_clusters, "cell_type"] = CAR_T
            labels = np.where(clusters.isin(car_clusters).to_numpy(), CAR_T, labels)
            adata.obs[CELL_TYPE] = pd.Categorical(labels)
        table["n_cells"] = adata.obs[CLUSTER].value_counts().reindex(table.index).to_numpy()
        with step("top genes per cluster"):
            table["top_genes"] = cluster_top_genes(adata).reindex(table.index.astype(str)).to_numpy()
        if own:
            layout.wait()
    finally:
        if own:
            layout.close()
    return table


def write_annotated(
    adata: ad.AnnData, path: str | Path, layout: UmapBeside, *, counts_from: str | Path | None = None
) -> None:
    """Write ``adata`` (gzip) while ``layout`` finishes its UMAP, then add the layout to the
    file (``obsm['X_umap']``, ``uns['umap']``): the file reads as the one written after the
    UMAP, and the writing (about 10 s on the default cohort) no longer waits for it.

    ``counts_from``: an .h5ad of the same cells whose ``layers['counts']`` is copied into the
    file block by block (:func:`copy_counts`), for an ``adata`` that let its counts go."""
    import h5py
    from anndata.io import write_elem

    adata.write_h5ad(path, compression="gzip")
    if counts_from is not None:
        copy_counts(counts_from, path)
    layout.wait()
    with h5py.File(path, "a") as f:
        write_elem(f["obsm"], "X_umap", adata.obsm["X_umap"], dataset_kwargs={"compression": "gzip"})
        write_elem(f["uns"], "umap", adata.uns["umap"], dataset_kwargs={"compression": "gzip"})


def copy_counts(source: str | Path, target: str | Path, *, block: int = 2**24) -> None:
    """Copy ``layers['counts']`` (a sparse matrix) of the .h5ad ``source`` into ``target``
    (gzip), ``block`` stored values at a time: the counts never sit in memory whole."""
    import h5py

    with h5py.File(source, "r") as src, h5py.File(target, "a") as dst:
        counts = src[f"layers/{COUNTS}"]
        if isinstance(counts, h5py.Dataset):
            raise ValueError(f"{source}: layers/{COUNTS} is dense; a sparse matrix is expected")
        cells = dst["obs"][dst["obs"].attrs["_index"]].shape[0]
        if int(counts.attrs["shape"][0]) != cells:
            raise ValueError(f"{source} holds counts of {counts.attrs['shape'][0]} cells, {target} {cells} cells")
        layers = dst.require_group("layers")
        out = layers.create_group(COUNTS)
        out.attrs.update(dict(counts.attrs))
        for name, part in counts.items():
            chunks = (min(max(part.shape[0], 1), 2**18),)
            data = out.create_dataset(name, shape=part.shape, dtype=part.dtype, compression="gzip", chunks=chunks)
            for start in range(0, part.shape[0], block):
                data[start : start + block] = part[start : start + block]


def use_own_labels(adata: ad.AnnData, label_map: dict[str, str]) -> pd.DataFrame:
    """Make the user's own labels (``obs['own_label']``, renamed by ``label_map``) the cell
    types; the marker labels move to ``obs['cell_type_markers']``. CAR_T (from the CAR
    transcript) is kept where the user's label names a T cell. Returns the agreement table:
    cells per own label and marker label."""
    own = adata.obs[OWN_LABEL].astype(str).map(lambda v: label_map.get(v, v))
    markers = adata.obs[CELL_TYPE].astype(str)
    adata.obs["cell_type_markers"] = pd.Categorical(markers)
    keep_car = (markers == CAR_T) & own.str.contains("T", case=True)
    adata.obs[CELL_TYPE] = pd.Categorical(np.where(keep_car, CAR_T, own))
    table = pd.crosstab(own.rename("own_label"), markers.rename("marker_label"))
    return table.stack().rename("cells").reset_index().query("cells > 0")


def celltypist_labels(adata: ad.AnnData, model: str | Path) -> pd.Series:
    """Each cell's label from a CellTypist model file the user gives (never downloaded):
    CellTypist's logistic regression on the log-normalised ``X`` (to 10,000 counts, as it
    expects), its calls voted per cluster of the workflow (CellTypist's majority voting over
    ``obs['cluster']``), so that a cluster's stray calls do not make a rare type."""
    import celltypist

    path = Path(model)
    if not path.is_file():
        raise InputError(
            f"{path}: CellTypist model not found. Fix: set annotation.celltypist_model to a model file (.pkl), "
            "for example one written by celltypist.train(...).write(path); nothing is downloaded"
        )
    with step(f"CellTypist model {path.name}"):
        result = celltypist.annotate(
            adata, model=str(path), majority_voting=True, over_clustering=adata.obs[CLUSTER].astype(str).to_numpy()
        )
    return result.predicted_labels["majority_voting"].astype(str).reindex(adata.obs_names)


def annotate_step(
    adata: ad.AnnData,
    *,
    clustering: dict[str, Any],
    annotation: dict[str, Any],
    car_feature: str | None,
    seed: int,
    umap: bool | UmapBeside = True,
) -> pd.DataFrame:
    """:func:`annotate` with the workflow's ``clustering`` and ``annotation`` settings: the one
    wiring of the step, shared by the annotate rule and the in-memory calibration. With
    ``annotation.method`` labels (or ``annotation.labels`` set) the user's own labels, with
    celltypist those of the user's CellTypist model (:func:`celltypist_labels`), become the
    cell types (:func:`use_own_labels`; the agreement with the marker labels is in ``uns``)."""
    markers = marker_table(annotation["markers"])
    if adata.X is None:
        normalise(adata)
    table = annotate(
        adata,
        markers=markers,
        use_rep=adata.uns["integration"]["embedding"],
        n_neighbors=clustering["n_neighbors"],
        resolution=clustering["resolution"],
        min_score=annotation["min_score"],
        min_margin=annotation["min_margin"],
        car_feature=car_feature,
        seed=seed,
        car_cluster_fraction=annotation["car_cluster_fraction"],
        mixed_cluster_fraction=annotation["mixed_cluster_fraction"],
        min_marker_share=annotation["min_marker_share"],
        umap=umap,
    )
    method = "labels" if annotation["labels"] and annotation["method"] == "markers" else annotation["method"]
    if method == "celltypist":
        adata.obs[OWN_LABEL] = celltypist_labels(adata, annotation["celltypist_model"]).to_numpy()
    if method in ("labels", "celltypist"):
        agreement = use_own_labels(adata, annotation["label_map"])
        adata.uns["label_agreement"] = {c: agreement[c].astype(str).tolist() for c in agreement.columns}
        log.info("%s labels are the cell types; marker labels kept in cell_type_markers", method)
    adata.uns["annotation_method"] = method
    return table
