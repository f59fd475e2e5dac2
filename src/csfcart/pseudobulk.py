"""Pseudobulk counts per sample and cell type, and program scores on them."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from csfcart.keys import CELL_TYPE, COUNTS

META = ["sample_id", "patient_id", "timepoint", "compartment"]


def pseudobulk(adata: ad.AnnData, *, groups: str = CELL_TYPE) -> ad.AnnData:
    """Raw counts summed per sample and ``groups`` (decoupler's pseudobulk).

    ``obs`` of the result carries the sample's metadata (with every column constant within a
    sample: condition, batch, the sheet's covariates), the group, ``psbulk_cells`` and
    ``psbulk_counts``.
    """
    import decoupler as dc

    # sample-level columns (condition, the sheet's covariates): constant within each sample
    per_sample = adata.obs.groupby("sample_id", observed=True)
    extra = [c for c in adata.obs.columns if c not in (*META, groups) and not pd.api.types.is_numeric_dtype(adata.obs[c])
             and per_sample[c].nunique(dropna=False).max() <= 1]  # fmt: skip
    cols = [*META, *extra, groups]
    src = ad.AnnData(X=adata.layers[COUNTS], obs=adata.obs[cols].copy(), var=pd.DataFrame(index=adata.var_names))
    for col in cols:
        src.obs[col] = src.obs[col].astype(str)
    pb = dc.pp.pseudobulk(src, sample_col="sample_id", groups_col=groups, mode="sum", empty=False)
    pb.X = sp.csr_matrix(pb.X) if not sp.issparse(pb.X) else pb.X
    return pb


def log_cpm(counts: np.ndarray, *, pseudocount: float = 0.5) -> np.ndarray:
    """log2 counts per million with a pseudocount in count space."""
    counts = np.asarray(counts, dtype=float)
    lib = counts.sum(axis=1, keepdims=True)
    return np.log2((counts + pseudocount) / np.maximum(lib, 1) * 1e6)


def program_scores(
    pb: ad.AnnData, programs: dict[str, list[str]], *, groups: str = CELL_TYPE, min_cells: int
) -> pd.DataFrame:
    """log2 CPM of each program's summed counts per pseudobulk sample (long table).

    The program's genes are summed before the log: a change of the score is the log2 change
    of the program's share of the transcriptome, which the pseudocount (half a count) barely
    touches even when single genes of the program have a handful of counts. A mean of
    per-gene log2 CPM would pull the changes of such genes towards 0. Pseudobulk samples with
    fewer than ``min_cells`` cells get NaN (too few to score).
    """
    x = pb.X.toarray() if sp.issparse(pb.X) else np.asarray(pb.X)
    x = np.asarray(x, dtype=float)
    lib = np.maximum(x.sum(axis=1), 1)
    rows = []
    for name, genes in programs.items():
        idx = [pb.var_names.get_loc(g) for g in genes if g in pb.var_names]
        score = np.log2((x[:, idx].sum(axis=1) + 0.5) / lib * 1e6) if idx else np.full(pb.n_obs, np.nan)
        score = np.where(pb.obs["psbulk_cells"].to_numpy() >= min_cells, score, np.nan)
        frame = pb.obs[[*META, groups, "psbulk_cells"]].copy().rename(columns={groups: "group"})
        frame["program"] = name
        frame["n_genes"] = len(idx)
        frame["score"] = score
        rows.append(frame)
    return pd.concat(rows, ignore_index=True)
