"""The analysis of a synthetic cohort in one process, for calibration over many seeds.

The same package functions as the Snakemake rules (QC, merge, integration, annotation,
measurements, claims), chained in memory with no per-job start-up and no files, so that a
calibration over seeds and patient counts stays affordable on 2 cores. Settings are the
workflow's defaults (:func:`default_config`); Harmony is the integration (the fast option).

``oracle=True`` calibrates the statistics alone: QC, integration and annotation are
replaced by the simulator's own labels (doublets and damaged cells removed, every other
cell its true type), so that what remains is the measurement and the claims' statistics.
It is a benchmark of the statistics, never a way to analyse data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
import yaml

from csfcart.annotate import annotate_step, lineage_of, read_markers
from csfcart.claims import Measurements, applicable_claims, claims_table, score_against_truth
from csfcart.communication import axis_scores, score_sample
from csfcart.config import default_config as defaults
from csfcart.integrate import integrate_step, merge_samples
from csfcart.io import ambient_profile
from csfcart.keys import CAR_POSITIVE, CELL_TYPE, COUNTS
from csfcart.measure import (
    asc_immunoglobulin,
    car_fractions,
    cell_counts,
    lr_expression,
    programs_per_sample,
    sample_meta,
)
from csfcart.pseudobulk import pseudobulk
from csfcart.qc import run_qc
from csfcart.simulate.cohort import Cohort
from csfcart.simulate.model import CohortModel
from csfcart.simulate.truth import claim_truth


def default_config(workflow: str | Path) -> dict[str, Any]:
    """The workflow's defaults (its config schema's), with Harmony as the integration and
    the configured table paths made absolute under ``workflow`` (the workflow's folder)."""
    workflow = Path(workflow)
    config = defaults(workflow / "config" / "schemas" / "config.schema.yaml", dataset="calibration")
    config["integration"]["method"] = "harmony"
    config["annotation"]["markers"] = str(workflow / config["annotation"]["markers"])
    for key in ("programs", "interactions"):
        config["analysis"][key] = str(workflow / config["analysis"][key])
    return config


def sample_anndata(model: CohortModel, index: int) -> ad.AnnData:
    """One simulated sample as the ingest step would produce it."""
    meta = model.samples[index]
    draw = model.draw_sample(index)
    adata = ad.AnnData(X=sp.csr_matrix(draw.counts, dtype="float32"), var=pd.DataFrame(index=model.features))
    adata.obs_names = [f"{meta['sample_id']}:{b}" for b in draw.barcodes]
    adata.obs["barcode"] = draw.barcodes
    for key in ("sample_id", "patient_id", "timepoint", "compartment"):
        adata.obs[key] = pd.Categorical([meta[key]] * adata.n_obs)
    adata.obs["batch"] = adata.obs["sample_id"]
    adata.layers[COUNTS] = adata.X.copy()
    if draw.empty is not None and draw.empty.shape[0]:  # the raw matrix's empty droplets
        raw = ad.AnnData(X=sp.vstack([draw.counts, draw.empty], format="csr"), var=pd.DataFrame(index=model.features))
        raw.obs_names = [f"{meta['sample_id']}:{b}" for b in [*draw.barcodes, *draw.empty_barcodes]]
        profile, droplets = ambient_profile(adata, raw)
        if droplets:
            adata.var["ambient_profile"] = profile
    return adata


def oracle_anndata(model: CohortModel) -> ad.AnnData:
    """Every sample with the simulator's labels as the annotation (doublets and damaged
    cells left out), for calibrating the statistics apart from QC and annotation."""
    parts = []
    for i, meta in enumerate(model.samples):
        draw = model.draw_sample(i)
        keep = (~draw.truth["doublet"] & ~draw.truth["damaged"]).to_numpy()
        counts = sp.csr_matrix(draw.counts[keep], dtype="float32")
        a = ad.AnnData(X=counts, var=pd.DataFrame(index=model.features))
        a.obs_names = [f"{meta['sample_id']}:{b}" for b, k in zip(draw.barcodes, keep, strict=True) if k]
        for key in ("sample_id", "patient_id", "timepoint", "compartment"):
            a.obs[key] = meta[key]
        a.obs[CELL_TYPE] = draw.truth.loc[keep, "singlet_type"].to_numpy()
        a.obs[CAR_POSITIVE] = np.asarray(counts[:, -1].todense()).ravel() > 0
        a.obs["total_counts"] = np.asarray(counts.sum(axis=1)).ravel()
        a.layers[COUNTS] = a.X
        parts.append(a)
    adata = ad.concat(parts, merge="same")
    for key in ("sample_id", "patient_id", "timepoint", "compartment", CELL_TYPE):
        adata.obs[key] = adata.obs[key].astype("category")
    return adata


def analyse(
    cohort: Cohort, config: dict[str, Any], *, communication: bool = True, oracle: bool = False
) -> pd.DataFrame:
    """Claims of ``cohort`` scored against its truth (rows of claims.tsv plus truth columns).

    ``communication=False`` skips the LIANA step (C7 is then not testable), which is most of
    the cost on small cohorts; ``oracle=True`` skips QC, integration and annotation (see the
    module docstring).
    """
    model = CohortModel(cohort)
    adata = oracle_anndata(model) if oracle else annotated(model, cohort, config)
    return _claims(adata, cohort, model, config, communication=communication)


def annotated(model: CohortModel, cohort: Cohort, config: dict[str, Any]) -> ad.AnnData:
    kept, summaries = [], []
    for i in range(len(model.samples)):
        out, _, summary = run_qc(
            sample_anndata(model, i), config["qc"], seed=config["seed"], car_feature=cohort.car_feature
        )
        kept.append(out)
        summaries.append(summary)
    summary = pd.DataFrame(summaries)
    keep = set(summary.loc[summary["status"] == "ok", "sample_id"])
    adata = merge_samples([], summary, parts=[a for a in kept if a.n_obs and str(a.obs["sample_id"].iloc[0]) in keep])
    integrate_step(adata, config["integration"], seed=config["seed"])
    annotate_step(adata, clustering=config["clustering"], annotation=config["annotation"],
                  car_feature=cohort.car_feature, seed=config["seed"], umap=False)  # fmt: skip
    return adata


def _claims(adata: ad.AnnData, cohort: Cohort, model: CohortModel, config: dict[str, Any], *, communication: bool):
    m = measurements(adata, config, communication=communication)
    claims = claims_table(m, applicable_claims(m.counts, cohort.claims), baseline=cohort.baseline,
                          alpha=config["analysis"]["alpha"], min_patients=config["analysis"]["min_patients"])  # fmt: skip
    return score_against_truth(claims, claim_truth(cohort, model))


def measurements(adata: ad.AnnData, config: dict[str, Any], *, communication: bool = True) -> Measurements:
    """The per-sample tables the claims are built on, from an annotated object."""
    programs = yaml.safe_load(Path(config["analysis"]["programs"]).read_text())
    pb = pseudobulk(adata)  # per sample and cell type, shared by programs and ligand-receptor expression
    lineages = lineage_of(config["annotation"]["markers"])
    axes = yaml.safe_load(Path(config["analysis"]["interactions"]).read_text())
    m = Measurements(
        counts=cell_counts(adata.obs),
        car=car_fractions(adata.obs, lineages),
        ig=asc_immunoglobulin(pb, lineages),
        programs=programs_per_sample(
            pb,
            programs,
            lineage_of=lineages,
            markers=read_markers(config["annotation"]["markers"]),
            min_cells=config["analysis"]["min_cells"],
            axes=axes,
        ),
        lineages=lineages,
        interactions=lr_expression(
            adata,
            axes,
            lineage_of=lineages,
            min_cells=config["analysis"]["min_cells"],
            pb=pb,
        ),
    )
    if communication and (adata.obs["compartment"] == "CSF").any():
        csf = adata.obs.loc[adata.obs["compartment"] == "CSF", "sample_id"].astype(str).unique()
        scores = pd.concat(
            [
                score_sample(
                    adata[(adata.obs["sample_id"] == s).to_numpy()].copy(),
                    min_cells=config["analysis"]["min_cells"],
                    seed=config["seed"],
                )
                for s in csf
            ],
            ignore_index=True,
        )
        meta = sample_meta(adata.obs)
        m.communication = axis_scores(scores, meta[meta["compartment"] == "CSF"], lineage_of=lineages)
    return m
