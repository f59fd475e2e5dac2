"""Pseudobulk counts per sample and cell type, and program scores on them."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from csfcart.keys import CELL_TYPE, COUNTS

META = ["sample_id", "patient_id", "timepoint", "compartment"]


def _columns(obs: pd.DataFrame, groups: str) -> list[str]:
    """The sample's metadata, the columns constant within each sample (condition, batch, the
    sheet's covariates), and ``groups``: the ``obs`` of a pseudobulk."""
    per_sample = obs.groupby("sample_id", observed=True)
    extra = [c for c in obs.columns if c not in (*META, groups) and not pd.api.types.is_numeric_dtype(obs[c])
             and per_sample[c].nunique(dropna=False).max() <= 1]  # fmt: skip
    return [*META, *extra, groups]


def _summed(counts, obs: pd.DataFrame, var_names, cols: list[str], groups: str) -> ad.AnnData:
    import decoupler as dc

    src = ad.AnnData(X=counts, obs=obs[cols].astype(str), var=pd.DataFrame(index=var_names))
    pb = dc.pp.pseudobulk(src, sample_col="sample_id", groups_col=groups, mode="sum", empty=False)
    pb.X = sp.csr_matrix(pb.X) if not sp.issparse(pb.X) else pb.X
    return pb


def pseudobulk(adata: ad.AnnData, *, groups: str = CELL_TYPE) -> ad.AnnData:
    """Raw counts summed per sample and ``groups`` (decoupler's pseudobulk).

    ``obs`` of the result carries the sample's metadata (with every column constant within a
    sample: condition, batch, the sheet's covariates), the group, ``psbulk_cells`` and
    ``psbulk_counts``.
    """
    return _summed(adata.layers[COUNTS], adata.obs, adata.var_names, _columns(adata.obs, groups), groups)


def pseudobulk_file(path: str, *, groups: str = CELL_TYPE) -> ad.AnnData:
    """:func:`pseudobulk` of an annotated .h5ad, summed sample by sample from its counts.

    Only one sample's rows of ``layers['counts']`` are in memory at a time (not the whole
    cohort's counts, nor the normalised ``X``, embeddings and graph), so the peak memory is set
    by the largest sample, not by the cohort. The result equals :func:`pseudobulk` of the
    whole object, rows in the same order (group, then sample).
    """
    import h5py
    from anndata.io import read_elem, sparse_dataset

    from csfcart.io import stored_rows

    with h5py.File(path, "r") as f:
        if f"layers/{COUNTS}" not in f:
            raise KeyError(f"{path}: no layers/{COUNTS} (the raw counts the pseudobulk sums)")
        obs, var = read_elem(f["obs"]), read_elem(f["var"])
        cols = _columns(obs, groups)
        counts = sparse_dataset(f[f"layers/{COUNTS}"])
        parts = [
            _summed(stored_rows(counts, rows), obs.iloc[rows], var.index, cols, groups)
            for rows in obs.groupby("sample_id", observed=True).indices.values()
        ]
        parts.append(_absent(parts, obs, cols, groups, var.index))
    # decoupler's grid: every sample with every group seen in the cohort, absent ones as zeros,
    # ordered by group, then sample
    pb = ad.concat(parts, merge="same")
    names = [
        f"{s}_{g}" for g in sorted(set(obs[groups].astype(str))) for s in sorted(set(obs["sample_id"].astype(str)))
    ]
    return pb[names].copy()


def _absent(parts: list[ad.AnnData], obs: pd.DataFrame, cols: list[str], groups: str, var_names) -> ad.AnnData:
    """Zero rows for the pairs of sample and group with no cells (``psbulk_cells`` 0)."""
    meta = obs[cols].astype(str).drop_duplicates("sample_id").set_index("sample_id", drop=False)
    seen = {name for part in parts for name in part.obs_names}
    rows = [
        {**meta.loc[s].to_dict(), groups: g}
        for g in sorted(set(obs[groups].astype(str)))
        for s in meta.index
        if f"{s}_{g}" not in seen
    ]
    frame = pd.DataFrame(rows, columns=cols)
    frame.index = (frame["sample_id"] + "_" + frame[groups]).to_numpy()
    frame["psbulk_cells"] = 0.0
    frame["psbulk_counts"] = 0.0
    zeros = sp.csr_matrix((len(frame), len(var_names)), dtype=np.float32)
    return ad.AnnData(X=zeros, obs=frame, var=pd.DataFrame(index=var_names), layers={"psbulk_props": zeros.copy()})


def summed_groups(pb: ad.AnnData, members: np.ndarray, name: str) -> ad.AnnData:
    """The rows ``members`` (a boolean mask) of a pseudobulk summed per sample into one group
    ``name`` (``obs['pool']``): the pseudobulk of the cells of those groups, sample by sample
    (counts, ``psbulk_cells`` and ``psbulk_counts`` are sums). Every sample of ``pb`` has a
    row, zeros where none of its rows is a member; samples in order of first appearance."""
    samples = pb.obs["sample_id"].astype(str).to_numpy()
    order = list(dict.fromkeys(samples))
    code = pd.Index(order).get_indexer(samples)
    weight = np.asarray(members, dtype=float)
    onehot = sp.csr_matrix((weight, (code, np.arange(len(samples)))), shape=(len(order), len(samples)))
    x = sp.csr_matrix(onehot @ sp.csr_matrix(pb.X, dtype=np.float64), dtype=np.float32)
    meta = [c for c in pb.obs.columns if c not in (CELL_TYPE, "psbulk_cells", "psbulk_counts")]
    obs = pb.obs[meta].astype(str).drop_duplicates("sample_id").set_index("sample_id", drop=False).loc[order]
    obs["pool"] = name
    for col in ("psbulk_cells", "psbulk_counts"):
        obs[col] = onehot @ pb.obs[col].to_numpy(dtype=float)
    obs.index = [f"{s}_{name}" for s in order]
    return ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=pb.var_names))


def log_cpm(counts: np.ndarray, *, pseudocount: float = 0.5) -> np.ndarray:
    """log2 counts per million with a pseudocount in count space."""
    counts = np.asarray(counts, dtype=float)
    lib = counts.sum(axis=1, keepdims=True)
    return np.log2((counts + pseudocount) / np.maximum(lib, 1) * 1e6)


#: A program gene counts in a group's score where the group's scored pseudobulk samples hold
#: this many of its counts on average (pooled over every patient and visit): below it, half a
#: count of pseudocount would pull its log changes towards 0 (by about 5 % at 10 counts).
MIN_COUNTS = 10.0


def program_genes(x: np.ndarray, var_names, genes: list[str], leave_out=()) -> tuple[list[str], list[str], list[str]]:
    """The genes of a program scored in one group: present in the data, not among
    ``leave_out`` (the group's identity markers) and with :data:`MIN_COUNTS` or more counts
    per sample on average over the rows ``x`` (the group's scored pseudobulk samples).
    Returns the genes kept, those left out as identity markers and those left out as too
    sparse."""
    present = [g for g in dict.fromkeys(genes) if g in var_names]
    left_out = [g for g in present if g in set(leave_out)]
    candidates = [g for g in present if g not in set(leave_out)]
    idx = [var_names.get_loc(g) for g in candidates]
    mean = x[:, idx].mean(axis=0) if len(x) else np.zeros(len(idx))
    kept = [g for g, c in zip(candidates, mean, strict=True) if c >= MIN_COUNTS]
    sparse = [g for g, c in zip(candidates, mean, strict=True) if c < MIN_COUNTS]
    return kept, left_out, sparse


def program_scores(
    pb: ad.AnnData,
    programs: dict[str, list[str]],
    *,
    groups: str = CELL_TYPE,
    min_cells: int,
    leave_out: dict[str, list[str]] | None = None,
) -> pd.DataFrame:
    """Each program's expression relative to its group's pooled expression, per pseudobulk
    sample (long table): ``log2`` of the mean over the program's genes of the gene's CPM over
    its CPM pooled over the group's scored samples (half a count of continuity per gene).

    Each gene enters by its own fold from its typical level, so a change of the score is the
    log2 of the genes' mean fold change: a program is not read through its most expressed
    genes (as a score of its summed counts is), and a gene with few counts cannot swing it the
    way its log would. The genes are chosen per program and group, on the group's counts
    pooled over every scored sample (:func:`program_genes`; never on one patient's or one
    visit's counts): the group's identity markers (``leave_out``: group -> genes) are left
    out, since a readout of a cell type's state must not move with how pure its cells are,
    and so are genes with fewer than :data:`MIN_COUNTS` counts per sample. The columns
    ``genes``, ``identity_left_out`` and ``sparse_left_out`` name them. Pseudobulk samples
    with fewer than ``min_cells`` cells get NaN (too few to score).
    """
    lib = np.maximum(np.asarray(pb.X.sum(axis=1), dtype=float).ravel(), 1)
    # only the programs' genes are made dense (the pseudobulk of a large cohort is not)
    names = pd.Index([g for g in dict.fromkeys(g for genes in programs.values() for g in genes) if g in pb.var_names])
    x = pb.X[:, pb.var_names.get_indexer(names)]
    x = np.asarray(x.toarray() if sp.issparse(x) else x, dtype=float)
    scored = pb.obs["psbulk_cells"].to_numpy() >= min_cells
    group_of = pb.obs[groups].astype(str).to_numpy()
    leave_out = leave_out or {}
    rows = []
    for name, genes in programs.items():
        for group in dict.fromkeys(group_of):
            here = group_of == group
            pooled = x[here & scored]
            kept, left, sparse = program_genes(pooled, names, genes, leave_out.get(group, ()))
            idx = [names.get_loc(g) for g in kept]
            score = np.full(int(here.sum()), np.nan)
            if idx:
                ref = pooled[:, idx].sum(axis=0) / lib[here & scored].sum()  # the genes' pooled shares
                score = np.log2(((x[here][:, idx] + 0.5) / lib[here, None] / ref).mean(axis=1))
            frame = pb.obs.loc[here, [*META, groups, "psbulk_cells"]].copy().rename(columns={groups: "group"})
            frame["program"] = name
            frame["n_genes"] = len(kept)
            frame["genes"] = ",".join(kept)
            frame["identity_left_out"] = ",".join(left)
            frame["sparse_left_out"] = ",".join(sparse)
            frame["score"] = np.where(scored[here], score, np.nan)
            rows.append(frame)
    return pd.concat(rows, ignore_index=True)
