"""Composition: cells per sample and type, paired changes from baseline, figures."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from csfcart.plotting import CELL_TYPE_COLOURS, plot_stacked_composition
from csfcart.stats import bh, paired_table, unpaired_summary
from csfcart.timepoints import order_timepoints

META_COLS = ["patient_id", "timepoint", "compartment"]


def long_fractions(counts: pd.DataFrame, *, pseudocount: float = 0.5) -> pd.DataFrame:
    """One row per sample and cell type: cells, percent, and log2 fraction with a pseudocount."""
    types = [c for c in counts.columns if c not in META_COLS]
    total = counts[types].sum(axis=1)
    rows = (
        counts[META_COLS]
        .join(counts[types])
        .reset_index()
        .melt(id_vars=["sample_id", *META_COLS], var_name="cell_type", value_name="cells")
    )
    rows["total"] = rows["sample_id"].map(total)
    rows["percent"] = 100 * rows["cells"] / rows["total"]
    rows["log2_fraction"] = np.log2((rows["cells"] + pseudocount) / (rows["total"] + 2 * pseudocount))
    return rows


def paired_changes(long: pd.DataFrame, *, baseline: str) -> pd.DataFrame:
    """Per patient, compartment, cell type and post time point: change from own baseline."""
    base = long[long["timepoint"] == baseline].set_index(["patient_id", "compartment", "cell_type"])[
        ["percent", "log2_fraction"]
    ]
    post = long[long["timepoint"] != baseline]
    joined = post.join(base, on=["patient_id", "compartment", "cell_type"], rsuffix="_baseline").dropna(
        subset=["percent_baseline"]
    )
    joined["delta_percent"] = joined["percent"] - joined["percent_baseline"]
    joined["log2_ratio"] = joined["log2_fraction"] - joined["log2_fraction_baseline"]
    return joined[
        [
            "patient_id",
            "compartment",
            "timepoint",
            "cell_type",
            "percent_baseline",
            "percent",
            "delta_percent",
            "log2_ratio",
        ]
    ]


def composition_summary(changes: pd.DataFrame) -> pd.DataFrame:
    """Cohort estimate per compartment, time point and cell type: mean paired log2 ratio and
    percentage-point change with 95% CIs, t-test p-values, BH over the table."""
    by = ["compartment", "timepoint", "cell_type"]
    if changes.empty:  # no time point after baseline (e.g. one visit per donor)
        return pd.DataFrame(columns=[*by, "n_patients", "log2_ratio_estimate", "log2_ratio_ci_low", "log2_ratio_ci_high",
                                     "log2_ratio_p_value", "log2_ratio_p_adjusted"])  # fmt: skip
    lr = (
        paired_table(changes, "log2_ratio", by)
        .add_prefix("log2_ratio_")
        .rename(columns={f"log2_ratio_{k}": k for k in by})
    )
    pp = paired_table(changes, "delta_percent", by)[[*by, "estimate", "ci_low", "ci_high", "p_value", "p_adjusted"]]
    pp = pp.rename(
        columns={k: f"delta_percent_{k}" for k in ["estimate", "ci_low", "ci_high", "p_value", "p_adjusted"]}
    )
    return lr.merge(pp, on=by).rename(columns={"log2_ratio_n_patients": "n_patients"})


def plot_patient_lines(long: pd.DataFrame, *, types: list[str] | None = None) -> plt.Figure:
    """Percent of cells per cell type across time points, one line per patient,
    one panel per cell type, CSF solid and blood dashed."""
    types = types or sorted(long["cell_type"].unique())
    order = order_timepoints(long["timepoint"].unique())
    ncol = 4
    nrow = int(np.ceil(len(types) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4 * ncol, 3 * nrow), layout="constrained", squeeze=False)
    styles = {"CSF": "-", "blood": "--"}
    for ax, t in zip(axes.ravel(), types, strict=False):
        sub = long[long["cell_type"] == t]
        for (_patient, comp), g in sub.groupby(["patient_id", "compartment"]):
            g = g.set_index("timepoint").reindex(order).dropna(subset=["percent"])
            ax.plot([order.index(x) for x in g.index], g["percent"], styles.get(comp, ":"), marker="o", ms=3,
                    color=CELL_TYPE_COLOURS.get(t, "grey"), alpha=0.8)  # fmt: skip
        ax.set_title(t)
        ax.set_xticks(range(len(order)), order)
        ax.set_ylabel("% of cells")
    for ax in axes.ravel()[len(types) :]:
        ax.axis("off")
    axes[0, 0].plot([], [], "k-", label="CSF")
    axes[0, 0].plot([], [], "k--", label="blood")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("Cell-type composition per patient over time (one line per patient and compartment)")
    return fig


def plot_stacked(long: pd.DataFrame) -> plt.Figure:
    """Stacked bars of the annotated composition of every sample."""
    order = order_timepoints(long["timepoint"].unique())
    wide = long.pivot_table(
        index=["compartment", "patient_id", "timepoint", "sample_id"], columns="cell_type", values="percent"
    ).fillna(0)
    wide = wide.reset_index()
    wide["_t"] = wide["timepoint"].map(order.index)
    wide = wide.sort_values(["compartment", "patient_id", "_t"]).set_index("sample_id").drop(columns=["_t", *META_COLS])
    return plot_stacked_composition(wide, "Annotated composition per sample")


def condition_summary(long: pd.DataFrame, conditions: dict[str, str], *, reference: str) -> pd.DataFrame:
    """Unpaired designs: per compartment, condition and cell type, the difference of mean
    log2 fractions (donors as the unit, samples of a donor averaged) from the reference
    condition, with a Welch 95% CI and p-value, BH over the table."""
    t = long.assign(condition=long["sample_id"].map(conditions))
    t = t.dropna(subset=["condition"])
    donors = t.groupby(["compartment", "cell_type", "condition", "patient_id"], as_index=False)["log2_fraction"].mean()
    rows = []
    for (comp, cell_type), g in donors.groupby(["compartment", "cell_type"]):
        ref = g.loc[g["condition"] == reference, "log2_fraction"]
        for cond in sorted(set(g["condition"]) - {reference}):
            s = unpaired_summary(g.loc[g["condition"] == cond, "log2_fraction"], ref, direction=+1)
            rows.append({"compartment": comp, "contrast": f"{cond}_vs_{reference}", "cell_type": cell_type,
                         "log2_ratio_estimate": s["estimate"], "log2_ratio_ci_low": s["ci_low"],
                         "log2_ratio_ci_high": s["ci_high"], "p_value": s["p_value"], "n_donors": s["n_patients"]})  # fmt: skip
    out = pd.DataFrame(rows)
    if len(out):
        out["p_adjusted"] = bh(out["p_value"])
    return out
