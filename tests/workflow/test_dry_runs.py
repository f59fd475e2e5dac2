"""Every ready dataset validates and dry-runs, swapped by config alone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from csfcart.workflow import MEMORY_MODEL, SCORES_MODEL
from tests.conftest import ROOT, run_snakemake

DATASETS = sorted(p.name for p in (ROOT / "config" / "datasets").glob("*.yaml"))


@pytest.mark.parametrize("name", DATASETS)
def test_dataset_dry_runs(name, tmp_path):
    proc = run_snakemake("-n", "--configfile", f"config/datasets/{name}", "--config", f"results={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    first = "download" if name == "gse138266.yaml" else "simulate"
    assert first in proc.stdout and "annotate" in proc.stdout
    assert f"{tmp_path}/{Path(name).stem}/" in proc.stdout


def test_the_public_dataset_dry_runs_with_the_real_geo_url(tmp_path):
    proc = run_snakemake("-n", "--configfile", "config/datasets/gse138266.yaml", "--config", f"results={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "resources/gse138266/GSE138266_RAW.tar" in out and "rule unpack" in out
    assert out.count("rule ingest") == 22 and "rule claims" in out
    # MS versus control: the unpaired claims only
    assert "rule composition" in out and "rule communication_diff" in out


def test_default_config_dry_runs_the_default_dataset(tmp_path):
    proc = run_snakemake("-n", "--config", f"results={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"{tmp_path}/csf_bcma_cart/annotated.h5ad" in proc.stdout


def test_harmony_is_a_config_switch(tmp_path):
    override = tmp_path / "h.yaml"
    override.write_text(f"results: {tmp_path}\nintegration:\n  method: harmony\n")
    proc = run_snakemake("-n", "--configfile", "config/datasets/csf_null_tiny.yaml", str(override))
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.parametrize("parent", ["csf_bcma_cart_tiny.yaml", "local"])
def test_a_dataset_file_from_elsewhere_extends_its_parent(parent, tmp_path):
    # a user's variant outside config/datasets: the parent is found beside it or in config/datasets
    if parent == "local":
        (tmp_path / "base.yaml").write_text((ROOT / "config" / "datasets" / "csf_null_tiny.yaml").read_text())
        (tmp_path / "csf_null.yaml").write_text((ROOT / "config" / "datasets" / "csf_null.yaml").read_text())
        (tmp_path / "csf_bcma_cart.yaml").write_text((ROOT / "config" / "datasets" / "csf_bcma_cart.yaml").read_text())
        parent = "base.yaml"
    mine = tmp_path / "my_variant.yaml"
    mine.write_text(f"dataset: my_variant\nextends: {parent}\nsimulation:\n  seed: 7\n")
    proc = run_snakemake("-n", "--configfile", str(mine), "--config", f"results={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"{tmp_path}/my_variant/simulated/samples.tsv" in proc.stdout


def test_a_missing_parent_is_named_with_the_fix(tmp_path):
    mine = tmp_path / "my_variant.yaml"
    mine.write_text("dataset: my_variant\nextends: nowhere.yaml\nsimulation:\n  seed: 7\n")
    proc = run_snakemake("-n", "--configfile", str(mine), "--config", f"results={tmp_path}")
    assert proc.returncode != 0
    assert "key 'extends': 'nowhere.yaml' not found" in proc.stdout + proc.stderr
    assert "Fix:" in proc.stdout + proc.stderr


def _requested_mb(stdout: str, rule: str) -> int:
    block = stdout.split(f"rule {rule}:", 1)[1]
    return int(re.search(r"mem_mb=(\d+)", block).group(1))


def test_cohort_rules_ask_memory_by_the_cohort_size_in_a_dry_run(tmp_path):
    # a million-cell cohort (112 patients of the default design) before any file exists:
    # SLURM requests follow the cells the config will make, not the default floors
    big = tmp_path / "csf_bcma_cart_1m.yaml"
    big.write_text(f"dataset: csf_bcma_cart_1m\nextends: {ROOT}/config/datasets/csf_bcma_cart.yaml\n"
                   f"results: {tmp_path}\nsimulation:\n  n_patients: 112\n")  # fmt: skip
    small = run_snakemake("-n", "--config", f"results={tmp_path}")
    large = run_snakemake("-n", "--cores", "8", "--configfile", str(big))  # threads as on a cluster
    assert small.returncode == 0 and large.returncode == 0, large.stderr[-3000:]
    for rule, floor in (("merge", 4000), ("integrate", 8000), ("annotate", 6000), ("programs", 4000)):
        assert _requested_mb(small.stdout, rule) == floor  # 45,000 cells: the floor suffices
        # about 1,000,000 cells x 625 counts per cell in the default cohort
        assert 1.5 * 0.6e9 * MEMORY_MODEL[rule][1] / 1e6 < _requested_mb(large.stdout, rule) < 40_000, rule
    # the interaction tables grow with the CSF samples scored (336 here), not the cells
    for rule in ("communication_diff", "communication_tensor"):
        assert _requested_mb(small.stdout, rule) == 4000
        assert 1.5 * (336 * 0.2e6 * SCORES_MODEL[rule][1] / 1e6) < _requested_mb(large.stdout, rule) < 20_000, rule
    # LIANA's scoring: a parent holding the cell table and a worker per thread, each process
    # asking by the counts (not twice the file's size per thread: eight times annotated.h5ad)
    base, per_count = MEMORY_MODEL["communication"]
    threads = int(re.search(r"threads: (\d+)", large.stdout.split("rule communication:", 1)[1]).group(1))
    processes = threads + 1 if threads > 1 else 1
    assert _requested_mb(small.stdout, "communication") == 3000
    asked = _requested_mb(large.stdout, "communication")
    assert 1.5 * processes * (base + per_count * 600) < asked < 1.5 * processes * (base + per_count * 700) + 100
    assert asked < 12_000
