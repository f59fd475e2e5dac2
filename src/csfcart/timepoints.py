"""Ordering of time points as clinicians write them."""

from __future__ import annotations


def order_timepoints(timepoints) -> list[str]:
    """Time points in clinical order: baseline, then days, weeks, months (dNN, wNN, mNN)."""
    unit = {"d": 1, "w": 7, "m": 30, "y": 365}

    def key(t: str):
        t = str(t)
        if t.lower() in ("baseline", "pre", "d0"):
            return (0, 0.0, t)
        if t[:1].lower() in unit and t[1:].replace(".", "", 1).isdigit():
            return (1, unit[t[0].lower()] * float(t[1:]), t)
        return (2, 0.0, t)

    return sorted(set(map(str, timepoints)), key=key)
