"""Logic that chooses the workflow's inputs and targets (kept here so it is unit-tested)."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
from itertools import count
from pathlib import Path
from typing import Any

import pandas as pd

from csfcart.config import read_sample_sheet
from csfcart.registry import measured_by
from csfcart.simulate.cohort import parse_cohort


def sample_table(config: dict[str, Any], *, out: str, schema: str | Path) -> pd.DataFrame:
    """One row per sample (index sample_id): patient, time point, compartment, path, format."""
    if "simulation" in config:
        cohort = parse_cohort(
            config["simulation"], name=config["dataset"], where=f"config (dataset {config['dataset']})"
        )
        rows = [
            {**s, "path": f"{out}/simulated/counts/{s['sample_id']}", "format": "10x_mtx", "batch": s["sample_id"]}
            for s in cohort.samples()
        ]
        return pd.DataFrame(rows).set_index("sample_id", drop=False)
    if "download" in config:  # a public dataset: its files appear once the download rule ran
        return read_sample_sheet(
            config["samples"], schema, check_files=False, base=download_dir(config), roles=config["compartments"]
        )
    return read_sample_sheet(config["samples"], schema, roles=config["compartments"])


def download_dir(config: dict[str, Any]) -> str:
    """Where a public dataset's archive is cached and unpacked (``download.dir``)."""
    return config["download"].get("dir") or f"resources/{config['dataset']}"


def archive_path(config: dict[str, Any]) -> str:
    name = config["download"]["url"].rstrip("/").rsplit("/", 1)[-1]
    return f"{download_dir(config)}/{name}"


def targets(
    out: str,
    samples: list[str],
    *,
    synthetic: bool,
    de_cell_types: list[str],
    communication: bool,
    claims: list[str],
    compare_integration: bool,
) -> list[str]:
    """Everything ``rule all`` asks for."""
    files = [
        f"{out}/qc/summary.tsv",
        f"{out}/qc/summary.png",
        *[f"{out}/qc/{s}.png" for s in samples],
        f"{out}/annotated.h5ad",
        f"{out}/annotation/clusters.tsv",
        f"{out}/annotation/relabelled.tsv",
        f"{out}/annotation/marker_detection.html",
        f"{out}/figures/umap.png",
        f"{out}/figures/markers.png",
        f"{out}/integration/mixing.png",
        *([f"{out}/integration/benchmark.tsv"] if compare_integration else []),
        f"{out}/composition/summary.tsv",
        f"{out}/composition/patients.png",
        f"{out}/composition/stacked.png",
        f"{out}/car_t/car_fraction.png",
        f"{out}/claims.tsv",
        f"{out}/claims.png",
        f"{out}/claims_patients.png",
        f"{out}/summary.html",
        *[
            f"{out}/provenance/{name}"
            for name in ("config.yaml", "samples.tsv", "versions.tsv", "workflow.yaml", "index.html")
        ],
        *[f"{out}/de/{ct}.png" for ct in de_cell_types],
        *([f"{out}/de/summary.tsv", f"{out}/de/heatmap.png"] if de_cell_types else []),
    ]
    if communication:
        files += [
            f"{out}/communication/{name}"
            for name in (
                "interactions.tsv",
                "b_microglia.png",
                "top_changes.png",
                "sender_receiver.png",
                "tensor_factors.tsv",
                "tensor.png",
            )
        ]
        if de_cell_types:
            files.append(f"{out}/communication/pseudobulk.tsv")
    if synthetic:
        files += [
            f"{out}/simulated/figures/cell_metrics.png",
            f"{out}/simulated/figures/composition.png",
            f"{out}/evaluation/annotation.tsv",
            f"{out}/evaluation/claims.tsv",
        ]
        if communication and measured_by("lr_strength") & set(claims):
            files.append(f"{out}/evaluation/communication.tsv")
    return files


def study_summary(config: dict[str, Any], samples: pd.DataFrame, claim_ids: list[str]) -> dict[str, Any]:
    """What the report's first page says: the study, the dataset and the claims tested.

    ``claim_ids``: the configured claims (empty: every claim of the registry whose
    compartments the sample sheet has; the claims step decides which are testable).
    """
    from csfcart.registry import CLAIMS, STUDIES

    if "simulation" in config:
        source = "a synthetic cohort simulated by the workflow, with a known truth (simulated/truth/)"
    elif "download" in config:
        source = f"a public dataset downloaded once from {config['download']['url']}"
    else:
        source = f"the sample sheet {config['samples']}"
    compartments = sorted(samples["compartment"].unique())
    ids = list(claim_ids) or [c for c, claim in CLAIMS.items() if claim.compartment in compartments]
    return {
        "dataset": config["dataset"],
        "source": source,
        "patients": int(samples["patient_id"].nunique()),
        "samples": len(samples),
        "compartments": ", ".join(compartments),
        "timepoints": ", ".join(dict.fromkeys(str(t) for t in samples["timepoint"])),
        "claims": [{"id": c, "statement": CLAIMS[c].statement, "study": STUDIES[CLAIMS[c].study]} for c in ids],
        "studies": list(dict.fromkeys(STUDIES[CLAIMS[c].study] for c in ids)),
    }


#: settings that name a table shipped with the workflow (config/): a path of the user's own
#: is read from the working directory, the shipped default from the workflow's folder
TABLE_SETTINGS = (("annotation", "markers"), ("analysis", "programs"), ("analysis", "interactions"))


def locate_tables(config: dict[str, Any], workflow_dir: str | Path) -> dict[str, Any]:
    """``config`` with each table setting resolved: kept where it exists from the working
    directory (or is absolute), else taken from ``workflow_dir`` when it exists there, so the
    workflow runs from any folder (``snakemake -s <workflow>/Snakefile -d <elsewhere>``)."""
    for section, key in TABLE_SETTINGS:
        path = Path(config[section][key])
        if not path.is_absolute() and not path.exists() and (Path(workflow_dir) / path).exists():
            config[section][key] = str(Path(workflow_dir) / path)
    return config


def keep_other_runs_locks() -> bool:
    """Make a run's unlock remove only its own lock files.

    Snakemake 9's file persistence deletes the whole ``.snakemake/locks`` folder when a run
    ends, the lock files of other runs in the same directory included. Another run then
    loses its protection, and one that is between start-up and locking stops with
    ``FileNotFoundError: .snakemake/locks/0.input.lock``. Runs of two results folders
    side by side in one directory (a demo beside a dataset, or the test suite's workers)
    hit this. After this call a run removes the lock files it wrote and the folder only
    when it is empty; it writes its lock files under fresh names, never over another
    run's; ``snakemake --unlock`` still removes every lock. Returns False where Snakemake's
    file persistence is not the one this was written for (nothing is changed then).
    """
    try:
        from snakemake.persistence.file import FilePersistence
    except ImportError:
        return False
    if getattr(FilePersistence, "_csfcart_own_locks", False):
        return True
    if not all(hasattr(FilePersistence, m) for m in ("_write_locks", "_delete_locks", "cleanup_locks")):
        return False

    def _write_locks(self, lock_type, keys):
        keys_list = list(keys)
        if not keys_list:
            return
        os.makedirs(self._lockdir, exist_ok=True)
        for i in count(0):
            lockfile = os.path.join(self._lockdir, f"{i}.{lock_type}.lock")
            try:
                with open(lockfile, "x") as lock:
                    print(*keys_list, sep="\n", file=lock)
            except FileExistsError:
                continue
            self._lockfile[lock_type] = lockfile
            return

    def _delete_locks(self):
        for lockfile in self._lockfile.values():
            with contextlib.suppress(FileNotFoundError):
                os.remove(lockfile)
        self._lockfile.clear()
        with contextlib.suppress(OSError):  # not empty: another run holds its locks
            os.rmdir(self._lockdir)

    def cleanup_locks(self):  # snakemake --unlock: every lock, as Snakemake documents
        self._lockfile.clear()
        shutil.rmtree(self._lockdir, ignore_errors=True)

    FilePersistence._write_locks = _write_locks
    FilePersistence._delete_locks = _delete_locks
    FilePersistence.cleanup_locks = cleanup_locks
    FilePersistence._csfcart_own_locks = True
    return True


def _run_records(state: Path, pid: int) -> tuple[dict[int, Path | None], list[Path]]:
    """Other recorded runs of this workflow under ``state``: those alive (process id -> its
    results folder, None when the record names none) and the folders of those that ended
    without forgetting their record (killed). Records of ended runs are deleted."""
    alive: dict[int, Path | None] = {}
    dead: list[Path] = []
    runs = state / "csfcart-runs"
    for record in runs.iterdir() if runs.is_dir() else []:
        try:
            other = int(record.name)
        except ValueError:
            continue
        if other == pid:
            continue
        try:
            named = record.read_text().strip()
        except OSError:
            named = ""
        out = Path(named) if named else None
        try:
            os.kill(other, 0)
            alive[other] = out
        except ProcessLookupError:
            if out is not None:
                dead.append(out)
            record.unlink(missing_ok=True)
        except PermissionError:  # a live process of another user
            alive[other] = out
    return alive, dead


def _under(path: Path, folders: list[Path]) -> bool:
    return any(path == f or f in path.parents for f in folders)


def clear_stale_locks(state: str | Path, pid: int, out: str | Path) -> list[str]:
    """Let a run killed with SIGKILL resume with the same command.

    Snakemake's locks (``.snakemake/locks``) record no process, so a run killed before it
    could unlock leaves them behind and the next run stops with "Directory cannot be
    locked". Each run of this workflow records its process id and its results folder
    ``out`` under ``.snakemake/csfcart-runs/``. A lock file is removed when it names a file
    in the folder of this run or of a run that ended without unlocking, and none in the
    folder of a run still alive; with no other run alive every lock goes. A run alive in the
    same folder keeps its locks, and Snakemake then refuses the second run, as it should;
    runs of other results folders in the same directory go on undisturbed. Returns the lock
    files removed; records ``pid`` as the current run.
    """
    state, out = Path(state), Path(out).resolve()
    alive, dead = _run_records(state, pid)
    removed = []
    locks = state / "locks"
    busy = [f for f in alive.values() if f is not None]
    if locks.is_dir() and None not in alive.values():
        for lock in sorted(locks.glob("*.lock")):
            try:
                named = [Path(line.strip()).resolve() for line in lock.read_text().splitlines() if line.strip()]
            except OSError:
                continue
            ours = any(_under(n, [out, *dead]) for n in named)
            if not alive or (ours and not any(_under(n, busy) for n in named)):
                lock.unlink(missing_ok=True)
                removed.append(str(lock))
    (state / "csfcart-runs").mkdir(parents=True, exist_ok=True)
    (state / "csfcart-runs" / str(pid)).write_text(f"{out}\n")
    return removed


def other_runs(state: str | Path, pid: int, out: str | Path | None = None) -> list[int]:
    """Process ids of other runs of this workflow in the same directory that are alive; with
    ``out``, only those writing that results folder (or whose record names no folder)."""
    alive, _ = _run_records(Path(state), pid)
    if out is None:
        return sorted(alive)
    out = Path(out).resolve()
    return sorted(p for p, f in alive.items() if f is None or f == out)


def end_run(state: str | Path, pid: int) -> None:
    """Forget the record :func:`clear_stale_locks` made for ``pid`` (the run ended)."""
    (Path(state) / "csfcart-runs" / str(pid)).unlink(missing_ok=True)


# Peak memory of the rules that hold the whole cohort: a floor (libraries, per-sample work) and
# MB per million stored counts (nonzeros of the counts matrix), fitted to the peak RSS in
# Snakemake's benchmark files (scripts/benchmark_scale.py, 2 cores, the default cohort grown by
# patients: 176 million counts at 281,759 cells, 557 million at 892,991, about 625 per cell).
# Memory follows the nonzeros (cells x genes detected), so data with more genes detected per
# cell asks for more. The request is HEADROOM times the model
# (at least the rule's own floor), and more on each retry.
MEMORY_MODEL: dict[str, tuple[float, float]] = {
    "merge": (180, 17.0),
    "integrate": (1300, 17.5),
    "annotate": (800, 17.3),  # 99k (rerun) and 893k cells, after its peak fell to 10.4 GB
    "plot_integration": (250, 2.0),
    "compare_integration": (1150, 26.0),
    "plot_annotation": (500, 1.6),  # the cell table, the UMAP and the marker genes
    "pseudobulk": (400, 1.5),
    "programs": (300, 3.0),  # sample by sample: the largest sample and the cell table
    "communication_pseudobulk": (500, 2.0),  # the CSF cells' ligand and receptor genes
    "composition": (300, 2.0),
    "car_t": (300, 2.0),
    "evaluate_annotation": (300, 2.0),
    # per process: a parent holding the cell table forks one worker per thread, each scoring a
    # sample at a time (fitted to the summed RSS of 3 processes, 42k and 878k cells)
    "communication": (660, 0.5),
}
HEADROOM = 1.5
NONZEROS_PER_CELL = 625  # a dry run's guess, before any file is read (the default cohort's density)


def h5ad_nonzeros(path: str | Path) -> int:
    """Stored counts of an .h5ad (nonzeros of ``layers['counts']``, else of ``X``), read from
    the file's metadata: no matrix is loaded."""
    import h5py

    with h5py.File(path, "r") as f:
        for key in ("layers/counts", "X"):
            if key in f:
                element = f[key]
                return int(element["data"].shape[0] if isinstance(element, h5py.Group) else element.size)
    return 0


def expected_cells(config: dict[str, Any]) -> int:
    """Cells a synthetic cohort will have: each sample's median size (``cells.median``) times
    the lognormal's mean over its median; 0 for real data (known once the files are read)."""
    if "simulation" not in config:
        return 0
    cohort = parse_cohort(config["simulation"], name=config["dataset"], where=f"config (dataset {config['dataset']})")
    per_compartment = {
        c.name: min(c.cells_max, c.cells_median * math.exp(c.cells_sdlog**2 / 2)) for c in cohort.compartments.values()
    }
    return int(sum(per_compartment[s["compartment"]] for s in cohort.samples()))


# Rules over the per-sample LIANA tables (MB, MB per million scored interactions): fitted to
# scripts/benchmark_communication.py, 3.8 to 84 million rows (15 to 336 CSF samples); they
# grow with the samples scored, not with the cells.
SCORES_MODEL: dict[str, tuple[float, float]] = {
    "communication_diff": (700, 70.0),
    "communication_tensor": (750, 38.0),
}
SCORES_PER_SAMPLE = 250_000  # a dry run's guess per CSF sample (the default cohort's mean)


def parquet_rows(path: str | Path) -> int:
    """Rows of a parquet file, from its footer: nothing else is read."""
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


def scores_memory_mb(rule: str, inputs, *, floor_mb: int, attempt: int = 1) -> int:
    """Memory (MB) to request for a rule over the per-sample score tables
    (:data:`SCORES_MODEL`): from the rows the .parquet inputs hold where they exist, else
    :data:`SCORES_PER_SAMPLE` per table (a dry run). Never below ``floor_mb``; ``attempt``
    times that on a retry."""
    base, per_million = SCORES_MODEL[rule]
    tables = [str(p) for p in inputs if str(p).endswith(".parquet")]
    rows = sum(parquet_rows(p) if Path(p).exists() else SCORES_PER_SAMPLE for p in tables)
    need = HEADROOM * (base + per_million * rows / 1e6)
    return int(max(floor_mb, math.ceil(need / 100) * 100)) * attempt


def job_memory_mb(
    rule: str, inputs, *, expected_cells: int, floor_mb: int, attempt: int = 1, processes: int = 1
) -> int:
    """Memory (MB) to request for a whole-cohort ``rule`` (:data:`MEMORY_MODEL`): from the
    stored counts of its .h5ad inputs where they exist (a job about to run; merge's per-sample
    files add up), else from ``expected_cells`` (a dry run; :func:`expected_cells`), times the
    ``processes`` the job runs where the model is per process. Never below ``floor_mb``;
    ``attempt`` times that on a retry."""
    base, per_count = MEMORY_MODEL[rule]
    h5ads = [p for p in map(str, inputs) if p.endswith(".h5ad") and Path(p).exists()]
    counts = sum(h5ad_nonzeros(p) for p in h5ads) if h5ads else expected_cells * NONZEROS_PER_CELL
    need = HEADROOM * processes * (base + per_count * counts / 1e6)
    return int(max(floor_mb, math.ceil(need / 100) * 100)) * attempt
