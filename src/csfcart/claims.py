"""The claims table: one row per published finding, tested within patient.

Each claim reduces to one value per patient (a change from that patient's own baseline, or
a CSF-minus-blood difference at matched time points), summarised by
:func:`csfcart.stats.paired_summary`; p-values are Benjamini-Hochberg adjusted over the
claims of the table. A claim is ``reproduced`` when its adjusted p-value is below ``alpha``,
the estimate points in the claimed direction and reaches the claimed size (for depletion
claims a fall of at least 50 % from baseline); ``not_testable`` when fewer than two
patients carry the data it needs (the reason says which).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from csfcart.measure import B_CELL_TYPES, T_CELL_TYPES
from csfcart.stats import bh, paired_summary, unpaired_summary
from csfcart.timepoints import is_pre_infusion, order_timepoints

COLUMNS = ["claim_id", "statement", "metric", "estimate", "ci_low", "ci_high", "p_value", "p_adjusted",
           "n_patients", "patients_consistent", "verdict", "reason"]  # fmt: skip


@dataclass(frozen=True)
class Claim:
    statement: str
    metric: str
    direction: int
    compartment: str
    min_estimate: float | None = None  # the claimed size: direction * estimate must reach direction * this
    design: str = "paired"  # or "unpaired": a condition against the reference condition, donors as the unit
    scale: str = "log2"  # of the estimate; a truth on another scale is not compared with its CI


CLAIMS: dict[str, Claim] = {
    "C1": Claim(
        "CAR-T cells reach the CSF",
        "CAR+ fraction of CSF T cells after infusion (change from baseline)",
        +1,
        "CSF",
        min_estimate=0.01,
        scale="fraction",
    ),
    "C2": Claim(
        "CAR-T cells expand and persist in CSF",
        "CAR+ fraction of T cells at the last time point, CSF minus blood (CSF alone without blood)",
        +1,
        "CSF",
        min_estimate=0.005,
        scale="fraction",
    ),
    "C3": Claim(
        "B-cell lineages are eliminated in CSF",
        "percent change from baseline of the B-cell fraction of CSF cells",
        -1,
        "CSF",
        min_estimate=-50.0,
        scale="percent",
    ),
    "C4": Claim(
        "plasmablasts / plasma cells are depleted",
        "percent change from baseline of the plasma-cell fraction of CSF cells",
        -1,
        "CSF",
        min_estimate=-50.0,
        scale="percent",
    ),
    "C5": Claim(
        "intrathecal immunoglobulin production halts",
        "percent change from baseline of Ig UMIs of antibody-secreting cells per CSF UMI",
        -1,
        "CSF",
        min_estimate=-50.0,
        scale="percent",
    ),
    "C6": Claim(
        "microglial activation is attenuated",
        "change in the activation program of microglia-like cells (log2 CPM)",
        -1,
        "CSF",
    ),
    "C7": Claim(
        "B cell / microglia-like cell interactions are reduced",
        "change in the mean LIANA score of B-lineage <-> microglia-like interactions (0 when B cells are gone)",
        -1,
        "CSF",
        scale="lr_score",
    ),
    "C8": Claim(
        "inflammatory cytokines in CSF fall",
        "change in the cytokine program of CSF myeloid and microglia-like cells (log2 CPM)",
        -1,
        "CSF",
    ),
    "C9": Claim(
        "CSF CAR-T cells are less exhausted", "exhaustion program of CAR-T cells, CSF minus blood (log2 CPM)", -1, "CSF"
    ),
    "D1": Claim(
        "B cells are depleted in blood within about 2 weeks",
        "percent change from baseline of the blood B-cell fraction at the first time point after infusion",
        -1,
        "blood",
        min_estimate=-50.0,
        scale="percent",
    ),
    "D2": Claim(
        "CAR-T cells persist",
        "CAR+ fraction of blood T cells at month 3 or the last time point (change from baseline)",
        +1,
        "blood",
        min_estimate=0.005,
        scale="fraction",
    ),
    "D3": Claim(
        "returning B cells are new, naive ones",
        "log2 odds ratio of naive among blood B cells, last time point vs baseline",
        +1,
        "blood",
    ),
    "M1": Claim(
        "B cells are enriched in MS CSF",
        "log2 ratio of the B-cell fraction of CSF cells, MS over control donors (difference of mean log2 fractions)",
        +1,
        "CSF",
        design="unpaired",
    ),
    "M2": Claim(
        "plasma cells are enriched in MS CSF",
        "log2 ratio of the plasma-cell fraction of CSF cells, MS over control donors (difference of mean log2 fractions)",
        +1,
        "CSF",
        design="unpaired",
    ),
}


# what the per-patient values behind a claim are: axis label, and the two sides compared
PAIR_AXES: dict[str, tuple[str, str, str]] = {
    "C1": ("CAR+ fraction of CSF T cells", "baseline", "after"),
    "C2": ("CAR+ fraction of T cells, last time point", "blood", "CSF"),
    "C3": ("B-lineage fraction of CSF cells", "baseline", "after"),
    "C4": ("plasma-cell fraction of CSF cells", "baseline", "after"),
    "C5": ("ASC Ig UMIs per CSF UMI", "baseline", "after"),
    "C6": ("microglia activation (log2 CPM)", "baseline", "after"),
    "C7": ("B / microglia-like LR score", "baseline", "after"),
    "C8": ("cytokine program (log2 CPM)", "baseline", "after"),
    "C9": ("CAR-T exhaustion, CSF - blood", "", ""),
    "D1": ("B-cell fraction of blood cells", "baseline", "first after"),
    "D2": ("CAR+ fraction of blood T cells", "baseline", "month 3 / last"),
    "D3": ("log2 odds naive among blood B", "baseline", "last"),
    "M1": ("log2 B-cell fraction of CSF cells", "control", "MS"),
    "M2": ("log2 plasma fraction of CSF cells", "control", "MS"),
}


@dataclass
class Measurements:
    """The per-sample tables of :mod:`csfcart.measure`."""

    counts: pd.DataFrame  # sample -> meta + cells per type
    car: pd.DataFrame  # sample -> meta + car_fraction
    ig: pd.DataFrame  # sample -> meta + asc_ig_per_1000_umis
    programs: pd.DataFrame  # long: sample, group, program, score
    communication: pd.DataFrame | None = None  # sample -> meta + b_microglia, microglia_inflammatory
    conditions: pd.Series | None = None  # sample -> condition (unpaired designs, e.g. MS / control)
    reference_condition: str = "control"


def unpaired_values(claim_id: str, m: Measurements) -> tuple[pd.DataFrame, str]:
    """Per donor (samples of the claim's compartment pooled): condition and log2 fraction."""
    c = CLAIMS[claim_id]
    if m.conditions is None or not len(m.conditions):
        return pd.DataFrame(columns=["condition", "value"]), "no 'condition' column in the sample sheet"
    counts = m.counts[m.counts["compartment"] == c.compartment]
    types = B_CELL_TYPES if claim_id == "M1" else ["plasma"]
    num, den = _cell_counts(counts, types)
    per = pd.DataFrame({"num": num, "den": den, "patient_id": counts["patient_id"]})
    per["condition"] = m.conditions.reindex(per.index).astype(str)
    donors = per.groupby(["patient_id", "condition"])[["num", "den"]].sum().reset_index("condition")
    # half a cell of continuity, so that a donor without any keeps a finite value
    donors["value"] = np.log2((donors["num"] + 0.5) / (donors["den"] + 0.5))
    groups = sorted(set(donors["condition"]) - {m.reference_condition})
    note = f"{', '.join(groups) or 'no other condition'} vs {m.reference_condition} donors"
    return donors[["condition", "value"]], note


def _pairs(
    table: pd.DataFrame, value: pd.Series, compartment: str, baseline: str, timepoints: list[str]
) -> pd.DataFrame:
    """Per patient: baseline value and the mean over ``timepoints`` of the post values."""
    t = table.assign(value=value)
    t = t[t["compartment"] == compartment]
    base = t[t["timepoint"] == baseline].groupby("patient_id")["value"].mean()
    post = t[t["timepoint"].isin(timepoints)].groupby("patient_id")["value"].mean()
    return pd.DataFrame({"base": base, "post": post}).dropna()


def _percent_change(
    table: pd.DataFrame,
    num: pd.Series,
    den: pd.Series,
    compartment: str,
    baseline: str,
    timepoints: list[str],
    half: float,
) -> tuple[pd.Series, pd.DataFrame, int]:
    """Per patient: percent change from baseline of ``num / den``, post samples pooled.

    Counts are continuity-corrected by ``half`` (half a cell, or half a cell's worth of
    UMIs) in numerator and denominator (Haldane-Anscombe), so that a patient who loses
    every cell contributes a finite fall whose size reflects how many cells the baseline
    had. Patients with none at baseline cannot show a fall and are left out (counted).
    """
    t = table.assign(num=num, den=den)
    t = t[t["compartment"] == compartment]
    base = t[t["timepoint"] == baseline].groupby("patient_id")[["num", "den"]].sum()
    post = t[t["timepoint"].isin(timepoints)].groupby("patient_id")[["num", "den"]].sum()
    pairs = base.join(post, lsuffix="_base", rsuffix="_post", how="inner")
    pairs = pairs[pairs["den_base"] > 0]
    zero = int((pairs["num_base"] <= 0).sum())
    pairs = pairs[pairs["num_base"] > 0]
    ratio = ((pairs["num_post"] + half) / (pairs["den_post"] + half)) / (
        (pairs["num_base"] + half) / (pairs["den_base"] + half)
    )
    frame = pd.DataFrame({"base": pairs["num_base"] / pairs["den_base"], "post": pairs["num_post"] / pairs["den_post"]})
    return 100 * (ratio - 1), frame, zero


def _dropped(n: int) -> str:
    return f"; {n} patient(s) without any at baseline left out" if n else ""


def _post_timepoints(table: pd.DataFrame, compartment: str, baseline: str) -> list[str]:
    """Post-infusion time points in order: a screening or other pre-infusion visit is never
    pooled with them."""
    tps = table.loc[table["compartment"] == compartment, "timepoint"].unique().tolist()
    return [t for t in order_timepoints(tps) if t != baseline and not is_pre_infusion(t)]


def _cell_counts(counts: pd.DataFrame, types: list[str]) -> tuple[pd.Series, pd.Series]:
    """Per sample: cells of ``types`` and all cells."""
    cell_cols = [c for c in counts.columns if c not in ("patient_id", "timepoint", "compartment")]
    return counts.reindex(columns=types, fill_value=0).sum(axis=1), counts[cell_cols].sum(axis=1)


def _program(m: Measurements, group: str, program: str) -> pd.DataFrame:
    p = m.programs[(m.programs["group"] == group) & (m.programs["program"] == program)]
    return p.set_index("sample_id")[["patient_id", "timepoint", "compartment", "score"]]


def claim_values(claim_id: str, m: Measurements, baseline: str) -> tuple[pd.Series, pd.DataFrame | None, str]:
    """Per-patient values of one claim, the base/post pairs (when paired) and a note."""
    c = CLAIMS[claim_id]
    counts = m.counts
    post = _post_timepoints(counts, c.compartment, baseline)
    if not post:
        return pd.Series(dtype=float), None, f"no {c.compartment} samples after {baseline}"
    if claim_id in ("C1", "D2"):
        tps = post if claim_id == "C1" else (["m3"] if "m3" in post else post[-1:])
        pairs = _pairs(m.car, m.car["car_fraction"], c.compartment, baseline, tps)
        return pairs["post"] - pairs["base"], pairs, f"time points {', '.join(tps)}"
    if claim_id == "C2":
        last = post[-1]
        csf = (
            m.car[(m.car["compartment"] == "CSF") & (m.car["timepoint"] == last)]
            .groupby("patient_id")["car_fraction"]
            .mean()
        )
        blood = (
            m.car[(m.car["compartment"] == "blood") & (m.car["timepoint"] == last)]
            .groupby("patient_id")["car_fraction"]
            .mean()
        )
        diff = (csf - blood).dropna() if len(blood) else csf
        pairs = pd.DataFrame({"base": blood.reindex(csf.index) if len(blood) else 0.0, "post": csf})
        return diff, pairs, f"CSF minus blood at {last}" if len(blood) else f"CSF at {last} (no blood sampled)"
    if claim_id in ("C3", "C4", "D1"):
        types = B_CELL_TYPES if claim_id in ("C3", "D1") else ["plasma"]
        tps = post if claim_id != "D1" else post[:1]
        num, den = _cell_counts(counts, types)
        values, pairs, zero = _percent_change(counts, num, den, c.compartment, baseline, tps, 0.5)
        return values, pairs, f"time points {', '.join(tps)}{_dropped(zero)}"
    if claim_id == "C5":
        ig = m.ig
        per_cell = (ig["asc_ig_umis"] / ig["asc_cells"].where(ig["asc_cells"] > 0)).median()
        half = 0.5 * per_cell if np.isfinite(per_cell) else 0.5
        values, pairs, zero = _percent_change(
            ig, ig["asc_ig_umis"], ig["total_umis"], c.compartment, baseline, post, half
        )
        return values, pairs, f"time points {', '.join(post)}{_dropped(zero)}"
    if claim_id in ("C6", "C8"):
        group, program = (
            ("microglia_like", "microglia_activation") if claim_id == "C6" else ("myeloid", "inflammatory_cytokines")
        )
        p = _program(m, group, program)
        pairs = _pairs(p, p["score"], c.compartment, baseline, post)
        return pairs["post"] - pairs["base"], pairs, f"{group} cells, time points {', '.join(post)}"
    if claim_id == "C7":
        if m.communication is None:
            return pd.Series(dtype=float), None, "the communication step did not run"
        com = m.communication
        pairs = _pairs(com, com["b_microglia"], c.compartment, baseline, post)
        infl = _pairs(com, com["microglia_inflammatory"], c.compartment, baseline, post)
        infl_change = paired_summary((infl["post"] - infl["base"]).to_numpy(), direction=-1)
        note = f"time points {', '.join(post)}"
        if np.isfinite(infl_change["estimate"]):
            note += (f"; microglia-like inflammatory signalling changed by {infl_change['estimate']:+.3f} "
                     f"(95% CI {infl_change['ci_low']:+.3f} to {infl_change['ci_high']:+.3f})")  # fmt: skip
        else:
            note += "; too few microglia-like cells per sample to score their signalling"
        return pairs["post"] - pairs["base"], pairs, note
    if claim_id == "C9":
        p = _program(m, "CAR_T", "t_exhaustion")
        wide = p.reset_index().pivot_table(index=["patient_id", "timepoint"], columns="compartment", values="score")
        if not {"CSF", "blood"} <= set(wide.columns):
            return pd.Series(dtype=float), None, "CAR-T cells not scored in both CSF and blood"
        diff = (wide["CSF"] - wide["blood"]).dropna().groupby("patient_id").mean()
        return diff, None, "matched time points with CAR-T cells in both compartments"
    if claim_id == "D3":
        last = post[-1:]
        naive = counts.reindex(columns=["naive_B"], fill_value=0).sum(axis=1)
        memory = counts.reindex(columns=[t for t in B_CELL_TYPES if t != "naive_B"], fill_value=0).sum(axis=1)
        # odds of naive among B cells, continuity-corrected by half a cell
        log_odds = np.log2((naive + 0.5) / (memory + 0.5))
        pairs = _pairs(counts, log_odds, c.compartment, baseline, last)
        return pairs["post"] - pairs["base"], pairs, f"time point {last[0]}"
    raise KeyError(claim_id)


def claims_table(m: Measurements, claim_ids: list[str], *, baseline: str, alpha: float = 0.05) -> pd.DataFrame:
    """Score ``claim_ids`` on the measurements; one row per claim (see module docstring)."""
    rows = []
    for cid in claim_ids:
        if cid not in CLAIMS:
            rows.append({"claim_id": cid, "statement": cid, "metric": "", "n_patients": 0, "patients_consistent": 0,
                         "verdict": "not_testable", "reason": "unknown claim"})  # fmt: skip
            continue
        c = CLAIMS[cid]
        row = {"claim_id": cid, "statement": c.statement, "metric": c.metric}
        if c.compartment not in set(m.counts["compartment"]):
            rows.append(
                {
                    **row,
                    "n_patients": 0,
                    "patients_consistent": 0,
                    "verdict": "not_testable",
                    "reason": f"no {c.compartment} samples",
                }
            )
            continue
        if c.design == "unpaired":
            donors, note = unpaired_values(cid, m)
            ref = donors["condition"] == m.reference_condition
            summary = unpaired_summary(
                donors.loc[~ref, "value"].to_numpy(), donors.loc[ref, "value"].to_numpy(), direction=c.direction
            )
            values, pairs = donors["value"], None
        else:
            values, pairs, note = claim_values(cid, m, baseline)
            summary = paired_summary(values.to_numpy(), direction=c.direction)
        if c.metric.startswith("percent change") and np.isfinite(summary["ci_low"]):
            summary["ci_low"] = max(summary["ci_low"], -100.0)  # nothing falls by more than all of it
        row.update(summary)
        row["_pairs"], row["_note"] = pairs, note
        rows.append(row)
    table = pd.DataFrame(rows)
    table["p_adjusted"] = bh(table["p_value"]) if "p_value" in table else np.nan
    out = []
    for row in table.to_dict("records"):
        if row.get("verdict") == "not_testable":
            out.append(row)
            continue
        c = CLAIMS[row["claim_id"]]
        pairs, note = row.pop("_pairs"), row.pop("_note")
        if row["n_patients"] < 2:
            row.update(
                verdict="not_testable", reason=f"{row['n_patients']} patient(s) with data ({note}); at least 2 needed"
            )
            out.append(row)
            continue
        reasons = []
        significant = row["p_adjusted"] < alpha
        right_way = np.sign(row["estimate"]) == c.direction
        if c.design == "unpaired":
            if not np.isfinite(row["p_value"]):
                row.update(verdict="not_testable", reason=f"{note}: at least 2 donors per condition needed")
                out.append(row)
                continue
            reasons.append(f"{row['patients_consistent']} donors beyond the {m.reference_condition} mean")
        else:
            reasons.append(f"{row['patients_consistent']}/{row['n_patients']} patients in the claimed direction")
        reasons.append(f"adjusted p = {row['p_adjusted']:.3g}")
        ok = bool(significant and right_way)
        if c.min_estimate is not None:  # the claimed size, in the claimed direction
            ok &= bool(c.direction * row["estimate"] >= c.direction * c.min_estimate)
        if row["claim_id"] == "C1" and pairs is not None and len(pairs):
            base_car = float(pairs["base"].mean())
            reasons.append(f"baseline CAR+ fraction {base_car:.3f}")
            ok &= base_car < 0.005
        row["verdict"] = "reproduced" if ok else "not_reproduced"
        row["reason"] = f"{note}; " + "; ".join(reasons)
        out.append(row)
    result = pd.DataFrame(out)
    for col in COLUMNS:
        if col not in result:
            result[col] = np.nan
    return result[COLUMNS]


def claim_patients(m: Measurements, claim_ids: list[str], *, baseline: str) -> pd.DataFrame:
    """Long table behind the claims: per claim and patient, the baseline and post values
    (where the claim compares time points) and the patient's value that enters the summary."""
    frames = []
    for cid in claim_ids:
        if cid not in CLAIMS or CLAIMS[cid].compartment not in set(m.counts["compartment"]):
            continue
        axis, base_label, post_label = PAIR_AXES.get(cid, ("value", "baseline", "after"))
        if CLAIMS[cid].design == "unpaired":
            donors, _ = unpaired_values(cid, m)
            frame = donors.rename_axis("patient_id").reset_index()
            frames.append(frame.assign(claim_id=cid, quantity=axis, base_label=base_label, post_label=post_label))
            continue
        values, pairs, _ = claim_values(cid, m, baseline)
        if not len(values):
            continue
        frame = pd.DataFrame({"value": values})
        if pairs is not None:
            frame = frame.join(pairs[["base", "post"]], how="left")
        frame = frame.reindex(columns=["base", "post", "value"])
        frame.index.name = "patient_id"
        frames.append(
            frame.reset_index().assign(claim_id=cid, quantity=axis, base_label=base_label, post_label=post_label)
        )
    columns = ["claim_id", "patient_id", "quantity", "base_label", "base", "post_label", "post", "value", "condition"]
    return pd.concat(frames, ignore_index=True).reindex(columns=columns) if frames else pd.DataFrame(columns=columns)


def applicable_claims(counts: pd.DataFrame, requested: list[str] | None) -> list[str]:
    """The claims to score: those requested, else every claim whose compartment exists."""
    if requested:
        return list(requested)
    comps = set(counts["compartment"])
    return [
        cid
        for cid, c in CLAIMS.items()
        if c.compartment in comps and c.design == "paired" and not (cid == "C9" and "blood" not in comps)
    ]


def score_against_truth(claims: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Join the truth (true_effect, expected_verdict) and say whether each CI covers it."""
    cols = ["claim_id", "true_effect", "expected_verdict", *(["scale"] if "scale" in truth else [])]
    out = claims.merge(truth[cols].rename(columns={"scale": "truth_scale"}), on="claim_id", how="left")
    out["ci_covers_truth"] = (out["ci_low"] <= out["true_effect"]) & (out["true_effect"] <= out["ci_high"])
    if "truth_scale" in out:
        # a truth on another scale than the estimate (C7: ligand-receptor expression against
        # LR scores) says nothing about the interval's coverage
        same = out["truth_scale"] == out["claim_id"].map(lambda c: CLAIMS[c].scale if c in CLAIMS else None)
        out["ci_covers_truth"] = out["ci_covers_truth"].astype("boolean").where(same.to_numpy(), pd.NA)
        out = out.drop(columns="truth_scale")
    out["verdict_matches"] = out["verdict"] == out["expected_verdict"]
    return out


__all__ = [
    "CLAIMS",
    "COLUMNS",
    "T_CELL_TYPES",
    "Measurements",
    "applicable_claims",
    "claims_table",
    "score_against_truth",
]
