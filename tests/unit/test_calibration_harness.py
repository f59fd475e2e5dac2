"""The statistics harness runs the claims' own decision code on cohorts drawn without cells."""

from __future__ import annotations

import importlib.util

import numpy as np

from tests.conftest import ROOT


def _harness():
    spec = importlib.util.spec_from_file_location("calibrate_statistics", ROOT / "scripts" / "calibrate_statistics.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_harness_keeps_the_level_at_the_size_and_finds_effects_beyond_it():
    table = _harness().calibrate(["C3", "C6"], cohorts=300, alpha=0.05, seed=1)
    expected = {"claim_id", "n_patients", "effect", "heterogeneity", "cells_sdlog", "cohorts", "reproduced_rate",
                "wilson_low", "wilson_high", "bound_coverage"}  # fmt: skip
    assert set(table.columns) == expected and len(table) == 2 * 3 * 4 * 3 * 2
    # 3 patients: the exact test's floor (1/8) is above alpha, whatever the effect
    assert (table.loc[table["n_patients"] == 3, "reproduced_rate"] == 0).all()
    error = table[table["effect"] != "beyond"]
    assert (error["wilson_low"] <= 0.05).all(), error.sort_values("reproduced_rate").tail()
    beyond = table[(table["effect"] == "beyond") & (table["n_patients"] == 12) & (table["heterogeneity"] == 0)]
    assert (beyond["reproduced_rate"] > 0.5).all(), beyond
    assert np.isfinite(table["bound_coverage"]).all() and table["bound_coverage"].min() > 0.85
