"""Paired statistics and claim verdicts on hand-built inputs with a known answer."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from csfcart.claims import Measurements, applicable_claims, claims_table, score_against_truth
from csfcart.stats import bh, paired_summary
from tests.conftest import shipped_lineages

TYPES = ["CD4_T", "CD8_T", "naive_B", "memory_B", "plasma", "CAR_T", "microglia_like", "CD14_mono"]


def _cohort(
    *, b_post: float, plasma_post: float, car_post: float, patient_scale=None, activation_change=0.0, n=5, seed=0
):
    """Per-sample tables for ``n`` patients, CSF at baseline, d14 and m3."""
    rng = np.random.default_rng(seed)
    scale = patient_scale if patient_scale is not None else np.ones(n)
    counts, car, ig, programs = [], [], [], []
    for p in range(n):
        pid = f"P{p}"
        for tp in ("baseline", "d14", "m3"):
            post = tp != "baseline"
            sid = f"{pid}_CSF_{tp}"
            b = (b_post if post else 40) * scale[p]
            row = {"sample_id": sid, "patient_id": pid, "timepoint": tp, "compartment": "CSF",
                   "CD4_T": 700, "CD8_T": 150 + rng.integers(0, 5), "naive_B": round(b / 2), "memory_B": round(b / 2),
                   "plasma": round((plasma_post if post else 10) * scale[p]), "CAR_T": round(car_post * 850) if post else 0,
                   "microglia_like": 20, "CD14_mono": 30}  # fmt: skip
            counts.append(row)
            t = row["CD4_T"] + row["CD8_T"] + row["CAR_T"]
            n_car = round(0.5 * row["CAR_T"])
            car.append({**{k: row[k] for k in ("sample_id", "patient_id", "timepoint", "compartment")}, "t_cells": t,
                        "car_positive_t_cells": n_car, "car_fraction": n_car / t})  # fmt: skip
            meta = {k: row[k] for k in ("sample_id", "patient_id", "timepoint", "compartment")}
            ig.append({**meta, "asc_cells": row["plasma"], "asc_ig_umis": 5000.0 * row["plasma"], "total_umis": 5e6})
            level = 8.0 + 0.5 * p + (activation_change if post else 0.0) + rng.normal(0, 0.05)
            programs.append({**{k: row[k] for k in ("sample_id", "patient_id", "timepoint", "compartment")}, "group": "microglia-like",
                             "program": "microglia_activation", "score": level})  # fmt: skip
    idx = lambda rows: pd.DataFrame(rows).set_index("sample_id")  # noqa: E731
    return Measurements(counts=idx(counts), car=idx(car), ig=idx(ig), programs=pd.DataFrame(programs),
                        lineages=shipped_lineages())  # fmt: skip


def _verdicts(m, claims=("C1", "C3", "C4", "C5", "C6")):
    table = claims_table(m, list(claims), baseline="baseline", alpha=0.05, min_patients=3)
    return table.set_index("claim_id")


def test_paired_summary_matches_a_t_interval():
    s = paired_summary([1.0, 2.0, 3.0], direction=+1)
    assert s["estimate"] == pytest.approx(2.0)
    assert s["ci_low"] == pytest.approx(2.0 - 4.302653 * 1 / np.sqrt(3), rel=1e-5)
    assert s["patients_consistent"] == 3 and s["n_patients"] == 3
    assert paired_summary([np.nan, 1.0])["n_patients"] == 1


def test_bh_adjusts_and_keeps_nan():
    adj = bh([0.01, 0.04, np.nan, 0.03])
    assert np.isnan(adj[2]) and adj[0] == pytest.approx(0.03) and adj[1] == pytest.approx(0.04)


def test_depletion_is_called_with_its_size():
    t = _verdicts(_cohort(b_post=2, plasma_post=0, car_post=0.2, activation_change=-1.0))
    assert (t.loc[["C1", "C3", "C4", "C5", "C6"], "verdict"] == "reproduced").all(), t[["estimate", "reason"]]
    assert t.loc["C6", "estimate"] == pytest.approx(-1.0, abs=0.1)
    assert t.loc["C3", "patients_consistent"] == 5


def test_a_pure_patient_effect_with_no_time_effect_gives_no_call():
    # patients differ threefold in B and plasma cells and in activation, nothing changes over time
    scale = np.array([0.5, 1.0, 1.5, 2.0, 3.0])
    t = _verdicts(_cohort(b_post=40, plasma_post=10, car_post=0.0, patient_scale=scale))
    assert not (t["verdict"] == "reproduced").any(), t[["estimate", "p_value", "reason"]]
    # nothing changes, precisely measured: the data exclude the claimed falls
    assert (t.loc[["C3", "C4", "C6"], "verdict"] == "contradicted").all(), t[["estimate", "other_bound", "reason"]]
    # C5 draws its level from C4 alone, which was not reproduced: not tested, and it says why
    assert t.loc["C5", "verdict"] == "not_tested" and "comes from C4" in t.loc["C5", "reason"]


def test_a_missing_cell_type_is_not_testable():
    m = _cohort(b_post=2, plasma_post=0, car_post=0.2)
    m.programs = m.programs.iloc[0:0]  # no microglia-like cells scored anywhere
    t = _verdicts(m, ("C6", "C9"))
    assert (t["verdict"] == "not_testable").all()
    assert "at least 3 needed" in t.loc["C6", "reason"]


def test_a_claim_without_its_measurements_is_reported_not_dropped():
    t = _verdicts(_cohort(b_post=2, plasma_post=0, car_post=0.2), ("C7",))
    assert t.loc["C7", "verdict"] == "not_testable"
    assert "microglia-like cells" in t.loc["C7", "reason"] and "at least 3 needed" in t.loc["C7", "reason"]


def _with_signalling(m, change, strength_change=None, b_post_present=True):
    """Add the microglia-like signalling program and the B / microglia LR expression."""
    rng = np.random.default_rng(3)
    rows, lr = [], []
    for sid, row in m.counts.iterrows():
        post = row["timepoint"] != "baseline"
        meta = {"sample_id": sid, **{k: row[k] for k in ("patient_id", "timepoint", "compartment")}}
        rows.append({**meta, "group": "microglia-like", "program": "b_microglia_partners",
                     "score": 9.0 + (change if post else 0.0) + rng.normal(0, 0.05)})  # fmt: skip
        if strength_change is None or (post and not b_post_present):
            continue
        for sender, receiver in (("microglia_like", "naive_B"), ("naive_B", "microglia_like")):
            lr.append({**meta, "sender": sender, "receiver": receiver, "ligand": "MIF", "receptor": "CD74",
                       "ligand_lcpm": 10 + (strength_change if post else 0.0) + rng.normal(0, 0.05),
                       "receptor_lcpm": 11 + (strength_change if post else 0.0), "ligand_detected": 0.5,
                       "receptor_detected": 0.6, "sender_cells": 30, "receiver_cells": 30,
                       "axis": "b_microglia"})  # fmt: skip
    m.programs = pd.concat([m.programs, pd.DataFrame(rows)], ignore_index=True)
    m.interactions = pd.DataFrame(lr) if lr else None
    return m


def test_c7_needs_the_interaction_strength_where_both_partners_are_present():
    # signalling and strength both fall: reproduced
    m = _with_signalling(_cohort(b_post=20, plasma_post=5, car_post=0.2), change=-1.0, strength_change=-1.0)
    t = _verdicts(m, ("C7",))
    assert t.loc["C7", "verdict"] == "reproduced" and t.loc["C7", "estimate"] == pytest.approx(-1.0, abs=0.1)
    assert re.search(r"strength: -(0\.9|1\.0)", t.loc["C7", "reason"])
    # signalling falls, but where B cells are there the interactions keep their strength: not reproduced
    m = _with_signalling(_cohort(b_post=20, plasma_post=5, car_post=0.2), change=-1.0, strength_change=0.0)
    assert _verdicts(m, ("C7",)).loc["C7", "verdict"] == "inconclusive"


def test_c7_strength_pairs_are_chosen_on_pooled_expression_so_noise_at_baseline_reads_no_change():
    """Pairs near the detection floor whose detection moves with their expression: chosen at
    each patient's own baseline they would be those high there, and would seem to fall. Chosen
    on expression pooled over patients and visits, a cohort without change reads about 0."""
    from csfcart.claims import Measurements, expressed_pairs, lr_strength
    from csfcart.registry import CLAIMS

    rng = np.random.default_rng(11)
    lr = []
    for p in range(12):
        for tp in ("baseline", "d14", "m3"):
            meta = {"sample_id": f"P{p}_CSF_{tp}", "patient_id": f"P{p}", "timepoint": tp, "compartment": "CSF"}
            for k in range(100):
                ligand, receptor = rng.normal(0, 0.6, 2)
                lr.append({**meta, "sender": "microglia_like", "receiver": "naive_B", "ligand": f"L{k}",
                           "receptor": f"R{k}", "ligand_lcpm": 6 + ligand, "receptor_lcpm": 6 + receptor,
                           "ligand_detected": 0.1 + 0.1 * ligand, "receptor_detected": 0.1 + 0.1 * receptor,
                           "sender_cells": 30, "receiver_cells": 30, "axis": "b_microglia"})  # fmt: skip
    t = pd.DataFrame(lr)
    counts = t.drop_duplicates("sample_id").set_index("sample_id")[["patient_id", "timepoint", "compartment"]]
    m = Measurements(counts=counts, car=None, ig=None, programs=pd.DataFrame(), lineages={}, interactions=t)
    r = next(r for r in CLAIMS["C7"].readouts if r.measure == "lr_strength")
    values = lr_strength(r, m, "baseline").values
    assert len(values) == 12 and abs(values.mean()) < 3 * values.std() / np.sqrt(12)
    # chosen at each patient's baseline instead, the same cohort seems to fall
    base = t[(t["timepoint"] == "baseline") & (t["ligand_detected"] >= 0.1) & (t["receptor_detected"] >= 0.1)]
    kept = base[["patient_id", "ligand"]].merge(t, on=["patient_id", "ligand"])
    strength = 0.5 * (kept["ligand_lcpm"] + kept["receptor_lcpm"])
    biased = strength[kept["timepoint"] != "baseline"].mean() - strength[kept["timepoint"] == "baseline"].mean()
    assert biased < -0.3
    assert 0 < len(expressed_pairs(t)) < 100


@pytest.mark.parametrize("with_strength", [3, 4, 5])
def test_an_optional_readout_that_cannot_reach_alpha_does_not_veto_the_claim(with_strength):
    # B cells remain after infusion in only some patients: the strength readout has those alone.
    # With 3 or 4 patients its exact test cannot go below 1/8 or 1/16, above alpha = 0.05, so
    # it would veto C7 whatever the data; it is reported as not tested. With 5 it can reach
    # alpha and, the strength unchanged, vetoes the claim.
    m = _with_signalling(_cohort(b_post=20, plasma_post=5, car_post=0.2), change=-1.0, strength_change=0.0)
    m.interactions = m.interactions[m.interactions["patient_id"].isin([f"P{p}" for p in range(with_strength)])]
    t = _verdicts(m, ("C7",))
    if with_strength < 5:
        assert t.loc["C7", "verdict"] == "reproduced", t.loc["C7", "reason"]
        floor = 2.0**-with_strength
        assert re.search(
            rf"strength not tested: .* on {with_strength} patients, .* smallest possible p is {floor:.3g}",
            t.loc["C7", "reason"],
        )
    else:
        assert t.loc["C7", "verdict"] == "inconclusive"
        assert "strength: " in t.loc["C7", "reason"]


def test_a_first_readout_that_cannot_reach_alpha_says_so():
    t = _verdicts(_cohort(b_post=2, plasma_post=0, car_post=0.2, activation_change=-1.0, n=3), ("C6",))
    assert t.loc["C6", "verdict"] == "inconclusive" and t.loc["C6", "p_value"] == pytest.approx(0.125)
    assert t.loc["C6", "bound"] == np.inf  # no exact test on 3 patients reaches alpha: the bound is open
    assert "smallest possible p is 0.125" in t.loc["C6", "reason"]


def test_c7_is_not_decided_by_b_cells_vanishing():
    # B cells gone after infusion, microglia-like signalling unchanged: the lost interactions
    # are a consequence of C3, not evidence for C7
    m = _with_signalling(_cohort(b_post=0, plasma_post=0, car_post=0.2), change=0.0, strength_change=-5.0,
                         b_post_present=False)  # fmt: skip
    t = _verdicts(m, ("C7",))
    assert t.loc["C7", "verdict"] == "contradicted"
    assert "strength not tested" in t.loc["C7", "reason"]


def test_claims_follow_the_compartments():
    m = _cohort(b_post=2, plasma_post=0, car_post=0.2)
    assert applicable_claims(m.counts, None) == ["C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8"]
    blood = m.counts.assign(compartment="blood")
    assert applicable_claims(blood, None) == ["D1", "D2", "D3"]


def test_scoring_against_truth_checks_coverage():
    claims = pd.DataFrame({"claim_id": ["C3", "C4"], "ci_low": [-2.0, -80.0], "ci_high": [-1.0, -60.0],
                           "bound": [-1.2, -62.0], "verdict": ["reproduced", "inconclusive"]})  # fmt: skip
    truth = pd.DataFrame({"claim_id": ["C3", "C4"], "true_effect": [-1.5, -55.0],
                          "expected_verdict": ["reproduced", "not_reproduced"]})  # fmt: skip
    out = score_against_truth(claims, truth).set_index("claim_id")
    assert bool(out.loc["C3", "ci_covers_truth"]) and bool(out.loc["C3", "verdict_matches"])
    assert bool(out.loc["C3", "bound_covers_truth"])  # a fall (-1.5) at least as small as the upper bound
    # the truth above the upper bound of a fall: neither interval nor bound covers it; any
    # verdict but reproduced matches a claim the truth says does not hold
    assert not out.loc["C4", "ci_covers_truth"] and not out.loc["C4", "bound_covers_truth"]
    assert bool(out.loc["C4", "verdict_matches"])


def test_grouped_summary_equals_the_per_group_one():
    from csfcart.stats import grouped_paired_summary

    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "g": np.repeat(["a", "b", "c", "d"], 5),
            "v": np.r_[rng.normal(1, 1, 5), rng.normal(0, 1, 5), np.zeros(5), [1.0, np.nan, np.nan, np.nan, np.nan]],
        }
    )
    out = grouped_paired_summary(df, "v", ["g"], direction=-1).set_index("g")
    for g in "abcd":
        ref = paired_summary(df.loc[df["g"] == g, "v"].to_numpy(), direction=-1)
        for key in ("estimate", "ci_low", "ci_high", "p_value", "n_patients", "patients_consistent"):
            assert np.isclose(out.loc[g, key], ref[key], equal_nan=True), (g, key)


def test_per_patient_values_are_those_the_claims_summarise():
    from csfcart.claims import claim_patients

    m = _cohort(b_post=2, plasma_post=0, car_post=0.2, activation_change=-1.0)
    ids = ["C1", "C3", "C6"]
    patients = claim_patients(m, ids, baseline="baseline")
    table = _verdicts(m, ids)
    window = patients[patients["timepoint"] == "window"]
    for cid in ids:
        sub = window[window["claim_id"] == cid]
        assert len(sub) == table.loc[cid, "n_patients"] == 5
        # every post-infusion visit of every patient is listed beside the window's value
        assert set(patients.loc[patients["claim_id"] == cid, "timepoint"]) == {"d14", "m3", "window"}
    for cid in ("C1", "C6"):  # mean-based claims: the estimate is the mean of these values
        assert window.loc[window["claim_id"] == cid, "value"].mean() == pytest.approx(table.loc[cid, "estimate"])
    c6 = window[window["claim_id"] == "C6"]
    assert np.allclose(c6["post"] - c6["base"], c6["value"])
    assert set(patients["base_label"]) == {"baseline"}


def test_unpaired_claims_compare_conditions_with_donors_as_the_unit():
    from csfcart.stats import unpaired_summary

    rng = np.random.default_rng(1)
    rows, conditions = [], {}
    for i in range(6):
        ms = i < 3
        sid = f"D{i}_CSF"
        b = int(rng.integers(30, 40)) if ms else int(rng.integers(2, 6))
        rows.append({"sample_id": sid, "patient_id": f"D{i}", "timepoint": "baseline", "compartment": "CSF",
                     "CD4_T": 900, "naive_B": b, "memory_B": b, "plasma": 5})  # fmt: skip
        conditions[sid] = "MS" if ms else "control"
    counts = pd.DataFrame(rows).set_index("sample_id")
    empty = counts[["patient_id", "timepoint", "compartment"]].iloc[:0]
    m = Measurements(counts=counts, car=empty, ig=empty, programs=pd.DataFrame(), conditions=pd.Series(conditions),
                     lineages=shipped_lineages())  # fmt: skip
    t = claims_table(m, ["M1", "M2"], baseline="baseline", alpha=0.05, min_patients=3).set_index("claim_id")
    assert t.loc["M1", "verdict"] == "reproduced" and t.loc["M1", "n_patients"] == 6
    assert t.loc["M1", "ci_low"] < t.loc["M1", "estimate"] < t.loc["M1", "ci_high"]
    assert t.loc["M2", "verdict"] != "reproduced"  # same plasma counts in both groups
    # Welch against a known case
    s = unpaired_summary([2.0, 3.0, 4.0], [0.0, 1.0, 2.0])
    assert s["estimate"] == pytest.approx(2.0) and s["ci_low"] == pytest.approx(
        2.0 - 2.776445 * np.sqrt(2 / 3), rel=1e-4
    )
    # without a condition column the claims say so
    t = claims_table(
        Measurements(counts=counts, car=empty, ig=empty, programs=pd.DataFrame(), lineages=shipped_lineages()),
        ["M1"],
        baseline="baseline",
        alpha=0.05,
        min_patients=3,
    )
    assert t["verdict"].iloc[0] == "not_testable" and "condition" in t["reason"].iloc[0]


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (["day14", "month3", "week2", "baseline"], ["baseline", "day14", "week2", "month3"]),
        (["m3", "screening", "d14", "baseline"], ["screening", "baseline", "d14", "m3"]),
        (["3mo", "Day 7", "wk2", "pre", "year1"], ["pre", "Day 7", "wk2", "3mo", "year1"]),
        (["d14", "relapse", "baseline"], ["baseline", "d14", "relapse"]),
    ],
)
def test_time_points_are_ordered_by_the_days_they_stand_for(labels, expected):
    from csfcart.timepoints import order_timepoints

    assert order_timepoints(labels) == expected


def test_a_screening_visit_is_not_pooled_as_post_infusion():
    m = _cohort(b_post=4, plasma_post=0, car_post=0.2)
    screening = m.counts[m.counts["timepoint"] == "baseline"].copy()
    screening.index = screening.index.str.replace("baseline", "screening")
    screening["timepoint"] = "screening"
    screening[["naive_B", "memory_B"]] = 0  # were it pooled as post-infusion, C3 would move
    m.counts = pd.concat([m.counts, screening])
    with_screening = _verdicts(m, claims=("C3",))
    assert "screening" not in with_screening.loc["C3", "reason"]
    without = _verdicts(_cohort(b_post=4, plasma_post=0, car_post=0.2), claims=("C3",))
    assert with_screening.loc["C3", "estimate"] == pytest.approx(without.loc["C3", "estimate"])


def test_a_claims_verdict_and_level_do_not_depend_on_the_other_claims_asked_for():
    m = _cohort(b_post=2, plasma_post=0, car_post=0.2, activation_change=-1.0)
    every = applicable_claims(m.counts, None)
    together = claims_table(m, every, baseline="baseline", alpha=0.05, min_patients=3).set_index("claim_id")
    for cid in every:
        alone = claims_table(m, [cid], baseline="baseline", alpha=0.05, min_patients=3).set_index("claim_id")
        assert alone.loc[cid, "verdict"] == together.loc[cid, "verdict"], cid
        assert np.isclose(alone.loc[cid, "level"], together.loc[cid, "level"], equal_nan=True), cid


def test_a_family_stops_at_its_first_claim_that_fails():
    # no CAR-T cells: C1 fails, so C2 and C9 (same family, tested after it) are not reproduced
    m = _cohort(b_post=2, plasma_post=0, car_post=0.0)
    t = claims_table(m, ["C2"], baseline="baseline", alpha=0.05, min_patients=3).set_index("claim_id")
    assert t.loc["C2", "verdict"] != "reproduced"
    assert t.loc["C2", "family"] == "car_t_csf"


def test_a_fall_short_of_the_claimed_size_is_not_a_reproduction():
    # B cells fall by 30 % in every patient, precisely measured: right direction, too small
    m = _cohort(b_post=28, plasma_post=7, car_post=0.2)
    t = _verdicts(m, ("C3", "C4"))
    assert (t["estimate"] < -20).all() and (t["estimate"] > -40).all()
    assert (t["verdict"] == "contradicted").all(), t[["estimate", "ci_high", "other_bound", "p_value"]]


def test_a_patient_without_cells_at_baseline_still_counts():
    from csfcart.stats import rate_ratio

    rows = [("P1", "baseline", 20, 1000), ("P1", "d14", 1, 1000), ("P2", "baseline", 0, 1000), ("P2", "d14", 3, 1000),
            ("P3", "baseline", 0, 1000), ("P3", "d14", 0, 1000)]  # fmt: skip
    frame = pd.DataFrame(rows, columns=["patient_id", "visit", "y", "n"])
    out = rate_ratio(frame, ["d14"], direction=-1, size=-50)
    assert out["n_patients"] == 2 and out["uninformative"] == 1
    # P2's rise pulls the pooled ratio up from P1's own 1/20
    assert out["estimate"] == pytest.approx(100 * (4 / 20 - 1), abs=0.5)


def test_a_rate_that_vanishes_everywhere_has_an_interval_open_towards_minus_100():
    from csfcart.stats import rate_ratio

    rows = [(f"P{i}", v, 10 if v == "baseline" else 0, 900) for i in range(5) for v in ("baseline", "d14", "m3")]
    out = rate_ratio(pd.DataFrame(rows, columns=["patient_id", "visit", "y", "n"]), ["d14", "m3"], direction=-1,
                     size=-50)  # fmt: skip
    assert out["estimate"] == pytest.approx(-100) and out["ci_low"] == -100
    assert -100 < out["ci_high"] < -90 and out["p_value"] < 0.01


def test_sign_flip_p_is_exact():
    from csfcart.stats import one_sided_mean, sign_flip_p

    assert sign_flip_p([1.0, 2.0, 3.0], direction=+1) == pytest.approx(1 / 8)
    assert sign_flip_p([1.0, 2.0, 3.0, 4.0, 5.0], direction=-1) == pytest.approx(1.0)
    # shifted by the claimed size: only the values beyond it count
    assert sign_flip_p([1.0, 2.0, -0.5], direction=+1, size=0.0) == pytest.approx(2 / 8)
    s = one_sided_mean([0.2, 0.3, 0.25, 0.4, 0.35], direction=+1, size=0.01)
    assert s["p_sign_flip"] == pytest.approx(1 / 32) and s["p_value"] == pytest.approx(1 / 32)
    assert s["p_t"] < s["p_value"]  # the more conservative of the two decides


def test_the_graph_passes_a_reproduced_claims_level_on():
    from csfcart.stats import graphical_levels

    # C1 -> C2 (2/3), C9 (1/3); C2 <-> C9: C1 rejected, then C2 at 2/3 alpha, then C9 at alpha
    passes = [[0, 2 / 3, 1 / 3], [0, 0, 1], [0, 1, 0]]
    levels = graphical_levels([0.01, 0.03, 0.04], [1, 0, 0], passes, 0.05)
    assert np.allclose(levels, [0.05, 0.05 * 2 / 3, 0.05])
    # C2 fails: C9 keeps its third
    assert np.allclose(graphical_levels([0.01, 0.2, 0.04], [1, 0, 0], passes, 0.05), [0.05, 0.05 * 2 / 3, 0.05 / 3])
    # C1 fails: nothing passes on
    assert np.allclose(graphical_levels([0.2, 0.001, 0.001], [1, 0, 0], passes, 0.05), [0.05, 0, 0])
    # an untestable gate passes its share on without being rejected
    assert np.allclose(graphical_levels([np.nan, 0.2, 0.001], [1, 0, 0], passes, 0.05), [0, 0.05, 0.05 / 3])
    # a fixed sequence is the graph of a chain
    assert np.allclose(graphical_levels([0.01, 0.02], [1, 0], [[0, 1], [0, 0]], 0.05), [0.05, 0.05])


def test_a_gated_claim_is_not_tested_and_names_its_gate():
    # no CAR-T cells: C1 is not reproduced, so C2 and C9 receive no level at all
    m = _cohort(b_post=2, plasma_post=0, car_post=0.0)
    t = claims_table(m, ["C1", "C2"], baseline="baseline", alpha=0.05, min_patients=3).set_index("claim_id")
    assert t.loc["C1", "verdict"] != "reproduced"
    assert t.loc["C2", "verdict"] == "not_tested" and "comes from C1" in t.loc["C2", "reason"]
    assert t.loc["C2", "level"] == 0


def test_two_patients_never_reproduce_a_claim():
    # 40 -> 1 and 60 -> 2 B cells: a steep fall in both, but two patients cannot carry a claim
    rows = []
    for p, (base, post) in enumerate([(40, 1), (60, 2)]):
        for tp, b in (("baseline", base), ("d14", post)):
            rows.append({"sample_id": f"P{p}_{tp}", "patient_id": f"P{p}", "timepoint": tp, "compartment": "CSF",
                         "CD4_T": 900, "naive_B": b, "memory_B": 0, "plasma": 0})  # fmt: skip
    counts = pd.DataFrame(rows).set_index("sample_id")
    empty = counts[["patient_id", "timepoint", "compartment"]].iloc[:0]
    m = Measurements(counts=counts, car=empty, ig=empty, programs=pd.DataFrame(), lineages=shipped_lineages())
    t = claims_table(m, ["C3"], baseline="baseline", alpha=0.05, min_patients=3).set_index("claim_id")
    assert t.loc["C3", "verdict"] == "not_testable" and "at least 3 needed" in t.loc["C3", "reason"]
    t = claims_table(m, ["C3"], baseline="baseline", alpha=0.05, min_patients=2).set_index("claim_id")
    assert t.loc["C3", "verdict"] == "inconclusive" and t.loc["C3", "bound"] == np.inf
    # no plasma cells at any visit: no informative patient, and no estimate (not an infinite one)
    from csfcart.stats import rate_change

    none = pd.DataFrame({"patient_id": ["P1", "P1"], "visit": ["baseline", "d14"], "y": [0, 0], "n": [100, 100]})
    s = rate_change(none, ["d14"], direction=-1, size=-50)
    assert s["n_patients"] == 0 and s["uninformative"] == 1 and np.isnan(s["estimate"])


@pytest.mark.parametrize("seed", range(6))
def test_a_claim_is_reproduced_exactly_when_its_bound_passes_the_size(seed):
    rng = np.random.default_rng(seed)
    m = _cohort(b_post=float(rng.uniform(5, 30)), plasma_post=float(rng.uniform(1, 8)), car_post=0.2,
                activation_change=float(rng.normal(-0.4, 0.2)), patient_scale=rng.uniform(0.5, 2, 5 + seed % 3), n=5 + seed % 3,
                seed=seed)  # fmt: skip
    t = _verdicts(m, ("C3", "C4", "C6"))
    for cid, row in t.iterrows():
        beyond = row["bound"] < row["size"]  # falls: the upper bound below the claimed size
        assert (row["verdict"] == "reproduced") == beyond, (cid, row[["bound", "size", "verdict"]])
        assert (row["verdict"] == "contradicted") == (not beyond and row["other_bound"] > row["size"])
        assert row["bound_level"] == pytest.approx(0.95)
        # the deciding bound lies within the two-sided 95% interval's side (it is at least as cautious)
        assert row["bound"] >= row["estimate"]


def test_mean_bounds_invert_the_tests_they_come_from():
    from csfcart.stats import mean_bounds, one_sided_mean

    rng = np.random.default_rng(5)
    for n in (5, 8, 12, 16):
        v = rng.normal(-0.8, 0.5, n)
        upper, lower = mean_bounds(v, direction=-1, alpha=0.05)
        assert lower < v.mean() < upper
        # just inside the bound the one-sided test rejects; just outside it does not
        assert one_sided_mean(v, direction=-1, size=upper + 1e-6)["p_value"] <= 0.05
        assert one_sided_mean(v, direction=-1, size=upper - 1e-3)["p_value"] > 0.05


def test_sign_flip_p_is_exact_up_to_16_patients():
    from itertools import product

    from csfcart.stats import sign_flip_p

    rng = np.random.default_rng(2)
    v = rng.normal(0.3, 1.0, 10)
    brute = np.mean([np.mean(np.array(s) * np.abs(v)) >= v.mean() - 1e-12 for s in product([1, -1], repeat=10)])
    assert sign_flip_p(v, direction=+1) == pytest.approx(brute)
    assert sign_flip_p(np.full(16, 1.0), direction=+1) == pytest.approx(2.0**-16)


def test_the_decision_follows_the_mean_patient_not_the_largest():
    # one patient with many cells loses nothing; four smaller ones lose 90 %: the mean patient
    # falls by about 75 %, though a rate pooled over patients barely moves
    scale = np.array([20.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    m = _cohort(b_post=4, plasma_post=1, car_post=0.2, patient_scale=scale, n=6)
    big = m.counts["patient_id"] == "P0"
    m.counts.loc[big & (m.counts["timepoint"] != "baseline"), ["naive_B", "memory_B"]] = 400
    t = _verdicts(m, ("C3",))
    assert t.loc["C3", "estimate"] < -60 and "one rate for all patients (a description): -" in t.loc["C3", "reason"]


def test_arriving_car_t_cells_do_not_count_as_depletion():
    # B and plasma cells unchanged in number; CAR-T cells reach 60 % of T cells after infusion
    m = _cohort(b_post=40, plasma_post=10, car_post=1.4)
    t = _verdicts(m, ("C3", "C4"))
    assert (t["estimate"].abs() < 10).all() and (t["verdict"] == "contradicted").all(), t[["estimate", "reason"]]
    # among all cells (the sensitivity column) the same cohort looks depleted by about half
    assert (t["sensitivity_estimate"] < -40).all()


def test_leave_one_out_names_the_patients_a_verdict_rests_on():
    # six patients: five fall by 1.0 in log2 (beyond the claimed 0.3), P5 by 0.2 only. With
    # all six the claim is reproduced (exact p 2/64); without any one of the five who fall,
    # the four left and P5 give 2/32, above alpha; without P5 it stays reproduced.
    m = _cohort(b_post=40, plasma_post=10, car_post=0.2, activation_change=-1.0, n=6)
    m.programs.loc[(m.programs["patient_id"] == "P5") & (m.programs["timepoint"] != "baseline"), "score"] += 0.8
    t = _verdicts(m, ("C6",))
    assert t.loc["C6", "verdict"] == "reproduced", t.loc["C6", "reason"]
    assert not t.loc["C6", "loo_stable"]
    named = re.search(r"the verdict changes without patient ([^;]*);", t.loc["C6", "reason"]).group(1)
    assert {p.split(" ")[0] for p in named.split(", ")} == {"P0", "P1", "P2", "P3", "P4"}
    # a verdict every patient agrees with keeps its verdict without any of them
    m = _cohort(b_post=40, plasma_post=10, car_post=0.2, activation_change=-1.0, n=7)
    assert bool(_verdicts(m, ("C6",)).loc["C6", "loo_stable"])


def _relabel(m, mapping):
    for name in ("counts", "car", "ig"):
        t = getattr(m, name)
        t["timepoint"] = t["timepoint"].map(lambda x: mapping.get(x, x))
    m.programs["timepoint"] = m.programs["timepoint"].map(lambda x: mapping.get(x, x))
    return m


def test_windows_follow_the_days_of_the_labels_not_their_spelling():
    # blood visits labelled week2 and month3: the first post-infusion visit is week2 (D1),
    # the last one month3 (D3), although "week2" sorts after "month3" by name
    m = _cohort(b_post=2, plasma_post=0, car_post=0.2)
    for name in ("counts", "car", "ig"):
        getattr(m, name)["compartment"] = "blood"
    m.programs["compartment"] = "blood"
    m = _relabel(m, {"d14": "week2", "m3": "month3"})
    t = _verdicts(m, ("D1", "D2", "D3"))
    assert "visits week2 (weighted" in t.loc["D1", "reason"]
    assert "blood visits month3" in t.loc["D2", "reason"]


def test_a_day_column_overrides_what_the_labels_say():
    m = _relabel(_cohort(b_post=2, plasma_post=0, car_post=0.2), {"d14": "visitB", "m3": "visitA"})
    m.days = {"baseline": 0, "visitB": 14, "visitA": 90}
    t = _verdicts(m, ("C2",))
    assert "CSF visitA over visitB" in t.loc["C2", "reason"]
    m.days = {"baseline": 0, "visitB": 90, "visitA": 14}
    assert "CSF visitB over visitA" in _verdicts(m, ("C2",)).loc["C2", "reason"]


def test_label_days_come_from_the_sample_sheet():
    from csfcart.timepoints import label_days

    sheet = pd.DataFrame({"timepoint": ["baseline", "v1", "v1", "v2"], "day": ["-3", "13", "15", ""]})
    assert label_days(sheet) == {"baseline": -3.0, "v1": 14.0}


def test_cells_per_microlitre_give_the_absolute_change_beside_the_share():
    """B cells keep their share of non-CAR cells, but the CSF cell count halves after infusion:
    the share is unchanged, the cells per microlitre fall by half; without the column for one
    sample the reason says which is missing."""
    m = _cohort(b_post=40, plasma_post=10, car_post=0.0)
    cells_per_ul = pd.Series({s: (2.0 if tp == "baseline" else 1.0) for s, tp in m.counts["timepoint"].items()})
    m.cells_per_ul = cells_per_ul
    row = _verdicts(m, ("C3",)).loc["C3"]
    assert row["estimate"] == pytest.approx(0.0, abs=2.0)
    assert row["absolute_estimate"] == pytest.approx(-50.0, abs=2.0)
    assert row["absolute_ci_low"] < row["absolute_estimate"] < row["absolute_ci_high"]
    assert "cells per microlitre" in row["reason"]
    m.cells_per_ul = cells_per_ul.drop("P0_CSF_d14")
    row = _verdicts(m, ("C3",)).loc["C3"]
    assert np.isnan(row["absolute_estimate"]) and "cells_per_ul missing for P0_CSF_d14" in row["reason"]
    m.cells_per_ul = None
    assert np.isnan(_verdicts(m, ("C3",)).loc["C3", "absolute_estimate"])
