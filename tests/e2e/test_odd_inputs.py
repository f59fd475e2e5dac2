"""Valid but unusual input, as users export it, runs end to end and says what it could not test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT, run_snakemake, write_config

pytestmark = pytest.mark.e2e


def test_one_pbmc_sample_exported_as_float_csv_runs_to_the_claims(tmp_path):
    # one donor, one visit, a compartment called PBMC, integer UMIs written through floating
    # point (0.999999999999999 for 1), as an R or pandas export gives them
    from csfcart.simulate.cohort import load_cohort
    from csfcart.simulate.model import CohortModel

    cohort = load_cohort(ROOT / "config" / "datasets" / "pbmc_cd19_allo_tiny.yaml")
    model = CohortModel(cohort)
    draw = model.draw_sample(0)
    counts = draw.counts.toarray().astype(np.float64)
    counts = counts - np.where(counts > 0, 1e-15 * counts, 0)
    frame = pd.DataFrame(counts, index=draw.barcodes, columns=model.features)
    frame.to_csv(tmp_path / "S1.csv", float_format="%.15f")
    (tmp_path / "samples.tsv").write_text(
        "sample_id\tpatient_id\ttimepoint\tcompartment\tpath\nS1\tD1\tbaseline\tPBMC\tS1.csv\n"
    )
    before = (tmp_path / "S1.csv").read_bytes()
    config = write_config(
        tmp_path,
        f"dataset: one_sample\nsamples: {tmp_path / 'samples.tsv'}\nresults: {tmp_path / 'results'}\n"
        f"car_feature: {cohort.car_feature}\nintegration:\n  method: harmony\n",
    )
    proc = run_snakemake("-c2", "--configfile", str(config))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    out = tmp_path / "results" / "one_sample"
    claims = pd.read_csv(out / "claims.tsv", sep="\t").set_index("claim_id")
    assert list(claims.index) == ["D1", "D2", "D3"]
    assert (claims["verdict"] == "not_testable").all()
    assert claims["reason"].str.contains("no blood samples after baseline").all()
    de = pd.read_csv(out / "de" / "summary.tsv", sep="\t")
    assert (~de["tested"]).all() and de["reason"].str.startswith("no contrast").all()
    assert "rounded" in (out / "logs" / "ingest" / "S1.log").read_text()
    assert (tmp_path / "S1.csv").read_bytes() == before
