"""Merging samples, highly variable genes and integration (scVI or Harmony)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from csfcart.annotate import EXACT_NEIGHBOURS, log_normalised
from csfcart.keys import COUNTS, EMBEDDING, UNCORRECTED

log = logging.getLogger(__name__)

# Cells of each type the integration's mixing metrics score (every cell of a smaller type).
# At 282k cells the per-type means over such a sample (25,078 cells) were within 0.004 of
# those over all cells on the same graph, in 41 s where all cells' neighbours took 222 s.
MIXING_CELLS_PER_TYPE = 2_000


def merge_samples(paths: Sequence[str], summary: pd.DataFrame, *, parts: list[ad.AnnData] | None = None) -> ad.AnnData:
    """Concatenate the QC'd samples whose status is ``ok``; all genes, counts kept sparse in
    ``layers['counts']`` only (soup-corrected where QC removed it; the counts as read stay in
    the QC files); ``X`` is left empty (:func:`csfcart.annotate.normalise` fills it).

    Samples are read from ``paths`` one at a time, or taken from ``parts`` (in memory).
    """
    keep = set(summary.loc[summary["status"] == "ok", "sample_id"])
    parts = list(parts or [])
    for path in paths:
        a = ad.read_h5ad(path)
        a.layers.pop(UNCORRECTED, None)  # kept in the QC files only
        a.X = None  # the counts are stored once, in layers["counts"] (QC files of older runs held X too)
        if a.n_obs and str(a.obs["sample_id"].iloc[0]) in keep:
            parts.append(a)
    if not parts:
        raise ValueError("no sample passed QC: see qc/summary.tsv")
    merged = ad.concat(parts, join="outer", merge="same", fill_value=0)
    for key in ("sample_id", "patient_id", "timepoint", "compartment", "batch", "condition"):
        if key in merged.obs:
            merged.obs[key] = pd.Categorical(merged.obs[key].astype(str))
    return merged


def select_genes(adata: ad.AnnData, *, n_top: int, batch_key: str) -> None:
    """Batch-aware highly variable genes (seurat_v3 on counts) into ``var['highly_variable']``."""
    import scanpy as sc

    n_top = min(n_top, adata.n_vars - 1)
    try:
        sc.pp.highly_variable_genes(
            adata, n_top_genes=n_top, flavor="seurat_v3", layer=COUNTS, batch_key=batch_key, subset=False
        )
    except (ValueError, ZeroDivisionError) as err:  # tiny batches: fall back to one batch
        log.warning("batch-aware HVG failed (%s); selecting without batch_key", err)
        sc.pp.highly_variable_genes(adata, n_top_genes=n_top, flavor="seurat_v3", layer=COUNTS, subset=False)


def run_scvi(adata: ad.AnnData, *, batch_key: str, seed: int, settings: dict[str, Any]) -> dict[str, Any]:
    """Train scVI on the HVG counts; the latent space goes to ``obsm['X_scVI']``.

    ``settings['trainer']``: ``resident`` (default) trains scVI's module with the counts held
    on the device (:mod:`csfcart.training`), with ``gpu_batch_size`` cells per step on a GPU
    and ``batch_size`` on the CPU; ``scvi`` uses scvi-tools' own Lightning trainer.
    """
    import scvi
    import torch

    from csfcart import training

    scvi.settings.seed = seed
    hvg = _hvg_counts(adata, obs=[batch_key])
    scvi.model.SCVI.setup_anndata(hvg, layer=COUNTS, batch_key=batch_key)
    model = scvi.model.SCVI(hvg, n_latent=settings["n_latent"], n_layers=settings["n_layers"])
    accelerator = settings["accelerator"]
    if accelerator == "auto":
        accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    max_epochs = settings["max_epochs"]
    early_stopping = settings["early_stopping"]
    if settings["trainer"] == "resident":
        batch_size = settings["gpu_batch_size"] if accelerator == "gpu" else settings["batch_size"]
        latent, info = training.train_resident(
            model,
            hvg.layers[COUNTS],
            max_epochs=max_epochs,
            batch_size=batch_size,
            seed=seed,
            accelerator=accelerator,
            lr=settings["lr"],
            min_steps=settings["min_steps"],
            early_stopping=early_stopping,
        )
        adata.obsm[EMBEDDING["scvi"]] = latent
        model.deregister_manager(hvg)  # scvi-tools keeps set-up AnnData in a class-level store
        return _convergence({"method": "scvi", "accelerator": accelerator, **info})
    start = time.perf_counter()
    model.train(
        max_epochs=max_epochs,
        batch_size=settings["batch_size"],
        early_stopping=early_stopping,
        accelerator=accelerator,
        devices=1,
        enable_progress_bar=False,
    )
    seconds = time.perf_counter() - start
    adata.obsm[EMBEDDING["scvi"]] = model.get_latent_representation().astype(np.float32)
    model.deregister_manager(hvg)
    history = model.history.get("elbo_train")
    validation = model.history.get("elbo_validation")
    epochs = len(history) if history is not None else 0
    return _convergence(
        {
            "method": "scvi",
            "trainer": "scvi",
            "accelerator": accelerator,
            "batch_size": settings["batch_size"],
            "epochs": epochs,
            "train_seconds": round(seconds, 2),
            "cell_epochs_per_s": round(epochs * hvg.n_obs * 0.9 / max(seconds, 1e-9)),
            "elbo_train": [float(v) for v in history.iloc[:, 0]] if history is not None else [],
            "elbo_validation": [float(v) for v in validation.iloc[:, 0]] if validation is not None else [],
        }
    )


def _convergence(info: dict[str, Any]) -> dict[str, Any]:
    """``info`` with whether the validation ELBO was still falling at the last epoch (logged)."""
    from csfcart.training import still_improving

    info.update(still_improving(info["elbo_validation"]))
    if info["still_improving"]:
        log.warning(
            "scVI's validation ELBO was still falling at the last epoch (%.2f%% over the last %d epochs): "
            "the latent space may improve with more epochs (integration.scvi.max_epochs)",
            -100 * info["validation_change"],
            info["window"],
        )
    return info


def _hvg_counts(adata: ad.AnnData, *, obs: list[str]) -> ad.AnnData:
    """The highly variable genes' counts (``layers['counts']``) with the ``obs`` columns
    named: a slice of what scVI uses, not a copy of all of ``adata``."""
    genes = np.flatnonzero(adata.var["highly_variable"].to_numpy())
    return ad.AnnData(
        obs=adata.obs[obs].copy(), var=adata.var.iloc[genes].copy(), layers={COUNTS: adata.layers[COUNTS][:, genes]}
    )


def pca_on_hvg(adata: ad.AnnData, *, n_pcs: int, seed: int) -> np.ndarray:
    """PCA of the log-normalised HVGs (from ``layers['counts']``, each cell's library over all
    genes), each gene scaled to unit variance (clipped at 10).

    The matrix stays sparse: genes are scaled without centring and the PCA centres
    implicitly (ARPACK), which gives the components of the dense computation (correlation
    >= 0.9998 on the default cohort) at a third of its time and memory.
    """
    import scanpy as sc

    genes = np.flatnonzero(adata.var["highly_variable"].to_numpy())
    hvg = ad.AnnData(X=log_normalised(adata.layers[COUNTS], columns=genes))
    n_pcs = min(n_pcs, hvg.n_obs - 1, hvg.n_vars - 1)
    sc.pp.scale(hvg, zero_center=False, max_value=10)
    sc.pp.pca(hvg, n_comps=n_pcs, random_state=seed, svd_solver="arpack")
    return hvg.obsm["X_pca"]


def run_harmony(adata: ad.AnnData, *, batch_key: str, seed: int, settings: dict[str, Any]) -> dict[str, Any]:
    """PCA on HVGs, then Harmony (harmonypy, called directly) into ``obsm['X_harmony']``."""
    import harmonypy

    pcs = pca_on_hvg(adata, n_pcs=settings["n_pcs"], seed=seed)
    adata.obsm["X_pca"] = pcs.astype(np.float32)
    ho = harmonypy.run_harmony(pcs, adata.obs, [batch_key], random_state=seed, verbose=False)
    z = np.asarray(ho.Z_corr)
    if z.shape[0] != adata.n_obs:  # harmonypy < 2 returned components x cells
        z = z.T
    adata.obsm[EMBEDDING["harmony"]] = z.astype(np.float32)
    return {"method": "harmony", "n_pcs": pcs.shape[1]}


def integrate(
    adata: ad.AnnData, *, method: str, batch_key: str, n_hvg: int, seed: int, settings: dict[str, Any]
) -> dict[str, Any]:
    """Select genes and integrate with ``method`` (``scvi`` or ``harmony``), from the counts;
    ``X`` stays empty (the annotation normalises all genes, :func:`csfcart.annotate.normalise`)."""
    if batch_key not in adata.obs:
        raise KeyError(
            f"integration.batch_key '{batch_key}' is not a column of obs: use one of {', '.join(adata.obs.columns)}"
        )
    select_genes(adata, n_top=n_hvg, batch_key=batch_key)
    runner = {"scvi": run_scvi, "harmony": run_harmony}[method]
    info = runner(adata, batch_key=batch_key, seed=seed, settings=settings[method])
    if "X_pca" not in adata.obsm:  # the unintegrated baseline the integration figure compares with
        adata.obsm["X_pca"] = pca_on_hvg(adata, n_pcs=settings["harmony"]["n_pcs"], seed=seed).astype(np.float32)
    adata.uns["integration"] = {"method": method, "embedding": EMBEDDING[method], "batch_key": batch_key}
    return info


def integrate_step(adata: ad.AnnData, integration: dict[str, Any], *, seed: int) -> dict[str, Any]:
    """:func:`integrate` with the workflow's ``integration`` settings: the one wiring of the
    step, shared by the integrate rule and the in-memory calibration."""
    return integrate(
        adata,
        method=integration["method"],
        batch_key=integration["batch_key"],
        n_hvg=integration["n_hvg"],
        seed=seed,
        settings=integration,
    )


def nearest_neighbours(
    xy: np.ndarray, k: int, n_jobs: int = 1, *, seed: int, cells: np.ndarray | None = None
) -> np.ndarray:
    """Indices (cells x ``k``) of each cell's ``k`` nearest neighbours in ``xy``, itself excluded.

    For all cells (``cells`` None): exact up to the clustering's limit
    (:data:`csfcart.annotate.EXACT_NEIGHBOURS` cells: brute force grows with the square of
    the cells, 166 s at 282k), approximate (pynndescent) above. For the rows ``cells`` alone:
    exact (brute force) neighbours among all cells, at a cost that grows with the cells
    queried times all cells.
    """
    from sklearn.neighbors import NearestNeighbors

    xy = np.asarray(xy, dtype=np.float32)
    k = min(k, len(xy) - 1)
    if cells is not None:
        cells = np.asarray(cells, dtype=np.int64)
        idx = NearestNeighbors(n_neighbors=k + 1, algorithm="brute", n_jobs=n_jobs).fit(xy)
        idx = idx.kneighbors(xy[cells], return_distance=False)
        return _without_self(idx, cells, k)
    if len(xy) <= EXACT_NEIGHBOURS:
        return NearestNeighbors(n_neighbors=k, n_jobs=n_jobs).fit(xy).kneighbors(return_distance=False)
    from pynndescent import NNDescent

    idx = NNDescent(xy, n_neighbors=k + 1, random_state=seed, n_jobs=n_jobs).neighbor_graph[0]
    return _without_self(idx, np.arange(len(xy)), k)


def _without_self(idx: np.ndarray, cells: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` neighbours of each row of ``idx`` (``k + 1`` nearest, nearest first) other
    than the row's own cell; a row whose own cell is not among them (duplicates at distance
    0) drops its farthest."""
    own = idx == cells[:, None]
    own[~own.any(axis=1), -1] = True
    return idx[~own].reshape(len(idx), k).astype(np.int64)


def mixing_cells(labels: pd.Series, per_type: int, *, seed: int) -> np.ndarray:
    """Positions of the cells the mixing metrics score: every cell of a type with at most
    ``per_type`` cells, a random ``per_type`` of each larger type (sorted). The metrics are
    means over a type's cells, which a few thousand estimate closely; the cost of their exact
    neighbours grows with the cells alone."""
    rng = np.random.default_rng(seed)
    codes = pd.Categorical(labels.astype(str)).codes
    chosen = []
    for code in np.unique(codes):
        members = np.flatnonzero(codes == code)
        chosen.append(members if len(members) <= per_type else rng.choice(members, per_type, replace=False))
    return np.sort(np.concatenate(chosen)) if chosen else np.empty(0, dtype=np.int64)


def graph_neighbours(distances: sp.spmatrix) -> np.ndarray:
    """Neighbour indices (cells x k) of a stored kNN graph (scanpy's ``obsp['distances']``);
    a row with fewer than k entries (a graph cut at ties) repeats its last neighbour."""
    d = sp.csr_matrix(distances)
    d.sort_indices()
    n_per_row = np.diff(d.indptr)
    k = int(n_per_row.max())
    if (n_per_row == k).all():
        return d.indices.reshape(-1, k).astype(np.int64)
    out = np.empty((d.shape[0], k), dtype=np.int64)
    for row in range(d.shape[0]):
        own = d.indices[d.indptr[row] : d.indptr[row + 1]]
        out[row] = np.r_[own, np.full(k - len(own), own[-1] if len(own) else row)]
    return out


def mixing_metrics(
    adata: ad.AnnData,
    neighbours: dict[str, np.ndarray],
    *,
    batch_key: str,
    label_key: str = "cell_type",
    cells: np.ndarray | None = None,
) -> pd.DataFrame:
    """Per cell type and embedding: how well batches mix and cell types stay apart.

    ``neighbours``: per embedding, each cell's nearest neighbours (cells x k indices, as
    :func:`nearest_neighbours` or :func:`graph_neighbours` give them), or those of the
    cells at the positions ``cells`` alone (one row each, in that order; :func:`mixing_cells`).
    The means are then over the type's cells scored (``cells_scored``); ``cells`` and
    ``batches`` count all the type's cells.

    ``batch_mixing``: mean over the type's cells of the Shannon entropy of the batch labels
    among a cell's nearest neighbours of the same type, divided by the log of the number of
    batches holding that type (1 = batches fully mixed, 0 = each cell sees only its own
    batch). ``label_purity``: mean fraction of a cell's neighbours that share its cell type
    (1 = the type forms its own island). Good integration raises the first and keeps the
    second.
    """
    batches = pd.Categorical(adata.obs[batch_key].astype(str))
    labels = pd.Categorical(adata.obs[label_key].astype(str))
    b, code = batches.codes.astype(np.int64), labels.codes
    scored = np.arange(len(code)) if cells is None else np.asarray(cells, dtype=np.int64)
    rows = []
    for name, idx in neighbours.items():
        if len(idx) != len(scored):
            raise ValueError(f"{name}: {len(idx)} rows of neighbours for {len(scored)} cells scored")
        purity, entropy = _neighbour_entropy(idx, code, b, rows=scored)
        for k, cell_type in enumerate(labels.categories):
            members = code == k
            n_batches = len(np.unique(b[members]))
            mine = members[scored]
            mixing = entropy[mine] / np.log(n_batches) if n_batches > 1 else np.full(mine.sum(), np.nan)
            rows.append(
                {
                    "embedding": name,
                    "cell_type": cell_type,
                    "cells": int(members.sum()),
                    "cells_scored": int(mine.sum()),
                    "batches": n_batches,
                    "batch_mixing": float(np.nanmean(mixing)) if np.isfinite(mixing).any() else np.nan,
                    "label_purity": float(purity[mine].mean()) if mine.any() else np.nan,
                }
            )
    return pd.DataFrame(rows)


def _neighbour_entropy(
    idx: np.ndarray, code: np.ndarray, b: np.ndarray, *, rows: np.ndarray | None = None, chunk: int = 65_536
) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``idx`` (the neighbours of the cell at position ``rows[i]``; of cell ``i``
    when None): the fraction of its neighbours of its own type, and the Shannon entropy of
    the batches among those (``nan`` where it has none).

    Computed from the k neighbours alone, rows by chunks (memory and time grow with cells x
    k, not with cells x batches): with ``c_j`` the neighbours that share neighbour j's batch
    and ``t`` their number, the entropy is ``-sum_j log(c_j / t) / t``.
    """
    n = len(idx)
    purity = np.empty(n)
    entropy = np.empty(n)
    for start in range(0, n, chunk):
        nb = idx[start : start + chunk]
        own = code[start : start + chunk] if rows is None else code[rows[start : start + chunk]]
        same = code[nb] == own[:, None]
        batch = np.where(same, b[nb], -1)
        c = (batch[:, :, None] == batch[:, None, :]).sum(axis=2)
        t = same.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            h = -np.where(same, np.log(c / t[:, None]), 0.0).sum(axis=1) / t
        purity[start : start + chunk] = same.mean(axis=1)
        entropy[start : start + chunk] = np.where(t > 0, h, np.nan)
    return purity, entropy


def compare_methods(
    adata: ad.AnnData,
    *,
    batch_key: str,
    seed: int,
    settings: dict[str, Any],
    label_key: str = "cell_type",
    n_jobs: int = 1,
) -> pd.DataFrame:
    """scib-metrics table of the unintegrated PCA, scVI and Harmony on the same cells.

    The embedding the run did not make is computed here with the configured settings; the
    labels are the workflow's annotation (low-confidence cells and doublets left out). Rows
    are the embeddings, columns the scIB metrics with the batch-correction,
    bio-conservation and total scores (scIB's 0.4 / 0.6 weighting), unscaled.
    """
    from scib_metrics.benchmark import Benchmarker

    labels = adata.obs[label_key].astype(str)
    cells = adata[~labels.isin(["low_confidence", "doublet"]).to_numpy()].copy()
    if EMBEDDING["scvi"] not in cells.obsm:
        run_scvi(cells, batch_key=batch_key, seed=seed, settings=settings["scvi"])
    if EMBEDDING["harmony"] not in cells.obsm:  # its PCA is the unintegrated baseline too
        run_harmony(cells, batch_key=batch_key, seed=seed, settings=settings["harmony"])
    if "X_pca" not in cells.obsm:
        cells.obsm["X_pca"] = pca_on_hvg(cells, n_pcs=settings["harmony"]["n_pcs"], seed=seed)
    cells.obs[label_key] = cells.obs[label_key].astype(str).astype("category")
    keys = ["X_pca", EMBEDDING["scvi"], EMBEDDING["harmony"]]
    bm = Benchmarker(cells, batch_key=batch_key, label_key=label_key, embedding_obsm_keys=keys,
                     pre_integrated_embedding_obsm_key="X_pca", n_jobs=n_jobs, progress_bar=False)  # fmt: skip
    bm.benchmark()
    table = bm.get_results(min_max_scale=False)
    kind = table.loc["Metric Type"]
    table = table.drop(index="Metric Type").astype(float)
    table.index = table.index.map(
        {"X_pca": "unintegrated PCA", EMBEDDING["scvi"]: "scVI", EMBEDDING["harmony"]: "Harmony"}
    )
    table.index.name = "embedding"
    table.columns = [f"{c} ({kind[c].lower()})" if kind[c] != "Aggregate score" else c for c in table.columns]
    return table.reset_index()
