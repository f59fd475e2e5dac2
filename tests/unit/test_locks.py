"""A run killed with SIGKILL leaves Snakemake's locks; the next run of the same command
removes them only when no recorded run is alive."""

from __future__ import annotations

import os
import subprocess
import sys

from csfcart.workflow import clear_stale_locks, end_run


def _locks(state):
    (state / "locks").mkdir(parents=True)
    for name in ("0.input.lock", "0.output.lock"):
        (state / "locks" / name).write_text("results/x\n")


def test_locks_of_a_killed_run_are_removed(tmp_path):
    state = tmp_path / ".snakemake"
    _locks(state)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (state / "csfcart-runs").mkdir()
    (state / "csfcart-runs" / dead.stdout.strip()).write_text("")  # the killed run's record
    removed = clear_stale_locks(state, os.getpid())
    assert len(removed) == 2 and not list((state / "locks").glob("*.lock"))
    assert [p.name for p in (state / "csfcart-runs").iterdir()] == [str(os.getpid())]
    end_run(state, os.getpid())
    assert not list((state / "csfcart-runs").iterdir())


def test_locks_of_a_live_run_are_kept(tmp_path):
    state = tmp_path / ".snakemake"
    _locks(state)
    (state / "csfcart-runs").mkdir()
    (state / "csfcart-runs" / str(os.getppid())).write_text("")  # a run still going
    assert clear_stale_locks(state, os.getpid()) == []
    assert len(list((state / "locks").glob("*.lock"))) == 2
