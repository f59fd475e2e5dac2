"""What produced a results folder: the effective config, the sample sheet as validated, the
software versions of the environment and the workflow's version and commit."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from csfcart import __version__

#: The packages a result depends on (the pins of requirements.txt that do the analysis).
PACKAGES = ["snakemake", "scanpy", "anndata", "scvi-tools", "torch", "harmonypy", "liana", "decoupler", "pydeseq2",
            "numpy", "scipy", "pandas", "scikit-learn", "igraph", "leidenalg", "pynndescent", "umap-learn",
            "scib-metrics", "matplotlib"]  # fmt: skip


def software_versions(packages: list[str] = PACKAGES) -> pd.DataFrame:
    """Installed version of each package ('not installed' when absent), and Python's."""
    rows = [{"package": "python", "version": platform.python_version()}]
    for name in packages:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = "not installed"
        rows.append({"package": name, "version": version})
    return pd.DataFrame(rows)


def workflow_version(basedir: str | Path) -> dict[str, Any]:
    """The workflow's version and, when it runs from a git checkout, its commit and whether
    the checkout had uncommitted changes."""
    info: dict[str, Any] = {
        "workflow": "csfcart",
        "version": __version__,
        "commit": "unknown",
        "uncommitted_changes": None,
        # where the analysis code was imported from (an installed copy, or the checkout's src/)
        "package_location": str(Path(__file__).resolve().parent),
    }
    try:
        commit = subprocess.run(
            ["git", "-C", str(basedir), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(basedir), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        info.update(commit=commit, uncommitted_changes=bool(status.strip()))
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def write_provenance(
    config: dict[str, Any], samples: pd.DataFrame, basedir: str | Path, *, config_out, samples_out, versions_out,
    workflow_out
) -> None:  # fmt: skip
    """Write the four provenance files of a results folder."""
    Path(config_out).write_text(yaml.safe_dump(config, sort_keys=False))
    samples.to_csv(samples_out, sep="\t", index=False)
    software_versions().to_csv(versions_out, sep="\t", index=False)
    Path(workflow_out).write_text(yaml.safe_dump(workflow_version(basedir), sort_keys=False))
