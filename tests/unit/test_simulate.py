"""The synthetic cohort simulator: determinism, realism against real CSF, validation."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from csfcart.datasets import read_dataset
from csfcart.errors import InputError
from csfcart.simulate.cohort import load_cohort, parse_cohort
from csfcart.simulate.qc import REFERENCE_MAP, cell_metrics, composition, reference_table
from csfcart.simulate.write import simulate_cohort

DATASETS = Path(__file__).parents[2] / "config" / "datasets"


def _digest(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    cohort = load_cohort(DATASETS / "csf_bcma_cart_tiny.yaml")
    return simulate_cohort(cohort, tmp_path_factory.mktemp("sim") / "tiny")


@pytest.fixture(scope="module")
def baseline_csf(tmp_path_factory) -> pd.DataFrame:
    """Per-cell metrics of the default cohort's baseline CSF samples (streamed subset)."""
    cohort = load_cohort(DATASETS / "csf_bcma_cart.yaml")
    wanted = [s["sample_id"] for s in cohort.samples() if s["compartment"] == "CSF" and s["timepoint"] == "baseline"]
    out = simulate_cohort(cohort, tmp_path_factory.mktemp("sim") / "base", samples=wanted)
    return cell_metrics(out)


def test_same_seed_gives_identical_files(tiny, tmp_path):
    again = simulate_cohort(load_cohort(DATASETS / "csf_bcma_cart_tiny.yaml"), tmp_path / "again")
    assert _digest(tiny) == _digest(again)


def test_other_seed_gives_other_data(tiny, tmp_path):
    cohort = load_cohort(DATASETS / "csf_bcma_cart_tiny.yaml")
    other = simulate_cohort(cohort.with_changes(seed=cohort.seed + 1), tmp_path / "other")
    a, b = _digest(tiny), _digest(other)
    assert a.keys() == b.keys()
    assert all(a[k] != b[k] for k in a if k.endswith("matrix.mtx.gz"))


def test_a_streamed_subset_equals_the_full_run(tiny, tmp_path):
    cohort = load_cohort(DATASETS / "csf_bcma_cart_tiny.yaml")
    one = cohort.samples()[4]["sample_id"]
    sub = simulate_cohort(cohort, tmp_path / "sub", samples=[one])
    rel = f"counts/{one}/matrix.mtx.gz"
    assert (sub / rel).read_bytes() == (tiny / rel).read_bytes()


def test_output_is_a_10x_v3_cohort_with_a_sample_sheet(tiny):
    sheet = pd.read_csv(tiny / "samples.tsv", sep="\t")
    assert {"sample_id", "patient_id", "timepoint", "compartment", "path"} <= set(sheet.columns)
    assert sheet["sample_id"].is_unique
    for path in sheet["path"]:
        assert {p.name for p in (tiny / path).iterdir()} == {"matrix.mtx.gz", "features.tsv.gz", "barcodes.tsv.gz"}
    feats = pd.read_csv(tiny / sheet["path"][0] / "features.tsv.gz", sep="\t", header=None)
    assert list(feats[2].unique()) == ["Gene Expression"]
    names = set(feats[1])
    for gene in ["MT-CO1", "RPL13A", "IGHG1", "IGHG4", "IGHA1", "IGHM", "IGHD", "IGKC", "IGLC2", "JCHAIN",
                 "IL6", "TNF", "CXCL13", "TNFSF13B", "TNFRSF13B", "TNFRSF17", "P2RY12", "CAR-BCMA"]:  # fmt: skip
        assert gene in names, gene
    claims = pd.read_csv(tiny / "truth" / "claims.tsv", sep="\t")
    assert list(claims["claim_id"]) == ["C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C9"]
    assert set(claims["expected_verdict"]) == {"reproduced"}


def test_truth_marks_doublets_damaged_and_car_cells(tiny):
    cells = cell_metrics(tiny)
    damaged, doublet = cells[cells["damaged"]], cells[cells["doublet"]]
    healthy = cells[~cells["damaged"] & ~cells["doublet"]]
    assert len(damaged) > 0 and len(doublet) > 0
    assert damaged["pct_mt"].median() > 20 > healthy["pct_mt"].quantile(0.99)
    assert damaged["n_genes"].median() < 0.6 * healthy["n_genes"].median()
    assert (doublet["doublet_partner"] != doublet["singlet_type"]).all()
    car = cells[cells["car_t"]]
    assert 0.3 <= car["car_detected"].mean() <= 0.7
    assert not cells.loc[~cells["car_t"], "car_detected"].any()
    assert not cells.loc[cells["timepoint"] == "baseline", "car_t"].any()


def test_median_umis_match_real_csf(baseline_csf):
    ref = reference_table("csf_umi_per_celltype_schafflick2020.tsv").set_index("clustering")["50%"]
    ref["CD8_Tc"] = ref[["aCD8_Tc", "nCD8_Tc"]].mean()
    healthy = baseline_csf[~baseline_csf["damaged"] & ~baseline_csf["doublet"]]
    for cluster, types in REFERENCE_MAP.items():
        if cluster == "nc_mono":
            types = ["CD16_mono"]
        sim = healthy.loc[healthy["cell_type"].isin(types), "total_counts"].median()
        assert 1 / 1.5 <= sim / ref[cluster] <= 1.5, (cluster, sim, ref[cluster])


def test_baseline_csf_composition_is_inside_the_real_ms_range(baseline_csf):
    real = reference_table("csf_composition_schafflick2020.tsv")
    real = real[real["status"] == "disease"].set_index("sample")
    real["CD8_Tc"] = real["aCD8_Tc"] + real["nCD8_Tc"]
    comp = composition(baseline_csf)
    for cluster, types in REFERENCE_MAP.items():
        sim = comp.reindex(columns=types, fill_value=0).sum(axis=1).median()
        lo, hi = real[cluster].min(), real[cluster].max()
        assert lo <= sim <= hi, (cluster, sim, lo, hi)


def test_qc_metrics_are_in_typical_10x_v3_ranges(baseline_csf):
    healthy = baseline_csf[~baseline_csf["damaged"] & ~baseline_csf["doublet"]]
    assert 1.0 <= healthy["pct_mt"].median() <= 10.0
    assert 500 <= healthy["n_genes"].median() <= 5000
    assert 1500 <= healthy["total_counts"].median() <= 20000


def test_every_ready_synthetic_dataset_validates():
    # public datasets (a samples: sheet instead of simulation:) are dry-run in tests/workflow
    names = sorted(p.stem for p in DATASETS.glob("*.yaml") if "simulation" in read_dataset(p))
    for base in ("csf_bcma_cart", "csf_null", "csf_anti_cd20_like", "pbmc_cd19_allo"):
        assert base in names and f"{base}_tiny" in names
    for name in names:
        cohort = load_cohort(DATASETS / f"{name}.yaml")
        assert cohort.name == name


def test_null_and_anti_cd20_truth():
    from csfcart.simulate.model import CohortModel
    from csfcart.simulate.truth import claim_truth

    def verdicts(name):
        cohort = load_cohort(DATASETS / f"{name}.yaml")
        table = claim_truth(cohort, CohortModel(cohort)).set_index("claim_id")
        return table["expected_verdict"].to_dict(), table["true_effect"].to_dict()

    null, effect = verdicts("csf_null")
    assert set(null.values()) == {"not_reproduced"}
    assert all(abs(v) < 1e-9 for v in effect.values())  # C7 too: common random numbers
    cd20, _ = verdicts("csf_anti_cd20_like")
    assert cd20["C3"] == "reproduced" and cd20["C4"] == "not_reproduced" and cd20["C5"] == "not_reproduced"
    pbmc, _ = verdicts("pbmc_cd19_allo")
    assert pbmc == {"D1": "reproduced", "D2": "reproduced", "D3": "reproduced"}


def test_c7_truth_is_the_planted_fall_of_the_b_microglia_axis():
    from csfcart.simulate.model import CohortModel
    from csfcart.simulate.truth import communication_truth

    cohort = load_cohort(DATASETS / "csf_bcma_cart_tiny.yaml")
    truth = communication_truth(CohortModel(cohort), cohort.compartments["CSF"].timepoints)
    assert truth["C7"] < -0.05
    inter = truth["interactions"]
    b_mg = inter["source"].isin(["naive_B", "memory_B", "plasma"]) & (inter["target"] == "microglia_like")
    # B cells all but vanish: their interactions with microglia-like cells fall or are lost
    assert b_mg.any() and inter.loc[b_mg, "post_score"].mean() < 0.5 * inter.loc[b_mg, "baseline_score"].mean()
    # an interaction between untouched T cells barely moves
    t_t = (inter["source"] == "CD4_T") & (inter["target"] == "CD8_T")
    assert inter.loc[t_t, "true_change"].abs().median() < 0.05


# -- bad cohort descriptions ------------------------------------------------------------


def _raw(**edits):
    raw = yaml.safe_load((DATASETS / "csf_bcma_cart.yaml").read_text())["simulation"]
    for path, value in edits.items():
        *parents, leaf = path.split(".")
        node = raw
        for key in parents:
            node = node[key]
        if value is _DELETE:
            del node[leaf]
        else:
            node[leaf] = value
    return raw


_DELETE = object()


@pytest.mark.parametrize(
    ("edits", "key", "fix"),
    [
        ({"compartments.CSF.composition.Bcell": 0.0}, "compartments.CSF.composition.Bcell", "use one of"),
        ({"compartments.CSF.composition.CD4_T": 0.9}, "compartments.CSF.composition", "sum to 1"),
        ({"compartments.CSF.cells.median": -5}, "compartments.CSF.cells.median", "above 0"),
        ({"n_patients": _DELETE}, "simulation.n_patients", "add the number of patients"),
        ({"effects.abundance.CSF.d14.Bcell": 0.1}, "effects.abundance.CSF.d14.Bcell", "use one of"),
        ({"colour": "blue"}, "simulation.colour", "remove it"),
        ({"effects.car_t.CSF.d99": 0.1}, "effects.car_t.CSF.d99", "use one of"),
        ({"n_genes": 10}, "simulation.n_genes", ">= 500"),
    ],
)
def test_bad_cohort_is_refused_with_key_and_fix(edits, key, fix):
    with pytest.raises(InputError) as err:
        parse_cohort(_raw(**edits), name="x", where="config/datasets/x.yaml")
    message = str(err.value)
    assert "config/datasets/x.yaml" in message and key in message and fix in message


def test_bad_expression_effect_cell_type_is_refused():
    raw = _raw()
    raw["effects"]["expression"][0]["cell_types"] = ["astrocyte"]
    with pytest.raises(InputError, match=r"effects.expression\[0\].cell_types.*unknown cell type 'astrocyte'"):
        parse_cohort(raw, name="x", where="x.yaml")


def test_counts_are_overdispersed_integers(tiny):
    import scipy.io

    m = scipy.io.mmread(tiny / "counts" / "P01_CSF_baseline" / "matrix.mtx.gz")
    data = np.asarray(m.tocsr().data)
    assert np.issubdtype(data.dtype, np.integer) and (data > 0).all()
