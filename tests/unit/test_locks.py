"""A run killed with SIGKILL leaves Snakemake's locks; the next run of the same command
removes those of its results folder, while runs of other folders in the same directory go
on with theirs, and a run alive in the same folder keeps its own."""

from __future__ import annotations

import os
import subprocess
import sys

from csfcart.workflow import clear_stale_locks, end_run, other_runs


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def _record(state, pid, out=None):
    (state / "csfcart-runs").mkdir(parents=True, exist_ok=True)
    (state / "csfcart-runs" / str(pid)).write_text(f"{out}\n" if out else "")


def _lock(state, name, *files):
    (state / "locks").mkdir(parents=True, exist_ok=True)
    (state / "locks" / name).write_text("".join(f"{f}\n" for f in files))


def test_locks_of_a_killed_run_are_removed(tmp_path):
    state, out = tmp_path / ".snakemake", tmp_path / "results" / "a"
    _lock(state, "0.input.lock", "results/x")
    _lock(state, "0.output.lock", "results/x")
    _record(state, _dead_pid())  # the killed run's record
    removed = clear_stale_locks(state, os.getpid(), out)
    assert len(removed) == 2 and not list((state / "locks").glob("*.lock"))
    assert [p.name for p in (state / "csfcart-runs").iterdir()] == [str(os.getpid())]
    assert (state / "csfcart-runs" / str(os.getpid())).read_text().strip() == str(out.resolve())
    end_run(state, os.getpid())
    assert not list((state / "csfcart-runs").iterdir())


def test_locks_of_a_live_run_are_kept(tmp_path):
    state = tmp_path / ".snakemake"
    _lock(state, "0.input.lock", "results/x")
    _lock(state, "0.output.lock", "results/x")
    _record(state, os.getppid())  # a run still going, its folder not recorded
    assert clear_stale_locks(state, os.getpid(), tmp_path / "results" / "x") == []
    assert len(list((state / "locks").glob("*.lock"))) == 2


def test_a_killed_run_resumes_while_a_run_of_another_folder_goes_on(tmp_path):
    state, mine, theirs = tmp_path / ".snakemake", tmp_path / "results" / "mine", tmp_path / "results" / "theirs"
    _record(state, os.getppid(), theirs)  # alive, writing another folder
    _record(state, _dead_pid(), mine)  # killed, writing this run's folder
    _lock(state, "0.input.lock", theirs / "qc" / "S1.h5ad", tmp_path / "data" / "S1")
    _lock(state, "0.output.lock", theirs / "merged.h5ad")
    _lock(state, "1.input.lock", mine / "qc" / "S1.h5ad")
    _lock(state, "1.output.lock", mine / "merged.h5ad", mine / "claims.tsv")
    _lock(state, "2.input.lock", tmp_path / "data" / "S9")  # nothing tells whose: kept
    removed = clear_stale_locks(state, os.getpid(), mine)
    assert sorted(os.path.basename(r) for r in removed) == ["1.input.lock", "1.output.lock"]
    assert sorted(p.name for p in (state / "locks").iterdir()) == ["0.input.lock", "0.output.lock", "2.input.lock"]
    # the run of the other folder does not stop this one checking its own outputs
    assert other_runs(state, os.getpid()) == [os.getppid()]
    assert other_runs(state, os.getpid(), mine) == []
    assert other_runs(state, os.getpid(), theirs) == [os.getppid()]


def test_a_live_run_of_the_same_folder_keeps_its_locks(tmp_path):
    state, out = tmp_path / ".snakemake", tmp_path / "results" / "a"
    _record(state, os.getppid(), out)
    _lock(state, "0.output.lock", out / "merged.h5ad")
    assert clear_stale_locks(state, os.getpid(), out) == []
    assert other_runs(state, os.getpid(), out) == [os.getppid()]


def _persistence(state):
    from snakemake.persistence.file import FilePersistence

    run = object.__new__(FilePersistence)  # only the lock state: no DAG needed
    run._lockdir, run._lockfile = str(state / "locks"), {}
    (state / "locks").mkdir(parents=True, exist_ok=True)
    return run


def test_a_run_that_ends_removes_only_its_own_locks(tmp_path):
    """Snakemake alone removes the whole locks folder when a run ends, the locks of a run of
    another folder in the same directory included; that run then stops at its start with
    FileNotFoundError on .snakemake/locks/0.input.lock."""
    from csfcart.workflow import keep_other_runs_locks

    assert keep_other_runs_locks()
    state = tmp_path / ".snakemake"
    first, second = _persistence(state), _persistence(state)
    first._write_locks("input", ["data/a"])
    first._write_locks("output", ["results/a/claims.tsv"])
    second._write_locks("input", ["data/b"])  # a fresh name, not over the first run's
    assert sorted(p.name for p in (state / "locks").iterdir()) == ["0.input.lock", "0.output.lock", "1.input.lock"]
    first._delete_locks()  # the first run ends
    assert [p.name for p in (state / "locks").iterdir()] == ["1.input.lock"]
    assert (state / "locks" / "1.input.lock").read_text() == "data/b\n"
    second._delete_locks()
    assert not (state / "locks").exists()  # the last run leaves no empty folder
    third = _persistence(state)
    (state / "locks").rmdir()  # another run ended between this run's start and its locking
    third._write_locks("input", ["data/c"])
    assert (state / "locks" / "0.input.lock").exists()


def test_unlock_still_removes_every_lock(tmp_path):
    from csfcart.workflow import keep_other_runs_locks

    keep_other_runs_locks()
    state = tmp_path / ".snakemake"
    _lock(state, "0.input.lock", "results/x")
    _lock(state, "3.output.lock", "results/y")
    _persistence(state).cleanup_locks()  # snakemake --unlock
    assert not (state / "locks").exists()
