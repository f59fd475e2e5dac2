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
    out = g[value].agg(["count", "mean", "std"]).reset_index()
    summary = summary_from_moments(
        out["count"].to_numpy(), out["mean"].to_numpy(), out["std"].to_numpy(), g["_consistent"].sum().to_numpy()
    )
    return pd.concat([out[by], summary], axis=1)


def summary_from_moments(n, mean, sd, consistent) -> pd.DataFrame:
    """Per group, from the count, mean and standard deviation (ddof 1) of its per-patient
    values: ``n_patients``, ``estimate``, ``patients_consistent``, the 95% t CI and two-sided
    p of :func:`paired_summary`, and BH over the groups (those with fewer than two patients
    have no CI or p and take no part in BH)."""
    n = np.asarray(n, dtype=float)
    mean, sd = np.asarray(mean, dtype=float), np.asarray(sd, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = sd / np.sqrt(n)
        half = stats.t.ppf(0.975, np.maximum(n - 1, 1)) * se
        p = 2 * stats.t.sf(np.abs(mean / se), np.maximum(n - 1, 1))
    degenerate = (sd == 0) & (n >= 2)
    p = np.where(degenerate, np.where(mean != 0, 0.0, 1.0), p)
    half = np.where(degenerate, 0.0, half)
    few = n < 2
    out = pd.DataFrame({"n_patients": n.astype(int), "estimate": mean,
                        "patients_consistent": np.asarray(consistent).astype(int)})  # fmt: skip
    out["ci_low"] = np.where(few, np.nan, mean - half)
    out["ci_high"] = np.where(few, np.nan, mean + half)
    out["p_value"] = np.where(few, np.nan, p)
    out["p_adjusted"] = bh(out["p_value"])
    return out


def welch_se_df(var1, n1, var0, n0):
    """Standard error of a difference of two means and Welch-Satterthwaite degrees of freedom."""
    v1, k1, v0, k0 = (np.asarray(x, dtype=float) for x in (var1, n1, var0, n0))
    with np.errstate(divide="ignore", invalid="ignore"):
        s1, s0 = v1 / k1, v0 / k0
        return np.sqrt(s1 + s0), (s1 + s0) ** 2 / (s1**2 / (k1 - 1) + s0**2 / (k0 - 1))


def welch(mean1, var1, n1, mean0, var0, n0):
    """Difference of means (1 minus 0) with Welch's 95% CI and two-sided p, elementwise.

    ``var`` are sample variances (ddof 1). Zero standard error gives a zero-width interval
    and p 0 (or 1 when the means are equal); fewer than two values per group give NaN.
    """
    m1, v1, k1 = (np.asarray(x, dtype=float) for x in (mean1, var1, n1))
    m0, v0, k0 = (np.asarray(x, dtype=float) for x in (mean0, var0, n0))
    diff = m1 - m0
    se, df = welch_se_df(v1, k1, v0, k0)
    with np.errstate(divide="ignore", invalid="ignore"):
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
    se, df = (float(x) for x in welch_se_df(a.var(ddof=1), len(a), b.var(ddof=1), len(b)))
    df = df if se > 0 else 1.0

    def bounds(alpha: float) -> tuple[float, float]:
        half = float(stats.t.ppf(1 - alpha, df)) * se
        return diff - direction * half, diff + direction * half

    out["bounds"] = bounds
    return out


# -- one-sided tests against a claimed size ----------------------------------------------------

#: Exact sign-flip p-values are computed up to this many patients (2**n sign patterns).
SIGN_FLIP_MAX_N = 16

_SIGNS: dict[int, np.ndarray] = {}


def _signs(n: int) -> np.ndarray:
    """Every pattern of n signs (2**n x n, +1 / -1), made once per n."""
    if n not in _SIGNS:
        _SIGNS[n] = (1 - 2 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1)).astype(float)
    return _SIGNS[n]


def sign_flip_p_many(d: np.ndarray) -> np.ndarray:
    """Exact one-sided sign-flip p of the mean of each column of ``d`` (patients x cohorts)
    being above 0: the share of the 2**n sign patterns whose mean is at least the observed."""
    d = np.asarray(d, dtype=float)
    if d.ndim == 1:
        d = d[:, None]
    n = d.shape[0]
    if n == 0 or n > SIGN_FLIP_MAX_N:
        return np.full(d.shape[1], np.nan)
    flipped = _signs(n) @ np.abs(d)  # 2**n x cohorts: sums under each sign pattern
    observed = d.sum(axis=0)
    return (flipped >= observed[None, :] - 1e-9 * (1 + np.abs(observed))[None, :]).mean(axis=0)


def sign_flip_p(values: Sequence[float], *, direction: int, size: float = 0.0) -> float:
    """Exact one-sided sign-flip p of the mean of ``values - size`` in ``direction``.

    Under H0 (the per-patient values are symmetric about ``size``) every pattern of signs is
    equally likely; the p-value is the share of the 2**n patterns whose mean lies at least
    as far in ``direction`` as the observed one. With n patients the smallest p is 2**-n
    (1/32 for 5), whatever the effect. NaN for more than :data:`SIGN_FLIP_MAX_N` values.
    """
    d = direction * (np.asarray(values, dtype=float) - size)
    d = d[np.isfinite(d)]
    if len(d) == 0:
        return np.nan
    return float(sign_flip_p_many(d)[0])


def t_p_many(d: np.ndarray) -> np.ndarray:
    """One-sided t-test p of each column's mean (patients x cohorts) being above 0; a column
    without spread gives 0 when its mean is above 0, else 1."""
    d = np.asarray(d, dtype=float)
    n = d.shape[0]
    mean, sd = d.mean(axis=0), d.std(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = stats.t.sf(mean / (sd / np.sqrt(n)), n - 1)
    return np.where(sd > 0, p, np.where(mean > 0, 0.0, 1.0))


def _sign_flip_bound(v: np.ndarray, direction: int, alpha: float) -> float:
    """The one-sided (1 - alpha) bound of the sign-flip test: the edge of the sizes it rejects
    (below the bound for direction +1, above it for -1); infinite where no size is rejected.

    The p-value is a non-increasing step function of how far the size lies from the data, so
    the edge is found by bisection between the smallest value (p = 2**-n) and the mean."""
    n = len(v)
    if n == 0 or n > SIGN_FLIP_MAX_N or 2.0**-n > alpha + 1e-12:
        return -direction * np.inf
    x = direction * v  # the bound of direction * effect from below
    lo, hi = float(x.min()) - 1e-9 * (1 + abs(float(x.min()))), float(x.mean())  # rejected at lo, not at hi
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if sign_flip_p_many(x - mid)[0] <= alpha:
            lo = mid
        else:
            hi = mid
    return direction * lo


def mean_bounds(values: Sequence[float], *, direction: int, alpha: float) -> tuple[float, float]:
    """The one-sided (1 - alpha) bounds of the mean of per-patient ``values`` that decide a
    claim: ``(deciding, other)``. The deciding bound lies on the side of the claimed effect
    (lower for direction +1, upper for -1); the other bound on the opposite side. Each is the
    more cautious of the t bound and the exact sign-flip bound (an effect is beyond a size
    only when both tests say so), so a claim is reproduced exactly when
    ``direction * (deciding - size) > 0``, and the data exclude the claimed size when
    ``direction * (other - size) < 0``. With n patients a sign-flip bound is finite only if
    2**-n <= alpha (5 patients at alpha 0.05); fewer give infinite bounds."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    n = len(v)
    if n < 2:
        return -direction * np.inf, direction * np.inf
    mean, sd = float(v.mean()), float(v.std(ddof=1))
    half = stats.t.ppf(1 - alpha, n - 1) * sd / np.sqrt(n)
    out = []
    for side in (direction, -direction):  # deciding, then other
        t_bound, sf_bound = mean - side * half, _sign_flip_bound(v, side, alpha)
        out.append(min(t_bound, sf_bound) if side > 0 else max(t_bound, sf_bound))  # the more cautious
    return out[0], out[1]


def one_sided_mean(values: Sequence[float], *, direction: int, size: float = 0.0) -> dict[str, float]:
    """Mean of per-patient values, 95% t CI, and one-sided p against the claimed size.

    ``p_value`` tests H0 ``direction * mean <= direction * size`` with a t-test; for up to
    :data:`SIGN_FLIP_MAX_N` patients the exact sign-flip p is computed beside it
    (``p_sign_flip``) and ``p_value`` is the larger of the two, since with few patients a
    t-test's smallest p-values rest on a normality that skewed per-patient values break.
    ``bounds(alpha)`` gives the deciding and the other one-sided bound at level 1 - alpha
    (:func:`mean_bounds`), the inversion of the same two tests.
    """
    out = paired_summary(values, direction=direction)
    out.update(p_t=np.nan, p_sign_flip=np.nan, p_value=np.nan)
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    n = len(v)
    out["patients_consistent"] = int((direction * (v - size) > 0).sum())
    out["bounds"] = lambda alpha: mean_bounds(v, direction=direction, alpha=alpha)
    if n < 2:
        return out
    d = direction * (v - size)
    p_t, p_sf = float(t_p_many(d[:, None])[0]), float(sign_flip_p_many(d)[0])
    out.update(p_t=p_t, p_sign_flip=p_sf, p_value=float(np.fmax(p_t, p_sf)))  # as one_sided_p_many
    return out


def one_sided_p_many(values: np.ndarray, *, direction: int, size: float) -> np.ndarray:
    """The p-value of :func:`one_sided_mean` for each column of ``values`` (patients x
    cohorts): the larger of the one-sided t and exact sign-flip p of the mean beyond ``size``
    in ``direction``. A claim is reproduced at level ``a`` exactly when this is at most ``a``
    (the calibration harness runs it on thousands of cohorts at once)."""
    d = direction * (np.asarray(values, dtype=float) - size)
    return np.fmax(t_p_many(d), sign_flip_p_many(d))


def one_sided_from_two_sided(p_two: float, estimate: float, *, direction: int, size: float = 0.0) -> float:
    """One-sided p in ``direction`` from a symmetric two-sided p of ``estimate - size``."""
    if not np.isfinite(p_two):
        return np.nan
    return p_two / 2 if direction * (estimate - size) > 0 else 1 - p_two / 2


def graphical_levels(p_values: Sequence[float], weights: Sequence[float], transitions, alpha: float) -> np.ndarray:
    """Local levels of a graphical multiple-testing procedure (Bretz et al. 2009).

    Hypothesis ``i`` starts with ``weights[i] * alpha``; ``transitions[i][j]`` is the share of
    ``i``'s level that goes to ``j`` once ``i`` is rejected (rows summing to at most 1). While
    some hypothesis has ``p <= its level`` it is rejected and the graph is updated; the
    family-wise error stays at ``alpha``. Returns each hypothesis's final level: the level at
    which it was rejected, or the level it held when the procedure stopped (0: never
    reached). A NaN p (a claim the data cannot test) is removed before testing, its share
    passed on as the graph says, so that an untestable claim neither blocks nor is
    rejected."""
    p = np.asarray(p_values, dtype=float)
    k = len(p)
    w = np.asarray(weights, dtype=float).copy()
    g = np.asarray(transitions, dtype=float).reshape(k, k).copy()
    active = np.ones(k, dtype=bool)
    level = np.zeros(k)

    def remove(j: int) -> None:
        active[j] = False
        for a in np.flatnonzero(active):
            w[a] += w[j] * g[j, a]
        new = np.zeros_like(g)
        for a in np.flatnonzero(active):
            for b in np.flatnonzero(active):
                if a != b:
                    denom = 1 - g[a, j] * g[j, a]
                    new[a, b] = (g[a, b] + g[a, j] * g[j, b]) / denom if denom > 1e-12 else 0.0
        g[:] = new
        w[j] = 0.0

    for j in np.flatnonzero(~np.isfinite(p)):
        remove(j)
    while True:
        ready = [j for j in np.flatnonzero(active) if p[j] <= w[j] * alpha + 1e-15 and w[j] > 0]
        if not ready:
            break
        j = ready[0]
        level[j] = w[j] * alpha
        remove(j)
    for j in np.flatnonzero(active):
        level[j] = w[j] * alpha
    return level


# -- counts: per-patient log rate ratios --------------------------------------------------------


def patient_log_ratios(counts: pd.DataFrame, post: Sequence[str]) -> tuple[pd.Series, int]:
    """Each patient's log ratio of the post-infusion rates over the baseline rate.

    ``counts`` has one row per sample: ``patient_id``, ``visit`` (``"baseline"`` or a label
    of ``post``), ``y`` (events) and ``n`` (exposure). A patient's value is the log of the
    mean of its post visits' rates (visits weighted equally) over its baseline rate
    (:func:`log_rate_ratio`). A patient without any event at any of these visits carries no
    information and is left out; the number left out is returned beside the ratios."""
    post = list(post)
    c = counts[counts["visit"].isin(["baseline", *post]) & (counts["n"] > 0)]
    c = c.groupby(["patient_id", "visit"])[["y", "n"]].sum().reset_index()
    base = c[c["visit"] == "baseline"].set_index("patient_id")
    after = c[c["visit"] != "baseline"]
    y = after.pivot(index="patient_id", columns="visit", values="y").reindex(base.index).dropna(how="all")
    n = after.pivot(index="patient_id", columns="visit", values="n").reindex(y.index)
    base = base.reindex(y.index)
    informative = (base["y"] + y.fillna(0).sum(axis=1)) > 0
    ratios = log_rate_ratio(base["y"][informative], base["n"][informative], y[informative].T, n[informative].T)
    return pd.Series(ratios, index=y.index[informative], name="log_ratio"), int((~informative).sum())


def log_rate_ratio(y_base, n_base, y_post, n_post) -> np.ndarray:
    """log of the post rate over the baseline rate. The post rate is the mean of the post
    visits' rates (axis 0 of ``y_post`` and ``n_post``; NaN where a patient has no such
    visit), so that visits weigh the same; each side gets half an event of continuity over
    its exposure (Haldane), which pulls a rate that fell to zero towards no change, never to
    minus infinity. Averaging the visits' rates before the log keeps the downward bias of a
    log of noisy rates small (scripts/calibrate_statistics.py measures what is left)."""
    y_post, n_post = np.asarray(y_post, dtype=float), np.asarray(n_post, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        post_rate = np.nanmean(y_post / n_post, axis=0)
    exposure = np.nansum(n_post, axis=0)
    base = np.log((np.asarray(y_base, dtype=float) + 0.5) / np.asarray(n_base, dtype=float))
    return np.log((post_rate * exposure + 0.5) / exposure) - base


def _percent(x: float) -> float:
    """A log ratio as percent change; an infinite one as -100 % or +inf, NaN as NaN."""
    if np.isnan(x):
        return np.nan
    return float(100.0 * np.expm1(x)) if np.isfinite(x) else (-100.0 if x < 0 else np.inf)


def rate_change(counts: pd.DataFrame, post: Sequence[str], *, direction: int, size: float) -> dict:
    """The mean patient's change of a rate, in percent: per-patient log rate ratios
    (:func:`patient_log_ratios`) tested across patients by :func:`one_sided_mean` against
    ``log(1 + size / 100)``, so that every patient weighs the same and patients who respond
    differently widen the interval instead of inflating the error. Estimate, 95% t interval
    and bounds are on the percent scale (``100 * (exp(mean log ratio) - 1)``: the geometric
    mean of the patients' fold changes)."""
    ratios, uninformative = patient_log_ratios(counts, post)
    s = one_sided_mean(ratios.to_numpy(), direction=direction, size=float(np.log1p(size / 100.0)))

    log_bounds = s["bounds"]
    s.update({k: _percent(s[k]) for k in ("estimate", "ci_low", "ci_high")})
    s["bounds"] = lambda alpha: tuple(_percent(b) for b in log_bounds(alpha))
    s["uninformative"] = uninformative
    s["patient_values"] = 100.0 * np.expm1(ratios)
    return s


# -- counts: one rate ratio for all patients (a description) ----------------------------------

_BOUND = 40.0  # |log rate ratio| beyond which a rate counts as zero or unbounded


def rate_ratio(
    counts: pd.DataFrame, post: Sequence[str], *, direction: int, size: float, level: float = 0.95
) -> dict[str, float]:
    """Within-patient change of a rate from baseline, by a conditional Poisson count model.

    ``counts`` has one row per sample: ``patient_id``, ``visit`` (``"baseline"`` or a label
    of ``post``), ``y`` (events: cells of a type, or UMIs in cell equivalents) and ``n``
    (exposure: all cells of the sample). The model is ``y ~ Poisson(n * exp(a_patient +
    b_visit))`` with ``b_baseline = 0``; conditioning on each patient's total removes the
    patient effect, so a patient contributes through its own visits only and a patient
    without any events is uninformative (counted, not dropped silently). The effect is
    ``psi = log(mean over post visits of exp(b_visit))``, the ratio of the mean
    post-infusion rate (visits weighted equally) to the baseline rate. Between-patient
    heterogeneity is absorbed by a quasi-Poisson dispersion ``phi`` (Pearson, at least 1);
    the 95% interval is the profile-likelihood interval with the deviance scaled by
    ``phi`` and referred to a t distribution on patients - 1 degrees of freedom. A rate that
    falls to zero in every patient gives an interval open towards -100 %.

    Returns the percent change (``estimate``, ``ci_low``, ``ci_high``), the one-sided
    ``p_value`` of H0 ``direction * change <= direction * size`` (size in percent),
    ``n_patients`` (informative patients), ``patients_consistent`` (patients whose own
    change lies beyond ``size`` in ``direction``), ``uninformative`` and ``phi``.
    """
    from scipy import optimize

    post = list(post)
    t_post = len(post)
    out = {"estimate": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan, "n_patients": 0,
           "patients_consistent": 0, "uninformative": 0, "phi": np.nan}  # fmt: skip
    visits = ["baseline", *post]
    c = counts[counts["visit"].isin(visits)]
    wide_y = c.pivot_table(index="patient_id", columns="visit", values="y", aggfunc="sum").reindex(columns=visits)
    wide_n = c.pivot_table(index="patient_id", columns="visit", values="n", aggfunc="sum").reindex(columns=visits)
    has = wide_n.notna() & (wide_n > 0)
    keep = has["baseline"] & has[post].any(axis=1)
    y = wide_y[keep].fillna(0.0).to_numpy(float)
    n = wide_n[keep].where(has[keep], 0.0).to_numpy(float)
    present = n > 0
    informative = y.sum(axis=1) > 0
    out["uninformative"] = int((~informative).sum())
    y, n, present = y[informative], n[informative], present[informative]
    k = len(y)
    out["n_patients"] = k
    if k == 0:
        return out
    rate = np.where(present, y / np.where(present, n, 1.0), np.nan)
    post_rate = np.nanmean(rate[:, 1:], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        own = np.where(rate[:, 0] > 0, 100 * (post_rate / rate[:, 0] - 1), np.inf)
    out["patients_consistent"] = int((direction * (own - size) > 0).sum())
    logn = np.log(np.where(present, n, 1.0))
    total = y.sum(axis=1)

    def loglik(beta_post: np.ndarray) -> float:
        eta = np.where(present, logn + np.concatenate([[0.0], beta_post])[None, :], -np.inf)
        m = eta.max(axis=1, keepdims=True)
        lse = m[:, 0] + np.log(np.exp(eta - m).sum(axis=1))
        return float(np.sum(np.where(present, y * np.where(present, eta, 0.0), 0.0)) - np.sum(total * lse))

    def probs(beta_post: np.ndarray) -> np.ndarray:
        eta = np.where(present, logn + np.concatenate([[0.0], beta_post])[None, :], -np.inf)
        e = np.exp(eta - eta.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def neg(beta_post: np.ndarray) -> tuple[float, np.ndarray]:
        grad = (y - total[:, None] * probs(beta_post))[:, 1:].sum(axis=0)
        return -loglik(beta_post), -grad

    bounds = [(-_BOUND, _BOUND)] * t_post
    fit = optimize.minimize(neg, np.zeros(t_post), jac=True, method="L-BFGS-B", bounds=bounds)
    beta = fit.x
    best = -fit.fun

    def psi_of(b: np.ndarray) -> float:
        return float(np.log(np.mean(np.exp(b))))

    psi_hat = psi_of(beta)
    expected = total[:, None] * probs(beta)
    cells = present & (expected > 1e-12)
    chi2 = float(np.sum(((y - expected) ** 2 / np.where(cells, expected, 1.0))[cells]))
    df_resid = int(present.sum() - k - t_post)
    phi = max(1.0, chi2 / df_resid) if df_resid > 0 else 1.0
    out["phi"] = phi
    df = max(k - 1, 1)

    theta_hat = beta - beta.max()

    def profile(psi: float) -> float:
        """Maximum log-likelihood with psi fixed (the shares of the post visits free)."""
        if t_post == 1:
            return loglik(np.array([psi]))

        def b_of(theta: np.ndarray) -> np.ndarray:
            th = np.concatenate([theta, [0.0]])
            w = np.exp(th - th.max())
            w /= w.sum()
            return psi + np.log(t_post * np.maximum(w, 1e-300))

        res = optimize.minimize(lambda th: -loglik(b_of(th)), theta_hat[:-1] - theta_hat[-1], method="L-BFGS-B",
                                bounds=[(-_BOUND, _BOUND)] * (t_post - 1))  # fmt: skip
        return -float(res.fun)

    def signed_root(psi0: float) -> float:
        dev = max(2.0 * (best - profile(psi0)), 0.0)
        return float(np.sign(psi_hat - psi0) * np.sqrt(dev / phi))

    crit = stats.t.ppf(0.5 + level / 2, df)
    lo_edge, hi_edge = -_BOUND + np.log(t_post) + 1, _BOUND - 1
    floor = psi_hat <= lo_edge + 1  # the rate fell to zero everywhere
    if floor:
        low = -np.inf
    else:
        f = lambda p: signed_root(p) - crit  # noqa: E731
        low = optimize.brentq(f, lo_edge, psi_hat) if f(lo_edge) > 0 else -np.inf
    g = lambda p: signed_root(p) + crit  # noqa: E731
    start = max(psi_hat, lo_edge)
    high = (
        optimize.brentq(g, start, hi_edge) if g(hi_edge) < 0 and g(start) > 0 else (start if g(start) <= 0 else np.inf)
    )
    psi0 = np.log1p(size / 100.0)
    p_value = float(stats.t.sf(direction * signed_root(psi0), df))

    out.update(estimate=_percent(psi_hat), ci_low=_percent(low), ci_high=_percent(high), p_value=p_value)
    return out


def poisson_upper(events: float, exposure: float, level: float = 0.95) -> float:
    """Exact one-sided upper confidence bound of a Poisson rate ``events / exposure``."""
    if exposure <= 0:
        return np.nan
    return float(stats.chi2.ppf(level, 2 * (events + 1)) / 2 / exposure)
