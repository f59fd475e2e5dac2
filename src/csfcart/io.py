"""Reading one sample's counts, from any of the layouts real data arrives in.

Supported: a 10x v3 directory (matrix.mtx.gz, features.tsv.gz, barcodes.tsv.gz), the 10x
v2 layout as deposited on GEO (genes.tsv with two columns, file names carrying a GSM/sample
prefix: give the folder or the prefix), a Cell Ranger output folder (``count`` or one sample
of ``multi``; Antibody Capture and other non-gene features are kept out), a 10x .h5 file, an
.h5ad with integer counts (in ``layers['counts']``, ``X`` or ``.raw``) and a CSV or TSV
(cells as rows with the barcode first, or genes as rows: the orientation is detected).
Every check names the file and the fix.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Sequence
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp

from csfcart.config import sheet_covariates
from csfcart.errors import InputError
from csfcart.keys import COUNTS, OWN_LABEL

log = logging.getLogger(__name__)

#: Counts exported through floating point (CSV, R) sit within this distance of an integer
#: (0.999999999999999 for 1); they are rounded. Farther from an integer, they are refused.
INTEGER_TOLERANCE = 1e-6

ENSEMBL_PREFIXES = ("ENSG", "ENSMUSG")


def _open(path: Path):
    return gzip.open(path, "rt") if path.suffix == ".gz" else open(path)


def _find(base: Path, names: tuple[str, ...]) -> Path | None:
    """The file in ``base`` (a folder or a GEO prefix) ending in one of ``names``."""
    folder, prefix = (base, "") if base.is_dir() else (base.parent, base.name)
    hits = sorted(p for p in folder.iterdir() if p.name.startswith(prefix) and p.name.endswith(names))
    if len(hits) > 1:
        raise InputError(
            f"{base}: several files match {names[0]}: {', '.join(p.name for p in hits[:3])}. "
            "Fix: give the GEO prefix of one sample as its path (e.g. raw/GSM4104122_MS19270_CSF_)"
        )
    return hits[0] if hits else None


#: where Cell Ranger puts a sample's filtered matrix, from the folder a user may give
CELLRANGER = ("filtered_feature_bc_matrix", "outs/filtered_feature_bc_matrix", "sample_filtered_feature_bc_matrix",
              "count/sample_filtered_feature_bc_matrix", "outs/count/filtered_feature_bc_matrix")  # fmt: skip


def cellranger_matrix(base: Path) -> Path:
    """The filtered matrix folder of a Cell Ranger output given as ``base`` (its run folder,
    ``outs/``, or a ``multi`` per-sample folder); ``base`` itself when it holds a matrix."""
    if not base.is_dir() or _find(base, ("matrix.mtx.gz", "matrix.mtx")) is not None:
        return base
    for sub in CELLRANGER:
        if (base / sub).is_dir():
            log.info("%s: Cell Ranger output; reading %s", base, sub)
            return base / sub
    multi = (
        sorted((base / "outs" / "per_sample_outs").glob("*")) if (base / "outs" / "per_sample_outs").is_dir() else []
    )
    if len(multi) > 1:
        raise InputError(
            f"{base}: a Cell Ranger multi run with {len(multi)} samples ({', '.join(p.name for p in multi[:4])}). "
            f"Fix: give each sample's folder as its path, e.g. {multi[0]}"
        )
    if multi:
        return cellranger_matrix(multi[0])
    return base


#: the raw matrix Cell Ranger writes beside each filtered one
RAW_MATRIX = {"filtered_feature_bc_matrix": "raw_feature_bc_matrix"}  # folders, or .h5 files
#: droplets with at most this many UMIs make the soup profile (SoupX's default range)
EMPTY_MAX_UMIS = 100


def raw_matrix(filtered: Path) -> Path | None:
    """The raw matrix folder beside a Cell Ranger filtered one, when it was kept."""
    raw = RAW_MATRIX.get(filtered.name)
    return filtered.parent / raw if raw and (filtered.parent / raw).is_dir() else None


def ambient_profile(adata: ad.AnnData, raw: ad.AnnData, *, max_umis: int = EMPTY_MAX_UMIS) -> tuple[np.ndarray, int]:
    """The soup profile of a sample (share of each gene of ``adata``): the summed counts of
    the raw matrix's droplets that are not called cells and hold 1 to ``max_umis`` UMIs
    (SoupX's estimate from empty droplets). Returns the profile and the droplets used."""
    total = np.asarray(raw.X.sum(axis=1)).ravel()
    empty = (total > 0) & (total <= max_umis) & ~raw.obs_names.isin(adata.obs_names)
    summed = np.asarray(raw.X[empty].sum(axis=0)).ravel()
    summed = pd.Series(summed, index=raw.var_names).groupby(level=0).sum().reindex(adata.var_names, fill_value=0)
    profile = summed.to_numpy(dtype=float)
    return (profile / profile.sum() if profile.sum() > 0 else profile), int(empty.sum())


def read_10x_mtx(base: Path, *, with_ambient: bool = False) -> ad.AnnData:
    """A 10x matrix folder (or a Cell Ranger output holding one). ``with_ambient``: when a raw
    matrix sits beside the filtered one, its empty droplets' soup profile is kept in
    ``var['ambient_profile']`` (``uns['ambient']`` says where it came from)."""
    base = cellranger_matrix(base)
    adata = _read_mtx_folder(base)
    raw = raw_matrix(base) if with_ambient else None
    if raw is not None:
        _attach_ambient(adata, _read_mtx_folder(raw), raw)
    return adata


def _attach_ambient(adata: ad.AnnData, raw: ad.AnnData, where: Path) -> None:
    """Keep the soup profile of the raw matrix ``raw`` (read from ``where``) in ``adata``."""
    profile, droplets = ambient_profile(adata, raw)
    if droplets:
        adata.var["ambient_profile"] = profile
        adata.uns["ambient"] = {"source": "empty droplets", "droplets": droplets, "raw_matrix": str(where)}
        log.info("%s: soup profile from %d empty droplets (1-%d UMIs)", where, droplets, EMPTY_MAX_UMIS)
    else:
        log.warning("%s: no empty droplets (1-%d UMIs); the soup cannot be removed", where, EMPTY_MAX_UMIS)


def _read_mtx_folder(base: Path) -> ad.AnnData:
    matrix = _find(base, ("matrix.mtx.gz", "matrix.mtx"))
    barcodes = _find(base, ("barcodes.tsv.gz", "barcodes.tsv"))
    features = _find(base, ("features.tsv.gz", "features.tsv", "genes.tsv.gz", "genes.tsv"))
    for name, found in (
        ("matrix.mtx(.gz)", matrix),
        ("barcodes.tsv(.gz)", barcodes),
        ("features.tsv(.gz) or genes.tsv", features),
    ):
        if found is None:
            raise InputError(
                f"{base}: no {name} found. Fix: a 10x folder needs matrix, barcodes and features/genes files"
            )
    try:
        m = scipy.io.mmread(matrix)
    except Exception as err:  # scipy raises several types on malformed files
        raise InputError(f"{matrix}: not a Matrix Market file ({err}). Fix: re-export the counts") from err
    with _open(features) as fh:
        feat = pd.read_csv(fh, sep="\t", header=None, dtype=str)
    with _open(barcodes) as fh:
        try:
            bcs = pd.read_csv(fh, sep="\t", header=None, dtype=str)[0]
        except pd.errors.EmptyDataError:
            bcs = pd.Series([], dtype=str)
    counts = sp.csr_matrix(m.T)
    if counts.shape != (len(bcs), len(feat)):
        raise InputError(
            f"{matrix}: shape {m.shape} does not match {len(feat)} features x {len(bcs)} barcodes. "
            "Fix: the three files must come from the same sample"
        )
    ids = feat[0].to_numpy()
    symbols = feat[1].to_numpy() if feat.shape[1] > 1 else None
    adata = ad.AnnData(X=counts, obs=pd.DataFrame(index=bcs.to_numpy()))
    if feat.shape[1] > 2:
        keep = (feat[2] == "Gene Expression").to_numpy()
        if (~keep).any():
            kinds = ", ".join(sorted(set(feat.loc[~keep, 2])))
            log.info("%s: %d features of other types (%s) kept out of the genes", features, int((~keep).sum()), kinds)
        adata = adata[:, keep].copy()
        ids = ids[keep]
        symbols = symbols[keep]
    return _gene_symbols(adata, ids, symbols, features)


def _ensembl_share(names: np.ndarray) -> float:
    return float(pd.Series(names.astype(str)).str.startswith(ENSEMBL_PREFIXES).mean()) if len(names) else 0.0


def _gene_symbols(adata: ad.AnnData, ids: np.ndarray, symbols: np.ndarray | None, source: Path) -> ad.AnnData:
    """Use gene symbols as names; Ensembl ids are kept in ``var['gene_ids']``."""
    looks_ensembl = _ensembl_share(ids) > 0.5
    if symbols is None or _ensembl_share(symbols) > 0.5:
        if looks_ensembl or symbols is not None:
            raise InputError(
                f"{source}: genes are Ensembl ids only, no symbols. Fix: supply features with both columns "
                "(id and symbol, as 10x writes them) or map the ids to HGNC symbols first"
            )
        symbols = ids
    adata.var_names = pd.Index(symbols.astype(str))
    adata.var["gene_ids"] = ids.astype(str)
    adata.var_names_make_unique()
    return adata


def _integer_like(x, n: int = 200_000) -> bool:
    """Whether the first ``n`` stored values are non-negative and (near) integers."""
    data = (x.data if sp.issparse(x) else np.asarray(x).ravel())[:n]
    return data.size == 0 or (data.min() >= 0 and np.abs(data - np.round(data)).max() <= INTEGER_TOLERANCE)


def read_h5ad(path: Path, labels: str) -> ad.AnnData:
    """Counts from ``layers['counts']``, else ``X``, else ``.raw`` when ``X`` holds
    normalised values and ``.raw`` the counts (as scanpy's tutorials leave an object).
    ``labels``: an obs column of the user's own cell-type labels, kept as ``own_label``."""
    adata = ad.read_h5ad(path)
    if labels and labels not in adata.obs:
        raise InputError(
            f"{path}: no obs column '{labels}' (annotation.labels). Fix: name one of its obs columns "
            f"({', '.join(map(str, adata.obs.columns[:8])) or 'none'}) or leave annotation.labels empty"
        )
    var = adata.var
    if COUNTS in adata.layers:
        x = adata.layers[COUNTS]
    elif not _integer_like(adata.X) and adata.raw is not None and _integer_like(adata.raw.X):
        log.info("%s: X holds normalised values; the counts are taken from .raw (%d genes)", path, adata.raw.n_vars)
        x, var = adata.raw.X, adata.raw.var
    else:
        x = adata.X
    out = ad.AnnData(X=sp.csr_matrix(x), obs=pd.DataFrame(index=adata.obs_names), var=pd.DataFrame(index=var.index))
    if labels:
        out.obs[OWN_LABEL] = adata.obs[labels].astype(str).to_numpy()
    ids = var["gene_ids"].to_numpy() if "gene_ids" in var else out.var_names.to_numpy()
    return _gene_symbols(out, ids, out.var_names.to_numpy(), path)


#: a cell barcode: a run of bases, with an optional suffix (-1, _1, .1) or sample prefix
BARCODE = r"^(?:[A-Za-z0-9]+[_:#-])?[ACGTN]{8,}(?:[-_.]\w+)?$"
#: genes every human or mouse sample expresses: where they are, the genes are
HOUSEKEEPING = {"ACTB", "B2M", "MALAT1", "GAPDH", "TMSB4X", "EEF1A1", "Actb", "B2m", "Malat1", "Gapdh", "Tmsb4x"}


def _cells_are_columns(index: pd.Index, columns: pd.Index) -> bool | None:
    """True when a table has genes as rows and cells as columns, False for cells as rows,
    None when neither the barcodes nor common genes tell."""
    rows = index.astype(str).str.match(BARCODE).mean() if len(index) else 0.0
    cols = columns.astype(str).str.match(BARCODE).mean() if len(columns) else 0.0
    if cols > 0.5 >= rows:
        return True
    if rows > 0.5 >= cols:
        return False
    genes_in_rows, genes_in_cols = (
        len(HOUSEKEEPING & set(index.astype(str))),
        len(HOUSEKEEPING & set(columns.astype(str))),
    )
    if genes_in_rows > genes_in_cols:
        return True
    if genes_in_cols > genes_in_rows:
        return False
    return None


def read_csv(path: Path) -> ad.AnnData:
    """A delimited text table of counts (CSV, or TSV by its name), cells as rows (barcode
    first) or as columns (gene first): the orientation is read from the barcodes, else from
    common genes, and a transposition is logged."""
    name = path.name.lower().removesuffix(".gz")
    df = pd.read_csv(path, index_col=0, sep="\t" if name.endswith((".tsv", ".txt")) else ",")
    if not all(np.issubdtype(t, np.number) for t in df.dtypes):
        raise InputError(
            f"{path}: non-numeric values in the count columns. Fix: one row per cell (barcode first) or one row "
            "per gene (gene first), then counts only"
        )
    transposed = _cells_are_columns(df.index, df.columns)
    if transposed is None and df.shape[0] > df.shape[1] * 3:
        raise InputError(
            f"{path}: cannot tell cells from genes ({df.shape[0]} rows x {df.shape[1]} columns, no barcodes or "
            "common genes among the names). Fix: one row per cell with the barcode first, and gene symbols as the "
            "header"
        )
    if transposed:
        log.info("%s: genes are rows and cells columns (%d genes x %d cells); read transposed", path, *df.shape)
        df = df.T
    adata = ad.AnnData(X=sp.csr_matrix(df.to_numpy()), obs=pd.DataFrame(index=df.index.astype(str)))
    names = df.columns.astype(str).to_numpy()
    return _gene_symbols(adata, names, None, path)


def read_10x_h5(path: Path, *, with_ambient: bool = False) -> ad.AnnData:
    """A 10x HDF5 matrix; ``with_ambient`` as in :func:`read_10x_mtx` (Cell Ranger's
    ``raw_feature_bc_matrix.h5`` beside ``filtered_feature_bc_matrix.h5``)."""
    adata = _read_h5(path)
    raw = path.parent / RAW_MATRIX[path.stem] if path.stem in RAW_MATRIX else None
    if with_ambient and raw is not None and raw.with_suffix(".h5").is_file():
        _attach_ambient(adata, _read_h5(raw.with_suffix(".h5")), raw.with_suffix(".h5"))
    return adata


def _read_h5(path: Path) -> ad.AnnData:
    import scanpy as sc

    adata = sc.read_10x_h5(path, gex_only=True)
    adata.X = sp.csr_matrix(adata.X)
    ids = adata.var["gene_ids"].to_numpy() if "gene_ids" in adata.var else adata.var_names.to_numpy()
    return _gene_symbols(adata, ids, adata.var_names.to_numpy(), path)


READERS = {"10x_mtx": read_10x_mtx, "10x_h5": read_10x_h5, "h5ad": read_h5ad, "csv": read_csv}


def check_counts(adata: ad.AnnData, source: str) -> None:
    """Raw counts must be non-negative integers, barcodes unique, the sample non-empty.

    Counts stored as floats within :data:`INTEGER_TOLERANCE` of an integer (what a CSV or
    an R export of integer UMIs gives) are rounded in ``adata.X`` (the file is untouched)
    and the rounding is logged.
    """
    if adata.n_obs == 0:
        raise InputError(
            f"{source}: the sample has no cells. Fix: remove it from the sample sheet or give the right file"
        )
    data = adata.X.data if sp.issparse(adata.X) else np.asarray(adata.X).ravel()
    if data.size and data.min() < 0:
        raise InputError(
            f"{source}: negative counts (min {data.min()}). Fix: give raw UMI counts, not scaled or corrected values"
        )
    distance = np.abs(data - np.round(data)) if data.size else data
    if data.size and distance.max() > INTEGER_TOLERANCE:
        raise InputError(
            f"{source}: counts are not integers (e.g. {data[distance > INTEGER_TOLERANCE][0]}). "
            "Fix: give raw UMI counts, not normalised or log-transformed values"
        )
    if data.size and distance.max() > 0:
        log.warning(
            "%s: %d counts stored as floats near an integer (largest distance %.1e) rounded",
            source,
            int((distance > 0).sum()),
            float(distance.max()),
        )
        if sp.issparse(adata.X):
            adata.X = adata.X.copy()
            adata.X.data = np.round(adata.X.data)
        else:
            adata.X = np.round(np.asarray(adata.X))
    dup = adata.obs_names[adata.obs_names.duplicated()]
    if len(dup):
        raise InputError(
            f"{source}: barcode '{dup[0]}' occurs more than once. Fix: barcodes must be unique within a sample"
        )


def read_sample(path: str | Path, fmt: str, sample: dict[str, str], *, labels: str) -> ad.AnnData:
    """Read one sample into an AnnData with CSR float32 counts in ``X`` and ``layers['counts']``.

    ``labels`` (``annotation.labels``): the obs column of the user's own cell-type labels
    (h5ad inputs), kept as ``obs['own_label']``; empty for none.

    ``sample`` carries the sample-sheet row (sample_id, patient_id, timepoint, compartment,
    batch); its fields become ``obs`` columns and obs names become ``<sample_id>:<barcode>``.
    """
    path = Path(path)
    if fmt not in READERS:
        raise InputError(f"{path}: unknown format '{fmt}'. Fix: use one of {', '.join(READERS)}")
    if not (path.exists() or (path.parent.is_dir() and fmt == "10x_mtx")):
        raise InputError(f"{path}: file not found. Fix: correct the path in the sample sheet")
    if labels and fmt != "h5ad":
        raise InputError(
            f"{path}: annotation.labels is set ('{labels}') but this sample is {fmt}, which carries no labels. "
            "Fix: give every sample as .h5ad with that obs column, or leave annotation.labels empty"
        )
    if fmt == "h5ad":
        adata = READERS[fmt](path, labels)
    elif fmt in ("10x_mtx", "10x_h5"):
        adata = READERS[fmt](path, with_ambient=True)
    else:
        adata = READERS[fmt](path)
    check_counts(adata, str(path))
    adata.X = sp.csr_matrix(adata.X, dtype=np.float32)
    adata.obs["barcode"] = adata.obs_names.astype(str)
    adata.obs_names = [f"{sample['sample_id']}:{b}" for b in adata.obs_names]
    for key in ("sample_id", "patient_id", "timepoint", "compartment", "batch"):
        adata.obs[key] = pd.Categorical([str(sample.get(key, sample["sample_id"]))] * adata.n_obs)
    if sample.get("condition"):  # unpaired designs (e.g. MS / control)
        adata.obs["condition"] = pd.Categorical([str(sample["condition"])] * adata.n_obs)
    for key in sheet_covariates(sample):  # the sheet's own columns (sex, chemistry ...)
        adata.obs[key] = pd.Categorical([str(sample[key])] * adata.n_obs)
    adata.layers[COUNTS] = adata.X.copy()
    return adata


def read_rows(path: str | Path, rows: np.ndarray, *, obs: pd.DataFrame) -> ad.AnnData:
    """Rows ``rows`` (positions, ascending) of ``X`` of an .h5ad, with ``obs`` as their cell
    table (the caller's: one row per position) and the file's gene names.

    Neither the file's cell table nor any other matrix is read, so a rule that takes a
    cohort's samples one by one (reading the cell table once, with :func:`read_obs`) pays for
    each sample's cells and not, again, for the whole cohort's: opening the file in backed mode
    would load every ``obsm``/``obsp`` (the neighbour graph of all cells) first.
    """
    import h5py
    from anndata.io import read_elem, sparse_dataset

    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) != len(obs):
        raise ValueError(f"{path}: {len(rows)} rows asked for but a cell table of {len(obs)} given")
    with h5py.File(path, "r") as f:
        var = read_elem(f["var"])
        x = stored_rows(sparse_dataset(f["X"]), rows)
    return ad.AnnData(X=x, obs=obs.copy(), var=var[[]].copy())


def stored_rows(stored, rows: np.ndarray) -> sp.csr_matrix:
    """Rows ``rows`` (positions, ascending) of a CSR matrix on disk (anndata's
    ``sparse_dataset``). Where they lie in stretches of consecutive rows (a sample of a merged
    object; a block of all cells), each stretch is read as one slice of the file; scattered
    rows are read one by one, as anndata reads an array of positions (two reads per row). A
    slice costs about as much as 30 rows read apart (2.4 ms against 0.08 ms at 878k cells),
    so stretches are read as slices where they average 64 rows or more.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if not len(rows):
        return sp.csr_matrix((0, stored.shape[1]), dtype=stored.dtype)
    runs = np.split(rows, np.flatnonzero(np.diff(rows) != 1) + 1)
    if len(runs) * 64 > len(rows):
        return sp.csr_matrix(stored[rows])
    return sp.vstack([sp.csr_matrix(stored[int(r[0]) : int(r[-1]) + 1]) for r in runs], format="csr")


def read_obs(path: str | Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The cell table (``obs``) of an .h5ad alone: no matrix, embedding or graph is read
    (``backed='r'`` would load every layer, ``obsm`` and ``obsp`` first). With ``columns``,
    those of them the file has, alone (in the file's order), beside the cell names."""
    if columns is None:
        return _read_table(path, "obs")
    import h5py
    from anndata.io import read_elem

    with h5py.File(path, "r") as f:
        group = f["obs"]
        index_key = group.attrs["_index"]
        wanted = set(columns)
        names = [c for c in group.attrs["column-order"] if c in wanted]
        table = pd.DataFrame({c: read_elem(group[c]) for c in names}, index=read_elem(group[index_key]))
    if index_key != "_index":
        table.index.name = index_key
    return table


def read_var(path: str | Path) -> pd.DataFrame:
    """The gene table (``var``) of an .h5ad alone (as :func:`read_obs` reads ``obs``)."""
    return _read_table(path, "var")


def _read_table(path: str | Path, key: str) -> pd.DataFrame:
    import h5py
    from anndata.io import read_elem

    with h5py.File(path, "r") as f:
        return read_elem(f[key])


def read_cells(
    path: str | Path,
    *,
    matrix: str = "X",
    rows: np.ndarray | None = None,
    genes: Sequence[str] | None = None,
    obsm: Sequence[str] = (),
    block: int = 65536,
) -> ad.AnnData:
    """``obs``, ``var`` and one matrix of an .h5ad (``X`` or a layer: ``layers/counts``), for
    the cells ``rows`` (a boolean mask or indices; all when None) and the ``genes`` named
    (all when None; those of the file, in its order: a name it lacks is left out). With
    ``genes``, a sparse matrix is read ``block`` rows at a time, so that only the named
    genes of all the cells are held. ``obsm`` names the embeddings to read with them (``X_umap``).

    A rule that needs the counts of the annotated object reads them without the normalised
    ``X``, the embeddings and the neighbour graph: at a million cells each of those costs
    gigabytes. The matrix is placed where it was: ``X``, or the layer of that name (``X``
    then empty).
    """
    import h5py
    from anndata.io import read_elem, sparse_dataset

    with h5py.File(path, "r") as f:
        if matrix not in f:
            raise KeyError(f"{path}: no '{matrix}' in the file (its layers: {', '.join(f.get('layers', {}))})")
        obs, var = read_elem(f["obs"]), read_elem(f["var"])
        absent = [key for key in obsm if f"obsm/{key}" not in f]
        if absent:
            raise KeyError(
                f"{path}: no obsm '{', '.join(absent)}' in the file (its obsm: {', '.join(f.get('obsm', {}))})"
            )
        embeddings = {key: read_elem(f[f"obsm/{key}"]) for key in obsm}
        chosen = None if rows is None else np.asarray(rows)
        if chosen is not None:
            chosen = np.flatnonzero(chosen) if chosen.dtype == bool else np.sort(chosen)
            embeddings = {key: value[chosen] for key, value in embeddings.items()}
        columns = None if genes is None else np.flatnonzero(var.index.isin(list(genes)))
        blockwise = columns is not None and not isinstance(f[matrix], h5py.Dataset)
        if blockwise:
            stored = sparse_dataset(f[matrix])
            index = np.arange(len(obs)) if chosen is None else chosen
            obs, var = obs.iloc[index].copy(), var.iloc[columns].copy()
            parts = [stored_rows(stored, index[s : s + block])[:, columns] for s in range(0, len(index), block)]
            x = sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, len(columns)), dtype=np.float32)
        elif rows is None:
            x = read_elem(f[matrix])
        else:
            index = chosen
            obs = obs.iloc[index].copy()
            if not len(index):
                x = sp.csr_matrix((0, len(var)), dtype=np.float32)
            elif isinstance(f[matrix], h5py.Dataset):  # dense
                x = f[matrix][index]
            else:
                x = stored_rows(sparse_dataset(f[matrix]), index)
    if columns is not None and not blockwise:  # a dense matrix: the genes are selected once read
        x, var = x[:, columns], var.iloc[columns].copy()
    if matrix == "X":
        return ad.AnnData(X=x, obs=obs, var=var, obsm=embeddings)
    return ad.AnnData(X=None, obs=obs, var=var, obsm=embeddings, layers={matrix.split("/", 1)[1]: x})
