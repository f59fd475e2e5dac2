"""A standalone summary page: the claims, their verdicts and the forest plot, in one HTML file.

The page embeds its figure and carries no script and no external resource, so it opens in
any browser (or an e-mail attachment) without Snakemake, a server or a network.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
import pandas as pd

from csfcart import __version__
from csfcart.plotting import VERDICT_COLOURS

VERDICT_STYLE = {v: (colour, v.replace("_", " ")) for v, colour in VERDICT_COLOURS.items()}

CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; margin: 2rem auto;
       max-width: 1200px; color: #222; line-height: 1.4; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
.meta { color: #555; margin-top: 0; }
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; margin: 1rem 0; }
th, td { border-bottom: 1px solid #ddd; padding: 0.35rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.verdict { font-weight: 600; white-space: nowrap; }
.counts > span { margin-right: 1.2rem; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
.reason { color: #444; font-size: 0.85rem; }
"""


def _fmt(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return ""
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return f"{float(x):.{digits}g}"


def _verdict(v: str) -> str:
    colour, text = VERDICT_STYLE.get(str(v), ("#222222", str(v)))
    return f'<span class="verdict" style="color:{colour}">{html.escape(text)}</span>'


def _provenance(info: dict | None) -> str:
    if not info:
        return ""
    commit = str(info.get("commit", "unknown"))
    dirty = " with uncommitted changes" if info.get("uncommitted_changes") else ""
    return html.escape(
        f"Workflow {info.get('workflow', 'csfcart')} {info.get('version', '')}, commit {commit[:12]}{dirty}."
    )


def _bound(r: dict) -> str:
    """The one-sided bound that decided the claim, with its confidence."""
    level = r.get("bound_level")
    if level is None or not np.isfinite(float(level)):
        return ""
    return f"{_fmt(r.get('bound'))} ({100 * float(level):.4g}%)"


def render_summary(
    claims: pd.DataFrame,
    forest_png: bytes,
    *,
    dataset: str,
    truth: pd.DataFrame | None = None,
    provenance: dict | None = None,
) -> str:
    """The page's HTML. ``truth`` (synthetic cohorts) adds the simulated effect and CI coverage."""
    table = claims.copy()
    if truth is not None and len(truth):
        extra = [c for c in ("true_effect", "expected_verdict", "ci_covers_truth") if c in truth]
        table = table.merge(truth[["claim_id", *extra]], on="claim_id", how="left")
    counts = table["verdict"].value_counts()
    head = ["claim", "statement", "metric", "estimate (two-sided 95% CI)", "deciding bound (level)", "patients",
            "verdict"]  # fmt: skip
    if "true_effect" in table:
        head += ["simulated effect", "CI covers it"]
    rows = []
    for r in table.to_dict("records"):
        ci = f"{_fmt(r.get('estimate'))} ({_fmt(r.get('ci_low'))} to {_fmt(r.get('ci_high'))})"
        if not np.isfinite(float(r.get("estimate", np.nan) if r.get("estimate") is not None else np.nan)):
            ci = ""
        cells = [
            f"<td><b>{html.escape(str(r['claim_id']))}</b></td>",
            f"<td>{html.escape(str(r['statement']))}"
            f"<div class='reason'>{html.escape(str(r.get('reason') or ''))}</div></td>",
            f"<td>{html.escape(str(r.get('metric') or ''))}</td>",
            f"<td class='num'>{ci}</td>",
            f"<td class='num'>{_bound(r)}</td>",
            f"<td class='num'>{_fmt(r.get('patients_consistent'))} of {_fmt(r.get('n_patients'))}</td>",
            f"<td>{_verdict(r['verdict'])}</td>",
        ]
        if "true_effect" in table:
            cover = r.get("ci_covers_truth")
            cover = "" if cover is None or (isinstance(cover, float) and np.isnan(cover)) else str(cover).lower()
            cells += [f"<td class='num'>{_fmt(r.get('true_effect'))}</td>", f"<td>{html.escape(cover)}</td>"]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    image = base64.b64encode(forest_png).decode("ascii")
    tally = "".join(f"<span>{_verdict(v)}: {int(counts.get(v, 0))}</span>" for v in VERDICT_STYLE if counts.get(v, 0))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>csfcart claims: {html.escape(dataset)}</title>
<style>{CSS}</style>
</head>
<body>
<h1>Claims scored on {html.escape(dataset)}</h1>
<p class="meta">csfcart {html.escape(__version__)}. The patient is the unit: each patient is compared with their own
baseline, and the cohort estimate (the mean patient's change) carries a two-sided 95% confidence interval. A claim
is reproduced when its one-sided confidence bound lies beyond the claimed size, contradicted when the bound on the
other side falls short of it, and inconclusive otherwise; the claims of a family share the level by the registry's
graph, and a claim whose gate was not reproduced is not tested. The full report (report.html) holds every figure
behind these numbers.</p>
<p class="counts">{tally}</p>
<table id="claims">
<thead><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody>
</table>
<h2>Forest plot</h2>
<p>Each claim's cohort estimate with its two-sided 95% CI and the one-sided bound that decided it (bar), coloured by
verdict; the dashed line is no change, the dotted line the claimed size.</p>
<img id="forest" alt="Forest plot of the claims' estimates with 95% confidence intervals"
 src="data:image/png;base64,{image}">
<h2>What produced these results</h2>
<p id="provenance">{_provenance(provenance)} In <code>provenance/</code> beside this page:
<a href="provenance/index.html">all of it on one page</a>, <a href="provenance/config.yaml">the effective
configuration</a>, <a href="provenance/samples.tsv">the sample sheet as validated</a>,
<a href="provenance/versions.tsv">software versions</a>, <a href="provenance/workflow.yaml">workflow version and
commit</a>.</p>
</body>
</html>
"""


def write_summary(claims_tsv, forest_png, out, *, dataset: str, truth_tsv=None, workflow_yaml=None) -> None:
    import yaml

    claims = pd.read_csv(claims_tsv, sep="\t")
    truth = pd.read_csv(truth_tsv, sep="\t") if truth_tsv else None
    info = yaml.safe_load(Path(workflow_yaml).read_text()) if workflow_yaml else None
    page = render_summary(claims, Path(forest_png).read_bytes(), dataset=dataset, truth=truth, provenance=info)
    tmp = Path(f"{out}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
