"""The claims table: one row per published finding of :mod:`csfcart.registry`, tested
within patient.

Each readout of a claim is measured per patient (a change from that patient's own baseline,
or a CSF-minus-blood difference at matched visits) and its estimand (stated on the readout)
is the mean patient's value, so that patients who respond differently widen the interval
instead of inflating the error:

* counts (cells of a type among non-CAR cells, immunoglobulin UMIs) as each patient's log
  rate ratio (:func:`csfcart.stats.rate_change`), reported as percent change;
* per-patient values (CAR+ fractions, expression readouts, log ratios) as they are.

Both are tested across patients by a one-sided t-test and an exact sign-flip test together
(:func:`csfcart.stats.one_sided_mean`): a claim is **reproduced** exactly when the one-sided
confidence bound of both lies beyond the claimed size (``bound``, at level ``1 - level``),
**contradicted** when the bound on the other side falls short of the size (the data
exclude the claimed size), **inconclusive** otherwise. ``ci_low`` / ``ci_high`` are the
two-sided 95% t interval, a description beside the bound that decides.

A claim with several readouts needs all of them (an intersection-union test). The claims of
a registry family share ``alpha`` by a graphical procedure (:func:`csfcart.stats.graphical_levels`,
weights and passes in the registry): ``level`` is a claim's share; a claim whose share is
still 0 is **not_tested** and names the claim that gates it. A claim with fewer than
``min_patients`` informative patients is **not_testable** and says why. ``loo_stable`` says
whether the verdict survives leaving out any one patient; the reason names a patient that
flips it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from csfcart.keys import CAR_T
from csfcart.registry import CLAIMS, Claim, Readout, families, gates, graph
from csfcart.stats import (
    graphical_levels,
    one_sided_from_two_sided,
    one_sided_mean,
    poisson_upper,
    rate_change,
    rate_ratio,
    unpaired_summary,
)
from csfcart.timepoints import days_since_infusion, is_pre_infusion, order_timepoints

COLUMNS = ["claim_id", "statement", "metric", "scale", "size", "estimate", "bound", "bound_level", "other_bound",
           "ci_low", "ci_high", "p_value", "p_sign_flip", "level", "family", "n_patients", "patients_consistent",
           "verdict", "loo_stable", "reason", "sensitivity_estimate", "sensitivity_ci_low", "sensitivity_ci_high",
           "absolute_estimate", "absolute_ci_low", "absolute_ci_high", "post_fraction_upper"]  # fmt: skip
#: the verdicts a claim can get, in the order the report lists them
VERDICTS = ("reproduced", "contradicted", "inconclusive", "not_tested", "not_testable")
PATIENT_COLUMNS = ["claim_id", "readout", "patient_id", "timepoint", "quantity", "base_label", "base", "post_label",
                   "post", "value", "condition"]  # fmt: skip
META = ("patient_id", "timepoint", "compartment")


@dataclass
class Measurements:
    """The per-sample tables of :mod:`csfcart.measure`."""

    counts: pd.DataFrame  # sample -> meta + cells per type
    car: pd.DataFrame  # sample -> meta + car_fraction
    ig: pd.DataFrame  # sample -> meta + asc_ig_per_1000_umis
    programs: pd.DataFrame  # long: sample, group, program, score
    lineages: dict[str, str]  # cell type -> lineage (the marker table's): the claims' groups
    communication: pd.DataFrame | None = None  # sample -> meta + b_microglia, microglia_inflammatory
    conditions: pd.Series | None = None  # sample -> condition (unpaired designs, e.g. MS / control)
    reference_condition: str = "control"
    days: dict[str, float] | None = None  # time-point label -> days since infusion (sample sheet's `day`)
    cells_per_ul: pd.Series | None = None  # sample -> cells per microlitre (sample sheet's `cells_per_ul`)
    interactions: pd.DataFrame | None = (
        None  # long: sample, sender, receiver, ligand, receptor, log2 CPM (measure.lr_expression)
    )

    def __post_init__(self):
        # patient, time point and compartment as plain strings, whatever the reader made of them
        for name in ("counts", "car", "ig", "programs", "communication", "interactions"):
            table = getattr(self, name)
            if table is not None and not table.empty:
                cols = [c for c in META if c in table]
                setattr(self, name, table.astype(dict.fromkeys(cols, str)))


@dataclass
class Measured:
    """One readout measured on a cohort."""

    values: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))  # per patient
    visits: pd.DataFrame | None = None  # per patient and visit: base, post, value
    note: str = ""
    summary: dict | None = None  # set by measures that test themselves (count models)
    extra: dict = field(default_factory=dict)  # sensitivity and bounds


# -- visits ----------------------------------------------------------------------------------


def post_visits(table: pd.DataFrame, compartment: str, baseline: str, days: dict | None = None) -> list[str]:
    """Post-infusion visits of a compartment in clinical order: a screening or other
    pre-infusion visit is never among them."""
    tps = table.loc[table["compartment"] == compartment, "timepoint"].unique().tolist()
    return [t for t in order_timepoints(tps, days) if t != baseline and not is_pre_infusion(t, days)]


def _window(r: Readout, post: list[str], days: dict | None = None) -> list[str]:
    return r.visits(post, lambda t: days_since_infusion(t, days))


def _visit_rows(t: pd.DataFrame, value: pd.Series, baseline: str, visits: list[str]) -> pd.DataFrame:
    """Per patient and post visit: baseline value, value at the visit and their difference."""
    t = t.assign(value=value)
    base = t[t["timepoint"] == baseline].groupby("patient_id")["value"].mean()
    post = t[t["timepoint"].isin(visits)].groupby(["patient_id", "timepoint"])["value"].mean().reset_index()
    post["base"] = post["patient_id"].map(base)
    post = post.dropna(subset=["base", "value"]).rename(columns={"value": "post"})
    post["value"] = post["post"] - post["base"]
    return post[["patient_id", "timepoint", "base", "post", "value"]]


def _paired(table: pd.DataFrame, value: pd.Series, r: Readout, m: Measurements, baseline: str) -> Measured:
    """Per patient: mean over the window's visits of the change from baseline (visits weighted
    equally)."""
    t = table[table["compartment"] == r.compartment]
    post = post_visits(m.counts, r.compartment, baseline, m.days)
    if not post:
        return Measured(note=f"no {r.compartment} samples after {baseline}")
    tps = _window(r, post, m.days)
    rows = _visit_rows(t, value.reindex(t.index), baseline, tps)
    values = rows.groupby("patient_id")["value"].mean()
    return Measured(values=values, visits=rows, note=f"{r.compartment} visits {', '.join(tps)}")


# -- measures --------------------------------------------------------------------------------


def _types(counts: pd.DataFrame, types) -> tuple[pd.Series, pd.Series]:
    """Per sample: cells of ``types`` and all cells."""
    cell_cols = [c for c in counts.columns if c not in META]
    return counts.reindex(columns=list(types), fill_value=0).sum(axis=1), counts[cell_cols].sum(axis=1)


def _count_model(table: pd.DataFrame, y: pd.Series, n: pd.Series, r: Readout, m: Measurements, baseline: str,
                 *, sensitivity_n: pd.Series | None = None, volume: pd.Series | None = None) -> Measured:  # fmt: skip
    t = table[table["compartment"] == r.compartment]
    post = post_visits(t, r.compartment, baseline, m.days)
    if not post:
        return Measured(note=f"no {r.compartment} samples after {baseline}")
    tps = _window(r, post, m.days)
    frame = pd.DataFrame({"patient_id": t["patient_id"], "timepoint": t["timepoint"], "y": y.reindex(t.index),
                          "n": n.reindex(t.index)})  # fmt: skip
    frame = frame[frame["timepoint"].isin([baseline, *tps])]
    frame["visit"] = frame["timepoint"].where(frame["timepoint"] != baseline, "baseline")
    summary = rate_change(frame, tps, direction=r.direction, size=r.size)
    # each patient's own change (shown per patient; the test is on the patients' log rate ratios)
    rate = frame.assign(rate=frame["y"] / frame["n"].where(frame["n"] > 0))
    rows = _visit_rows(rate, rate["rate"], baseline, tps)
    rows["value"] = 100 * (rows["post"] / rows["base"].where(rows["base"] > 0) - 1)
    values = summary.pop("patient_values")
    post_rows = frame[frame["timepoint"].isin(tps)]
    extra = {"post_fraction_upper": poisson_upper(post_rows["y"].sum(), post_rows["n"].sum())}
    if sensitivity_n is not None:
        s = rate_change(frame.assign(n=sensitivity_n.reindex(frame.index)), tps, direction=r.direction, size=r.size)
        extra.update(
            sensitivity_estimate=s["estimate"], sensitivity_ci_low=s["ci_low"], sensitivity_ci_high=s["ci_high"]
        )
    note = f"{r.compartment} visits {', '.join(tps)} (weighted equally)"
    if volume is not None:
        # cells per microlitre: the same cells over the microlitres of CSF they stand for
        ul = volume.reindex(frame.index)
        if ul.notna().all() and (ul > 0).all():
            a = rate_change(frame.assign(n=ul), tps, direction=r.direction, size=r.size)
            extra.update(absolute_estimate=a["estimate"], absolute_ci_low=a["ci_low"], absolute_ci_high=a["ci_high"])
            note += f"; cells per microlitre {a['estimate']:+.3g}% (95% CI {a['ci_low']:+.3g} to {a['ci_high']:+.3g})"
        else:
            missing = sorted(set(frame.index[ul.isna() | ~(ul > 0)]))
            note += f"; no absolute count: cells_per_ul missing for {', '.join(missing[:3])}" + (
                " ..." if len(missing) > 3 else ""
            )
    pooled = rate_ratio(frame, tps, direction=r.direction, size=r.size)
    if summary["uninformative"]:
        note += f"; {summary['uninformative']} patient(s) with none at any visit carry no information"
    if np.isfinite(pooled["estimate"]):
        note += f"; one rate for all patients (a description): {pooled['estimate']:+.3g}%"
    return Measured(values=values, visits=rows, note=note, summary=summary, extra=extra)


def depletion(r: Readout, m: Measurements, baseline: str) -> Measured:
    """Cells of the readout's types among the sample's cells other than CAR-T cells, so that
    CAR-T cells arriving cannot make a type look depleted by dilution; beside it (the
    sensitivity columns) the same among all cells, and, where the sample sheet gives each
    sample's cells per microlitre, the change of the types' cells per microlitre (the
    absolute columns: the sample's share of the types times its cell count)."""
    num, den = _types(m.counts, r.types(m.lineages))
    # the microlitres of CSF a sample's cells stand for: its cells over its cells per microlitre
    volume = den / m.cells_per_ul.reindex(den.index) if m.cells_per_ul is not None else None
    if CAR_T not in m.counts:
        return _count_model(m.counts, num, den, r, m, baseline, volume=volume)
    return _count_model(m.counts, num, den - m.counts[CAR_T], r, m, baseline, sensitivity_n=den, volume=volume)


def ig_depletion(r: Readout, m: Measurements, baseline: str) -> Measured:
    """Ig UMIs of antibody-secreting cells per UMI of the sample's cells other than CAR-T
    cells, counted in cell equivalents (UMIs divided by the cohort's median Ig UMIs per
    antibody-secreting cell), so that the half-event continuity of a patient's ratio is half
    a cell's worth of Ig rather than half a UMI."""
    ig = m.ig
    per_cell = (ig["asc_ig_umis"] / ig["asc_cells"].where(ig["asc_cells"] > 0)).median()
    unit = float(per_cell) if np.isfinite(per_cell) and per_cell > 0 else 1.0
    # UMIs of cells other than CAR-T cells: arriving CAR-T cells cannot dilute the readout
    den = ig["non_car_umis"] if "non_car_umis" in ig else ig["total_umis"]
    out = _count_model(ig, ig["asc_ig_umis"] / unit, den / unit, r, m, baseline)
    out.extra.pop("post_fraction_upper", None)
    return out


def car_change(r: Readout, m: Measurements, baseline: str) -> Measured:
    return _paired(m.car, m.car["car_fraction"], r, m, baseline)


def _car_log_fraction(car: pd.DataFrame) -> pd.Series:
    """log2 CAR+ fraction of T cells (corrected for the soup), with half a cell of continuity."""
    return np.log2((car["car_fraction"].fillna(0.0) * car["t_cells"] + 0.5) / (car["t_cells"] + 0.5))


def car_persistence(r: Readout, m: Measurements, baseline: str) -> Measured:
    """log2 ratio of the CAR+ fraction at the last visit over the first post-infusion visit."""
    t = m.car[m.car["compartment"] == r.compartment]
    post = post_visits(t, r.compartment, baseline, m.days)
    if len(post) < 2:
        return Measured(note=f"{len(post)} {r.compartment} visit(s) after infusion: persistence needs two")
    first, last = post[0], post[-1]
    value = _car_log_fraction(t)
    rows = _visit_rows(t, value, first, [last])
    return Measured(values=rows.set_index("patient_id")["value"], visits=rows,
                    note=f"{r.compartment} {last} over {first}")  # fmt: skip


def _matched(table: pd.DataFrame, value: pd.Series, post: list[str]) -> pd.DataFrame:
    """Per patient and post visit with both compartments: blood value, CSF value, CSF minus blood."""
    t = table.assign(value=value)
    t = t[t["timepoint"].isin(post)]
    wide = t.pivot_table(index=["patient_id", "timepoint"], columns="compartment", values="value")
    if not {"CSF", "blood"} <= set(wide.columns):
        return pd.DataFrame(columns=["patient_id", "timepoint", "base", "post", "value"])
    wide = wide[["blood", "CSF"]].dropna().rename(columns={"blood": "base", "CSF": "post"})
    wide["value"] = wide["post"] - wide["base"]
    return wide.reset_index()


def car_csf_over_blood(r: Readout, m: Measurements, baseline: str) -> Measured:
    post = post_visits(m.car, "CSF", baseline, m.days)
    rows = _matched(m.car, _car_log_fraction(m.car), post)
    if rows.empty:
        return Measured(note="no post-infusion visit with both CSF and blood")
    return Measured(values=rows.groupby("patient_id")["value"].mean(), visits=rows,
                    note="matched visits " + ", ".join(sorted(set(rows["timepoint"]), key=post.index)))  # fmt: skip


def _program(m: Measurements, group: str, program: str) -> pd.DataFrame:
    p = m.programs
    if p.empty:
        return pd.DataFrame(columns=[*META, "score"])
    p = p[(p["group"] == group) & (p["program"] == program)]
    return p.set_index("sample_id")[[*META, "score"]]


def program_change(r: Readout, m: Measurements, baseline: str) -> Measured:
    p = _program(m, r.group, r.program)
    out = _paired(p, p["score"], r, m, baseline)
    out.note = f"{r.group} cells, {out.note}"
    return out


def exhaustion_did(r: Readout, m: Measurements, baseline: str) -> Measured:
    """Exhaustion of CAR-T minus non-CAR CD8 T cells of the same sample, CSF minus blood:
    what every T cell shows between CSF and blood cancels."""
    car, cd8 = _program(m, "CAR_T", r.program), _program(m, "CD8_T", r.program)
    both = car.join(cd8["score"].rename("cd8"), how="inner")
    post = post_visits(m.counts, "CSF", baseline, m.days)
    rows = _matched(both, both["score"] - both["cd8"], post)
    if rows.empty:
        return Measured(note="CAR-T and CD8 T cells not scored in both CSF and blood at a post-infusion visit")
    return Measured(values=rows.groupby("patient_id")["value"].mean(), visits=rows,
                    note="matched visits " + ", ".join(sorted(set(rows["timepoint"]), key=post.index)))  # fmt: skip


#: a ligand or receptor counts as expressed by a cell type when this share of its cells detect it
EXPRESSED = 0.1


def expressed_pairs(t: pd.DataFrame) -> pd.DataFrame:
    """The ligand-receptor and sender-receiver pairs of ``t`` (rows of
    :func:`csfcart.measure.lr_expression`) whose ligand and receptor are each detected in at
    least :data:`EXPRESSED` of their cells, pooled over every patient and visit of ``t`` (each
    sample weighted by its cells). Chosen on pooled expression, the pairs do not depend on
    one patient's baseline, whose noise would otherwise select pairs that happen to be high
    there and make them seem to fall."""
    key = ["sender", "receiver", "ligand", "receptor"]
    cells = t.assign(
        ligand_cells=t["ligand_detected"] * t["sender_cells"],
        receptor_cells=t["receptor_detected"] * t["receiver_cells"],
    )
    pooled = cells.groupby(key)[["ligand_cells", "receptor_cells", "sender_cells", "receiver_cells"]].sum()
    on = (pooled["ligand_cells"] >= EXPRESSED * pooled["sender_cells"]) & (
        pooled["receptor_cells"] >= EXPRESSED * pooled["receiver_cells"]
    )
    return pooled[on & (pooled["sender_cells"] > 0)].reset_index()[key]


def lr_strength(r: Readout, m: Measurements, baseline: str) -> Measured:
    """Within patient, change of ligand-receptor expression of the axis ``r.program`` (config
    ``interactions``): per pair and sender-receiver pair expressed pooled over the cohort's
    patients and visits (:func:`expressed_pairs`), half the summed log2 CPM change of the
    ligand in the sender and the receptor in the receiver, averaged over pairs per visit and
    over visits. A visit where a partner is absent has no value (never 0): what is lost only
    because a cell type vanished is not counted here."""
    if m.interactions is None or m.interactions.empty:
        return Measured(note="ligand-receptor expression was not measured")
    t = m.interactions
    t = t[(t["compartment"] == r.compartment) & (t["axis"] == r.program)]
    post = post_visits(m.counts, r.compartment, baseline, m.days)
    tps = _window(r, post, m.days)
    key = ["patient_id", "sender", "receiver", "ligand", "receptor"]
    t = t.merge(expressed_pairs(t), on=key[1:])
    t = t.assign(strength=0.5 * (t["ligand_lcpm"] + t["receptor_lcpm"]))
    base = t.loc[t["timepoint"] == baseline, [*key, "strength"]]
    after = t.loc[t["timepoint"].isin(tps), [*key, "timepoint", "strength"]]
    joined = after.merge(base, on=key, suffixes=("", "_base"))
    if joined.empty:
        return Measured(note="no visit after baseline with both partners present at it and at baseline")
    rows = (
        joined.groupby(["patient_id", "timepoint"])
        .agg(base=("strength_base", "mean"), post=("strength", "mean"), pairs=("strength", "size"))
        .reset_index()
    )
    rows["value"] = rows["post"] - rows["base"]
    values = rows.groupby("patient_id")["value"].mean()
    visits = ", ".join(sorted(set(rows["timepoint"]), key=post.index))
    note = f"{r.compartment} visits {visits} with both partners; {int(rows['pairs'].median())} pairs per visit (median)"
    return Measured(values=values, visits=rows.drop(columns="pairs"), note=note)


def liana_axis_note(m: Measurements, baseline: str) -> str:
    """The LIANA score of the B-lineage <-> microglia-like axis (0 where B cells are gone):
    shown beside C7, never deciding it, since it also falls when B cells merely vanish."""
    if m.communication is None or "b_microglia" not in m.communication:
        return ""
    com = m.communication
    r = Readout("liana", "", "", -1, 0.0, "lr_score")
    s = one_sided_mean(_paired(com, com["b_microglia"], r, m, baseline).values.to_numpy(), direction=-1)
    if not np.isfinite(s["ci_low"]):
        return ""
    return (f"LIANA score of the axis (0 where B cells are gone; includes loss by absence, a consequence of C3/C4) "
            f"changed by {s['estimate']:+.3f} (95% CI {s['ci_low']:+.3f} to {s['ci_high']:+.3f})")  # fmt: skip


def naive_odds(r: Readout, m: Measurements, baseline: str) -> Measured:
    counts = m.counts
    naive = counts.reindex(columns=["naive_B"], fill_value=0).sum(axis=1)
    memory = counts.reindex(columns=[t for t in r.types(m.lineages) if t != "naive_B"], fill_value=0).sum(axis=1)
    # odds of naive among B cells, continuity-corrected by half a cell
    return _paired(counts, np.log2((naive + 0.5) / (memory + 0.5)), r, m, baseline)


def condition_fraction(r: Readout, m: Measurements, baseline: str) -> Measured:
    """Per donor (samples of the compartment pooled): log2 fraction; conditions compared."""
    if m.conditions is None or not len(m.conditions):
        return Measured(note="no 'condition' column in the sample sheet")
    counts = m.counts[m.counts["compartment"] == r.compartment]
    num, den = _types(counts, r.types(m.lineages))
    per = pd.DataFrame({"num": num, "den": den, "patient_id": counts["patient_id"]})
    per["condition"] = m.conditions.reindex(per.index).astype(str)
    donors = per.groupby(["patient_id", "condition"])[["num", "den"]].sum().reset_index("condition")
    # half a cell of continuity, so that a donor without any keeps a finite value
    donors["value"] = np.log2((donors["num"] + 0.5) / (donors["den"] + 0.5))
    groups = sorted(set(donors["condition"]) - {m.reference_condition})
    ref = donors["condition"] == m.reference_condition
    s = unpaired_summary(donors.loc[~ref, "value"].to_numpy(), donors.loc[ref, "value"].to_numpy(),
                         direction=r.direction)  # fmt: skip
    s["p_value"] = one_sided_from_two_sided(s["p_value"], s["estimate"], direction=r.direction, size=r.size)
    visits = donors.rename_axis("patient_id").reset_index()
    note = f"{', '.join(groups) or 'no other condition'} vs {m.reference_condition} donors"
    return Measured(values=donors["value"], visits=visits, note=note, summary=s)


_MEASURE_FUNCTIONS = (depletion, ig_depletion, car_change, car_persistence, car_csf_over_blood, program_change,
                      exhaustion_did, lr_strength, naive_odds, condition_fraction)  # fmt: skip
#: measure name of the registry -> the function that measures it
MEASURES: dict[str, Callable[[Readout, Measurements, str], Measured]] = {f.__name__: f for f in _MEASURE_FUNCTIONS}


# -- the table -------------------------------------------------------------------------------


def _missing(c: Claim, comps: set[str]) -> str | None:
    need = [x for r in c.readouts if not r.optional for x in (r.compartment, *r.needs) if x not in comps]
    return f"no {need[0]} samples" if need else None


def _test(r: Readout, measured: Measured) -> dict:
    s = measured.summary or one_sided_mean(measured.values.to_numpy(), direction=r.direction, size=r.size)
    return {"p_sign_flip": np.nan, **s}


def _smallest_p(s: dict) -> float:
    """The smallest one-sided p a readout's test can give with its patients, whatever the data.

    An exact sign-flip test on n patients cannot go below 2**-n, and ``p_value`` is never
    below the sign-flip p (:func:`csfcart.stats.one_sided_mean`); other tests have no floor."""
    return 2.0 ** -s["n_patients"] if np.isfinite(s.get("p_sign_flip", np.nan)) else 0.0


def _fmt_bound(x: float) -> str:
    return f"{x:+.3g}" if np.isfinite(x) else ("-inf" if x < 0 else "+inf")


def score_claim(c: Claim, m: Measurements, baseline: str, alpha: float, min_patients: int) -> dict:
    """One row of the claims table, before its family's procedure sets its level and verdict.

    The row keeps the tested readouts and their summaries (``_tested``) for the verdict. An
    optional readout is skipped, and said, when fewer than ``min_patients`` patients carry it
    or when its test cannot reach ``alpha`` with the patients it has (4 patients: an exact
    test's smallest p is 1/16): such a readout would veto the claim whatever the data show."""
    row = {"claim_id": c.id, "statement": c.statement, "metric": c.metric, "scale": c.scale, "size": c.size,
           "family": c.family, "n_patients": 0, "patients_consistent": 0, "_tested": []}  # fmt: skip
    missing = _missing(c, set(m.counts["compartment"]))
    if missing:
        return {**row, "verdict": "not_testable", "reason": missing}
    parts, p_values = [], []
    for k, r in enumerate(c.readouts):
        measured = MEASURES[r.measure](r, m, baseline)
        s = _test(r, measured)
        enough = s["n_patients"] >= min_patients and np.isfinite(s.get("p_value", np.nan))
        unit = "donors" if c.design == "unpaired" else "patients"
        if k == 0:
            row.update({key: s.get(key, np.nan) for key in ("estimate", "ci_low", "ci_high", "p_value",
                        "p_sign_flip", "n_patients", "patients_consistent")}, **measured.extra)  # fmt: skip
            if not enough:
                return {**row, "verdict": "not_testable",
                        "reason": f"{s['n_patients']} {unit} with data ({measured.note}); at least {min_patients} "
                                  "needed (analysis.min_patients)"}  # fmt: skip
            parts.append(f"{measured.note}; {s['patients_consistent']}/{s['n_patients']} {unit} beyond the "
                         f"claimed size; one-sided p = {s['p_value']:.3g} against {r.size:+g} ({r.scale})")  # fmt: skip
            if _smallest_p(s) >= alpha:
                parts.append(f"with {s['n_patients']} patients the exact test's smallest possible "
                             f"p is {_smallest_p(s):.3g}, not below alpha = {alpha:g}")  # fmt: skip
            failed = False
            if r.baseline_below is not None and measured.visits is not None and len(measured.visits):
                base = float(measured.visits.groupby("patient_id")["base"].first().mean())
                parts.append(f"baseline {base:.3f}")
                if base >= r.baseline_below:
                    failed = True
                    parts.append(f"signal before infusion (at least {r.baseline_below})")
            if "post_fraction_upper" in measured.extra and np.isfinite(measured.extra["post_fraction_upper"]):
                parts.append(f"post-infusion fraction at most {measured.extra['post_fraction_upper']:.2%} (95% bound)")
            p_values.append(1.0 if failed else s["p_value"])
            row["_tested"].append((r, s, failed))
            continue
        if r.optional and enough and _smallest_p(s) >= alpha:
            parts.append(f"{r.name} not tested: {s['estimate']:+.3g} (95% CI {s['ci_low']:+.3g} to "
                         f"{s['ci_high']:+.3g}) on {s['n_patients']} patients, whose exact test's smallest possible "
                         f"p is {_smallest_p(s):.3g}, not below alpha = {alpha:g} ({measured.note})")  # fmt: skip
            continue
        if not enough:
            if r.optional:
                parts.append(f"{r.name} not tested ({measured.note})")
                continue
            return {**row, "verdict": "not_testable",
                    "reason": f"{r.name}: {measured.note}; at least {min_patients} patients needed"}  # fmt: skip
        parts.append(f"{r.name}: {s['estimate']:+.3g} (95% CI {s['ci_low']:+.3g} to {s['ci_high']:+.3g}), "
                     f"one-sided p = {s['p_value']:.3g} against {r.size:+g} ({measured.note})")  # fmt: skip
        p_values.append(s["p_value"])
        row["_tested"].append((r, s, False))
    if any(r.measure == "lr_strength" for r in c.readouts) and (note := liana_axis_note(m, baseline)):
        parts.append(note)
    row["p_value"] = float(max(p_values))  # every readout is needed: intersection-union test
    row["reason"] = "; ".join(parts)
    return row


def _decide(row: dict, level: float, gates: list[str]) -> None:
    """Set a testable row's verdict from its readouts' one-sided bounds at ``level``."""
    if level <= 0:
        row["verdict"] = "not_tested"
        row["reason"] = (f"not tested: its share of alpha comes from {' or '.join(gates)}, not reproduced; "
                         f"{row['reason']}")  # fmt: skip
        return
    beyond, short, said = [], [], []
    for k, (r, s, failed) in enumerate(row["_tested"]):
        deciding, other = s["bounds"](level)
        if k == 0:
            row.update(bound=deciding, other_bound=other, bound_level=1 - level)
        beyond.append(not failed and r.direction * (deciding - r.size) > 0)
        short.append(r.direction * (other - r.size) < 0)
        side = "upper" if r.direction < 0 else "lower"
        said.append(f"{r.name}: one-sided {100 * (1 - level):.4g}% {side} bound {_fmt_bound(deciding)} "
                    f"against {r.size:+g}")  # fmt: skip
    if all(beyond):
        row["verdict"] = "reproduced"
    elif any(short):
        row["verdict"] = "contradicted"
        said.append("the data exclude the claimed size")
    else:
        row["verdict"] = "inconclusive"
    row["reason"] = f"{'; '.join(said)}; {row['reason']}"


def _verdicts(m: Measurements, claim_ids: list[str], baseline: str, alpha: float, min_patients: int) -> dict:
    rows = {cid: score_claim(CLAIMS[cid], m, baseline, alpha, min_patients) for cid in families(claim_ids)}
    for fam in dict.fromkeys(CLAIMS[c].family for c in rows):
        members = [c for c in rows if CLAIMS[c].family == fam]
        p = [rows[c]["p_value"] if rows[c].get("verdict") != "not_testable" else np.nan for c in members]
        levels = graphical_levels(p, *graph(members), alpha)
        for cid, level in zip(members, levels, strict=True):
            row = rows[cid]
            if row.get("verdict") == "not_testable":
                continue
            row["level"] = level
            _decide(row, level, gates(cid))
    return rows


def _without(m: Measurements, patient: str) -> Measurements:
    """The measurements without one patient's samples."""
    kept = {}
    for name in ("counts", "car", "ig", "programs", "communication", "interactions"):
        table = getattr(m, name)
        kept[name] = table if table is None or "patient_id" not in table else table[table["patient_id"] != patient]
    conditions = m.conditions
    if conditions is not None:
        conditions = conditions[conditions.index.isin(kept["counts"].index)]
    return replace(m, **kept, conditions=conditions)


def claims_table(m: Measurements, claim_ids: list[str], *, baseline: str, alpha: float, min_patients: int,
                 leave_one_out: bool = True) -> pd.DataFrame:  # fmt: skip
    """Score ``claim_ids`` on the measurements; one row per claim (see module docstring).

    The other claims of their families are scored too (they gate them), so a claim's
    verdict and level never depend on which other claims were asked for. With
    ``leave_one_out`` every verdict is recomputed without each patient in turn."""
    rows = _verdicts(m, claim_ids, baseline, alpha, min_patients)
    if leave_one_out:
        patients = sorted(set(m.counts["patient_id"]))
        flips: dict[str, list[str]] = {cid: [] for cid in rows}
        for patient in patients if len(patients) > 1 else []:
            other = _verdicts(_without(m, patient), claim_ids, baseline, alpha, min_patients)
            for cid, row in rows.items():
                if other[cid]["verdict"] != row["verdict"]:
                    flips[cid].append(f"{patient} ({other[cid]['verdict'].replace('_', ' ')})")
        for cid, row in rows.items():
            if len(patients) > 1 and row["verdict"] != "not_testable":
                row["loo_stable"] = not flips[cid]
                if len(flips[cid]) == len(patients):
                    row["reason"] = (
                        f"the verdict changes without any one of the {len(patients)} patients; {row['reason']}"
                    )
                elif flips[cid]:
                    row["reason"] = f"the verdict changes without patient {', '.join(flips[cid])}; {row['reason']}"
    out = []
    for cid in claim_ids:
        if cid in rows:
            out.append({k: v for k, v in rows[cid].items() if not k.startswith("_")})
        else:
            out.append({"claim_id": cid, "statement": cid, "metric": "", "n_patients": 0, "patients_consistent": 0,
                        "verdict": "not_testable", "reason": "unknown claim"})  # fmt: skip
    table = pd.DataFrame(out).reindex(columns=COLUMNS)
    table["loo_stable"] = table["loo_stable"].astype("boolean")
    return table


def claim_patients(m: Measurements, claim_ids: list[str], *, baseline: str) -> pd.DataFrame:
    """Long table behind the claims: per claim, readout, patient and visit the two values
    compared and their difference (or percent change); ``timepoint`` ``window`` holds the
    patient's value over the claim's window (visits weighted equally)."""
    frames = []
    comps = set(m.counts["compartment"])
    for cid in claim_ids:
        c = CLAIMS.get(cid)
        if c is None or _missing(c, comps):
            continue
        for r in c.readouts:
            measured = MEASURES[r.measure](r, m, baseline)
            if not len(measured.values):
                continue
            labels = {"claim_id": cid, "readout": r.name, "quantity": r.quantity, "base_label": r.labels[0],
                      "post_label": r.labels[1]}  # fmt: skip
            if c.design == "unpaired":
                frames.append(measured.visits.assign(timepoint="window", **labels))
                continue
            visits = measured.visits.assign(**labels)
            window = visits.groupby("patient_id").agg(base=("base", "first"), post=("post", "mean"))
            window["value"] = measured.values
            window = window.reset_index().assign(timepoint="window", **labels)
            frames.append(pd.concat([visits, window], ignore_index=True))
    if not frames:
        return pd.DataFrame(columns=PATIENT_COLUMNS)
    return pd.concat(frames, ignore_index=True).reindex(columns=PATIENT_COLUMNS)


def applicable_claims(counts: pd.DataFrame, requested: list[str] | None) -> list[str]:
    """The claims to score: those requested, else every paired claim whose compartments exist."""
    if requested:
        return list(requested)
    comps = set(counts["compartment"])
    return [cid for cid, c in CLAIMS.items() if c.design == "paired" and not _missing(c, comps)]


def score_against_truth(claims: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Join the truth (true_effect, expected_verdict) and say whether each CI covers it."""
    cols = ["claim_id", "true_effect", "expected_verdict", *(["scale"] if "scale" in truth else [])]
    out = claims.merge(truth[cols].rename(columns={"scale": "truth_scale"}), on="claim_id", how="left")
    covers = (out["ci_low"] <= out["true_effect"]) & (out["true_effect"] <= out["ci_high"])
    # no interval (not testable): no statement about coverage
    out["ci_covers_truth"] = covers.astype("boolean").where(out["ci_low"].notna() & out["ci_high"].notna(), pd.NA)
    # the deciding bound covers the truth when the truth lies on its far side from the claim
    direction = out["claim_id"].map(lambda c: CLAIMS[c].direction if c in CLAIMS else np.nan).astype(float)
    beyond = direction * (out["true_effect"] - out["bound"].astype(float)) >= 0
    out["bound_covers_truth"] = beyond.astype("boolean").where(out["bound"].notna() & out["true_effect"].notna(), pd.NA)
    if "truth_scale" in out:
        # a truth on another scale than the estimate says nothing about the interval's coverage
        same = out["truth_scale"] == out["claim_id"].map(lambda c: CLAIMS[c].scale if c in CLAIMS else None)
        for col in ("ci_covers_truth", "bound_covers_truth"):
            out[col] = out[col].astype("boolean").where(same.to_numpy(), pd.NA)
        out = out.drop(columns="truth_scale")
    # a claim the truth says does not hold is matched by any verdict but reproduced
    out["verdict_matches"] = (out["verdict"] == "reproduced") == (out["expected_verdict"] == "reproduced")
    return out


__all__ = [
    "CLAIMS",
    "COLUMNS",
    "MEASURES",
    "VERDICTS",
    "Measurements",
    "applicable_claims",
    "claim_patients",
    "claims_table",
    "post_visits",
    "score_against_truth",
]
