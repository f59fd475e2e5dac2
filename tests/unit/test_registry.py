"""The claim registry is the one place that lists the claims."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from csfcart.claims import MEASURES
from csfcart.registry import CLAIM_IDS, CLAIMS, families, family

ROOT = Path(__file__).parents[2]
CLAIM_ID = re.compile(r"""["'](C[1-9]|D[1-3]|M[12])["']""")


def test_nothing_but_the_registry_lists_claim_ids():
    files = [*ROOT.glob("src/csfcart/**/*.py"), *ROOT.glob("workflow/**/*.smk"), *ROOT.glob("workflow/scripts/*.py"),
             ROOT / "Snakefile", *ROOT.glob("config/schemas/*.yaml")]  # fmt: skip
    offenders = [
        f"{path.relative_to(ROOT)}:{i}"
        for path in files
        if path.name != "registry.py"
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if CLAIM_ID.search(line)
    ]
    assert not offenders, offenders


def test_every_readout_has_a_measurement_and_a_sound_definition():
    for claim in CLAIMS.values():
        for r in claim.readouts:
            assert r.measure in MEASURES, (claim.id, r.measure)
            assert r.direction in (-1, 1) and r.scale in ("percent", "fraction", "log2", "lr_score")
            assert r.window in ("post", "first", "last", "matched")
        assert not claim.readouts[0].optional


def test_families_are_closed_and_ordered():
    assert family("C2") == ["C1", "C2", "C9"]
    assert families(["C9"]) == ["C1", "C2", "C9"]
    assert families(["C3", "C5"]) == ["C3", "C4", "C5"]


def test_the_config_schema_takes_its_claim_ids_from_the_registry():
    from csfcart.config import _schema

    schema = _schema(ROOT / "config" / "schemas" / "config.schema.yaml")
    assert schema["properties"]["claims"]["items"]["enum"] == list(CLAIM_IDS)


@pytest.mark.parametrize("claim", ["C3", "D1"])
def test_depletion_claims_are_counted_not_averaged(claim):
    assert CLAIMS[claim].primary.measure == "depletion" and CLAIMS[claim].size == -50.0
