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


def render_provenance(config: dict[str, Any], samples: pd.DataFrame, versions: pd.DataFrame, info: dict) -> str:
    """One self-contained page of what produced a results folder (the report opens it)."""
    import html

    def table(frame: pd.DataFrame) -> str:
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
        rows = "".join(
            "<tr>" + "".join(f"<td>{html.escape('' if pd.isna(v) else str(v))}</td>" for v in row) + "</tr>"
            for row in frame.itertuples(index=False)
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"

    about = pd.DataFrame({"": list(info), "value": [str(v) for v in info.values()]})
    style = ("body{font-family:system-ui,sans-serif;margin:1rem;color:#222}table{border-collapse:collapse;"
             "font-size:.8rem;margin-bottom:1rem}th,td{border-bottom:1px solid #ddd;padding:.2rem .45rem;"
             "text-align:left}th{background:#f3f3f3}pre{background:#f7f7f7;padding:.6rem;font-size:.8rem}")  # fmt: skip
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Provenance</title><style>{style}</style></head>
<body>
<h1>What produced these results</h1>
<p>The same files sit in the results' <code>provenance/</code> folder: <code>workflow.yaml</code>,
<code>versions.tsv</code>, <code>samples.tsv</code>, <code>config.yaml</code>.</p>
<h2>Workflow</h2>{table(about)}
<h2>Software</h2>{table(versions)}
<h2>Samples, as validated</h2>{table(samples)}
<h2>Effective configuration (every default filled in)</h2>
<pre>{html.escape(yaml.safe_dump(config, sort_keys=False))}</pre>
</body></html>
"""


def write_provenance(
    config: dict[str, Any], samples: pd.DataFrame, basedir: str | Path, *, config_out, samples_out, versions_out,
    workflow_out, page_out
) -> None:  # fmt: skip
    """Write the provenance files of a results folder and the page that shows them."""
    versions, info = software_versions(), workflow_version(basedir)
    Path(config_out).write_text(yaml.safe_dump(config, sort_keys=False))
    samples.to_csv(samples_out, sep="\t", index=False)
    versions.to_csv(versions_out, sep="\t", index=False)
    Path(workflow_out).write_text(yaml.safe_dump(info, sort_keys=False))
    Path(page_out).write_text(render_provenance(config, samples, versions, info), encoding="utf-8")
