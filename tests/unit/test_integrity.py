"""Damaged outputs are detected from their recorded checksums and removed, with everything
written after them, for a rebuild."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from csfcart.integrity import record, verify


def _files(tmp_path):
    """Outputs of one results folder written one after another (sound and touched first,
    later last), and one of another folder."""
    state, out = tmp_path / ".snakemake", tmp_path / "results" / "run"
    out.mkdir(parents=True)
    names = ("sound.tsv", "touched.tsv", "cut.h5ad", "flipped.h5ad", "later.tsv")
    files = [out / n for n in names]
    other = tmp_path / "results" / "other" / "claims.tsv"
    other.parent.mkdir()
    for i, f in enumerate([*files, other]):
        f.write_bytes(os.urandom(50_000))
        os.utime(f, ns=(10**18 + i * 10**9, 10**18 + i * 10**9))
    record([*files, other, out], state=state)  # a directory is left out
    return state, out, files, other


def test_damaged_files_are_removed_with_what_was_written_after_them(tmp_path):
    state, out, (sound, touched, cut, flipped, later), other = _files(tmp_path)
    cut.write_bytes(cut.read_bytes()[:20_000])
    data = bytearray(flipped.read_bytes())
    data[100] ^= 0xFF
    flipped.write_bytes(bytes(data))
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**8))
    damaged = sorted([str(cut.resolve()), str(flipped.resolve())])
    assert sorted(verify(state=state, root=out, remove=False)) == damaged
    assert cut.exists() and flipped.exists() and later.exists()  # a dry run only reports
    assert sorted(verify(state=state, root=out)) == damaged
    assert not cut.exists() and not flipped.exists()
    assert not later.exists()  # written after a damaged file: possibly downstream of it
    assert sound.exists() and touched.exists() and other.exists()  # earlier, or another run's
    assert verify(state=state, root=out) == []  # records of removed files are gone, the touch learnt


def test_a_file_rewritten_by_its_rule_is_recorded_again(tmp_path):
    state, out, (sound, *_), _ = _files(tmp_path)
    sound.write_text("new content\n")
    record([sound], state=state)
    assert verify(state=state, root=out) == []


def test_a_script_records_its_outputs_only_when_it_succeeds(tmp_path):
    out, log = tmp_path / "out.tsv", tmp_path / "job.log"
    code = (
        "import sys; from csfcart.logs import setup; "
        f"setup({str(log)!r}, [{str(out)!r}]); open({str(out)!r}, 'w').write('x'); "
        "sys.argv[1] == 'fail' and 1 / 0"
    )
    for outcome in ("fail", "ok"):
        subprocess.run([sys.executable, "-c", code, outcome], cwd=tmp_path, check=False)
        records = list((tmp_path / ".snakemake" / "csfcart-checksums").glob("*.json"))
        assert len(records) == (0 if outcome == "fail" else 1), outcome


def test_a_script_runs_on_the_threads_its_rule_was_granted(tmp_path):
    # jobs run side by side: a one-thread job whose OpenMP/BLAS pools take every core slows
    # its neighbours several-fold (QC's doublet classifier did)
    code = (
        "import json, numpy, sklearn.ensemble; from threadpoolctl import threadpool_info; "
        "from csfcart.logs import setup; "
        f"setup({str(tmp_path / 'job.log')!r}, threads=1); "
        "from sklearn.cluster import KMeans; "
        "print(json.dumps([p['num_threads'] for p in threadpool_info()]))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, capture_output=True, text=True)
    pools = json.loads(done.stdout.strip().splitlines()[-1])
    assert pools and all(n == 1 for n in pools), pools
