"""The tiny cohort through a real single-node SLURM with the project's profile.

Runs only with CSFCART_SLURM=1 (``make test-cluster``, which installs Debian's slurm-wlm and
munge): the fixture starts munge, slurmctld and slurmd on localhost (tests/cluster/
slurm-up.sh) and stops every daemon by its pid file afterwards.
"""

from __future__ import annotations

import os
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import run_snakemake, write_config

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(os.environ.get("CSFCART_SLURM") != "1", reason="set CSFCART_SLURM=1 (make test-cluster)"),
]
HERE = Path(__file__).parent
# the profile's placeholders filled in for the local cluster; no GPU on this node
SLURM_ARGS = [
    "--workflow-profile", "workflow/profiles/slurm",
    "--default-resources", "slurm_partition=debug", "slurm_account=ci", "mem_mb=1500", "runtime=30",
    "--set-resources", "integrate:gpu=0",
    "--jobs", "4", "--max-threads", "2",
    # the plugin first asks SLURM about a job 40 s after submitting it (sensible on a shared
    # cluster); on this one-node cluster of seconds-long jobs that wait dominated the run
    "--slurm-init-seconds-before-status-checks", "5",
]  # fmt: skip


@pytest.fixture(scope="module")
def slurm():
    up = subprocess.run(
        ["bash", str(HERE / "slurm-up.sh")],
        env={**os.environ, "SKIP_INSTALL": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield
    finally:
        subprocess.run(["bash", str(HERE / "slurm-down.sh")], capture_output=True, timeout=60)


def squeue_jobs() -> dict[str, tuple[str, str, str]]:
    """Every job slurmctld still knows: job id -> (comment, CPUs, memory)."""
    out = subprocess.run(
        ["squeue", "-h", "-t", "all", "-o", "%i|%k|%C|%m"], capture_output=True, text=True, timeout=30
    ).stdout
    return {job: (comment, cpus, mem) for job, comment, cpus, mem in (line.split("|") for line in out.splitlines())}


class SqueueWatch:
    """Polls squeue while a run goes on, so that a job's request is seen however early it ended
    (slurmctld forgets finished jobs after MinJobAge)."""

    def __init__(self, every: float = 2.0):
        self.jobs: dict[str, tuple[str, str, str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, args=(every,), daemon=True)

    def _poll(self, every):
        while not self._stop.is_set():
            self.jobs.update(squeue_jobs())
            self._stop.wait(every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=60)
        self.jobs.update(squeue_jobs())


@pytest.fixture(scope="module")
def runs(slurm, tmp_path_factory):
    """The same config run locally and through SLURM, side by side (the SLURM run spends most
    of its time waiting on the scheduler)."""
    tmp = tmp_path_factory.mktemp("slurm")
    commands = {}
    for name, extra in (("local", ["-c2"]), ("slurm", SLURM_ARGS)):
        # two patients keep the ~40 jobs (5-6 s of SLURM start-up each) affordable
        cfg = tmp / f"{name}.yaml"
        cfg.write_text(f"results: {tmp / name}\nintegration:\n  method: harmony\nsimulation:\n  n_patients: 2\n")
        commands[name] = ["--configfile", "config/datasets/csf_bcma_cart_tiny.yaml", str(cfg), *extra]
    with SqueueWatch() as watch, ThreadPoolExecutor(2) as pool:
        procs = {name: pool.submit(run_snakemake, *args, timeout=1500) for name, args in commands.items()}
        for name, proc in procs.items():
            done = proc.result()
            assert done.returncode == 0, f"{name} run:\n" + (done.stdout + done.stderr)[-6000:]
    results = {name: tmp / name / "csf_bcma_cart_tiny" for name in commands}
    results["squeue"] = watch.jobs  # the SLURM run's jobs (the local run submits none)
    return results


def test_slurm_run_matches_the_local_run(runs):
    local = pd.read_csv(runs["local"] / "claims.tsv", sep="\t")
    remote = pd.read_csv(runs["slurm"] / "claims.tsv", sep="\t")
    pd.testing.assert_frame_equal(local, remote)
    types = [
        pd.read_csv(runs[k] / "annotation" / "clusters.tsv", sep="\t")["cell_type"].value_counts().sort_index()
        for k in ("local", "slurm")
    ]
    pd.testing.assert_series_equal(*types)


def test_squeue_shows_the_rules_requests(runs):
    # the plugin names jobs after the run and puts the rule in the job's comment (%k)
    jobs = list(runs["squeue"].values())
    assert jobs, "no job seen by squeue"
    # per-sample rules fan out as jobs of their own
    assert sum(comment.startswith("rule_qc_wildcards_") for comment, _, _ in jobs) >= 2, jobs
    integrate = [j for j in jobs if j[0] == "rule_integrate"]
    assert integrate, jobs
    cpus, mem = integrate[0][1], integrate[0][2]
    assert cpus == "2"  # threads: 4, capped by the node's 2 CPUs
    assert mem.endswith(("M", "G")) and int(float(mem[:-1]) * (1024 if mem.endswith("G") else 1)) >= 8000


def test_an_impossible_request_fails_at_submission(slurm, tmp_path):
    override = write_config(tmp_path, f"results: {tmp_path}\n")
    target = tmp_path / "csf_null_tiny" / "simulated" / "samples.tsv"
    proc = run_snakemake(str(target), "--configfile", "config/datasets/csf_null_tiny.yaml", str(override), *SLURM_ARGS,
                         "--set-resources", "simulate:mem_mb=100000000", timeout=300)  # fmt: skip
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "sbatch" in text.lower() and ("memory" in text.lower() or "requested node configuration" in text.lower()), (
        text[-3000:]
    )
