"""Bad inputs stop the run early, with a message naming the file, row or key and the fix."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from tests.conftest import GENES, barcodes, random_counts, run_snakemake, write_config, write_mtx


def _config(tmp_path, sheet, extra=""):
    return write_config(tmp_path, f"dataset: custom\nsamples: {sheet}\nresults: {tmp_path / 'results'}\n{extra}")


def _dry_run(tmp_path, sheet, extra=""):
    return run_snakemake("-n", "--configfile", str(_config(tmp_path, sheet, extra)))


def _ingest(tmp_path, sheet, sample="S1"):
    target = tmp_path / "results" / "custom" / "ingest" / f"{sample}.h5ad"
    proc = run_snakemake(str(target), "-c1", "--configfile", str(_config(tmp_path, sheet)))
    assert not target.exists(), "a failed ingest must leave no output behind"
    return proc


def _fails_with(proc, *parts):
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text[-2000:]
    for part in parts:
        assert part in text, f"{part!r} not in output:\n{text[-3000:]}"


def test_a_good_sheet_dry_runs(dataset):
    tmp, sheet = dataset
    proc = _dry_run(tmp, sheet())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ingest" in proc.stdout and "integrate" in proc.stdout


def test_missing_file(dataset):
    tmp, sheet = dataset
    s = sheet(["S1\tP1\tbaseline\tCSF\tdata/S1", "S2\tP1\td14\tCSF\tdata/S9"])
    _fails_with(_dry_run(tmp, s), "samples.tsv, row 3", "file not found", "Fix:")


def test_unknown_format(dataset):
    tmp, sheet = dataset
    s = sheet(
        ["S1\tP1\tbaseline\tCSF\tdata/S1\tloom"], header="sample_id\tpatient_id\ttimepoint\tcompartment\tpath\tformat"
    )
    _fails_with(_dry_run(tmp, s), "row 2", "'format'", "use one of: 10x_mtx, 10x_h5, h5ad, csv")


@pytest.mark.parametrize("bad_id", ["S 1", "S/1"])
def test_unsafe_sample_id(dataset, bad_id):
    tmp, sheet = dataset
    s = sheet([f"{bad_id}\tP1\tbaseline\tCSF\tdata/S1"])
    _fails_with(_dry_run(tmp, s), "row 2", "sample_id", "no spaces or slashes")


def test_a_compartment_without_a_role_is_named_with_the_fix(dataset):
    tmp, sheet = dataset
    s = sheet(["S1\tP1\tbaseline\tbrain\tdata/S1"])
    _fails_with(_dry_run(tmp, s), "row 2", "compartment 'brain' has no role", "compartments: {brain: blood}")


def test_a_compartment_label_with_a_role_runs(dataset):
    tmp, sheet = dataset
    s = sheet(["S1\tP1\tbaseline\tPBMC\tdata/S1", "S2\tP1\tbaseline\tliquor\tdata/S1"])
    proc = _dry_run(tmp, s)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ingest" in proc.stdout


def test_sheet_missing_a_required_column(dataset):
    tmp, sheet = dataset
    s = sheet(["S1\tP1\tCSF\tdata/S1"], header="sample_id\tpatient_id\tcompartment\tpath")
    _fails_with(_dry_run(tmp, s), "column 'timepoint' missing", "Fix:")


def test_duplicated_sample_id(dataset):
    tmp, sheet = dataset
    s = sheet(["S1\tP1\tbaseline\tCSF\tdata/S1", "S1\tP1\td14\tCSF\tdata/S2"])
    _fails_with(_dry_run(tmp, s), "rows 2, 3", "'S1' is duplicated", "unique id")


def test_unknown_config_key(dataset):
    tmp, sheet = dataset
    _fails_with(_dry_run(tmp, sheet(), "qc_threshold: 3\n"), "key 'qc_threshold': unknown key", "remove it")


def test_unknown_integration_method(dataset):
    tmp, sheet = dataset
    extra = "integration:\n  method: magic\n  batch_key: sample_id\n  n_hvg: 2000\n"
    _fails_with(_dry_run(tmp, sheet(), extra), "integration.method", "'magic'", "use one of: scvi, harmony")


def test_float_counts(dataset):
    tmp, sheet = dataset
    write_mtx(tmp / "data" / "S1", random_counts() * 0.5, barcodes(80))
    _fails_with(_ingest(tmp, sheet()), "data/S1", "not integers", "raw UMI counts")


def test_negative_counts(dataset):
    tmp, sheet = dataset
    counts = random_counts()
    counts[3, 4] = -2
    write_mtx(tmp / "data" / "S1", counts, barcodes(80))
    _fails_with(_ingest(tmp, sheet()), "data/S1", "negative counts", "raw UMI counts")


def test_duplicate_barcodes(dataset):
    tmp, sheet = dataset
    bcs = barcodes(80)
    bcs[7] = bcs[3]
    write_mtx(tmp / "data" / "S1", random_counts(), bcs)
    _fails_with(_ingest(tmp, sheet()), "data/S1", f"barcode '{bcs[3]}' occurs more than once")


def test_sample_with_no_cells(dataset):
    tmp, sheet = dataset
    write_mtx(tmp / "data" / "S1", np.zeros((0, len(GENES)), dtype=np.int32), [])
    _fails_with(_ingest(tmp, sheet()), "data/S1", "no cells", "remove it from the sample sheet")


def test_ensembl_ids_only(dataset):
    tmp, sheet = dataset
    ids = [f"ENSG{i:011d}" for i in range(len(GENES))]
    d = write_mtx(tmp / "data" / "S1", random_counts(), barcodes(80))
    with gzip.open(d / "features.tsv.gz", "wt") as fh:
        fh.writelines(f"{i}\t{i}\tGene Expression\n" for i in ids)
    _fails_with(_ingest(tmp, sheet()), "features.tsv.gz", "Ensembl ids only", "symbols")


def test_inputs_are_never_modified(dataset):
    tmp, sheet = dataset
    s = sheet()
    before = {p: p.read_bytes() for p in (tmp / "data").rglob("*") if p.is_file()}
    proc = run_snakemake(str(tmp / "results/custom/ingest/S1.h5ad"), "-c1", "--configfile", str(_config(tmp, s)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert before == {p: p.read_bytes() for p in (tmp / "data").rglob("*") if p.is_file()}


def test_a_download_url_without_a_scheme_is_refused(dataset):
    tmp, sheet = dataset
    proc = _dry_run(tmp, sheet(), "download:\n  url: ftp.example.org/archive.tar\n")
    _fails_with(proc, "download.url", "Fix:")


def test_a_download_sheet_may_name_files_not_fetched_yet(dataset):
    tmp, sheet = dataset
    s = sheet(["S1\tP1\tbaseline\tCSF\traw/GSM1_D1_CSF_GRCh38_"])
    proc = _dry_run(tmp, s, f"download:\n  url: https://example.org/GSE1_RAW.tar\n  dir: {tmp / 'cache'}\n")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rule download" in proc.stdout and "rule unpack" in proc.stdout


def test_a_switch_given_as_text_says_how_to_write_it(dataset):
    tmp, sheet = dataset
    proc = run_snakemake("-n", "--configfile", str(_config(tmp, sheet())), "--config", "compare_integration=yes")
    _fails_with(proc, "compare_integration", "is not true or false", "--config compare_integration=True")


def test_extra_sheet_columns_are_covariates_and_named_ones_must_exist(dataset):
    tmp, sheet = dataset
    header = "sample_id\tpatient_id\ttimepoint\tcompartment\tpath\tsex\tchemistry"
    s = sheet(["S1\tP1\tbaseline\tCSF\tdata/S1\tF\tv3", "S2\tP1\td14\tCSF\tdata/S2\tF\tv2"], header=header)
    proc = _dry_run(tmp, s, "analysis:\n  covariates: [chemistry]\n")
    assert proc.returncode == 0, proc.stderr[-3000:]
    _fails_with(_dry_run(tmp, s, "analysis:\n  covariates: [age]\n"), "analysis.covariates", "'age'",
                "its covariates: sex, chemistry", "Fix:")  # fmt: skip
    bad = sheet(["S1\tP1\tbaseline\tCSF\tdata/S1\tF", "S2\tP1\td14\tCSF\tdata/S2\tF"],
                header="sample_id\tpatient_id\ttimepoint\tcompartment\tpath\tmy sex")  # fmt: skip
    _fails_with(_dry_run(tmp, bad), "row 2", "my sex")


def test_a_cell_count_that_is_not_a_number_is_named_with_its_row(dataset):
    tmp, sheet = dataset
    header = "sample_id\tpatient_id\ttimepoint\tcompartment\tpath\tcells_per_ul"
    s = sheet(["S1\tP1\tbaseline\tCSF\tdata/S1\t2.5", "S2\tP1\td14\tCSF\tdata/S1\t1,5"], header=header)
    _fails_with(_dry_run(tmp, s), "row 3", "cells_per_ul")
    s = sheet(["S1\tP1\tbaseline\tCSF\tdata/S1\t2.5", "S2\tP1\td14\tCSF\tdata/S1\t"], header=header)
    proc = _dry_run(tmp, s)  # a missing count is allowed: the claims say what they could not test
    assert proc.returncode == 0, proc.stderr[-3000:]
