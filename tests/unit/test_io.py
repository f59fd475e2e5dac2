"""Reading the layouts real data arrives in."""

from __future__ import annotations

import gzip
import io

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

from csfcart.errors import InputError
from csfcart.io import read_sample
from tests.conftest import GENES, barcodes, random_counts, write_mtx

ROW = {"sample_id": "S1", "patient_id": "P1", "timepoint": "baseline", "compartment": "CSF", "batch": "b1"}


def _check(adata, counts):
    assert adata.shape == counts.shape
    assert list(adata.var_names[:3]) == GENES[:3]
    assert adata.obs_names[0] == "S1:CELL00000-1"
    assert sp.isspmatrix_csr(adata.X) or sp.issparse(adata.X)
    assert adata.X.dtype == np.float32
    np.testing.assert_array_equal(adata.layers["counts"].toarray(), counts)
    assert (adata.obs["patient_id"] == "P1").all() and (adata.obs["batch"] == "b1").all()


def test_10x_v3_folder(tmp_path):
    counts = random_counts()
    _check(read_sample(write_mtx(tmp_path / "s", counts, barcodes(80)), "10x_mtx", ROW), counts)


def test_10x_v2_geo_layout_with_prefix(tmp_path):
    counts = random_counts(seed=3)
    folder = tmp_path / "GSE138266_RAW"
    folder.mkdir()
    for sample, c in (("GSM4104122_MS19270_CSF_", counts), ("GSM4104123_MS19270_PBMCs_", random_counts(seed=4))):
        buf = io.BytesIO()
        scipy.io.mmwrite(buf, sp.coo_matrix(c.T), field="integer")
        (folder / f"{sample}matrix.mtx.gz").write_bytes(gzip.compress(buf.getvalue()))
        with gzip.open(folder / f"{sample}genes.tsv.gz", "wt") as fh:
            fh.writelines(f"ENSG{i:011d}\t{g}\n" for i, g in enumerate(GENES))
        with gzip.open(folder / f"{sample}barcodes.tsv.gz", "wt") as fh:
            fh.writelines(f"{b}\n" for b in barcodes(80))
    adata = read_sample(folder / "GSM4104122_MS19270_CSF_", "10x_mtx", ROW)
    _check(adata, counts)
    assert adata.var["gene_ids"].iloc[0] == "ENSG00000000000"
    with pytest.raises(InputError, match="several files match"):
        read_sample(folder, "10x_mtx", ROW)


def test_h5ad_with_counts_layer(tmp_path):
    counts = random_counts()
    a = ad.AnnData(
        X=np.log1p(counts).astype(np.float32), obs=pd.DataFrame(index=barcodes(80)), var=pd.DataFrame(index=GENES)
    )
    a.layers["counts"] = sp.csr_matrix(counts)
    a.write_h5ad(tmp_path / "s.h5ad")
    _check(read_sample(tmp_path / "s.h5ad", "h5ad", ROW), counts)


def test_csv_cells_by_genes(tmp_path):
    counts = random_counts()
    pd.DataFrame(counts, index=barcodes(80), columns=GENES).to_csv(tmp_path / "s.csv")
    _check(read_sample(tmp_path / "s.csv", "csv", ROW), counts)


def test_h5ad_with_log_values_is_refused(tmp_path):
    a = ad.AnnData(
        X=np.log1p(random_counts()).astype(np.float32),
        obs=pd.DataFrame(index=barcodes(80)),
        var=pd.DataFrame(index=GENES),
    )
    a.write_h5ad(tmp_path / "s.h5ad")
    with pytest.raises(InputError, match=r"s\.h5ad: counts are not integers"):
        read_sample(tmp_path / "s.h5ad", "h5ad", ROW)


def test_counts_stored_as_floats_near_integers_are_rounded(tmp_path, caplog):
    # what an R or CSV export of integer UMIs looks like: 0.999999999999999 for 1
    counts = random_counts()
    noisy = counts.astype(np.float64) - np.where(counts > 0, 1e-15 * counts, 0)
    pd.DataFrame(noisy, index=barcodes(80), columns=GENES).to_csv(tmp_path / "s.csv", float_format="%.15f")
    before = (tmp_path / "s.csv").read_bytes()
    with caplog.at_level("WARNING"):
        _check(read_sample(tmp_path / "s.csv", "csv", ROW), counts)
    assert "rounded" in caplog.text
    assert (tmp_path / "s.csv").read_bytes() == before  # the input is never modified
    # but values far from integers are still refused
    pd.DataFrame(counts + 0.01, index=barcodes(80), columns=GENES).to_csv(tmp_path / "t.csv")
    with pytest.raises(InputError, match=r"t\.csv: counts are not integers"):
        read_sample(tmp_path / "t.csv", "csv", ROW)
