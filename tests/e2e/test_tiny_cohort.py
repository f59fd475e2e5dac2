"""The tiny synthetic cohort end to end: simulate, ingest, QC, scVI, annotation, evaluation."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from csfcart.claims import VERDICTS
from tests.conftest import ROOT, run_snakemake

pytestmark = pytest.mark.e2e


def test_annotated_h5ad_has_every_promised_slot(tiny_run):
    adata = ad.read_h5ad(tiny_run / "annotated.h5ad")
    for key in ["cell_type", "cluster", "sample_id", "patient_id", "timepoint", "compartment", "car_positive",
                "total_counts", "n_genes_by_counts", "pct_counts_mt", "doublet_score"]:  # fmt: skip
        assert key in adata.obs, key
    assert "counts" in adata.layers and "X_scVI" in adata.obsm and "X_umap" in adata.obsm
    counts = adata.layers["counts"]
    assert (counts.data == counts.data.round()).all() and counts.data.min() >= 0
    assert adata.obs["car_positive"].any()
    assert not adata.obs.loc[adata.obs["timepoint"] == "baseline", "car_positive"].any()
    info = json.loads((tiny_run / "integration.json").read_text())
    assert info["method"] == "scvi" and info["epochs"] == 2


def test_qc_reports_every_sample_and_removes_damaged_cells(tiny_run):
    summary = pd.read_csv(tiny_run / "qc" / "summary.tsv", sep="\t")
    assert len(summary) == 18 and (summary["cells_pass"] <= summary["cells_in"]).all()
    qc = pd.read_csv(tiny_run / "evaluation" / "qc.tsv", sep="\t").set_index("filter")
    assert qc.loc["damaged cells (MAD/MT filters)", "recall"] >= 0.8


def test_annotation_agrees_with_the_truth(tiny_run):
    table = pd.read_csv(tiny_run / "evaluation" / "annotation.tsv", sep="\t")
    # two scVI epochs on a tiny cohort: a floor well below the default run's figures
    assert table["ari"].iloc[0] >= 0.6
    # labels are scored by name too: a well-bounded cluster with the wrong name counts as wrong
    assert table["accuracy"].iloc[0] >= 0.75
    scored = table[table["scored"]]
    assert (scored["f1"] >= 0.5).mean() >= 0.8


def test_each_cluster_shows_its_top_genes_beside_its_label(tiny_run):
    """A reader checks a label against the cluster's own top genes: they are there, and for
    most labelled clusters they include markers of the type given."""
    from csfcart.annotate import read_markers

    markers = read_markers(ROOT / "config" / "markers.tsv")
    clusters = pd.read_csv(tiny_run / "annotation" / "clusters.tsv", sep="\t")
    genes = clusters["top_genes"].fillna("").str.split(",")
    assert (genes.str.len() == 8).all()
    labelled = clusters["cell_type"].isin(markers)
    supported = [bool(set(g) & set(markers[t])) for g, t in zip(genes[labelled], clusters.loc[labelled, "cell_type"],
                                                                  strict=True)]  # fmt: skip
    assert sum(supported) >= 0.5 * len(supported), clusters[["cell_type", "top_genes"]]


def test_figures_exist_and_are_not_empty(tiny_run):
    for rel in ["figures/umap.png", "figures/markers.png", "qc/summary.png", "simulated/figures/composition.png"]:
        assert (tiny_run / rel).stat().st_size > 10_000, rel


def test_second_run_has_nothing_to_do(tiny_run):
    override = tiny_run.parents[1] / "override.yaml"
    proc = run_snakemake("-n", "--configfile", "config/datasets/csf_bcma_cart_tiny.yaml", str(override))
    assert proc.returncode == 0
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_claims_table_has_every_claim_with_statistics(tiny_run):
    claims = pd.read_csv(tiny_run / "claims.tsv", sep="\t").set_index("claim_id")
    assert list(claims.index) == ["C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C9"]
    for col in [
        "statement",
        "metric",
        "estimate",
        "ci_low",
        "ci_high",
        "p_value",
        "p_sign_flip",
        "bound",
        "bound_level",
        "other_bound",
        "level",
        "loo_stable",
        "size",
        "family",
        "n_patients",
        "patients_consistent",
        "verdict",
        "reason",
    ]:
        assert col in claims.columns, col
    assert set(claims["verdict"]) <= set(VERDICTS)
    # CAR-T cells appear in every tiny patient's CSF, beyond the claimed size; yet with 3
    # patients an exact sign-flip test cannot go below p = 1/8, and the verdict says so
    assert claims.loc["C1", "patients_consistent"] == claims.loc["C1", "n_patients"] == 3
    assert claims.loc["C1", "p_sign_flip"] == pytest.approx(1 / 8)
    assert claims.loc["C1", "verdict"] == "inconclusive" and claims.loc["C1", "bound"] == -np.inf
    # every claim says why it got its verdict
    assert claims["reason"].str.len().gt(0).all()
    scored = pd.read_csv(tiny_run / "evaluation" / "claims.tsv", sep="\t")
    assert {"true_effect", "expected_verdict", "ci_covers_truth"} <= set(scored.columns)


def test_communication_runs_per_csf_sample(tiny_run):
    parquet = sorted(p.name for p in (tiny_run / "communication").glob("*.parquet"))
    assert parquet and all("_CSF_" in name for name in parquet)
    interactions = pd.read_csv(tiny_run / "communication" / "interactions.tsv", sep="\t")
    assert {
        "source",
        "target",
        "ligand_complex",
        "receptor_complex",
        "estimate",
        "p_adjusted",
        "lost_in_patients",
    } <= set(interactions.columns)
    factors = pd.read_csv(tiny_run / "communication" / "tensor_factors.tsv", sep="\t")
    loadings = pd.read_csv(tiny_run / "communication" / "tensor_loadings.tsv", sep="\t")
    assert len(factors) >= 1 and factors["top_senders"].str.len().gt(0).all()
    assert set(loadings["mode"]) == {"sample", "interaction", "sender", "receiver"}
    assert set(loadings.loc[loadings["mode"] == "sample", "element"]) == {p.removesuffix(".parquet") for p in parquet}


def test_de_reports_untestable_contrasts_with_a_reason(tiny_run):
    summary = pd.read_csv(tiny_run / "de" / "summary.tsv", sep="\t")
    assert summary["tested"].any()
    untested = summary[~summary["tested"]]
    assert (untested["reason"].str.len() > 0).all()


def test_integration_methods_compared_on_request(tiny_run):
    override = tiny_run.parents[1] / "override.yaml"
    target = tiny_run / "integration" / "benchmark.tsv"
    config = "config/datasets/csf_bcma_cart_tiny.yaml"
    proc = run_snakemake(
        str(target), "-c2", "--configfile", config, str(override), "--config", "compare_integration=True"
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    table = pd.read_csv(target, sep="\t").set_index("embedding")
    assert list(table.index) == ["unintegrated PCA", "scVI", "Harmony"]
    assert {"Batch correction", "Bio conservation", "Total"} <= set(table.columns)
    assert table.to_numpy().min() >= 0 and table["Total"].max() <= 1
    # the run's own embedding is reused, not retrained: nothing upstream reran
    assert "rule integrate" not in proc.stdout + proc.stderr


def test_results_say_what_produced_them(tiny_run):
    import yaml

    prov = tiny_run / "provenance"
    config = yaml.safe_load((prov / "config.yaml").read_text())
    assert config["dataset"] == "csf_bcma_cart_tiny" and config["simulation"]["n_patients"] == 3  # after extends:
    assert config["integration"]["scvi"]["max_epochs"] == 2  # the test's override
    versions = pd.read_csv(prov / "versions.tsv", sep="\t").set_index("package")["version"]
    assert versions["scanpy"].startswith("1.11") and versions["scvi-tools"] != "not installed"
    workflow = yaml.safe_load((prov / "workflow.yaml").read_text())
    assert workflow["version"] and len(workflow["commit"]) in (40, len("unknown"))
    assert len(pd.read_csv(prov / "samples.tsv", sep="\t")) == 18
