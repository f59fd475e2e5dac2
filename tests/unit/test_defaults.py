"""Every default is defined once: as the `default:` of its key in the config schema.

A default written anywhere else (a `.get(key, value)` fallback in a rule, adapter or package
module, a keyword default of a package function named after a setting, a value repeated in
config/config.yaml) can drift from the schema's, as `clustering.resolution` once did (2.0 in
the config, 1.0 in the annotation script). These tests fail on any such second definition.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import yaml

import csfcart
from csfcart.config import _schema, default_config
from tests.conftest import ROOT

SCHEMA = ROOT / "config" / "schemas" / "config.schema.yaml"
#: what each setting of a run is (filled from the schema): the keys a default could shadow
SETTINGS = ("qc", "integration", "clustering", "annotation", "analysis")

#: package parameters named like a setting that are not one (each with the reason)
NOT_SETTINGS = {
    ("csfcart.annotate", "mixed_clusters", "min_cells"): "the smallest cluster split into its cells' own types",
    ("csfcart.evaluate", "annotation_scores", "min_cells"): "truth types too rare to score (evaluation only)",
    ("csfcart.evaluate", "annotation_scores", "baseline"): "no visit classes unless the caller names the baseline",
    ("csfcart.qc", "doublet_scores", "n_pcs"): "the doublet classifier's own PCA, not Harmony's",
    ("csfcart.simulate.write", "simulate_cohort", "samples"): "the simulator's own sheet, not a config key",
    ("csfcart.stats", "one_sided_from_two_sided", "size"): "a claim's size (claim registry), not download.size",
    ("csfcart.stats", "one_sided_mean", "size"): "a claim's size (claim registry), not download.size",
    ("csfcart.stats", "sign_flip_p", "size"): "a claim's size (claim registry), not download.size",
}


def _keys(schema: dict) -> set[str]:
    out = set()
    for key, sub in schema.get("properties", {}).items():
        out |= {key, *_keys(sub)}
    return out


def _leaves(schema: dict, prefix: str = "") -> dict[str, dict]:
    out = {}
    for key, sub in schema.get("properties", {}).items():
        if "properties" in sub:
            out |= _leaves(sub, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = sub
    return out


KEYS = _keys(_schema(SCHEMA))


def test_every_setting_has_its_default_in_the_schema():
    """Every leaf of qc, integration, clustering, annotation and analysis has a default, and
    a config naming only the dataset validates to a complete configuration."""
    schema = _schema(SCHEMA)
    missing = [
        f"{section}.{key}"
        for section in SETTINGS
        for key, sub in _leaves(schema["properties"][section]).items()
        if "default" not in sub
    ]
    assert missing == []
    config = default_config(SCHEMA, dataset="any")
    for section in SETTINGS:
        for key in _leaves(schema["properties"][section]):
            node = config[section]
            for part in key.split("."):
                assert part in node, f"{section}.{key} not filled in"
                node = node[part]
    assert (
        config["clustering"]["resolution"] == schema["properties"]["clustering"]["properties"]["resolution"]["default"]
    )


def _sources():
    files = [ROOT / "Snakefile", *ROOT.glob("workflow/rules/*.smk"), *ROOT.glob("workflow/scripts/*.py"),
             *(ROOT / "src" / "csfcart").rglob("*.py")]  # fmt: skip
    simulator = ROOT / "src" / "csfcart" / "simulate"  # reads the simulation block, not a workflow setting
    return [f for f in files if simulator not in f.parents]


#: a `.get(key, value)` on what holds settings: the config, a section of it, a rule's params
HOLDER = r"(?:CONFIG|config|settings|DOWNLOAD|qc|clustering|annotation|analysis|integration|params(?:\.\w+)?)"
FALLBACK = re.compile(HOLDER + r"""(?:\[[^\]]+\])*\.get\(\s*["']([A-Za-z_][A-Za-z0-9_]*)["']\s*,""")


def test_no_get_fallback_on_a_setting():
    """No `.get("resolution", 1.0)` on a config key in the rules, adapters or package."""
    found = []
    for path in _sources():
        for i, line in enumerate(path.read_text().splitlines(), 1):
            for key in FALLBACK.findall(line):
                if key in KEYS:
                    found.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert found == [], "defaults belong in config/schemas/config.schema.yaml:\n" + "\n".join(found)


def test_the_detector_finds_a_fallback():
    """The scan above would catch the defect it guards against."""
    line = 'resolution=clustering.get("resolution", 1.0),'
    assert FALLBACK.findall(line) == ["resolution"] and "resolution" in KEYS
    assert FALLBACK.findall('CONFIG["analysis"].get("min_counts", 1000)') == ["min_counts"]
    assert FALLBACK.findall('snakemake.params.integration.get("n_hvg", 2000)') == ["n_hvg"]


def test_no_package_function_defaults_a_setting():
    """Package functions take settings as required keywords (the adapters pass the config)."""
    found = []
    for info in pkgutil.walk_packages(csfcart.__path__, "csfcart."):
        module = importlib.import_module(info.name)
        for name, func in inspect.getmembers(module, inspect.isfunction):
            if func.__module__ != info.name:
                continue
            for p in inspect.signature(func).parameters.values():
                where = (info.name, name, p.name)
                if p.name in KEYS and p.default is not inspect.Parameter.empty and where not in NOT_SETTINGS:
                    found.append(f"{info.name}.{name}({p.name}={p.default!r})")
    assert found == []


def test_config_yaml_repeats_no_default():
    """config/config.yaml sets only what differs from the schema (a copy would drift)."""
    mine = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    defaults = default_config(SCHEMA, dataset=mine["dataset"])

    def same(a, b, path=""):
        if isinstance(a, dict):
            return [p for k, v in a.items() for p in same(v, b.get(k), f"{path}{k}.")]
        return [path.rstrip(".")] if a == b and path.rstrip(".") != "dataset" else []

    assert same(mine, defaults) == []


def test_config_readme_lists_every_key_with_its_default():
    """config/README.md is generated from the schema and up to date (make config-docs)."""
    from csfcart.config import config_docs

    assert (ROOT / "config" / "README.md").read_text() == config_docs(SCHEMA)
