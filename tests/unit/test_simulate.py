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

ROOT = Path(__file__).resolve().parents[2]

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


def test_parallel_drawing_gives_the_same_files(tiny, tmp_path):
    # the workflow draws samples in forked processes (rule simulate's threads)
    again = simulate_cohort(load_cohort(DATASETS / "csf_bcma_cart_tiny.yaml"), tmp_path / "again", workers=2)
    assert _digest(tiny) == _digest(again)


def test_empty_droplets_hold_the_soup_at_their_drawn_depth(tiny):
    """The raw matrix's extra barcodes are empty droplets: few UMIs each, distributed over
    the genes like the sample's ambient soup (the cells' mean profile), not like one cell."""
    import scipy.io

    sheet = pd.read_csv(tiny / "samples.tsv", sep="\t")
    path = tiny / sheet["path"].iloc[0]
    cells = scipy.io.mmread(path / "filtered_feature_bc_matrix" / "matrix.mtx.gz").tocsc().T.tocsr()
    raw = scipy.io.mmread(path / "raw_feature_bc_matrix" / "matrix.mtx.gz").tocsc().T.tocsr()
    empty = raw[cells.shape[0] :]
    per_droplet = np.asarray(empty.sum(axis=1)).ravel()
    assert empty.shape[0] >= cells.shape[0] and per_droplet.min() >= 1
    assert 10 < np.median(per_droplet) < 100 < np.median(np.asarray(cells.sum(axis=1)).ravel())
    soup = np.asarray(empty.sum(axis=0)).ravel() / per_droplet.sum()
    mix = np.asarray(cells.sum(axis=0)).ravel() / cells.sum()
    assert np.corrcoef(np.log1p(soup * 1e5), np.log1p(mix * 1e5))[0, 1] > 0.9


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
    rel = f"counts/{one}/filtered_feature_bc_matrix/matrix.mtx.gz"
    assert (sub / rel).read_bytes() == (tiny / rel).read_bytes()


def test_output_is_a_10x_v3_cohort_with_a_sample_sheet(tiny):
    sheet = pd.read_csv(tiny / "samples.tsv", sep="\t")
    assert {"sample_id", "patient_id", "timepoint", "compartment", "path"} <= set(sheet.columns)
    assert sheet["sample_id"].is_unique
    for path in sheet["path"]:  # laid out as Cell Ranger's outs/: cells, and cells with empty droplets
        assert {p.name for p in (tiny / path).iterdir()} == {"filtered_feature_bc_matrix", "raw_feature_bc_matrix"}
        for matrix in ("filtered_feature_bc_matrix", "raw_feature_bc_matrix"):
            names = {p.name for p in (tiny / path / matrix).iterdir()}
            assert names == {"matrix.mtx.gz", "features.tsv.gz", "barcodes.tsv.gz"}
    feats = pd.read_csv(tiny / sheet["path"][0] / "filtered_feature_bc_matrix" / "features.tsv.gz", sep="\t",
                        header=None)  # fmt: skip
    assert list(feats[2].unique()) == ["Gene Expression"]
    names = set(feats[1])
    for gene in ["MT-CO1", "RPL13A", "IGHG1", "IGHG4", "IGHA1", "IGHM", "IGHD", "IGKC", "IGLC2", "JCHAIN",
                 "IL6", "TNF", "CXCL13", "TNFSF13B", "TNFRSF13B", "TNFRSF17", "P2RY12", "CAR-BCMA"]:  # fmt: skip
        assert gene in names, gene
    claims = pd.read_csv(tiny / "truth" / "claims.tsv", sep="\t")
    assert list(claims["claim_id"]) == ["C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C9"]
    assert {"readout", "scale", "true_effect", "expected_verdict"} <= set(claims.columns)
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
    from csfcart.simulate.model import CohortModel

    real = reference_table("csf_composition_schafflick2020.tsv")
    real = real[real["status"] == "disease"].set_index("sample")
    real["CD8_Tc"] = real["aCD8_Tc"] + real["nCD8_Tc"]
    cohort = load_cohort(DATASETS / "csf_bcma_cart.yaml")
    expected = CohortModel(cohort).expected_composition("CSF", "baseline")
    comp = composition(baseline_csf)
    for cluster, types in REFERENCE_MAP.items():
        lo, hi = real[cluster].min(), real[cluster].max()
        # the cohort's parameters sit inside the range of the 8 real MS samples ...
        mean = 100 * sum(expected.get(t, 0.0) for t in types)
        assert lo <= mean <= hi, (cluster, mean, lo, hi)
        # ... and the median of 5 drawn patients near it (patients vary, and 5 are few)
        sim = comp.reindex(columns=types, fill_value=0).sum(axis=1).median()
        assert lo / 1.25 <= sim <= hi * 1.25, (cluster, sim, lo, hi)


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


def _truth(name: str) -> pd.DataFrame:
    from csfcart.simulate.model import CohortModel
    from csfcart.simulate.truth import claim_truth

    cohort = load_cohort(DATASETS / f"{name}.yaml")
    return claim_truth(cohort, CohortModel(cohort)).set_index("claim_id")


def test_null_and_anti_cd20_truth():
    null = _truth("csf_null")
    assert set(null["expected_verdict"]) == {"not_reproduced"}
    assert (null["true_effect"].abs() < 1e-9).all()  # C7 too: computed from parameters
    cd20 = _truth("csf_anti_cd20_like")["expected_verdict"]
    assert cd20["C3"] == "reproduced" and cd20["C4"] == "not_reproduced" and cd20["C5"] == "not_reproduced"
    pbmc = _truth("pbmc_cd19_allo")["expected_verdict"].to_dict()
    assert pbmc == {"D1": "reproduced", "D2": "reproduced", "D3": "reproduced"}


#: the verdict a sound analysis should reach on each perturbation variant (SCIENCE.md)
PERTURBATIONS = {
    "csf_depletion_only": {"C3": True, "C4": True, "C5": True, "C6": False, "C7": False, "C8": False},
    "csf_ligand_only": {"C3": False, "C4": False, "C5": False, "C6": True, "C7": True},
    "csf_dilution": {"C1": True, "C3": False, "C4": False, "C5": False, "C6": False, "C7": False, "C8": False},
    "csf_dilution_strong": {"C1": True, "C3": False, "C4": False, "C5": False},
    "csf_partial_program": {"C1": True, "C6": True},
    "csf_high_ambient": {f"C{i}": True for i in range(1, 10)},
    "csf_small": {f"C{i}": True for i in range(1, 10)},
    "csf_weak_identity": {f"C{i}": True for i in range(1, 10)},
    "csf_unlisted_type": {f"C{i}": True for i in range(1, 10)},
}


@pytest.mark.parametrize("name", sorted(PERTURBATIONS))
def test_perturbation_variants_carry_the_verdict_a_sound_analysis_should_reach(name):
    for variant in (name, f"{name}_tiny"):
        truth = _truth(variant)["expected_verdict"]
        for claim, present in PERTURBATIONS[name].items():
            assert truth[claim] == ("reproduced" if present else "not_reproduced"), (variant, claim)


def test_c7_truth_does_not_change_with_sample_sizes():
    from dataclasses import replace

    from csfcart.simulate.model import CohortModel
    from csfcart.simulate.truth import claim_effects

    cohort = load_cohort(DATASETS / "csf_bcma_cart.yaml")
    before = claim_effects(cohort, CohortModel(cohort))
    for median, n_patients in ((300, 3), (5000, 12)):
        comps = {k: replace(c, cells_median=median, cells_min=1) for k, c in cohort.compartments.items()}
        after = claim_effects(cohort.with_changes(compartments=comps, n_patients=n_patients), CohortModel(cohort))
        assert after == pytest.approx(before)
    # and it measures interaction strength, not B-cell loss: depleting B cells moves nothing
    depletion = load_cohort(DATASETS / "csf_depletion_only.yaml")
    assert claim_effects(depletion, CohortModel(depletion))["C7", "strength"] == pytest.approx(0.0, abs=1e-9)


ANALYSIS_MODULES = {"claims", "communication", "measure", "stats", "composition", "de", "pseudobulk", "annotate",
                    "qc", "integrate", "evaluate", "pipeline", "summary", "tables", "figures", "training",
                    "workflow", "config"}  # fmt: skip


def test_the_simulator_imports_no_analysis_code():
    import ast

    package = Path(__file__).parents[2] / "src" / "csfcart" / "simulate"
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                parts = name.split(".")
                assert not (parts[0] == "csfcart" and len(parts) > 1 and parts[1] in ANALYSIS_MODULES), (
                    f"{path.name} imports {name}"
                )


def test_car_t_cells_come_on_top_and_dilute_every_other_fraction():
    from csfcart.simulate.model import CohortModel

    cohort = load_cohort(DATASETS / "csf_dilution.yaml")
    model = CohortModel(cohort)
    before, after = model.expected_composition("CSF", "baseline"), model.expected_composition("CSF", "d14")
    t_cells = sum(after[t] for t in ("CD4_T", "CD8_T", "Treg", "CAR_T"))
    assert after["CAR_T"] / t_cells == pytest.approx(0.45)
    ratios = {t: after[t] / before[t] for t in before}
    assert max(ratios.values()) == pytest.approx(min(ratios.values()))  # the same dilution for all
    assert ratios["naive_B"] < 0.7


def test_cell_types_overlap_on_continua_and_most_genes_are_restricted():
    from csfcart.simulate.model import CohortModel
    from csfcart.simulate.truth import _expressed

    cohort = load_cohort(DATASETS / "csf_bcma_cart.yaml")
    model = CohortModel(cohort)
    # intermediate monocytes: CD14 and CD16 monocytes share a continuum and meet in it
    from scipy import stats

    from csfcart.simulate.biology import CELL_TYPES

    cd14, cd16 = CELL_TYPES["CD14_mono"], CELL_TYPES["CD16_mono"]
    assert cd14["states"] == cd16["states"]
    assert stats.beta.sf(0.4, *cd14["beta"]) > 0.02 and stats.beta.cdf(0.6, *cd16["beta"]) > 0.02
    profiles = model.expected_profiles("CSF", "baseline")
    on = np.array([_expressed(model, profiles[ct], ct) for ct in model.types]) >= 0.05
    assert (on.sum(axis=0) <= len(model.types) // 2).mean() > 0.35
    # activated microglia-like cells lose homeostatic markers: a label can move with them
    act = model.substate_shift["activated"]
    assert act[model.gene_index["P2RY12"]] < 0 < act[model.gene_index["SPP1"]]


def test_each_sample_has_its_own_ambient_fraction_and_the_soup_carries_car_reads(tiny):
    params = pd.read_csv(tiny / "truth" / "samples.tsv", sep="\t")
    assert params["ambient_fraction"].between(0.01, 0.15).all() and params["ambient_fraction"].nunique() > 1
    import scipy.io

    truth = pd.read_csv(tiny / "truth" / "cells.tsv.gz", sep="\t")
    car_in_other_cells = 0
    for sample in params["sample_id"]:
        if "baseline" in sample:
            continue
        m = scipy.io.mmread(tiny / "counts" / sample / "filtered_feature_bc_matrix" / "matrix.mtx.gz").tocsr()
        car = np.asarray(m[-1].todense()).ravel()
        cells = truth[truth["sample_id"] == sample]
        car_in_other_cells += int(((car > 0) & ~cells["car_t"].to_numpy()).sum())
    assert car_in_other_cells > 0


def test_simulated_counts_look_like_real_10x_counts():
    from csfcart.simulate.realism import compare, simulated_statistics

    cohort = load_cohort(DATASETS / "csf_bcma_cart.yaml")
    table = compare(simulated_statistics(cohort)[0])
    assert table["within_2x"].all(), table.to_string()


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
        ({"ambient_fraction": [0.2, 0.1]}, "simulation.ambient_fraction", "low <= high"),
        ({"effects.states": [{"state": "sleepy", "log_odds": {"d14": -1}}]}, "effects.states[0].state", "activated"),
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

    m = scipy.io.mmread(tiny / "counts" / "P01_CSF_baseline" / "filtered_feature_bc_matrix" / "matrix.mtx.gz")
    data = np.asarray(m.tocsr().data)
    assert np.issubdtype(data.dtype, np.integer) and (data > 0).all()


def test_the_truth_scores_each_program_on_the_genes_the_shipped_analysis_scores():
    """The simulator's readout genes (its truth) are the shipped config's: the program's genes,
    or the axis's for C7, less the scored group's identity markers of config/markers.tsv."""
    from csfcart.annotate import lineage_of, read_markers
    from csfcart.measure import scored_programs
    from csfcart.registry import CLAIMS, POOLS, types_of
    from csfcart.simulate.biology import READOUTS

    config = Path(__file__).resolve().parents[2] / "config"
    programs = scored_programs(yaml.safe_load((config / "programs.yaml").read_text()),
                               yaml.safe_load((config / "interactions.yaml").read_text()))  # fmt: skip
    markers, lineages = read_markers(config / "markers.tsv"), lineage_of(config / "markers.tsv")
    checked = set()
    for claim in CLAIMS.values():
        for r in claim.readouts:
            if r.measure not in ("program_change", "exhaustion_did"):
                continue
            types = types_of(POOLS[r.group], lineages) if r.group in POOLS else [r.group]
            identity = {g for t in types for g in markers.get(t, [])}
            assert [g for g in programs[r.program] if g not in identity] == READOUTS[r.program], (claim.id, r.name)
            checked.add(r.program)
    assert {"microglia_activation", "b_microglia_partners", "inflammatory_cytokines", "t_exhaustion"} <= checked
    assert not set(READOUTS["b_microglia_partners"]) & set(READOUTS["inflammatory_cytokines"])


def test_effect_heterogeneity_spreads_patients_effects_around_the_same_population_effect():
    """``effect_heterogeneity`` (log-scale SD) adds each patient's own shift to every effect:
    the patients' log folds of B cells spread by about that much more, around the same mean."""
    from csfcart.simulate.model import CohortModel

    base = load_cohort(ROOT / "config" / "datasets" / "csf_bcma_cart.yaml")

    def log_folds(cohort):
        model = CohortModel(cohort)
        people = [model.patient_params(f"T{k}", stream=3) for k in range(800)]

        def share(p, tp):  # of non-CAR cells: the CAR-T shift has its own draw
            c = model.expected_composition("CSF", tp, p)
            return c["naive_B"] / (1 - c.get("CAR_T", 0.0))

        return np.array([np.log(share(p, "m3") / share(p, "baseline")) for p in people])

    plain, spread = log_folds(base), log_folds(base.with_changes(effect_heterogeneity=0.7))
    assert np.std(plain) < 0.4
    assert np.sqrt(np.var(spread) - np.var(plain)) == pytest.approx(0.7, abs=0.1)
    assert np.mean(spread) == pytest.approx(np.mean(plain), abs=0.1)
    with pytest.raises(InputError, match="effect_heterogeneity"):
        parse_cohort({**yaml.safe_load((ROOT / "config/datasets/csf_bcma_cart.yaml").read_text())["simulation"],
                      "effect_heterogeneity": -1}, name="x", where="x.yaml")  # fmt: skip


def test_weak_identity_has_weaker_markers_and_no_raw_matrix(tmp_path):
    """csf_weak_identity: marker programs raised to a power below 1 (CD4 T cells' own
    markers weaker still) and filtered matrices only, as most deposited data are."""
    from csfcart.simulate.model import CohortModel

    weak = load_cohort(DATASETS / "csf_weak_identity_tiny.yaml")
    strong = weak.with_changes(identity_strength=1.0, profiles=[])
    assert weak.identity_strength < 1 and not weak.raw_matrices
    m_weak, m_strong = CohortModel(weak), CohortModel(strong)
    ccr7 = m_weak.gene_index["CCR7"]
    naive = m_weak.state_index["CD4_naive"]
    # the state's marker over its lineage's level: 40-fold at full strength, 40 ** 0.6 weak
    assert m_weak.log_states[naive, ccr7] < m_strong.log_states[naive, ccr7] - np.log(40) * 0.3
    igkc, plasma = m_weak.gene_index["IGKC"], m_weak.state_index["plasma"]
    assert m_weak.log_states[plasma, igkc] == pytest.approx(m_strong.log_states[plasma, igkc], abs=0.3)
    draw = m_weak.draw_sample(0)
    assert draw.empty.shape[0] == 0
    first = weak.samples()[0]["sample_id"]
    out = simulate_cohort(weak, tmp_path / "weak", samples=[first])
    folder = out / "counts" / first
    assert (folder / "filtered_feature_bc_matrix").is_dir() and not (folder / "raw_feature_bc_matrix").exists()


def test_raw_matrices_must_be_true_or_false():
    with pytest.raises(InputError, match=r"simulation\.raw_matrices"):
        parse_cohort(_raw(raw_matrices="no"), name="x", where="x.yaml")


def test_an_unlisted_type_is_drawn_only_where_a_cohort_holds_it():
    """Choroid plexus epithelium (not in the marker table) appears in csf_unlisted_type's CSF
    with its own genes; a cohort without it draws exactly as before (its genes and state
    come from a stream of their own)."""
    from csfcart.simulate.model import CohortModel

    plain = CohortModel(load_cohort(DATASETS / "csf_bcma_cart_tiny.yaml"))
    assert "TTR" not in plain.gene_index and "choroid_plexus_epithelium" not in plain.types
    model = CohortModel(load_cohort(DATASETS / "csf_unlisted_type_tiny.yaml"))
    csf = next(i for i, s in enumerate(model.samples) if s["compartment"] == "CSF")
    draw = model.draw_sample(csf)
    epi = (draw.truth["cell_type"] == "choroid_plexus_epithelium").to_numpy()
    assert epi.any()
    ttr, cd3d = model.gene_index["TTR"], model.gene_index["CD3D"]
    x = draw.counts.toarray()
    assert x[epi, ttr].mean() > 10 * x[~epi, ttr].mean() and x[epi, cd3d].mean() < x[~epi, cd3d].mean()
