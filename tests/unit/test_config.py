"""Config resolution and validation, without Snakemake."""

from __future__ import annotations

import pytest
import yaml

from csfcart.config import resolve_dataset, validate_config
from csfcart.errors import InputError
from tests.conftest import ROOT

SCHEMA = ROOT / "config" / "schemas" / "config.schema.yaml"


def _config(**over):
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg.update(over)
    return cfg


def test_default_config_resolves_to_the_synthetic_cohort():
    cfg = resolve_dataset(_config(), ROOT / "config" / "datasets")
    validate_config(cfg, SCHEMA)
    assert cfg["simulation"]["n_patients"] == 5


def test_extends_merges_the_parent_dataset():
    cfg = resolve_dataset(_config(dataset="csf_null_tiny"), ROOT / "config" / "datasets")
    sim = cfg["simulation"]
    assert sim["effects"] == {} and sim["n_patients"] == 3 and sim["compartments"]["CSF"]["composition"]


def test_neither_samples_nor_simulation_is_refused():
    with pytest.raises(InputError, match="needs exactly one of 'simulation' or 'samples'"):
        resolve_dataset(_config(dataset="my_cohort"), ROOT / "config" / "datasets")


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("clustering", "resolution"), -1, "clustering.resolution"),
        (("qc", "on_too_few_cells"), "ignore", "use one of: exclude, fail"),
        (("integration", "scvi", "epochs"), 3, "key 'integration.scvi.epochs': unknown key"),
    ],
)
def test_strict_schema(path, value, message):
    cfg = resolve_dataset(_config(), ROOT / "config" / "datasets")
    node = cfg
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    with pytest.raises(InputError, match=message.replace(".", r"\.")):
        validate_config(cfg, SCHEMA)
