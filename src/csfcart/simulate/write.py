"""Write a simulated cohort in the form real data arrives in.

One folder per sample laid out as Cell Ranger's ``outs/``: the filtered matrix
(``filtered_feature_bc_matrix/``: matrix.mtx.gz, features.tsv.gz, barcodes.tsv.gz) and the
raw one with the empty droplets (``raw_feature_bc_matrix/``), a sample sheet in the workflow's format, and, kept apart, the truth:
per-cell truth (one table for the cohort) and per-claim truth. Files are byte-identical for
the same seed (gzip headers carry no time stamp) and written atomically.
"""

from __future__ import annotations

import gzip
import io
import multiprocessing
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp

from csfcart.registry import measured_by
from csfcart.simulate.cohort import Cohort
from csfcart.simulate.model import CohortModel
from csfcart.simulate.truth import INTERACTION_COLUMNS, claim_truth, interaction_truth

GZIP_LEVEL = 1
#: a sample's folder holds its matrices as Cell Ranger's ``outs/`` does: the called cells,
#: and every barcode with a UMI (cells and empty droplets, whose soup the QC removes)
FILTERED, RAW = "filtered_feature_bc_matrix", "raw_feature_bc_matrix"


def _gz_bytes(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="", compresslevel=GZIP_LEVEL) as fh:
        fh.write(data)
    return buf.getvalue()


def write_10x_v3(directory: Path, counts, barcodes: list[str], features: list[str]) -> None:
    """Write a cells x features count matrix as a 10x v3 directory (genes x cells)."""
    directory.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    scipy.io.mmwrite(buf, counts.T.tocoo(), field="integer")
    (directory / "matrix.mtx.gz").write_bytes(_gz_bytes(buf.getvalue()))
    feat = "".join(f"{_feature_id(i)}\t{f}\tGene Expression\n" for i, f in enumerate(features))
    (directory / "features.tsv.gz").write_bytes(_gz_bytes(feat.encode()))
    (directory / "barcodes.tsv.gz").write_bytes(_gz_bytes(("\n".join(barcodes) + "\n").encode()))


def _feature_id(i: int) -> str:
    # a stable, Ensembl-shaped identifier (the simulator has no real Ensembl ids)
    return f"SIMG{i:011d}"


def simulate_cohort(cohort: Cohort, outdir: str | Path, *, samples: list[str] | None = None, workers: int = 1) -> Path:
    """Simulate ``cohort`` into ``outdir``.

    Writes ``outdir/counts/<sample_id>/`` (Cell Ranger layout, 10x v3 matrices), ``outdir/samples.tsv``,
    ``outdir/truth/cells.tsv.gz``, ``outdir/truth/samples.tsv`` (each sample's ambient
    fraction, depth and cells), ``outdir/truth/claims.tsv`` and
    ``outdir/truth/interactions.tsv``. The directory is built
    beside the target and moved into place only when complete.

    Parameters
    ----------
    cohort
        A validated cohort.
    outdir
        Target directory; replaced if it exists.
    samples
        Only these sample ids (default: all). Used by tests and the benchmark.
    workers
        Processes that draw and write samples side by side. Each sample has its own random
        stream, so the files are the same whatever the number.
    """
    outdir = Path(outdir)
    outdir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.", dir=outdir.parent))
    try:
        model = CohortModel(cohort)
        wanted = [i for i, meta in enumerate(model.samples) if samples is None or meta["sample_id"] in samples]
        done = _draw_all(model, wanted, tmp, workers)
        rows = [row for row, _, _ in done]
        pd.DataFrame(rows).to_csv(tmp / "samples.tsv", sep="\t", index=False)
        (tmp / "truth").mkdir()
        cells = pd.concat([truth for _, truth, _ in done], ignore_index=True)
        (tmp / "truth" / "cells.tsv.gz").write_bytes(_gz_bytes(cells.to_csv(sep="\t", index=False).encode()))
        pd.DataFrame([params for _, _, params in done]).to_csv(tmp / "truth" / "samples.tsv", sep="\t", index=False)
        interactions = pd.DataFrame(columns=INTERACTION_COLUMNS)
        if measured_by("lr_strength") & set(cohort.claims) and "CSF" in cohort.compartments:
            interactions = interaction_truth(model, cohort.compartments["CSF"].timepoints)
        interactions.to_csv(tmp / "truth" / "interactions.tsv", sep="\t", index=False)
        claim_truth(cohort, model).to_csv(tmp / "truth" / "claims.tsv", sep="\t", index=False)
        if outdir.exists():
            shutil.rmtree(outdir)
        os.replace(tmp, outdir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return outdir


#: microlitres of CSF whose cells a simulated CSF sample holds (cells per microlitre of the
#: sample sheet: its cells over this volume; 1,500 cells are 1.5 cells/uL, a normal CSF count)
CSF_VOLUME_UL = 1000.0

#: the model a forked drawing process works on (set in the parent before the fork)
_MODEL: CohortModel | None = None


def _draw_and_write(index: int, tmp: Path) -> tuple[dict, pd.DataFrame, dict]:
    """Draw sample ``index``, write its filtered and (unless the cohort has none) raw matrices
    under ``tmp``; its sheet
    row, per-cell truth and parameters."""
    model = _MODEL
    meta = model.samples[index]
    draw = model.draw_sample(index)
    rel = Path("counts") / meta["sample_id"]
    write_10x_v3(tmp / rel / FILTERED, draw.counts, draw.barcodes, model.features)
    if model.cohort.raw_matrices:
        raw = sp.vstack([draw.counts, draw.empty], format="csr")
        write_10x_v3(tmp / rel / RAW, raw, draw.barcodes + draw.empty_barcodes, model.features)
    row = {**meta, "path": str(rel), "format": "10x_mtx"}
    if meta["compartment"] == "CSF":
        # the clinical cell count: the cells a sample holds come from a fixed volume of CSF
        # (CSF_VOLUME_UL at a fixed capture), counted with a 10 % error of their own
        rng = np.random.default_rng([model.cohort.seed, 9, index])
        row["cells_per_ul"] = round(draw.params["n_cells"] / CSF_VOLUME_UL * float(np.exp(rng.normal(0, 0.1))), 3)
    return row, draw.truth, draw.params


def _draw_all(model: CohortModel, indices: list[int], tmp: Path, workers: int) -> list[tuple[dict, pd.DataFrame, dict]]:
    """:func:`_draw_and_write` for every index, in order; in ``workers`` forked processes
    where the platform forks (elsewhere, and for one worker, in this process)."""
    global _MODEL
    _MODEL = model
    try:
        workers = min(workers, len(indices))
        if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
            return [_draw_and_write(i, tmp) for i in indices]
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            return list(pool.map(_draw_and_write, indices, [tmp] * len(indices)))
    finally:
        _MODEL = None
