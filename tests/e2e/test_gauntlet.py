"""Valid but odd cohorts, as users bring them, run end to end to a report and a claims table
that says what could not be tested.

Each case draws samples of the tiny synthetic cohort, writes them in the layouts real data
arrive in (Cell Ranger output folders with antibody features, a genes-by-cells TSV, an h5ad
whose counts sit in ``.raw``, 10x folders) and arranges them in an unusual design.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

from csfcart.claims import VERDICTS
from csfcart.simulate.cohort import load_cohort
from csfcart.simulate.model import CohortModel
from tests.conftest import ROOT, run_snakemake, shipped_lineages, write_config

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cohort():
    c = load_cohort(ROOT / "config" / "datasets" / "csf_bcma_cart_tiny.yaml")
    model = CohortModel(c)
    index = {(s["patient_id"], s["compartment"], s["timepoint"]): i for i, s in enumerate(model.samples)}
    return c, model, index


def _draw(cohort, patient, compartment, timepoint):
    _, model, index = cohort
    draw = model.draw_sample(index[(patient, compartment, timepoint)])
    return sp.csr_matrix(draw.counts), list(draw.barcodes), list(model.features)


def write_cellranger(folder, counts, cells, genes):
    """`cellranger count` output: outs/filtered_feature_bc_matrix with two antibody features."""
    out = folder / "outs" / "filtered_feature_bc_matrix"
    out.mkdir(parents=True)
    protein = sp.csr_matrix(np.random.default_rng(0).poisson(20, size=(counts.shape[0], 2)))
    with gzip.open(out / "matrix.mtx.gz", "wb") as fh:
        scipy.io.mmwrite(fh, sp.hstack([counts, protein]).T.tocoo(), field="integer")
    with gzip.open(out / "features.tsv.gz", "wt") as fh:
        fh.writelines(f"ENSG{i:011d}\t{g}\tGene Expression\n" for i, g in enumerate(genes))
        fh.writelines(f"{p}\t{p}\tAntibody Capture\n" for p in ("CD3_TotalSeqB", "CD19_TotalSeqB"))
    with gzip.open(out / "barcodes.tsv.gz", "wt") as fh:
        fh.writelines(f"{b}\n" for b in cells)
    return folder


def write_genes_by_cells(path, counts, cells, genes):
    pd.DataFrame(counts.T.toarray(), index=genes, columns=cells).to_csv(path, sep="\t")
    return path


def write_raw_h5ad(path, counts, cells, genes):
    """An object as a scanpy tutorial leaves it: normalised X on some genes, counts in .raw."""
    raw = ad.AnnData(X=counts.astype(np.float32), obs=pd.DataFrame(index=cells), var=pd.DataFrame(index=genes))
    a = raw.copy()
    total = np.asarray(counts.sum(axis=1)).ravel()
    a.X = sp.csr_matrix(sp.diags(1e4 / np.maximum(total, 1)) @ counts).log1p().astype(np.float32)
    a.raw = raw
    a[:, : len(genes) // 2].copy().write_h5ad(path)
    return path


def write_mtx(folder, counts, cells, genes):
    folder.mkdir(parents=True)
    with gzip.open(folder / "matrix.mtx.gz", "wb") as fh:
        scipy.io.mmwrite(fh, counts.T.tocoo(), field="integer")
    with gzip.open(folder / "features.tsv.gz", "wt") as fh:
        fh.writelines(f"ENSG{i:011d}\t{g}\tGene Expression\n" for i, g in enumerate(genes))
    with gzip.open(folder / "barcodes.tsv.gz", "wt") as fh:
        fh.writelines(f"{b}\n" for b in cells)
    return folder


def _run(tmp_path, name, rows, extra="", config=None):
    """Run the DAG and the report on a sheet of ``rows``, with an override config (or the
    dataset file ``config``, which names the sheet ``samples.tsv`` itself)."""
    sheet = tmp_path / "samples.tsv"
    pd.DataFrame(rows).to_csv(sheet, sep="\t", index=False)
    inputs = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    config = config or write_config(
        tmp_path,
        f"dataset: {name}\nsamples: {sheet}\nresults: {tmp_path / 'results'}\ncar_feature: CAR-BCMA\n"
        f"integration:\n  method: harmony\n{extra}",
    )
    out = tmp_path / "results" / name
    proc = run_snakemake("-c2", "--configfile", str(config))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    proc = run_snakemake("-c2", "--configfile", str(config), "--report", str(out / "report.html"))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    assert (out / "report.html").stat().st_size > 100_000
    # the inputs are never modified
    assert {p: p.stat().st_mtime_ns for p in inputs} == inputs
    claims = pd.read_csv(out / "claims.tsv", sep="\t").set_index("claim_id")
    untestable = claims[claims["verdict"] == "not_testable"]
    assert untestable["reason"].fillna("").str.len().gt(0).all(), untestable
    return out, claims


def test_one_patient_in_three_layouts_with_own_visit_labels(tmp_path, cohort):
    """One patient, CSF only; visits called screening / week2 / month3 with a day column;
    a Cell Ranger folder with antibody features, a genes-by-cells TSV and an h5ad with .raw."""
    visits = [("baseline", "screening", -5, write_cellranger, "P01_run"),
              ("d14", "week2", 14, write_genes_by_cells, "P01_w2.tsv"),
              ("m3", "month3", 90, write_raw_h5ad, "P01_m3.h5ad")]  # fmt: skip
    rows = []
    for simulated, label, day, writer, name in visits:
        writer(tmp_path / name, *_draw(cohort, "P01", "CSF", simulated))
        rows.append({"sample_id": f"P01_{label}", "patient_id": "P01", "timepoint": label, "compartment": "CSF",
                     "day": day, "path": name})  # fmt: skip
    out, claims = _run(tmp_path, "one_patient", rows, "analysis:\n  baseline: screening\n")
    # one patient: nothing is tested, and every claim says why
    assert (claims["verdict"] == "not_testable").all()
    assert claims["n_patients"].fillna(0).le(1).all()
    qc = pd.read_csv(out / "qc" / "summary.tsv", sep="\t")
    assert len(qc) == 3 and (qc["status"] == "ok").all()
    annotated = ad.read_h5ad(out / "annotated.h5ad", backed="r")
    assert not annotated.var_names.str.contains("TotalSeq").any()  # antibody features are not genes
    de = pd.read_csv(out / "de" / "summary.tsv", sep="\t")
    assert (~de["tested"]).all() and de["reason"].str.len().gt(0).all()


def test_an_irregular_cohort_tests_what_it_can(tmp_path, cohort):
    """P01 complete (CSF and blood, baseline and d14); P02 without a baseline; P03 with CSF
    only: the paired claims rest on the patients who have both visits, and say so."""
    design = [("P01", "CSF", "baseline"), ("P01", "CSF", "d14"), ("P01", "blood", "baseline"), ("P01", "blood", "d14"),
              ("P02", "CSF", "d14"), ("P02", "CSF", "m3"), ("P02", "blood", "d14"),
              ("P03", "CSF", "baseline"), ("P03", "CSF", "d14")]  # fmt: skip
    rows = []
    for patient, compartment, timepoint in design:
        sample = f"{patient}_{compartment}_{timepoint}"
        write_mtx(tmp_path / "data" / sample, *_draw(cohort, patient, compartment, timepoint))
        rows.append({"sample_id": sample, "patient_id": patient, "timepoint": timepoint, "compartment": compartment,
                     "path": f"data/{sample}"})  # fmt: skip
    out, claims = _run(tmp_path, "irregular", rows)
    csf = claims[claims.index.isin(["C1", "C3", "C4", "C5", "C6", "C8"])]
    # two patients have a CSF baseline and a later CSF visit: no CSF claim counts more
    assert csf["n_patients"].fillna(0).le(2).all(), csf[["n_patients", "verdict", "reason"]]
    assert set(claims["verdict"]) <= set(VERDICTS)
    composition = pd.read_csv(out / "composition" / "changes.tsv", sep="\t")
    assert "P02" not in set(composition["patient_id"].astype(str))  # no baseline, no paired change
    shutil.rmtree(tmp_path / "data")  # the results stand without the inputs
    assert (out / "summary.html").exists()


def test_own_cell_type_labels_from_h5ad_files(tmp_path, cohort):
    """Two patients' CSF before and after, as .h5ad files carrying the authors' labels under
    their own names; annotation.label_map maps three of them onto the workflow's names, the
    rest keep theirs. The labels are the cell types, the marker labels sit beside them."""
    rename = {"CD4_T": "CD4 T cells", "naive_B": "B cells", "memory_B": "B cells", "plasma": "Plasmablasts"}
    _, model, index = cohort
    rows = []
    for patient in ("P01", "P02"):
        for timepoint in ("baseline", "d14"):
            draw = model.draw_sample(index[(patient, "CSF", timepoint)])
            a = ad.AnnData(X=sp.csr_matrix(draw.counts, dtype=np.float32), obs=pd.DataFrame(index=draw.barcodes),
                           var=pd.DataFrame(index=model.features))  # fmt: skip
            a.obs["author_type"] = draw.truth["cell_type"].map(lambda t: rename.get(t, t)).to_numpy()
            name = f"{patient}_{timepoint}.h5ad"
            a.write_h5ad(tmp_path / name)
            rows.append({"sample_id": f"{patient}_{timepoint}", "patient_id": patient, "timepoint": timepoint,
                         "compartment": "CSF", "path": name})  # fmt: skip
    extra = ("annotation:\n  labels: author_type\n"
             "  label_map: {CD4 T cells: CD4_T, B cells: naive_B, Plasmablasts: plasma}\n")  # fmt: skip
    out, claims = _run(tmp_path, "own_labels", rows, extra)
    obs = ad.read_h5ad(out / "annotated.h5ad", backed="r").obs
    types = set(obs["cell_type"].astype(str))
    assert {"CD4_T", "naive_B", "plasma"} <= types and not types & {"CD4 T cells", "B cells", "Plasmablasts"}
    assert "memory_B" not in types  # the authors pooled B cells; their label stands
    assert "cell_type_markers" in obs
    agreement = pd.read_csv(out / "annotation" / "agreement.tsv", sep="\t")
    cd4 = agreement[agreement["own_label"] == "CD4_T"].set_index("marker_label")["cells"]
    assert cd4.idxmax() == "CD4_T"  # the markers mostly agree with the authors
    assert {"C1", "C3", "C4"} <= set(claims.index)


def write_cellranger_h5(folder, counts, cells, genes, empty, empty_cells):
    """`cellranger count` HDF5 output: outs/filtered_feature_bc_matrix.h5 and, with the empty
    droplets, outs/raw_feature_bc_matrix.h5 (10x Genomics' v3 HDF5 layout)."""
    import h5py

    out = folder / "outs"
    out.mkdir(parents=True)
    for name, x, barcodes in (("filtered_feature_bc_matrix.h5", counts, cells),
                              ("raw_feature_bc_matrix.h5", sp.vstack([counts, empty], format="csr"),
                               cells + empty_cells)):  # fmt: skip
        x = sp.csr_matrix(x)  # cells x genes in CSR is genes x cells in CSC, as 10x stores it
        with h5py.File(out / name, "w") as f:
            m = f.create_group("matrix")
            m["barcodes"] = np.array(barcodes, dtype="S")
            m["data"], m["indices"], m["indptr"] = x.data.astype(np.int32), x.indices.astype(np.int64), x.indptr
            m["shape"] = np.array([x.shape[1], x.shape[0]], dtype=np.int32)
            feats = m.create_group("features")
            feats["id"] = np.array([f"ENSG{i:011d}" for i in range(len(genes))], dtype="S")
            feats["name"] = np.array(genes, dtype="S")
            feats["feature_type"] = np.array(["Gene Expression"] * len(genes), dtype="S")
            feats["genome"] = np.array(["GRCh38"] * len(genes), dtype="S")
            feats["_all_tag_keys"] = np.array(["genome"], dtype="S")
    return out / "filtered_feature_bc_matrix.h5"


def test_cellranger_h5_with_raw_matrices_pbmc_and_types_in_one_sample(tmp_path, cohort):
    """Three odd inputs in one cohort: Cell Ranger HDF5 outputs whose raw matrices give the
    soup from empty droplets (removed); blood called PBMC in the sheet; mDC cells in one
    sample only and no pDC at all, while the DE is asked for pDC (nothing testable)."""
    _, model, index = cohort
    design = [(p, c, t) for p in ("P01", "P02", "P03") for c in ("CSF", "blood") for t in ("baseline", "d14")]
    rows = []
    for patient, compartment, timepoint in design:
        draw = model.draw_sample(index[(patient, compartment, timepoint)])
        types = draw.truth["cell_type"].to_numpy()
        keep = (types != "pDC") & ((types != "mDC") | ((patient, compartment, timepoint) == ("P01", "CSF", "baseline")))
        label = "PBMC" if compartment == "blood" else "CSF"
        sample = f"{patient}_{label}_{timepoint}"
        path = write_cellranger_h5(tmp_path / sample, sp.csr_matrix(draw.counts)[keep],
                                   [b for b, k in zip(draw.barcodes, keep, strict=True) if k], list(model.features),
                                   draw.empty, list(draw.empty_barcodes))  # fmt: skip
        rows.append({"sample_id": sample, "patient_id": patient, "timepoint": timepoint, "compartment": label,
                     "path": str(path.relative_to(tmp_path))})  # fmt: skip
    out, claims = _run(tmp_path, "h5_pbmc", rows, "analysis:\n  de_cell_types: [CD4_T, pDC, mDC]\n")
    qc = pd.read_csv(out / "qc" / "summary.tsv", sep="\t")
    assert (qc["ambient_profile"] == "empty droplets").all()
    # removed wherever the fraction could be estimated (a tiny sample after treatment may
    # hold too few probe cells, and then keeps its counts: NaN, nothing removed)
    estimated = qc["ambient_fraction"].notna()
    assert estimated.sum() >= 9 and (qc.loc[estimated, "ambient_removed"] > 0).all()
    assert (qc.loc[~estimated, "ambient_removed"] == 0).all()
    sheet = pd.read_csv(out / "provenance" / "samples.tsv", sep="\t")
    pbmc = sheet["sample_id"].str.contains("PBMC")
    assert (sheet.loc[pbmc, "compartment"] == "blood").all() and (sheet.loc[pbmc, "compartment_label"] == "PBMC").all()
    car = pd.read_csv(out / "car_t" / "fractions.tsv", sep="\t")
    assert set(car["compartment"]) == {"CSF", "blood"}  # PBMC serves as blood
    assert "matched" in claims.loc["C9", "reason"]  # CSF against PBMC at matched visits
    de = pd.read_csv(out / "de" / "summary.tsv", sep="\t")
    for absent in ("pDC", "mDC"):  # nowhere, and in one sample: nothing to test, and why
        rows = de[de["cell_type"] == absent]
        assert len(rows) and (~rows["tested"].astype(bool)).all() and rows["reason"].str.len().gt(0).all(), rows
    assert de.loc[de["cell_type"] == "CD4_T", "tested"].astype(bool).any()


def test_mouse_symbols(tmp_path, cohort):
    """Two patients' CSF before and after with mouse-style symbols (Cd3e, mt-Nd1): the
    mitochondrial fraction is measured and the human marker table still finds the types."""

    def mouse(gene: str) -> str:
        if gene == "CAR-BCMA":  # the construct keeps its name
            return gene
        return "mt-" + gene[3:].capitalize() if gene.startswith("MT-") else gene.capitalize()

    rows = []
    for patient in ("P01", "P02"):
        for timepoint in ("baseline", "d14"):
            counts, cells, genes = _draw(cohort, patient, "CSF", timepoint)
            sample = f"{patient}_{timepoint}"
            write_mtx(tmp_path / sample, counts, cells, [mouse(g) for g in genes])
            rows.append({"sample_id": sample, "patient_id": patient, "timepoint": timepoint, "compartment": "CSF",
                         "path": sample})  # fmt: skip
    out, claims = _run(tmp_path, "mouse", rows)
    qc = pd.read_csv(out / "qc" / "summary.tsv", sep="\t")
    assert (qc["median_pct_mt"] > 0.5).all()  # mt- genes counted
    obs = ad.read_h5ad(out / "annotated.h5ad", backed="r").obs
    share = obs["cell_type"].astype(str).value_counts(normalize=True)
    assert share.get("CD4_T", 0) > 0.2 and share.get("low_confidence", 0) < 0.2, share
    assert set(claims["verdict"]) <= set(VERDICTS)


def test_real_counts_from_an_installed_package(tmp_path):
    """Real counts as a user exports them: 559 immune cells of one donor (mostly monocytes and
    macrophages) that CellTypist's wheel ships as a cells-by-genes CSV: integer UMIs written
    through floating point, 32,786 symbols of which some differ only in case, no CAR
    transcript. One sample: every claim says why it cannot be tested; the marker table, not
    built on these cells, labels them by lineages their own marker genes confirm."""
    import celltypist

    source = Path(celltypist.__file__).parent / "data" / "samples" / "sample_cell_by_gene.csv"
    shutil.copy(source, tmp_path / "donor.csv")
    rows = [{"sample_id": "donor", "patient_id": "D1", "timepoint": "baseline", "compartment": "blood",
             "path": "donor.csv"}]  # fmt: skip
    out, claims = _run(tmp_path, "real_cells", rows)
    assert (claims["verdict"] == "not_testable").all()
    assert "rounded" in (out / "logs" / "ingest" / "donor.log").read_text()
    qc = pd.read_csv(out / "qc" / "summary.tsv", sep="\t").iloc[0]
    assert qc["status"] == "ok" and qc["cells_pass"] > 450, qc
    adata = ad.read_h5ad(out / "annotated.h5ad")
    lineage = adata.obs["cell_type"].astype(str).map(shipped_lineages()).to_numpy()
    # most cells get a label; the rest are left unlabelled (low_confidence), not forced into one
    unlabelled = float(pd.isna(lineage).mean())
    assert unlabelled < 0.2, unlabelled
    # each lineage's cells detect its own marker gene, and at least three times as often as the
    # cells labelled with another lineage (an unlabelled cell claims no lineage)
    for name, gene in (("T", "CD3D"), ("myeloid", "CD68"), ("NK", "GNLY"), ("B", "MS4A1")):
        detected = np.asarray((adata[:, gene].layers["counts"] > 0).todense()).ravel()
        other = pd.notna(lineage) & (lineage != name)
        mine, rest = detected[lineage == name].mean(), detected[other].mean()
        assert (lineage == name).sum() >= 10 and mine >= 0.5 and mine >= 3 * rest, (name, gene, mine, rest)
    assert (tmp_path / "donor.csv").read_bytes() == source.read_bytes()


def test_unpaired_donors_from_a_dataset_file_kept_outside_the_workflow(tmp_path, cohort):
    """Four donors seen once each (two before infusion, two after), run from a study config
    that extends the lab's dataset file beside it, both outside config/datasets: no
    within-patient change exists, so every claim says so, while DE compares the donors
    unpaired; both files' settings apply."""
    rows = []
    donors = (("P01", "P01", "baseline"), ("P02", "P02", "baseline"), ("P03", "P03", "d14"), ("P04", "P01", "d14"))
    for patient, drawn_from, timepoint in donors:
        sample = f"{patient}_CSF_{timepoint}"
        write_mtx(tmp_path / "data" / sample, *_draw(cohort, drawn_from, "CSF", timepoint))
        rows.append({"sample_id": sample, "patient_id": patient, "timepoint": timepoint, "compartment": "CSF",
                     "path": f"data/{sample}"})  # fmt: skip
    # the lab's dataset file says where the data are and which claims its design addresses;
    # the study's config extends it and adds the analysis settings
    (tmp_path / "lab.yaml").write_text(
        f"samples: {tmp_path / 'samples.tsv'}\ncar_feature: CAR-BCMA\nclaims: [C1, C3, C4, C7]\n"
    )
    study = tmp_path / "study.yaml"
    study.write_text(
        f"dataset: unpaired\nextends: lab.yaml\nresults: {tmp_path / 'results'}\nintegration:\n  method: harmony\n"
        "analysis:\n  de_cell_types: [CD4_T, CD14_mono]\n"
    )
    out, claims = _run(tmp_path, "unpaired", rows, config=study)
    assert list(claims.index) == ["C1", "C3", "C4", "C7"] and (claims["verdict"] == "not_testable").all()
    assert claims["reason"].str.startswith("0 patients with data").all()
    # DE compares the donors instead (the design says so); a type too rare says why not
    de = pd.read_csv(out / "de" / "summary.tsv", sep="\t").set_index("cell_type")
    assert set(de.index) == {"CD4_T", "CD14_mono"} and de.loc["CD4_T", "tested"]
    assert set(pd.read_csv(out / "de" / "CD4_T.tsv", sep="\t")["design"]) == {"~ timepoint"}
    assert not de.loc["CD14_mono", "tested"] and len(de.loc["CD14_mono", "reason"])
    composition = pd.read_csv(out / "composition" / "changes.tsv", sep="\t")
    assert composition.empty
