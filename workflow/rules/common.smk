# Validation first, then the sample table and input functions (all logic in the package).
#
# Scheduling: priorities decide what starts first on a few cores. Ingest and QC carry 1, so
# that the simulation's figures fill the cores the last samples leave idle. The cohort-wide
# chain (qc_summary, merge, integrate, annotate) and the claims' inputs (and the tensor)
# carry 10, pseudobulk and DE (the longest jobs of one core) 20, the longest plot 5; the
# short plots fill in around them. Snakemake picks the jobs whose priorities sum highest,
# so a job of several cores waits while two jobs of one core outweigh it, and one of those
# may leave a core idle as it ends: LIANA (two cores, the longest chain after annotation)
# carries 50, more than any two others. For the same reason the plot rules with many
# figures (plot_qc, plot_de) draw them in as many processes as their threads.
import os
import sys
from pathlib import Path

try:
    import csfcart
except ImportError:
    raise WorkflowError(
        "the csfcart package is not installed in the Python that runs snakemake. "
        f"Fix: make venv (then .venv/bin/snakemake), or pip install {workflow.basedir}"
    )
from csfcart.annotate import lineage_of
from csfcart.config import check_covariates, resolve_dataset, validate_config
from csfcart.download import mtx_files
from csfcart.integrity import verify
from csfcart.timepoints import label_days
from csfcart.workflow import (
    archive_path,
    clear_stale_locks,
    download_dir,
    end_run,
    expected_cells,
    job_memory_mb,
    keep_other_runs_locks,
    locate_tables,
    other_runs,
    sample_table,
    scores_memory_mb,
    study_summary,
    targets,
)

BASE = Path(workflow.basedir)
# runs of other results folders in this directory keep their locks when this run ends
keep_other_runs_locks()


onsuccess:
    end_run(".snakemake", os.getpid())


onerror:
    end_run(".snakemake", os.getpid())


CONFIG = resolve_dataset(
    config,
    BASE / "config" / "datasets",
    search=tuple(Path(f).parent for f in workflow.overwrite_configfiles or ()),
)
CONFIG = locate_tables(
    validate_config(CONFIG, BASE / "config" / "schemas" / "config.schema.yaml"), BASE
)
OUT = f"{CONFIG['results']}/{CONFIG['dataset']}"
if workflow.is_main_process:  # a run killed with SIGKILL left its locks: resume anyway
    for lock in clear_stale_locks(".snakemake", os.getpid(), OUT):
        print(f"removed {lock}, left by a run that was killed", file=sys.stderr)
if workflow.is_main_process and not other_runs(".snakemake", os.getpid(), OUT):
    # outputs damaged since they were written: removed with what came after, and rebuilt
    DRY = bool(getattr(workflow, "dryrun", False))
    for damaged in verify(root=OUT, remove=not DRY):
        note = (
            "it would be removed and rebuilt" if DRY else "removed, it will be rebuilt"
        )
        print(
            f"{damaged} changed after the workflow wrote it (truncated or corrupted): {note}",
            file=sys.stderr,
        )
SYNTHETIC = "simulation" in CONFIG
SAMPLES = sample_table(
    CONFIG, out=OUT, schema=BASE / "config" / "schemas" / "samples.schema.yaml"
)

check_covariates(CONFIG["analysis"]["covariates"], SAMPLES)
BASELINE = CONFIG["analysis"]["baseline"]
CLAIMS = (
    CONFIG["claims"]
    if "claims" in CONFIG
    else (
        CONFIG["simulation"]["claims"]
        if SYNTHETIC and "claims" in CONFIG["simulation"]
        else []
    )
)
DE_CELL_TYPES = CONFIG["analysis"]["de_cell_types"]
# cell type -> lineage (the marker table's): every cell-type group the claims use
LINEAGE_OF = lineage_of(CONFIG["annotation"]["markers"])
CSF_SAMPLES = list(SAMPLES.index[SAMPLES["compartment"] == "CSF"])
# sample -> condition (MS / control ...) for unpaired claims, when the sheet has the column
CONDITIONS = (
    {s: c for s, c in SAMPLES["condition"].items() if c}
    if "condition" in SAMPLES
    else {}
)
# time-point label -> days since infusion, where the sheet has a `day` column
DAYS = label_days(SAMPLES)
# sample -> cells per microlitre (the clinical cell count), where the sheet has the column
CELLS_PER_UL = (
    {s: float(v) for s, v in SAMPLES["cells_per_ul"].items() if v}
    if "cells_per_ul" in SAMPLES
    else {}
)
DOWNLOAD = CONFIG["download"] if "download" in CONFIG else None
# cells of a synthetic cohort before it exists: the memory a dry run shows for the cohort rules
EXPECTED_CELLS = expected_cells(CONFIG)
# the report's first page (workflow/report/workflow.rst) reads this from the config
config["_report"] = study_summary(CONFIG, SAMPLES, CLAIMS)


wildcard_constraints:
    sample="|".join(SAMPLES.index),
    cell_type="[A-Za-z0-9][A-Za-z0-9_.-]*",


def ingest_input(wildcards):
    """The simulated sheet (synthetic) or the sample's own file (real data)."""
    if SYNTHETIC:
        return {"sheet": f"{OUT}/simulated/samples.tsv"}
    if DOWNLOAD:
        return {"unpacked": f"{download_dir(CONFIG)}/raw.done"}
    return {"data": SAMPLES.loc[wildcards.sample, "path"]}


def memory(name, floor_mb, workers=False):
    """mem_mb of a whole-cohort rule: from the counts stored in its inputs (csfcart.workflow).
    ``workers``: the job forks a worker per thread beside itself, each process modelled apart.
    """
    return lambda wc, input, threads, attempt: job_memory_mb(
        name,
        input,
        expected_cells=EXPECTED_CELLS,
        floor_mb=floor_mb,
        attempt=attempt,
        processes=threads + 1 if workers and threads > 1 else 1,
    )


def scores_memory(name, floor_mb):
    """mem_mb of the jobs over the per-sample interaction tables, from the rows they hold."""
    return lambda wc, input, attempt: scores_memory_mb(
        name, input, floor_mb=floor_mb, attempt=attempt
    )


def all_targets():
    return targets(
        OUT,
        list(SAMPLES.index),
        synthetic=SYNTHETIC,
        de_cell_types=DE_CELL_TYPES,
        communication=bool(CSF_SAMPLES),
        claims=CLAIMS,
        compare_integration=CONFIG["compare_integration"],
    )


def claims_input(wildcards):
    """The measurements the claims need; communication only when CSF was sampled."""
    files = {
        "counts": f"{OUT}/composition/counts.tsv",
        "car": f"{OUT}/car_t/fractions.tsv",
        "programs": f"{OUT}/scores/programs.tsv",
        "ig": f"{OUT}/scores/asc_immunoglobulin.tsv",
        "lr": f"{OUT}/scores/lr_expression.tsv",
    }
    if CSF_SAMPLES:
        files["communication"] = f"{OUT}/communication/axis.tsv"
    return files
