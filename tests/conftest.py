"""Shared fixtures: small, real-shaped inputs written on the fly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

ROOT = Path(__file__).parents[1]


def shipped_lineages() -> dict[str, str]:
    """Cell type -> lineage of the shipped marker table (config/markers.tsv)."""
    from csfcart.annotate import lineage_of

    return lineage_of(ROOT / "config" / "markers.tsv")


def pytest_configure(config):
    """Outside the SLURM test, a ``scontrol`` that fails at once comes first on PATH.

    Every Snakemake start imports the SLURM executor plugin, which runs ``scontrol show
    config``; on a machine with SLURM's client but no controller running (as where the SLURM
    test's packages are installed) that call waits about 9 s before it fails, and the suite
    starts Snakemake about 70 times. The plugin takes the failure as SLURM not configured.
    """
    if os.environ.get("CSFCART_SLURM") == "1" or os.environ.get("CSFCART_NO_SLURM_STUB"):
        return
    import tempfile

    stub = Path(tempfile.mkdtemp(prefix="csfcart-no-slurm-"))
    (stub / "scontrol").write_text("#!/bin/sh\necho 'scontrol: no SLURM controller in this test' >&2\nexit 1\n")
    (stub / "scontrol").chmod(0o755)
    os.environ["CSFCART_NO_SLURM_STUB"] = str(stub)
    os.environ["PATH"] = f"{stub}{os.pathsep}{os.environ.get('PATH', '')}"


# ``make test`` runs the suite on two pytest-xdist workers. The tests of a module named here
# run on one worker, one after another, so that an expensive fixture is made once: the
# session's tiny run (tests/e2e/conftest.py) and the cohorts that unit modules simulate.
# Every other test is scheduled on its own; larger groups start first.
SHARED_WORKER = {
    "tests/e2e/test_interop.py": "tiny_run",
    "tests/e2e/test_report.py": "tiny_run",
    "tests/e2e/test_resume.py": "tiny_run",
    "tests/e2e/test_tiny_cohort.py": "tiny_run",
    "tests/unit/test_ambient.py": "ambient",
    "tests/unit/test_simulate.py": "simulate",
}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class SharedWorker(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return SHARED_WORKER.get(nodeid.split("::", 1)[0], nodeid)

    return SharedWorker(config, log)


def pytest_collection_modifyitems(config, items):
    stray = [
        item.nodeid
        for item in items
        if "tiny_run" in item.fixturenames and SHARED_WORKER.get(item.nodeid.split("::", 1)[0]) != "tiny_run"
    ]
    if stray:
        raise pytest.UsageError(
            f"{stray[0]} reads the session's tiny run, but its module is not in SHARED_WORKER with "
            "'tiny_run' (tests/conftest.py): add it there, or the run is made again on each worker"
        )


SNAKEMAKE = [sys.executable, "-m", "snakemake"]
GENES = ["CD3D", "CD3E", "CD4", "IL7R", "CD8A", "MS4A1", "CD79A", "LYZ", "CD14", "MT-CO1", "MT-ND1", "RPL13A",
         *[f"GENE{i}" for i in range(60)]]  # fmt: skip


def write_mtx(directory: Path, counts, barcodes, genes=GENES) -> Path:
    """A 10x v3 folder as Cell Ranger writes it (real-valued when ``counts`` is float)."""
    import gzip
    import io

    import scipy.io

    directory.mkdir(parents=True, exist_ok=True)
    counts = np.asarray(counts)
    field = "integer" if np.issubdtype(counts.dtype, np.integer) else "real"
    buf = io.BytesIO()
    scipy.io.mmwrite(buf, sp.coo_matrix(counts.T), field=field)
    with gzip.open(directory / "matrix.mtx.gz", "wb") as fh:
        fh.write(buf.getvalue())
    with gzip.open(directory / "features.tsv.gz", "wt") as fh:
        fh.writelines(f"ID{i:05d}\t{g}\tGene Expression\n" for i, g in enumerate(genes))
    with gzip.open(directory / "barcodes.tsv.gz", "wt") as fh:
        fh.writelines(f"{b}\n" for b in barcodes)
    return directory


def random_counts(n_cells=80, seed=0):
    rng = np.random.default_rng(seed)
    return rng.poisson(2.0, size=(n_cells, len(GENES))).astype(np.int32)


def barcodes(n):
    return [f"CELL{i:05d}-1" for i in range(n)]


@pytest.fixture
def dataset(tmp_path):
    """A two-sample dataset of 10x folders with its sheet; returns (dir, write_sheet)."""
    for s in ("S1", "S2"):
        write_mtx(tmp_path / "data" / s, random_counts(seed=int(s[1])), barcodes(80))

    def write_sheet(rows=None, header="sample_id\tpatient_id\ttimepoint\tcompartment\tpath"):
        rows = rows or ["S1\tP1\tbaseline\tCSF\tdata/S1", "S2\tP1\td14\tCSF\tdata/S2"]
        sheet = tmp_path / "samples.tsv"
        sheet.write_text("\n".join([header, *rows]) + "\n")
        return sheet

    return tmp_path, write_sheet


def run_snakemake(*args, cwd=ROOT, timeout=900):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([*SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "override.yaml"
    path.write_text(text)
    return path
