"""Fetching a public dataset's archive once, verifying it, and unpacking it safely.

The archive is streamed to ``<name>.part`` beside its destination and renamed only once
its size and SHA-256 match what the dataset config records, or, when the config records
nothing yet, what a lock file written on the first download records (``download.lock``
beside the archive: later copies, hand-placed ones included, must match it). A failed,
partial or corrupted download leaves nothing behind and says what to do.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from csfcart.errors import InputError

CHUNK = 1 << 20
LOCK = "download.lock"


def sha256sum(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def expected(dest: Path, *, sha256: str, size: int) -> dict:
    """What the archive must be: the config's figures, else the lock file's, else nothing."""
    if sha256 or size:
        return {"sha256": sha256 or "", "size": int(size or 0), "source": "the dataset config (download.sha256/size)"}
    lock = dest.parent / LOCK
    if lock.is_file():
        data = json.loads(lock.read_text())
        return {"sha256": data.get("sha256", ""), "size": int(data.get("size", 0)), "source": str(lock)}
    return {"sha256": "", "size": 0, "source": ""}


def verify(path: Path, want: dict, *, url: str, dest: Path) -> tuple[int, str]:
    """Size and SHA-256 of ``path``, checked against ``want``; a clear error when they differ."""
    size = path.stat().st_size
    if want.get("size") and size != want["size"]:
        raise InputError(
            f"{dest.name}: {size:,} bytes, but {want['source']} records {want['size']:,}. The download is "
            f"incomplete or corrupted. Fix: delete it and run again, or fetch {url} by hand and put it at {dest}"
        )
    digest = sha256sum(path)
    if want.get("sha256") and digest != want["sha256"]:
        raise InputError(
            f"{dest.name}: SHA-256 {digest} does not match {want['sha256']} recorded in {want['source']}. "
            f"The archive is corrupted or not the one the dataset describes. Fix: delete it and run again, or "
            f"fetch {url} by hand and put it at {dest}"
        )
    return size, digest


def fetch(url: str, dest: str | Path, *, sha256: str, size: int, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` (atomically), verify it and record it in the lock file."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    want = expected(dest, sha256=sha256, size=size)
    fd, part = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    part = Path(part)
    try:
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
                shutil.copyfileobj(response, out, CHUNK)
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            raise InputError(
                f"could not download {url} ({getattr(err, 'reason', err)}). Fix: without network, fetch the file "
                f"on a machine that has it and put it at {dest}"
                + (f" (SHA-256 {want['sha256']})" if want.get("sha256") else "")
                + "; the workflow takes it from there and downloads nothing"
            ) from None
        got_size, digest = verify(part, want, url=url, dest=dest)
        part.replace(dest)
    finally:
        part.unlink(missing_ok=True)
    lock = dest.parent / LOCK
    if not lock.is_file():
        tmp = lock.with_suffix(".tmp")
        tmp.write_text(json.dumps({"url": url, "file": dest.name, "size": got_size, "sha256": digest}, indent=2) + "\n")
        tmp.replace(lock)
    return dest


def unpack(archive: str | Path, outdir: str | Path, *, required: list[str], url: str, sha256: str,
           size: int) -> list[str]:  # fmt: skip
    """Verify ``archive`` (a hand-placed copy too) and extract it into ``outdir`` atomically.

    ``required``: file names the dataset's samples need; a missing one is named with the
    fix. Members with absolute paths or ``..`` are refused. Returns the extracted names.
    """
    archive, outdir = Path(archive), Path(outdir)
    verify(archive, expected(archive, sha256=sha256, size=size), url=url, dest=archive)
    tmp = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.", dir=outdir.parent))
    try:
        try:
            with tarfile.open(archive) as tar:
                members = tar.getmembers()
                for m in members:
                    if m.name.startswith("/") or ".." in Path(m.name).parts or not (m.isfile() or m.isdir()):
                        raise InputError(f"{archive}: member '{m.name}' is not a plain relative file; refused")
                tar.extractall(tmp, members=members, filter="data")
        except tarfile.TarError as err:
            raise InputError(
                f"{archive}: not a readable tar archive ({err}). Fix: delete it and run again, or fetch {url} by hand"
            ) from None
        names = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
        flat = {Path(n).name for n in names}
        missing = [r for r in required if r not in flat]
        if missing:
            raise InputError(
                f"{archive}: {len(missing)} file(s) the sample sheet needs are not in the archive, first "
                f"'{missing[0]}'. Fix: check the sheet's GSM and donor names against the archive's listing "
                f"(tar tf {archive.name})"
            )
        if outdir.exists():
            shutil.rmtree(outdir)
        tmp.replace(outdir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return names


def mtx_files(prefix: str) -> list[str]:
    """The three files of a GEO 10x v2 sample given its prefix (``GSM..._donor_tissue_GRCh38_``)."""
    return [f"{prefix}{name}" for name in ("barcodes.tsv.gz", "genes.tsv.gz", "matrix.mtx.gz")]
