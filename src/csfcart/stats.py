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


# -- one-sided tests against a claimed size ----------------------------------------------------

#: Exact sign-flip p-values are computed up to this many patients (2**n sign patterns).
SIGN_FLIP_MAX_N = 8


def sign_flip_p(values: Sequence[float], *, direction: int, size: float = 0.0) -> float:
    """Exact one-sided sign-flip p of the mean of ``values - size`` in ``direction``.

    Under H0 (the per-patient values are symmetric about ``size``) every pattern of signs is
    equally likely; the p-value is the share of the 2**n patterns whose mean lies at least
    as far in ``direction`` as the observed one. With n patients the smallest p is 2**-n
    (1/32 for 5), whatever the effect. NaN for more than :data:`SIGN_FLIP_MAX_N` values.
    """
    d = direction * (np.asarray(values, dtype=float) - size)
    d = d[np.isfinite(d)]
    n = len(d)
    if n == 0 or n > SIGN_FLIP_MAX_N:
        return np.nan
    signs = 1 - 2 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1)
    means = (signs * np.abs(d)).mean(axis=1)
    return float(np.mean(means >= d.mean() - 1e-12))


def one_sided_mean(values: Sequence[float], *, direction: int, size: float = 0.0) -> dict[str, float]:
    """Mean of per-patient values, 95% t CI, and one-sided p against the claimed size.

    ``p_value`` tests H0 ``direction * mean <= direction * size`` with a t-test; for up to
    :data:`SIGN_FLIP_MAX_N` patients the exact sign-flip p is computed beside it
    (``p_sign_flip``) and ``p_value`` is the larger of the two, since with few patients a
    t-test's smallest p-values rest on a normality that skewed per-patient values break.
    """
    out = paired_summary(values, direction=direction)
    out.update(p_t=np.nan, p_sign_flip=np.nan, p_value=np.nan)
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    n = len(v)
    out["patients_consistent"] = int((direction * (v - size) > 0).sum())
    if n < 2:
        return out
    sd = float(v.std(ddof=1))
    dist = direction * (float(v.mean()) - size)
    if sd == 0:
        p_t = 0.0 if dist > 0 else 1.0
    else:
        p_t = float(stats.t.sf(dist / (sd / np.sqrt(n)), n - 1))
    p_sf = sign_flip_p(v, direction=direction, size=size)
    out.update(p_t=p_t, p_sign_flip=p_sf, p_value=float(np.nanmax([p_t, p_sf])))
    return out


def one_sided_from_two_sided(p_two: float, estimate: float, *, direction: int, size: float = 0.0) -> float:
    """One-sided p in ``direction`` from a symmetric two-sided p of ``estimate - size``."""
    if not np.isfinite(p_two):
        return np.nan
    return p_two / 2 if direction * (estimate - size) > 0 else 1 - p_two / 2


def fixed_sequence(p_values: Sequence[float]) -> np.ndarray:
    """Adjusted p-values of a fixed-sequence procedure: hypotheses tested in the given order,
    each at the full level until the first that is not rejected (the adjusted p is the
    running maximum). Missing p-values (claims that cannot be tested) are skipped."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    running = 0.0
    for i, x in enumerate(p):
        if np.isfinite(x):
            running = max(running, x)
            out[i] = running
    return out


# -- counts: rate ratios within patient --------------------------------------------------------

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

    def pct(x: float) -> float:
        return float(100.0 * np.expm1(x)) if np.isfinite(x) else (-100.0 if x < 0 else np.inf)

    out.update(estimate=pct(psi_hat), ci_low=pct(low), ci_high=pct(high), p_value=p_value)
    return out


def poisson_upper(events: float, exposure: float, level: float = 0.95) -> float:
    """Exact one-sided upper confidence bound of a Poisson rate ``events / exposure``."""
    if exposure <= 0:
        return np.nan
    return float(stats.chi2.ppf(level, 2 * (events + 1)) / 2 / exposure)
