"""Paired, patient-level statistics: the patient is the unit of replication.

Every cohort-level estimate here is the mean of one value per patient (a within-patient
change from baseline, or a within-patient CSF-blood difference), with a t-based 95%
confidence interval and a two-sided one-sample t-test against zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats


def paired_summary(values: Sequence[float], *, direction: int = 0) -> dict[str, float]:
    """Mean of per-patient values with a 95% t CI and a two-sided p-value against 0.

    ``direction`` (+1 or -1) counts the patients moving in the claimed direction
    (``patients_consistent``); 0 counts none. NaN values (a patient without the data)
    are dropped and not counted.
    """
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    n = len(v)
    out = {
        "estimate": np.nan,
        "ci_low": np.nan,
        "ci_high": np.nan,
        "p_value": np.nan,
        "n_patients": n,
        "patients_consistent": 0,
    }
    if n == 0:
        return out
    mean = float(v.mean())
    out["estimate"] = mean
    out["patients_consistent"] = int((np.sign(v) == direction).sum()) if direction else 0
    if n < 2:
        return out
    sd = float(v.std(ddof=1))
    if sd == 0:
        out.update(ci_low=mean, ci_high=mean, p_value=0.0 if mean != 0 else 1.0)
        return out
    half = stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n)
    t = mean / (sd / np.sqrt(n))
    out.update(ci_low=mean - half, ci_high=mean + half, p_value=float(2 * stats.t.sf(abs(t), n - 1)))
    return out


def bh(p_values: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values; NaN stays NaN."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = stats.false_discovery_control(p[ok], method="bh")
    return out


def paired_table(per_patient: pd.DataFrame, value: str, by: list[str], *, direction: int = 0) -> pd.DataFrame:
    """:func:`paired_summary` of ``value`` within each group of ``by``, BH over groups."""
    rows = []
    for key, group in per_patient.groupby(by, observed=True, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key, strict=True)), **paired_summary(group[value].to_numpy(), direction=direction)})
    table = pd.DataFrame(rows)
    if len(table):
        table["p_adjusted"] = bh(table["p_value"])
    return table


def grouped_paired_summary(df: pd.DataFrame, value: str, by: list[str], *, direction: int = 0) -> pd.DataFrame:
    """:func:`paired_summary` of ``value`` within each group of ``by``, vectorised (for
    tables with many groups, such as every ligand-receptor interaction); BH over groups."""
    d = df.dropna(subset=[value]).assign(_consistent=lambda x: (np.sign(x[value]) == direction) if direction else False)
    g = d.groupby(by, observed=True, sort=False)
    out = (
        g[value].agg(["count", "mean", "std"]).rename(columns={"count": "n_patients", "mean": "estimate", "std": "sd"})
    )
    out["patients_consistent"] = g["_consistent"].sum().astype(int)
    out = out.reset_index()
    n = out["n_patients"].to_numpy(dtype=float)
    mean, sd = out["estimate"].to_numpy(), out["sd"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        se = sd / np.sqrt(n)
        half = stats.t.ppf(0.975, np.maximum(n - 1, 1)) * se
        p = 2 * stats.t.sf(np.abs(mean / se), np.maximum(n - 1, 1))
    degenerate = (sd == 0) & (n >= 2)
    p = np.where(degenerate, np.where(mean != 0, 0.0, 1.0), p)
    half = np.where(degenerate, 0.0, half)
    few = n < 2
    out["ci_low"] = np.where(few, np.nan, mean - half)
    out["ci_high"] = np.where(few, np.nan, mean + half)
    out["p_value"] = np.where(few, np.nan, p)
    out["p_adjusted"] = bh(out["p_value"])
    return out.drop(columns="sd")


def welch(mean1, var1, n1, mean0, var0, n0):
    """Difference of means (1 minus 0) with Welch's 95% CI and two-sided p, elementwise.

    ``var`` are sample variances (ddof 1). Zero standard error gives a zero-width interval
    and p 0 (or 1 when the means are equal); fewer than two values per group give NaN.
    """
    m1, v1, k1 = (np.asarray(x, dtype=float) for x in (mean1, var1, n1))
    m0, v0, k0 = (np.asarray(x, dtype=float) for x in (mean0, var0, n0))
    diff = m1 - m0
    with np.errstate(divide="ignore", invalid="ignore"):
        s1, s0 = v1 / k1, v0 / k0
        se = np.sqrt(s1 + s0)
        df = (s1 + s0) ** 2 / (s1**2 / (k1 - 1) + s0**2 / (k0 - 1))
        half = np.where(se == 0, 0.0, stats.t.ppf(0.975, df) * se)
        p = np.where(se == 0, np.where(diff != 0, 0.0, 1.0), 2 * stats.t.sf(np.abs(diff / se), df))
    few = (k1 < 2) | (k0 < 2)
    return diff, np.where(few, np.nan, diff - half), np.where(few, np.nan, diff + half), np.where(few, np.nan, p)


def unpaired_summary(group: Sequence[float], reference: Sequence[float], *, direction: int = 0) -> dict[str, float]:
    """Difference of means (``group`` minus ``reference``) with a Welch 95% CI and p-value.

    For unpaired designs (for example MS versus control donors). ``n_patients`` counts both
    groups; ``patients_consistent`` counts ``group`` members beyond the reference mean in
    ``direction``.
    """
    a = np.asarray([x for x in group if x is not None and np.isfinite(x)], dtype=float)
    b = np.asarray([x for x in reference if x is not None and np.isfinite(x)], dtype=float)
    out = {"estimate": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan,
           "n_patients": len(a) + len(b), "patients_consistent": 0}  # fmt: skip
    if len(a) == 0 or len(b) == 0:
        return out
    diff = float(a.mean() - b.mean())
    out["estimate"] = diff
    out["patients_consistent"] = int((np.sign(a - b.mean()) == direction).sum()) if direction else 0
    if len(a) < 2 or len(b) < 2:
        return out
    _, low, high, p = welch(a.mean(), a.var(ddof=1), len(a), b.mean(), b.var(ddof=1), len(b))
    out.update(ci_low=float(low), ci_high=float(high), p_value=float(p))
    return out
