"""Scoring the analysis against a synthetic cohort's truth (never used by the analysis)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score, f1_score, precision_score, recall_score

from csfcart.keys import CELL_TYPE


def _key(df: pd.DataFrame) -> pd.Index:
    return pd.Index(df["sample_id"].astype(str) + ":" + df["barcode"].astype(str))


def annotation_scores(
    cells: pd.DataFrame, truth: pd.DataFrame, *, min_cells: int = 50, baseline: str | None = None
) -> tuple[float, pd.DataFrame]:
    """ARI over the annotated singlets of ``cells`` (the annotated ``obs``) and F1 per true type with at least ``min_cells`` cells.

    ARI only asks whether cells are grouped as the truth groups them: a correctly bounded
    cluster given the wrong name keeps it at 1. The labels are therefore also scored by
    name: ``attrs['accuracy']`` is the share of singlets whose label is their true type
    (``low_confidence`` and ``unassigned`` count as wrong), and F1 compares names too.

    ``baseline`` (the time point before treatment): precision and recall also per visit
    class, ``_baseline`` and ``_post`` (every later visit): a rare type's calls after
    depletion are where stray calls of an abundant type weigh most.
    """
    truth = truth.set_axis(_key(truth))
    obs = cells.join(truth[["cell_type"]].rename(columns={"cell_type": "true_type"}), how="left")
    singlets = obs[obs["true_type"].notna() & (obs["true_type"] != "doublet")]
    pred, true = singlets[CELL_TYPE].astype(str), singlets["true_type"].astype(str)
    ari = float(adjusted_rand_score(true, pred))
    rows = []
    for t, n in true.value_counts().items():
        rows.append(
            {
                "cell_type": t,
                "n_true": int(n),
                "n_predicted": int((pred == t).sum()),
                "precision": float(precision_score(true == t, pred == t, zero_division=0)),
                "recall": float(recall_score(true == t, pred == t, zero_division=0)),
                "f1": float(f1_score(true == t, pred == t, zero_division=0)),
                "scored": bool(n >= min_cells),
            }
        )
    table = pd.DataFrame(rows).sort_values("n_true", ascending=False)
    if baseline is not None and "timepoint" in singlets:
        before = (singlets["timepoint"].astype(str) == baseline).to_numpy()
        for visit, part in (("baseline", before), ("post", ~before)):
            p, t = pred[part], true[part]
            table[f"n_true_{visit}"] = table["cell_type"].map(t.value_counts()).fillna(0).astype(int).to_numpy()
            table[f"precision_{visit}"] = [
                float(precision_score(t == c, p == c, zero_division=0)) for c in table["cell_type"]
            ]
            table[f"recall_{visit}"] = [
                float(recall_score(t == c, p == c, zero_division=0)) for c in table["cell_type"]
            ]
    table.attrs["accuracy"] = float((pred == true).mean()) if len(true) else np.nan
    return ari, table


def confusion(cells: pd.DataFrame, truth: pd.DataFrame, *, baseline: str) -> pd.DataFrame:
    """Cells per visit class (baseline, post), called type and true type (singlets; long
    format, nonzero rows): where the stray calls of an abundant type land."""
    truth = truth.set_axis(_key(truth))
    obs = cells.join(truth[["cell_type"]].rename(columns={"cell_type": "true_type"}), how="left")
    obs = obs[obs["true_type"].notna() & (obs["true_type"] != "doublet")]
    visit = np.where(obs["timepoint"].astype(str) == baseline, "baseline", "post")
    table = (
        pd.DataFrame(
            {
                "visit": visit,
                "called": obs[CELL_TYPE].astype(str).to_numpy(),
                "true": obs["true_type"].astype(str).to_numpy(),
            }
        )
        .value_counts()
        .rename("cells")
        .reset_index()
        .sort_values(["visit", "true", "cells"], ascending=[True, True, False])
    )
    table["right"] = table["called"] == table["true"]
    return table


def qc_scores(cells: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Recall and precision of doublet and damaged-cell removal against the truth."""
    cells = cells.set_axis(_key(cells))
    t = truth.set_axis(_key(truth)).reindex(cells.index)
    removed_damaged = cells[["low_quality_counts", "low_quality_genes", "high_mt"]].any(axis=1)
    rows = []
    for what, truth_col, called in (
        ("doublets", "doublet", cells["doublet"].astype(bool)),
        ("damaged cells (MAD/MT filters)", "damaged", removed_damaged),
        ("doublets or damaged (all QC)", None, ~cells["qc_pass"].astype(bool)),
    ):
        true = (t["doublet"] | t["damaged"]) if truth_col is None else t[truth_col]
        true = true.astype(bool).to_numpy()
        c = called.to_numpy()
        rows.append(
            {
                "filter": what,
                "n_true": int(true.sum()),
                "n_removed": int(c.sum()),
                "recall": float((c & true).sum() / max(true.sum(), 1)),
                "precision": float((c & true).sum() / max(c.sum(), 1)) if c.sum() else np.nan,
            }
        )
    return pd.DataFrame(rows)


def communication_recovery(
    measured: pd.DataFrame,
    truth: pd.DataFrame,
    *,
    compartment: str = "CSF",
    top: int = 10,
    alpha: float,
    lineage_of: dict[str, str],
    min_change: float = 0.5,
) -> pd.DataFrame:
    """The ``top`` most changed interactions of the analysis beside the truth.

    Most changed: significant after BH (``p_adjusted < alpha``), then the largest paired
    change (|estimate|); ranking by p-value alone would not separate the thousands of
    interactions lost together with B cells, which share nearly the same p-value.
    ``truth_rank`` is an interaction's rank among all simulated interactions by the size of
    its population-level change (1 = most changed); ``planted`` marks those whose ligand and
    receptor expression the simulator moved by at least ``min_change`` (log2, half the
    summed change of ligand in the sender and receiver in the receiver; a change of cell
    numbers alone is not planted), and ``b_microglia_axis`` those between B-lineage and
    microglia-like cells (claim C7; ``lineage_of``: type -> lineage, the marker table's).
    ``attrs['spearman']`` holds the rank correlation of measured and true change over all
    interactions found in both.
    """
    from csfcart.communication import KEY, b_microglia_axis

    m = measured[measured["compartment"] == compartment]
    truth = truth[[*KEY, "true_change"]].assign(
        truth_rank=truth["true_change"].abs().rank(ascending=False, method="min").astype(int)
    )
    ranked = m.assign(_significant=m["p_adjusted"] < alpha, _size=m["estimate"].abs())
    ranked = ranked.sort_values(["_significant", "_size", "p_value"], ascending=[False, False, True]).head(top)
    out = ranked[[*KEY, "estimate", "ci_low", "ci_high", "p_adjusted"]].merge(truth, on=KEY, how="left")
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    out["planted"] = out["true_change"].abs() >= min_change
    out["b_microglia_axis"] = b_microglia_axis(out, lineage_of)
    both = m[[*KEY, "estimate"]].merge(truth, on=KEY)
    out.attrs["spearman"] = (
        float(both["estimate"].corr(both["true_change"], method="spearman")) if len(both) > 2 else np.nan
    )
    out.attrs["n_planted"] = int((truth["true_change"].abs() >= min_change).sum())
    out.attrs["n_truth"] = len(truth)
    out.attrs["min_change"] = min_change
    return out
