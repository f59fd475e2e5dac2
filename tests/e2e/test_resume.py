"""Faults as users meet them: a run killed with SIGKILL (a node lost, an out-of-memory kill)
resumes with the same command and ends with the results of an uninterrupted run.

The run is killed three times: while a per-sample QC job runs, in the middle of integration
and while the report is assembled; between, an intermediate is corrupted in place and a table
cut short, and the next run must rebuild both rather than read them. The final claims table and every cell's annotated type
must equal those of the session's uninterrupted run of the same config (tiny_run) exactly,
which also shows that two runs of one config on one machine give the same claims.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import h5py
import pandas as pd
import pytest
from anndata.io import read_elem

from tests.conftest import ROOT, SNAKEMAKE, write_config

pytestmark = pytest.mark.e2e


def _command(override: Path, *extra: str) -> list[str]:
    return [*SNAKEMAKE, "-c2", "--workflow-profile", "workflow/profiles/default",
            "--configfile", "config/datasets/csf_bcma_cart_tiny.yaml", str(override), *extra]  # fmt: skip


def _kill_when(command: list[str], ready, log: Path, timeout: float = 600) -> None:
    """Start ``command`` and SIGKILL its whole process group once ``ready()`` is true."""
    with open(log, "a") as out:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONWARNINGS": "ignore"})  # fmt: skip
        start = time.monotonic()
        while not ready():
            assert proc.poll() is None, f"the run ended before the kill point (see {log})"
            assert time.monotonic() - start < timeout, f"kill point not reached in {timeout} s"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _finish(command: list[str], log: Path) -> None:
    with open(log, "a") as out:
        proc = subprocess.run(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, timeout=1200,
                              env={**os.environ, "PYTHONWARNINGS": "ignore"})  # fmt: skip
    assert proc.returncode == 0, log.read_text()[-5000:]


def _cell_types(h5ad: Path) -> pd.Series:
    with h5py.File(h5ad, "r") as f:
        obs = read_elem(f["obs"])
    return obs["cell_type"].astype(str)


def test_a_killed_run_resumes_to_the_uninterrupted_results(tiny_run, tmp_path):
    # the same settings as the session's uninterrupted run, another results folder
    text = (tiny_run.parents[1] / "override.yaml").read_text().replace(str(tiny_run.parents[0]), str(tmp_path))
    override = write_config(tmp_path, text)
    out = tmp_path / "csf_bcma_cart_tiny"
    log = tmp_path / "runs.log"
    command = _command(override)

    # 1. killed while per-sample QC runs (its log appears when the job starts)
    _kill_when(command, lambda: any((out / "logs" / "qc").glob("*.log")), log)
    assert not (out / "qc" / "summary.tsv").exists()
    # 2. killed in the middle of integration
    _kill_when(command, lambda: (out / "logs" / "integrate.log").exists(), log)
    assert not (out / "integration.json").exists()
    # 3. the same command again finishes the run
    _finish(command, log)
    # 4. an intermediate corrupted in place (same size) and a table cut short are detected
    # when the next run starts, removed and rebuilt, not read
    pb, programs = out / "pseudobulk" / "cell_types.h5ad", out / "scores" / "programs.tsv"
    data = bytearray(pb.read_bytes())
    data[len(data) // 3 : len(data) // 3 + 4096] = bytes(4096)
    pb.write_bytes(bytes(data))
    programs.write_bytes(programs.read_bytes()[: programs.stat().st_size // 2])
    _finish(command, log)
    assert log.read_text().count("removed, it will be rebuilt") == 2
    assert pb.read_bytes() != bytes(data) and h5py.is_hdf5(pb)
    # 5. the report, killed while it is assembled, then built again. The stylesheet is a named
    # pipe: snakemake opens it after collecting every result, just before it renders, and waits
    # there for a writer, so the kill lands inside report creation on any machine, however fast.
    report, stylesheet = out / "report.html", tmp_path / "report.css"
    os.mkfifo(stylesheet)
    writer: list[int] = []

    def assembling() -> bool:
        try:  # succeeds only once snakemake holds the pipe open for reading
            writer.append(os.open(stylesheet, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            return False
        return True

    _kill_when(_command(override, "--report", str(report), "--report-stylesheet", str(stylesheet)), assembling, log)
    os.close(writer[0])
    assert not report.exists()  # a killed report leaves no partial file behind
    _finish(_command(override, "--report", str(report)), log)
    assert report.stat().st_size > 100_000 and report.read_text().rstrip().endswith("</html>")

    # the results are those of the uninterrupted run, exactly
    pd.testing.assert_frame_equal(
        pd.read_csv(out / "claims.tsv", sep="\t"), pd.read_csv(tiny_run / "claims.tsv", sep="\t"), check_exact=True
    )
    pd.testing.assert_series_equal(_cell_types(out / "annotated.h5ad"), _cell_types(tiny_run / "annotated.h5ad"))
    # nothing half-written is left behind
    assert not list(out.rglob("*.tmp"))
