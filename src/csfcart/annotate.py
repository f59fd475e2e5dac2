"""Clustering, UMAP and marker-based cell-type annotation, with a CAR+ flag per cell.

Each cell is scored for every cell type of the marker table (scanpy's ``score_genes`` of its
markers, less that of the genes the type does not express, column ``negative``);
CAR-T cells are recognised by the CAR transcript per cluster (see :func:`annotate`);
scores are resolved per cluster: a cluster takes the type with the highest mean score,
unless that score is below ``min_score`` or within ``min_margin`` of the runner-up, in which
case it is labelled ``low_confidence``. In a cluster whose cells disagree with its label
(a share of them score best for another type) each cell keeps its own best type: small
populations on a continuum with a larger one (memory B cells beside naive ones, border
macrophages beside microglia-like cells, Treg among CD4 T cells) share clusters at a
cohort-wide resolution.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from csfcart.errors import InputError
from csfcart.keys import CAR_POSITIVE, CELL_TYPE, CLUSTER, CONFIDENCE, COUNTS, LOW_CONFIDENCE, OWN_LABEL
from csfcart.logs import step

CAR_T = "CAR_T"
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
    (the UMAP of the graph: :func:`umap_beside`)."""
    import scanpy as sc

    exact = adata.n_obs <= EXACT_NEIGHBOURS
    with step(f"{'exact' if exact else 'approximate'} neighbours of {adata.n_obs} cells on {use_rep}"):
        sc.pp.neighbors(
            adata,
            use_rep=use_rep,
            n_neighbors=min(n_neighbors, adata.n_obs - 1),
            random_state=seed,
            transformer="sklearn" if exact else None,
        )
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


#: the neighbour graph a forked UMAP process lays out (set in the parent before the fork)
_LAYOUT: ad.AnnData | None = None


def _umap_of_graph(seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    import scanpy as sc

    sc.tl.umap(_LAYOUT, random_state=seed)
    return _LAYOUT.obsm["X_umap"], _LAYOUT.uns["umap"]


def umap_beside(adata: ad.AnnData, *, seed: int) -> Callable[[], None]:
    """Start scanpy's UMAP of ``adata``'s neighbour graph in a forked process; returns the
    call that waits for it and stores ``obsm['X_umap']`` and ``uns['umap']``.

    UMAP runs on one core (a fixed random state makes it serial), as does the rest of the
    annotation: side by side they take the longer of the two instead of the sum. The layout
    is the one the same call gives in this process (same graph, same random state). Where
    the platform cannot fork, it runs here, when the returned call is made."""
    global _LAYOUT
    params = adata.uns["neighbors"]
    rep = params["params"].get("use_rep")
    _LAYOUT = ad.AnnData(
        obs=pd.DataFrame(index=adata.obs_names),
        obsm={rep: adata.obsm[rep]} if rep else {},
        obsp={k: adata.obsp[k] for k in (params["connectivities_key"], params["distances_key"])},
        uns={"neighbors": params},
    )
    if "fork" not in multiprocessing.get_all_start_methods():
        return lambda: _store_umap(adata, _umap_of_graph(seed))
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
    pending = pool.submit(_umap_of_graph, seed)

    def wait() -> None:
        with step("UMAP (computed beside the annotation)"):
            try:
                _store_umap(adata, pending.result())
            finally:
                pool.shutdown()

    return wait


def _store_umap(adata: ad.AnnData, result: tuple[np.ndarray, dict[str, Any]]) -> None:
    global _LAYOUT
    adata.obsm["X_umap"], adata.uns["umap"] = result
    _LAYOUT = None


def score_cell_types(
    adata: ad.AnnData, markers: dict[str, list[str]], *, seed: int, negative: dict[str, list[str]] | None = None
) -> pd.DataFrame:
    """Per-cell marker scores (cells x cell types) on the log-normalised ``X``: scanpy's
    ``score_genes`` of the type's markers less that of its ``negative`` genes (each against
    control genes of like expression, so genes at background cost nothing on average): an
    NK cell expressing FCGR3A as a CD16 monocyte does still expresses GNLY and NKG7, which
    the monocyte's row lists as negative. Symbols are matched whatever their case, so the
    human table serves mouse symbols (Cd3e) too."""
    import scanpy as sc

    # symbols match exactly, else whatever their case (mouse Cd3e for the table's CD3E)
    folded = dict(zip(adata.var_names.str.upper(), adata.var_names, strict=True)) if adata.var_names.is_unique else {}

    def score(genes: list[str]) -> np.ndarray | None:
        present = [g if g in adata.var_names else folded.get(g.upper()) for g in genes]
        present = [g for g in present if g is not None]
        if not present:
            return None
        sc.tl.score_genes(adata, present, score_name="_score", random_state=seed, ctrl_size=min(50, adata.n_vars // 4))
        return adata.obs.pop("_score").to_numpy()

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
    """One label per cluster from its cells' mean scores; low_confidence when unclear."""
    means = scores.groupby(clusters.to_numpy(), observed=True).mean()
    ordered = np.sort(means.fillna(-np.inf).to_numpy(), axis=1)
    best = means.idxmax(axis=1)
    top, second = ordered[:, -1], ordered[:, -2] if means.shape[1] > 1 else np.full(len(means), -np.inf)
    confident = (top >= min_score) & (top - second >= min_margin)
    return pd.DataFrame(
        {
            "cell_type": np.where(confident, best, LOW_CONFIDENCE),
            "best_type": best,
            "best_score": top,
            "margin": top - second,
        },
        index=means.index,
    )


def cluster_top_genes(adata: ad.AnnData, *, n: int = 8) -> pd.Series:
    """Each cluster's ``n`` most up-regulated genes against the other clusters (t-test on the
    log-normalised ``X``; names joined by commas), to read beside the cluster's label."""
    import scanpy as sc

    groups = adata.obs[CLUSTER].astype(str)
    if groups.nunique() < 2:
        return pd.Series("", index=sorted(set(groups)))
    sc.tl.rank_genes_groups(adata, CLUSTER, method="t-test", n_genes=n, use_raw=False, key_added="cluster_markers")
    names = pd.DataFrame(adata.uns["cluster_markers"]["names"])
    return names.apply(lambda col: ",".join(map(str, col))).rename("top_genes")


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


def flag_car(adata: ad.AnnData, car_feature: str | None) -> None:
    """``obs['car_positive']``: at least one UMI of the CAR transcript feature."""
    if car_feature and car_feature in adata.var_names:
        col = adata.layers[COUNTS][:, adata.var_names.get_loc(car_feature)]
        adata.obs[CAR_POSITIVE] = np.asarray(col.todense() if hasattr(col, "todense") else col).ravel() > 0
    else:
        adata.obs[CAR_POSITIVE] = False
    adata.uns["car_feature"] = car_feature or ""


def annotate(
    adata: ad.AnnData,
    *,
    markers: dict[str, list[str]],
    negative: dict[str, list[str]] | None = None,
    use_rep: str,
    n_neighbors: int,
    resolution: float,
    min_score: float,
    min_margin: float,
    car_feature: str | None,
    seed: int,
    car_cluster_fraction: float,
    mixed_cluster_fraction: float,
    umap: bool = True,
) -> pd.DataFrame:
    """Cluster, score and label cells; returns the per-cluster table.

    A cluster in which at least ``car_cluster_fraction`` of cells carry the CAR transcript
    is labelled CAR_T (3' chemistry detects the transcript in only part of CAR-T cells, and
    no other cell carries it); 0 turns this off. In a cluster of mixed marker identity
    (:func:`mixed_clusters`, ``mixed_cluster_fraction``; 0 turns this off) each cell takes
    its own best-scoring type instead of the cluster's.
    """
    cluster(adata, use_rep=use_rep, n_neighbors=n_neighbors, resolution=resolution, seed=seed)
    finish_umap = umap_beside(adata, seed=seed) if umap else (lambda: None)
    with step(f"marker scores of {len(markers)} cell types"):
        scores = score_cell_types(adata, markers, seed=seed, negative=negative)
    table = resolve_clusters(scores, adata.obs[CLUSTER], min_score=min_score, min_margin=min_margin)
    labels = table["cell_type"].reindex(adata.obs[CLUSTER].astype(str)).to_numpy()
    table["labelled_per_cell"] = False
    if mixed_cluster_fraction > 0:
        mixed, best = mixed_clusters(scores, adata.obs[CLUSTER], table, min_fraction=mixed_cluster_fraction)
        in_mixed = adata.obs[CLUSTER].astype(str).isin(mixed).to_numpy()
        labels = np.where(in_mixed, best.to_numpy(), labels)
        table.loc[mixed, "labelled_per_cell"] = True
    adata.obs[CELL_TYPE] = pd.Categorical(labels)
    adata.obs[CONFIDENCE] = table["margin"].reindex(adata.obs[CLUSTER].astype(str)).to_numpy()
    adata.obsm["marker_scores"] = scores.to_numpy(dtype=np.float32)
    adata.uns["marker_score_types"] = list(scores.columns)
    flag_car(adata, car_feature)
    car_share = adata.obs.groupby(CLUSTER, observed=True)[CAR_POSITIVE].mean().reindex(table.index)
    table["car_positive_fraction"] = car_share.to_numpy()
    car_clusters = car_share.index[(car_share >= car_cluster_fraction).to_numpy()]
    if len(car_clusters) and car_cluster_fraction > 0:
        table.loc[car_clusters, "cell_type"] = CAR_T
        labels = np.where(adata.obs[CLUSTER].astype(str).isin(car_clusters).to_numpy(), CAR_T, labels)
        adata.obs[CELL_TYPE] = pd.Categorical(labels)
    table["n_cells"] = adata.obs[CLUSTER].value_counts().reindex(table.index).to_numpy()
    with step("top genes per cluster"):
        table["top_genes"] = cluster_top_genes(adata).reindex(table.index.astype(str)).to_numpy()
    finish_umap()
    return table


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


def annotate_step(
    adata: ad.AnnData,
    *,
    clustering: dict[str, Any],
    annotation: dict[str, Any],
    car_feature: str | None,
    seed: int,
    umap: bool = True,
) -> pd.DataFrame:
    """:func:`annotate` with the workflow's ``clustering`` and ``annotation`` settings: the one
    wiring of the step, shared by the annotate rule and the in-memory calibration. With
    ``annotation.labels`` the user's own labels become the cell types
    (:func:`use_own_labels`; the agreement with the marker labels is in ``uns``)."""
    markers = marker_table(annotation["markers"])
    table = annotate(
        adata,
        markers=markers["markers"].to_dict(),
        negative=markers["negative"].to_dict(),
        use_rep=adata.uns["integration"]["embedding"],
        n_neighbors=clustering["n_neighbors"],
        resolution=clustering["resolution"],
        min_score=annotation["min_score"],
        min_margin=annotation["min_margin"],
        car_feature=car_feature,
        seed=seed,
        car_cluster_fraction=annotation["car_cluster_fraction"],
        mixed_cluster_fraction=annotation["mixed_cluster_fraction"],
        umap=umap,
    )
    if annotation["labels"]:
        agreement = use_own_labels(adata, annotation["label_map"])
        adata.uns["label_agreement"] = {c: agreement[c].astype(str).tolist() for c in agreement.columns}
        log.info("own labels (%s) are the cell types; marker labels kept in cell_type_markers", annotation["labels"])
    return table
