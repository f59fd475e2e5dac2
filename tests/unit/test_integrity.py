"""Damaged outputs are detected from their recorded checksums and removed for a rebuild."""

from __future__ import annotations

import os
import subprocess
import sys

from csfcart.integrity import record, verify


def _files(tmp_path):
    state = tmp_path / ".snakemake"
    sound, cut, flipped, touched = (tmp_path / n for n in ("sound.tsv", "cut.h5ad", "flipped.h5ad", "touched.tsv"))
    for f in (sound, cut, flipped, touched):
        f.write_bytes(os.urandom(50_000))
    record([sound, cut, flipped, touched, tmp_path], state=state)  # a directory is left out
    return state, sound, cut, flipped, touched


def test_truncated_and_corrupted_files_are_removed_and_touched_ones_kept(tmp_path):
    state, sound, cut, flipped, touched = _files(tmp_path)
    cut.write_bytes(cut.read_bytes()[:20_000])
    data = bytearray(flipped.read_bytes())
    data[100] ^= 0xFF
    flipped.write_bytes(bytes(data))
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    assert sorted(verify(state=state, remove=False)) == sorted([str(cut.resolve()), str(flipped.resolve())])
    assert cut.exists() and flipped.exists()  # a dry run only reports
    assert sorted(verify(state=state)) == sorted([str(cut.resolve()), str(flipped.resolve())])
    assert not cut.exists() and not flipped.exists()
    assert sound.exists() and touched.exists()
    assert verify(state=state) == []  # records of removed files are gone, the touch is learnt


def test_a_file_rewritten_by_its_rule_is_recorded_again(tmp_path):
    state, sound, *_ = _files(tmp_path)
    sound.write_text("new content\n")
    record([sound], state=state)
    assert verify(state=state) == []


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
