"""Checksums of the files the workflow writes, so that a damaged one is rebuilt, not read.

Snakemake reruns a job whose output is missing or older than its inputs, but it reads an
output that a full disk truncated, or that a copy or a sync mangled, as if it were sound.
Each rule's script records, when it ends without error, the size, modification time and
BLAKE2 digest of its output files under ``.snakemake/csfcart-checksums/``
(:func:`record`, called by :func:`csfcart.logs.setup`). When a run starts,
:func:`verify` compares every recorded file of its results folder that still exists: one
whose size differs, or whose modification time and digest both differ, is removed with every
output written after it, so that Snakemake rebuilds it and everything downstream of it. A
file only touched (same content) is kept.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

#: where the records live, below the working directory's ``.snakemake``
STORE = "csfcart-checksums"


def digest(path: str | Path, *, chunk: int = 1 << 22) -> str:
    """BLAKE2b digest of a file's bytes (hex)."""
    h = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _record_file(store: Path, path: Path) -> Path:
    return store / (hashlib.sha1(str(path).encode()).hexdigest() + ".json")


def record(paths, *, state: str | Path = ".snakemake") -> None:
    """Record size, modification time and digest of each existing file of ``paths``
    (directories are left out)."""
    store = Path(state) / STORE
    store.mkdir(parents=True, exist_ok=True)
    for p in paths:
        path = Path(p).resolve()
        if not path.is_file():
            continue
        st = path.stat()
        entry = {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "blake2b": digest(path)}
        target = _record_file(store, path)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(entry))
        os.replace(tmp, target)


def verify(*, state: str | Path = ".snakemake", root: str | Path | None = None, remove: bool = True) -> list[str]:
    """The recorded files that changed since the workflow wrote them (truncated or
    corrupted); removed when ``remove`` (a dry run only reports them). Records of files
    that no longer exist are dropped.

    Snakemake does not rebuild a missing intermediate whose downstream outputs are present,
    so with a damaged file every recorded output under ``root`` (the run's results folder)
    written after it goes too: everything downstream of it is among them, and the run then
    rebuilds the chain. Returns the damaged files only.
    """
    store = Path(state) / STORE
    if not store.is_dir():
        return []
    root = Path(root).resolve() if root is not None else None
    entries: list[tuple[Path, dict, Path]] = []
    damaged: list[tuple[str, int]] = []
    for rec in sorted(store.glob("*.json")):
        try:
            entry = json.loads(rec.read_text())
            path = Path(entry["path"])
        except (ValueError, KeyError, OSError):
            rec.unlink(missing_ok=True)  # a record cut short by a kill: the file is unknown
            continue
        if not path.is_file():
            rec.unlink(missing_ok=True)
            continue
        if root is not None and root not in path.parents:
            continue
        entries.append((rec, entry, path))
        st = path.stat()
        if st.st_size == entry["size"] and st.st_mtime_ns == entry["mtime_ns"]:
            continue
        if st.st_size == entry["size"] and digest(path) == entry["blake2b"]:
            if remove:  # only touched: the content is what was written
                rec.write_text(json.dumps({**entry, "mtime_ns": st.st_mtime_ns}))
            continue
        damaged.append((str(path), int(entry["mtime_ns"])))
    if damaged and remove:
        first, names = min(t for _, t in damaged), {p for p, _ in damaged}
        for rec, entry, path in entries:
            if str(path) in names or int(entry["mtime_ns"]) > first:
                path.unlink(missing_ok=True)
                rec.unlink(missing_ok=True)
    return [p for p, _ in damaged]
