"""A non-editable install: the package built as a wheel and installed elsewhere runs the
workflow from a folder other than the checkout (the package reads no file of the checkout)."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import yaml

from tests.conftest import ROOT


def _run(*args, env=None, cwd=None, timeout=900):
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


def test_a_wheel_install_runs_the_workflow_from_another_folder(tmp_path):
    wheels, site, work = tmp_path / "wheels", tmp_path / "site", tmp_path / "work"
    work.mkdir()
    # a wheel of the package, built offline with the environment's setuptools, installed as a copy
    built = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
                 str(ROOT))  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = wheels.glob("csfcart-*.whl")
    installed = _run(sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel))
    assert installed.returncode == 0, installed.stderr[-3000:]
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = _run(sys.executable, "-c", "import csfcart; print(csfcart.__file__)", env=env, cwd=work)
    assert where.stdout.strip().startswith(str(site)), where.stdout + where.stderr
    assert (site / "csfcart" / "data").is_dir()  # the package's own data travel with it

    # the workflow, run from another folder: simulation, ingest, QC and provenance of the tiny cohort
    out = work / "results" / "csf_bcma_cart_tiny"
    targets = [str((out / name).relative_to(work)) for name in ("qc/summary.tsv", "provenance/workflow.yaml")]
    snakemake = _run(sys.executable, "-m", "snakemake", *targets, "-s", str(ROOT / "Snakefile"), "-d", str(work),
                     "--cores", "2", "--configfile", str(ROOT / "config" / "datasets" / "csf_bcma_cart_tiny.yaml"),
                     env=env, cwd=work)  # fmt: skip
    assert snakemake.returncode == 0, (snakemake.stdout + snakemake.stderr)[-4000:]
    summary = pd.read_csv(out / "qc" / "summary.tsv", sep="\t")
    assert len(summary) > 0 and (summary["cells_pass"] > 0).all()
    provenance = yaml.safe_load((out / "provenance" / "workflow.yaml").read_text())
    assert provenance["package_location"].startswith(str(site)), provenance
