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
    _check(read_sample(write_mtx(tmp_path / "s", counts, barcodes(80)), "10x_mtx", ROW, labels=""), counts)


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
    adata = read_sample(folder / "GSM4104122_MS19270_CSF_", "10x_mtx", ROW, labels="")
    _check(adata, counts)
    assert adata.var["gene_ids"].iloc[0] == "ENSG00000000000"
    with pytest.raises(InputError, match="several files match"):
        read_sample(folder, "10x_mtx", ROW, labels="")


def test_h5ad_with_counts_layer(tmp_path):
    counts = random_counts()
    a = ad.AnnData(
        X=np.log1p(counts).astype(np.float32), obs=pd.DataFrame(index=barcodes(80)), var=pd.DataFrame(index=GENES)
    )
    a.layers["counts"] = sp.csr_matrix(counts)
    a.write_h5ad(tmp_path / "s.h5ad")
    _check(read_sample(tmp_path / "s.h5ad", "h5ad", ROW, labels=""), counts)


def test_csv_cells_by_genes(tmp_path):
    counts = random_counts()
    pd.DataFrame(counts, index=barcodes(80), columns=GENES).to_csv(tmp_path / "s.csv")
    _check(read_sample(tmp_path / "s.csv", "csv", ROW, labels=""), counts)


def test_h5ad_with_log_values_is_refused(tmp_path):
    a = ad.AnnData(
        X=np.log1p(random_counts()).astype(np.float32),
        obs=pd.DataFrame(index=barcodes(80)),
        var=pd.DataFrame(index=GENES),
    )
    a.write_h5ad(tmp_path / "s.h5ad")
    with pytest.raises(InputError, match=r"s\.h5ad: counts are not integers"):
        read_sample(tmp_path / "s.h5ad", "h5ad", ROW, labels="")


def test_counts_stored_as_floats_near_integers_are_rounded(tmp_path, caplog):
    # what an R or CSV export of integer UMIs looks like: 0.999999999999999 for 1
    counts = random_counts()
    noisy = counts.astype(np.float64) - np.where(counts > 0, 1e-15 * counts, 0)
    pd.DataFrame(noisy, index=barcodes(80), columns=GENES).to_csv(tmp_path / "s.csv", float_format="%.15f")
    before = (tmp_path / "s.csv").read_bytes()
    with caplog.at_level("WARNING"):
        _check(read_sample(tmp_path / "s.csv", "csv", ROW, labels=""), counts)
    assert "rounded" in caplog.text
    assert (tmp_path / "s.csv").read_bytes() == before  # the input is never modified
    # but values far from integers are still refused
    pd.DataFrame(counts + 0.01, index=barcodes(80), columns=GENES).to_csv(tmp_path / "t.csv")
    with pytest.raises(InputError, match=r"t\.csv: counts are not integers"):
        read_sample(tmp_path / "t.csv", "csv", ROW, labels="")


def _bases(n, seed=0):
    rng = np.random.default_rng(seed)
    return [f"{''.join(rng.choice(list('ACGT'), 16))}-1" for _ in range(n)]


def test_genes_by_cells_tables_are_read_transposed(tmp_path, caplog):
    counts = random_counts()
    cells = _bases(80)
    # a CSV with genes as rows and 10x barcodes as the header, as many GEO depositions are
    pd.DataFrame(counts.T, index=GENES, columns=cells).to_csv(tmp_path / "g.csv")
    with caplog.at_level("INFO"):
        a = read_sample(tmp_path / "g.csv", "csv", ROW, labels="")
    assert "read transposed" in caplog.text
    assert a.shape == counts.shape and list(a.var_names[:3]) == GENES[:3] and a.obs_names[0] == f"S1:{cells[0]}"
    np.testing.assert_array_equal(a.layers["counts"].toarray(), counts)
    # a TSV whose cell names say nothing: common genes among the rows tell
    genes = [*GENES[:-2], "ACTB", "MALAT1"]
    pd.DataFrame(counts.T, index=genes, columns=barcodes(80)).to_csv(tmp_path / "g.tsv.gz", sep="\t")
    b = read_sample(tmp_path / "g.tsv.gz", "csv", ROW, labels="")
    assert b.shape == counts.shape and "MALAT1" in b.var_names


def test_a_table_that_cannot_be_oriented_is_refused_with_the_fix(tmp_path):
    counts = np.random.default_rng(0).poisson(1.0, size=(300, 20))
    pd.DataFrame(counts, index=[f"row{i}" for i in range(300)], columns=[f"col{j}" for j in range(20)]).to_csv(
        tmp_path / "x.csv"
    )
    with pytest.raises(InputError, match=r"x\.csv: cannot tell cells from genes.*Fix: one row per cell"):
        read_sample(tmp_path / "x.csv", "csv", ROW, labels="")


def test_h5ad_with_counts_in_raw(tmp_path):
    counts = random_counts()
    raw = ad.AnnData(X=sp.csr_matrix(counts.astype(np.float32)), obs=pd.DataFrame(index=barcodes(80)),
                     var=pd.DataFrame(index=GENES))  # fmt: skip
    a = raw.copy()
    a.X = sp.csr_matrix(np.log1p(counts / counts.sum(1, keepdims=True) * 1e4).astype(np.float32))
    a.raw = raw
    a = a[:, :40].copy()  # the processed object kept fewer genes; .raw has them all
    a.write_h5ad(tmp_path / "s.h5ad")
    _check(read_sample(tmp_path / "s.h5ad", "h5ad", ROW, labels=""), counts)


def test_cell_ranger_output_folders(tmp_path):
    counts = random_counts()
    # `cellranger count`: the run folder, with antibody capture features beside the genes
    outs = tmp_path / "run1" / "outs" / "filtered_feature_bc_matrix"
    protein = np.random.default_rng(1).poisson(30, size=(80, 3))
    write_mtx(outs, np.hstack([counts, protein]), barcodes(80), genes=[*GENES, "CD3_TotalSeqB", "CD4_TotalSeqB",
                                                                        "CD19_TotalSeqB"])  # fmt: skip
    features = outs / "features.tsv.gz"
    rows = gzip.decompress(features.read_bytes()).decode().splitlines()
    rows = [r if i < len(GENES) else r.replace("Gene Expression", "Antibody Capture") for i, r in enumerate(rows)]
    features.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode()))
    a = read_sample(tmp_path / "run1", "10x_mtx", ROW, labels="")
    _check(a, counts)  # the antibody counts are not genes
    # `cellranger multi`: one sample's folder is read; the run folder of several is refused
    for name in ("CSF_d0", "CSF_d14"):
        write_mtx(tmp_path / "multi" / "outs" / "per_sample_outs" / name / "count" / "sample_filtered_feature_bc_matrix",
                  counts, barcodes(80))  # fmt: skip
    _check(read_sample(tmp_path / "multi" / "outs" / "per_sample_outs" / "CSF_d14", "10x_mtx", ROW, labels=""), counts)
    with pytest.raises(InputError, match=r"Cell Ranger multi run with 2 samples.*Fix: give each sample's folder"):
        read_sample(tmp_path / "multi", "10x_mtx", ROW, labels="")


def test_extra_sheet_columns_are_kept_as_covariates(tmp_path):
    write_mtx(tmp_path / "s", random_counts(), barcodes(80))
    a = read_sample(tmp_path / "s", "10x_mtx", {**ROW, "sex": "F", "chemistry": "v3", "day": "14"}, labels="")
    assert (a.obs["sex"] == "F").all() and (a.obs["chemistry"] == "v3").all()
    assert "day" not in a.obs  # a column with a meaning of its own is not a covariate


def test_own_labels_travel_from_an_h5ad_obs_column(tmp_path):
    counts = random_counts()
    a = ad.AnnData(X=sp.csr_matrix(counts.astype(np.float32)), obs=pd.DataFrame(index=barcodes(80)),
                   var=pd.DataFrame(index=GENES))  # fmt: skip
    a.obs["author_type"] = ["B cells"] * 40 + ["CD4 T cells"] * 40
    a.write_h5ad(tmp_path / "s.h5ad")
    got = read_sample(tmp_path / "s.h5ad", "h5ad", ROW, labels="author_type")
    assert list(got.obs["own_label"].iloc[[0, 79]]) == ["B cells", "CD4 T cells"]
    with pytest.raises(InputError, match=r"s\.h5ad: no obs column 'celltype' \(annotation\.labels\).*author_type"):
        read_sample(tmp_path / "s.h5ad", "h5ad", ROW, labels="celltype")
    write_mtx(tmp_path / "m", counts, barcodes(80))
    with pytest.raises(InputError, match=r"carries no labels\. Fix: give every sample as \.h5ad"):
        read_sample(tmp_path / "m", "10x_mtx", ROW, labels="author_type")


def _annotated(tmp_path):
    """A small annotated object on disk: 3 samples, a type absent from one, a covariate,
    normalised X beside the counts, an embedding and a graph."""
    rng = np.random.default_rng(4)
    n = 90
    counts = sp.csr_matrix(rng.poisson(0.8, (n, len(GENES))).astype(np.float32))
    sample = np.repeat(["P1_CSF_baseline", "P1_CSF_d14", "P2_CSF_baseline"], 30)
    types = np.where(np.arange(n) % 3 == 0, "B", np.where(np.arange(n) % 3 == 1, "T", "mono"))
    types[(sample == "P1_CSF_d14") & (types == "B")] = "T"  # B cells gone after infusion
    obs = pd.DataFrame(
        {
            "sample_id": sample,
            "patient_id": [s[:2] for s in sample],
            "timepoint": [s.rsplit("_", 1)[1] for s in sample],
            "compartment": "CSF",
            "chemistry": np.where(sample == "P2_CSF_baseline", "v2", "v3"),
            "cell_type": pd.Categorical(types),
            "total_counts": np.asarray(counts.sum(axis=1)).ravel(),
        },
        index=[f"c{i}" for i in range(n)],
    )
    adata = ad.AnnData(X=counts.copy(), obs=obs, var=pd.DataFrame(index=GENES), layers={"counts": counts})
    adata.X.data = np.log1p(adata.X.data)
    adata.obsm["X_umap"] = rng.normal(size=(n, 2))
    adata.obsp["connectivities"] = sp.random(n, n, density=0.1, format="csr", random_state=1)
    path = tmp_path / "annotated.h5ad"
    adata.write_h5ad(path)
    return adata, path


def test_rules_read_the_cells_and_counts_they_need_without_the_rest(tmp_path):
    from csfcart.io import read_cells, read_obs

    adata, path = _annotated(tmp_path)
    pd.testing.assert_frame_equal(read_obs(path), adata.obs)
    counts = read_cells(path, matrix="layers/counts")
    assert counts.X is None and not counts.obsm and not counts.obsp
    assert (counts.layers["counts"] != adata.layers["counts"]).nnz == 0
    d14 = (adata.obs["sample_id"] == "P1_CSF_d14").to_numpy()
    some = read_cells(path, rows=d14)
    assert some.obs_names.tolist() == adata.obs_names[d14].tolist()
    assert np.allclose(some.X.toarray(), adata.X[d14].toarray())
    with pytest.raises(KeyError, match="layers/spliced"):
        read_cells(path, matrix="layers/spliced")


def test_a_figure_reads_the_embedding_and_the_named_genes_of_the_cells_it_draws(tmp_path):
    from csfcart.io import read_cells, read_var

    adata, path = _annotated(tmp_path)
    assert read_var(path).index.equals(adata.var_names)
    cells = read_cells(path, genes=["LYZ", "CD3E"], obsm=["X_umap"])
    assert np.array_equal(cells.obsm["X_umap"], adata.obsm["X_umap"]) and not cells.obsp
    d14 = (adata.obs["sample_id"] == "P1_CSF_d14").to_numpy()
    some = read_cells(path, rows=d14, genes=["LYZ"], obsm=["X_umap"])
    assert np.array_equal(some.obsm["X_umap"], adata.obsm["X_umap"][d14])  # the rows of the cells read
    assert np.allclose(some.X.toarray(), adata[d14, ["LYZ"]].X.toarray())
    with pytest.raises(KeyError, match=r"X_tsne.*its obsm: X_umap"):
        read_cells(path, obsm=["X_tsne"])


def test_pseudobulk_summed_sample_by_sample_equals_the_whole_object(tmp_path):
    from csfcart.pseudobulk import pseudobulk, pseudobulk_file

    adata, path = _annotated(tmp_path)
    whole, streamed = pseudobulk(adata), pseudobulk_file(str(path))
    assert streamed.obs_names.tolist() == whole.obs_names.tolist()
    pd.testing.assert_frame_equal(streamed.obs.astype(str), whole.obs.astype(str))
    assert np.array_equal(streamed.X.toarray(), whole.X.toarray())
    assert "chemistry" in streamed.obs  # a sample-level covariate travels to the DE design
    gone = streamed.obs.loc["P1_CSF_d14_B"]
    assert gone["psbulk_cells"] == 0 and streamed["P1_CSF_d14_B"].X.sum() == 0
    # the sums are the counts of each sample's cells of each type, computed here directly
    cells = adata.obs.index[(adata.obs["sample_id"] == "P2_CSF_baseline") & (adata.obs["cell_type"] == "mono")]
    assert np.array_equal(streamed["P2_CSF_baseline_mono"].X.toarray().ravel(),
                          np.asarray(adata[cells].layers["counts"].sum(axis=0)).ravel())  # fmt: skip


def test_memory_requests_follow_the_counts_stored_in_the_inputs(tmp_path):
    from csfcart.workflow import MEMORY_MODEL, h5ad_nonzeros, job_memory_mb

    adata, path = _annotated(tmp_path)
    assert h5ad_nonzeros(path) == adata.layers["counts"].nnz
    base, per_count = MEMORY_MODEL["integrate"]
    planned = job_memory_mb("integrate", [str(tmp_path / "absent.h5ad")], expected_cells=2_000_000, floor_mb=0)
    assert planned >= 1.5 * (base + per_count * 2_000_000 * 625 / 1e6)  # a dry run: the config's cells
    small = job_memory_mb("integrate", [str(path)], expected_cells=2_000_000, floor_mb=0)
    assert small < planned and small == job_memory_mb("integrate", [str(path)], expected_cells=0, floor_mb=0)
    assert job_memory_mb("integrate", [str(path)], expected_cells=0, floor_mb=8000, attempt=2) == 16000


def test_interaction_table_rules_ask_memory_by_the_rows_scored(tmp_path):
    from csfcart.workflow import SCORES_MODEL, SCORES_PER_SAMPLE, parquet_rows, scores_memory_mb

    table = pd.DataFrame({"source": ["a"] * 1000, "lrscore": np.linspace(0, 1, 1000, dtype=np.float32)})
    paths = [str(tmp_path / f"S{i}.parquet") for i in range(3)]
    for p in paths:
        table.to_parquet(p, index=False)
    assert parquet_rows(paths[0]) == 1000
    base, per_million = SCORES_MODEL["communication_diff"]
    assert scores_memory_mb("communication_diff", paths, floor_mb=0) == int(
        np.ceil(1.5 * (base + per_million * 3000 / 1e6) / 100) * 100
    )
    # a dry run of 336 CSF samples: no table exists yet, each counts as a typical sample
    planned = [str(tmp_path / f"absent{i}.parquet") for i in range(336)]
    need = scores_memory_mb("communication_diff", planned, floor_mb=4000)
    assert need >= 1.5 * (base + per_million * 336 * SCORES_PER_SAMPLE / 1e6) > 8000
    assert scores_memory_mb("communication_diff", paths, floor_mb=4000, attempt=2) == 8000


def test_reading_named_genes_block_by_block_equals_reading_them_all(tmp_path):
    from csfcart.io import read_cells

    adata, path = _annotated(tmp_path)
    genes = ["GENE7", "CD3E", "NOT_A_GENE", "LYZ"]
    some = read_cells(path, matrix="layers/counts", genes=genes, block=7)  # 90 cells in blocks of 7
    assert some.var_names.tolist() == ["CD3E", "LYZ", "GENE7"]  # the file's order; an absent name left out
    expected = adata[:, some.var_names].layers["counts"].toarray()
    assert np.array_equal(some.layers["counts"].toarray(), expected)
    d14 = (adata.obs["sample_id"] == "P1_CSF_d14").to_numpy()
    part = read_cells(path, rows=d14, genes=genes, block=4)
    assert part.obs_names.tolist() == adata.obs_names[d14].tolist()
    assert np.allclose(part.X.toarray(), adata[d14, part.var_names].X.toarray())


def test_ig_and_pooled_programs_from_the_pseudobulk_follow_their_per_cell_definitions(tmp_path):
    """The Ig readout and the pooled groups' program scores, computed from the pseudobulk
    rows, equal their definitions on the cells, computed here directly: log2 of the mean over
    the program's genes of their share relative to the group's pooled share, the group's
    identity markers and genes below the count floor (pooled over all samples) left out and
    named."""
    from csfcart.measure import asc_immunoglobulin, programs_per_sample
    from csfcart.pseudobulk import MIN_COUNTS, pseudobulk_file

    adata, _ = _annotated(tmp_path)
    adata.var_names = ["IGKC", "JCHAIN", *GENES[2:]]
    counts = adata.layers["counts"].toarray()
    counts[:, -1] = 0  # a gene no cell expresses: too sparse to score
    counts[:, 2:5] *= 4  # genes expressed enough to score
    adata.layers["counts"] = sp.csr_matrix(counts)
    path = tmp_path / "renamed.h5ad"
    adata.write_h5ad(path)
    lineages = {"B": "plasma", "T": "T", "mono": "myeloid"}
    pb = pseudobulk_file(str(path))
    ig = asc_immunoglobulin(pb, lineages)
    program = [g for g in adata.var_names if g not in ("IGKC", "JCHAIN")]
    scores = programs_per_sample(pb, {"p": program}, lineage_of=lineages, markers={"mono": ["LYZ"]}, min_cells=1)
    counts, obs = adata.layers["counts"].astype(np.float64), adata.obs
    all_mono = (obs["cell_type"] == "mono").to_numpy()
    per_sample = np.asarray(counts[all_mono].sum(axis=0)).ravel() / obs.loc[all_mono, "sample_id"].nunique()
    kept = [
        g for g, c in zip(adata.var_names, per_sample, strict=True) if g in program and g != "LYZ" and c >= MIN_COUNTS
    ]
    sparse = [
        g for g, c in zip(adata.var_names, per_sample, strict=True) if g in program and g != "LYZ" and c < MIN_COUNTS
    ]
    assert kept and sparse  # the fixture exercises both
    idx = adata.var_names.get_indexer(kept)
    ref = np.asarray(counts[all_mono][:, idx].sum(axis=0)).ravel() / counts[all_mono].sum()  # pooled shares
    for sample in obs["sample_id"].unique():
        cells = (obs["sample_id"] == sample).to_numpy()
        asc = cells & (obs["cell_type"] == "B").to_numpy()
        assert ig.loc[sample, "asc_cells"] == asc.sum()
        expected = 1000 * counts[asc][:, [0, 1]].sum() / counts[cells].sum()
        assert ig.loc[sample, "asc_ig_per_1000_umis"] == pytest.approx(expected, rel=1e-9)
        mono = cells & all_mono
        summed = np.asarray(counts[mono][:, idx].sum(axis=0)).ravel()
        expected = np.log2(np.mean((summed + 0.5) / counts[mono].sum() / ref))
        row = scores[(scores["group"] == "myeloid") & (scores["sample_id"] == sample)]
        assert len(row) == 1 and row["score"].iloc[0] == pytest.approx(expected, rel=1e-9)
        assert row["psbulk_cells"].iloc[0] == mono.sum()
        assert row["genes"].iloc[0].split(",") == kept and row["identity_left_out"].iloc[0] == "LYZ"
        assert row["sparse_left_out"].iloc[0].split(",") == sparse
    no_microglia = scores[scores["group"] == "microglia-like"]  # a pool none of whose types is here
    assert len(no_microglia) == 3 and no_microglia["score"].isna().all()


def test_counts_copied_block_by_block_into_an_annotated_file_read_back_equal(tmp_path):
    from csfcart.annotate import copy_counts

    adata, source = _annotated(tmp_path)
    without = adata.copy()
    del without.layers["counts"]
    target = tmp_path / "out.h5ad"
    without.write_h5ad(target, compression="gzip")
    copy_counts(source, target, block=7)  # stored values in blocks of 7
    back = ad.read_h5ad(target)
    assert (back.layers["counts"] != adata.layers["counts"]).nnz == 0
    assert np.allclose(back.X.toarray(), adata.X.toarray()) and back.obsm["X_umap"].shape == (90, 2)
    fewer = tmp_path / "fewer.h5ad"
    without[:10].copy().write_h5ad(fewer)
    with pytest.raises(ValueError, match=r"counts of 90 cells.*10 cells"):
        copy_counts(source, fewer)


def test_a_samples_rows_are_read_with_the_cell_table_read_once(tmp_path):
    from csfcart.io import read_obs, read_rows

    adata, path = _annotated(tmp_path)
    table = read_obs(path, columns=("cell_type", "sample_id", "not_there"))
    assert table.columns.tolist() == ["sample_id", "cell_type"]  # the file's order; absent names left out
    pd.testing.assert_frame_equal(table, adata.obs[["sample_id", "cell_type"]])
    runs = np.r_[3:10, 20, 40:45, 89]  # short stretches and single rows
    for rows in (np.arange(30, 60), np.array([0, 31, 88]), runs, np.zeros(0, dtype=int)):
        part = read_rows(path, rows, obs=table.iloc[rows])
        assert part.obs_names.tolist() == adata.obs_names[rows].tolist()
        assert part.var_names.tolist() == adata.var_names.tolist() and part.X.shape == (len(rows), adata.n_vars)
        assert (part.X != adata.X[rows]).nnz == 0
    with pytest.raises(ValueError, match="2 rows asked for but a cell table of 3"):
        read_rows(path, np.array([0, 1]), obs=table.iloc[:3])


@pytest.mark.parametrize(
    "rows",
    [
        np.arange(1000),
        np.r_[0:300, 301:700, 999],
        np.r_[5:6, 100:400],
        np.arange(0, 1000, 3),
        np.array([7]),
        np.zeros(0, dtype=int),
    ],
    ids=["all", "two-stretches-and-one", "one-and-a-stretch", "scattered", "one", "none"],
)
def test_rows_of_a_matrix_on_disk_are_the_rows_in_memory(tmp_path, rows):
    """Stretches of consecutive rows are read as slices, scattered rows one by one: the same rows either way."""
    import h5py
    from anndata.io import sparse_dataset

    from csfcart.io import stored_rows

    x = sp.random(1000, 40, density=0.2, format="csr", random_state=2, dtype=np.float32)
    ad.AnnData(X=x).write_h5ad(tmp_path / "m.h5ad", compression="gzip")
    with h5py.File(tmp_path / "m.h5ad", "r") as f:
        read = stored_rows(sparse_dataset(f["X"]), rows)
    assert isinstance(read, sp.csr_matrix) and read.dtype == np.float32 and read.shape == (len(rows), 40)
    assert (read != x[rows]).nnz == 0


def test_a_program_score_follows_its_genes_mean_fold_not_its_most_expressed_gene():
    """Eight genes of a program fall 2.5-fold and its one highly expressed gene (100 times the
    others) stays: the score falls by about -1.15, the genes' mean relative change, where the
    log of the summed counts would read about -0.1."""
    from csfcart.pseudobulk import program_scores

    genes = ["BIG", *(f"G{i}" for i in range(8)), "OTHER"]
    rows = [[20000.0, *([200.0 * fold] * 8), 1e6] for _ in range(3) for fold in (1.0, 0.4)]
    obs = pd.DataFrame(
        {
            "sample_id": [f"P{p}_{tp}" for p in range(3) for tp in ("baseline", "d14")],
            "patient_id": [f"P{p}" for p in range(3) for _ in range(2)],
            "timepoint": ["baseline", "d14"] * 3,
            "compartment": "CSF",
            "cell_type": "microglia_like",
            "psbulk_cells": 50.0,
        }
    )
    obs.index = obs["sample_id"]
    pb = ad.AnnData(np.array(rows), obs=obs, var=pd.DataFrame(index=genes))
    scores = program_scores(pb, {"prog": genes[:9]}, min_cells=10).set_index("sample_id")["score"]
    change = scores["P0_d14"] - scores["P0_baseline"]
    # each gene relative to its level pooled over the visits (BIG: 1; the others: 200 and 80 over 140)
    assert change == pytest.approx(np.log2((1 + 8 * 80 / 140) / (1 + 8 * 200 / 140)), abs=0.01)
    summed = np.log2((20000 + 8 * 80) / (20000 + 8 * 200))
    assert summed > -0.15 and change < -1.0
