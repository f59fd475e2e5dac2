"""Ordering of time points as clinicians write them.

A label is read as days since infusion: ``baseline``, ``pre``, ``screening`` (and
``pre-infusion``, ``pretreatment``) are before it; a unit and a number in either order is
after it (``d14``, ``day14``, ``day 14``, ``14d``, ``w2``, ``week2``, ``wk2``, ``m3``,
``month3``, ``3mo``, ``y1``, ``year1``; a month counts 30.4 days). Labels that cannot be
read sort after all others, by name.

A sample sheet's optional ``day`` column (days since infusion; 0 or negative before it)
overrides the label: pass it as ``days`` (label -> day).
"""

from __future__ import annotations

import re

#: Labels of visits before infusion, with the day they stand for (for ordering).
PRE_INFUSION = {"screening": -28.0, "pre-infusion": -1.0, "preinfusion": -1.0, "pretreatment": -1.0,
                "pre-treatment": -1.0, "pre": -1.0, "baseline": 0.0}  # fmt: skip
_UNITS = {"d": 1.0, "day": 1.0, "days": 1.0, "w": 7.0, "wk": 7.0, "week": 7.0, "weeks": 7.0, "m": 30.4, "mo": 30.4,
          "month": 30.4, "months": 30.4, "y": 365.0, "yr": 365.0, "year": 365.0, "years": 365.0}  # fmt: skip
_NUMBER = r"(?P<n>-?\d+(?:\.\d+)?)"
_UNIT = r"(?P<u>[a-z]+)"
_FORMS = [re.compile(rf"^{_UNIT}[ _.-]?{_NUMBER}$"), re.compile(rf"^{_NUMBER}[ _.-]?{_UNIT}$")]


def days_since_infusion(label, days: dict | None = None) -> float | None:
    """The day a time-point label stands for (pre-infusion visits 0 or below), or None;
    ``days`` (label -> day, from the sample sheet) wins over the label."""
    if days and label in days and days[label] is not None and days[label] == days[label]:
        return float(days[label])
    t = str(label).strip().lower()
    if t in PRE_INFUSION:
        return PRE_INFUSION[t]
    for form in _FORMS:
        match = form.match(t)
        if match and match["u"] in _UNITS:
            return _UNITS[match["u"]] * float(match["n"])
    return None


def is_pre_infusion(label, days: dict | None = None) -> bool:
    """True for visits before infusion (baseline, screening, pre, d0, d-7 ...)."""
    day = days_since_infusion(label, days)
    return day is not None and day <= 0


def order_timepoints(timepoints, days: dict | None = None) -> list[str]:
    """Time points in clinical order: pre-infusion visits, then by days since infusion, then
    labels that cannot be read (by name)."""

    def key(t: str):
        day = days_since_infusion(t, days)
        return (0, day, t) if day is not None else (1, 0.0, t)

    return sorted(set(map(str, timepoints)), key=key)


def label_days(sheet) -> dict[str, float]:
    """Time-point label -> days since infusion, from a sample sheet's ``day`` column (the
    median over the label's samples; labels without a day are left to their name)."""
    if "day" not in sheet:
        return {}
    days = sheet[["timepoint", "day"]].replace("", None).dropna()
    if days.empty:
        return {}
    return days.astype({"day": float}).groupby("timepoint")["day"].median().to_dict()
