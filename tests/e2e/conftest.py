"""The tiny synthetic cohort, run once per session and shared by the end-to-end tests."""

from __future__ import annotations

import pytest

from tests.conftest import run_snakemake, write_config


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    override = write_config(
        tmp,
        f"results: {tmp / 'results'}\n"
        "integration:\n  method: scvi\n  batch_key: sample_id\n  n_hvg: 1000\n"
        "  scvi: {max_epochs: 2, min_steps: 1, batch_size: 256, early_stopping: false, accelerator: cpu}\n",
    )
    proc = run_snakemake(
        "-c2", "--workflow-profile", "workflow/profiles/default",
        "--configfile", "config/datasets/csf_bcma_cart_tiny.yaml", str(override),
    )  # fmt: skip
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return tmp / "results" / "csf_bcma_cart_tiny"
