"""Browsable tables for the report: one self-contained HTML page per table.

Snakemake's report offers TSV files only as downloads; an HTML page opens inside the
report. Each page filters rows as the reader types and sorts by a click on a column
header, with a few lines of inline script and no external resource, so it also opens on
its own from the results folder.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

STYLE = """
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; margin: 1rem; color: #222; }
h1 { font-size: 1.2rem; margin: 0 0 0.3rem 0; }
p.note { color: #555; margin: 0 0 0.6rem 0; font-size: 0.85rem; }
input { padding: 0.3rem 0.5rem; width: 22rem; margin-bottom: 0.6rem; font-size: 0.9rem; }
table { border-collapse: collapse; font-size: 0.8rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25rem 0.45rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; cursor: pointer; position: sticky; top: 0; user-select: none; }
th:hover { background: #e4e4e4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
"""

SCRIPT = """
(function () {
  var table = document.getElementById('data');
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var shown = document.getElementById('shown');
  document.getElementById('filter').addEventListener('input', function (ev) {
    var q = ev.target.value.toLowerCase();
    var n = 0;
    rows.forEach(function (r) {
      var hit = r.textContent.toLowerCase().indexOf(q) >= 0;
      r.style.display = hit ? '' : 'none';
      if (hit) { n += 1; }
    });
    shown.textContent = n;
  });
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
    th.addEventListener('click', function () {
      var asc = th.getAttribute('data-order') !== 'asc';
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.removeAttribute('data-order'); });
      th.setAttribute('data-order', asc ? 'asc' : 'desc');
      rows.sort(function (a, b) {
        var x = a.cells[col].getAttribute('data-v'), y = b.cells[col].getAttribute('data-v');
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
})();
"""


def _cell(value) -> str:
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            return '<td class="num" data-v=""></td>'
        return f'<td class="num" data-v="{value!r}">{value:.4g}</td>'
    if isinstance(value, (bool, np.bool_)):
        return f'<td data-v="{value}">{str(value).lower()}</td>'
    if isinstance(value, (int, np.integer)):
        return f'<td class="num" data-v="{value}">{value}</td>'
    text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
    return f'<td data-v="{html.escape(text, quote=True)}">{html.escape(text)}</td>'


#: What an empty table says when its step gives no reason of its own.
NO_ROWS = "No rows: nothing in this dataset met this step's conditions (its log says more)."


def render_table(
    frame: pd.DataFrame, *, title: str, note: str = "", total: int | None = None, empty: str = NO_ROWS
) -> str:
    """A standalone HTML page of ``frame`` (``total``: rows in the full table, when cut;
    ``empty``: the sentence an empty table shows in its one row, saying why)."""
    total = len(frame) if total is None else total
    cut = (
        f" (the first {len(frame)} of {total} rows; the full table is the TSV beside this page)"
        if total > len(frame)
        else ""
    )
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "\n".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in frame.itertuples(index=False))
    if frame.empty:
        body = f'<tr class="empty"><td colspan="{max(len(frame.columns), 1)}">{html.escape(empty)}</td></tr>'
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p class="note">{html.escape(note)}{html.escape(cut)} Type to filter; click a column header to sort.</p>
<input id="filter" type="search" placeholder="filter rows" aria-label="filter rows">
<span><span id="shown">{len(frame)}</span> rows shown</span>
<table id="data">
<thead><tr>{head}</tr></thead>
<tbody>
{body}
</tbody>
</table>
<script>{SCRIPT}</script>
</body>
</html>
"""


def write_table_html(
    frame: pd.DataFrame, path: str | Path, *, title: str, note: str = "", max_rows: int = 2000, empty: str = NO_ROWS
) -> None:
    """Write ``frame`` (its first ``max_rows`` rows) as a browsable page, atomically; an
    empty ``frame`` shows ``empty`` (why there are no rows)."""
    page = render_table(frame.head(max_rows), title=title, note=note, total=len(frame), empty=empty)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
