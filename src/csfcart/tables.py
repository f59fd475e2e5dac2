"""Browsable tables for the report: one self-contained HTML page per table.

Snakemake's report offers TSV files only as downloads; an HTML page opens inside the
report. Each page holds every row of its table (as JSON, gzip-compressed when large) and
shows it a page at a time; the filter and the column sort act on all rows. A few lines of
inline script and no external resource, so it also opens on its own from the results
folder, offline.
"""

from __future__ import annotations

import base64
import gzip
import html
import json
from pathlib import Path

import numpy as np
import pandas as pd

STYLE = """
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; margin: 1rem; color: #222; }
h1 { font-size: 1.2rem; margin: 0 0 0.3rem 0; }
p.note { color: #555; margin: 0 0 0.6rem 0; font-size: 0.85rem; }
div.bar { display: flex; gap: 0.6rem; align-items: center; flex-wrap: wrap; margin-bottom: 0.6rem; font-size: 0.85rem; }
input { padding: 0.3rem 0.5rem; width: 22rem; font-size: 0.9rem; }
button, select { font-size: 0.85rem; padding: 0.2rem 0.5rem; }
table { border-collapse: collapse; font-size: 0.8rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25rem 0.45rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; cursor: pointer; position: sticky; top: 0; user-select: none; }
th:hover { background: #e4e4e4; }
th[data-order=asc]::after { content: " \\25B2"; }
th[data-order=desc]::after { content: " \\25BC"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
"""

#: Renders pages of the embedded table; filters and sorts over every row, not only the page.
SCRIPT = """
(function () {
  var tag = document.getElementById('table-data');
  var body = document.getElementById('data').tBodies[0];
  var head = document.getElementById('data').tHead.rows[0].cells;
  var status = document.getElementById('status');
  var size = document.getElementById('size');
  var cols, n, rows, order = null, page = 0, text = null;
  function value(c, i) { var col = cols[c]; return col.levels ? col.levels[col.values[i]] : col.values[i]; }
  function show(c, i) {
    var v = value(c, i);
    if (v === null || v === undefined) { return ''; }
    if (cols[c].kind === 'bool') { return v ? 'true' : 'false'; }
    return String(v);
  }
  function render() {
    var per = parseInt(size.value, 10), total = rows.length;
    var pages = Math.max(1, Math.ceil(total / per));
    page = Math.min(Math.max(page, 0), pages - 1);
    var from = page * per, to = Math.min(total, from + per), html = [];
    for (var r = from; r < to; r++) {
      var i = rows[r], cells = [];
      for (var c = 0; c < cols.length; c++) {
        var t = show(c, i).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
        cells.push(cols[c].kind === 'num' ? '<td class="num">' + t + '</td>' : '<td>' + t + '</td>');
      }
      html.push('<tr>' + cells.join('') + '</tr>');
    }
    body.innerHTML = html.join('');
    status.textContent = total ? ('rows ' + (from + 1) + '-' + to + ' of ' + total +
      (total < n ? ' (filtered from ' + n + ')' : '') + ', page ' + (page + 1) + ' of ' + pages) : ('0 of ' + n + ' rows match');
    document.getElementById('shown').textContent = total;
  }
  function filter(q) {
    q = q.toLowerCase();
    if (text === null) {
      text = new Array(n);
      for (var i = 0; i < n; i++) {
        var parts = [];
        for (var c = 0; c < cols.length; c++) { parts.push(show(c, i)); }
        text[i] = parts.join('\t').toLowerCase();
      }
    }
    rows = [];
    var base = order || Array.from({length: n}, function (_, i) { return i; });
    for (var k = 0; k < base.length; k++) { if (!q || text[base[k]].indexOf(q) >= 0) { rows.push(base[k]); } }
    page = 0;
    render();
  }
  function sortBy(c, asc) {
    var base = Array.from({length: n}, function (_, i) { return i; });
    var num = cols[c].kind !== 'text';
    base.sort(function (a, b) {
      var x = value(c, a), y = value(c, b);
      if (x === null || x === undefined) { return (y === null || y === undefined) ? a - b : 1; }
      if (y === null || y === undefined) { return -1; }
      var d = num ? x - y : String(x).localeCompare(String(y));
      return (asc ? d : -d) || a - b;
    });
    order = base;
    filter(document.getElementById('filter').value);
  }
  function start(table) {
    cols = table.columns; n = table.n;
    rows = Array.from({length: n}, function (_, i) { return i; });
    if (!n) { return; }
    document.getElementById('filter').addEventListener('input', function (ev) { filter(ev.target.value); });
    size.addEventListener('change', function () { page = 0; render(); });
    document.getElementById('prev').addEventListener('click', function () { page -= 1; render(); });
    document.getElementById('next').addEventListener('click', function () { page += 1; render(); });
    Array.prototype.forEach.call(head, function (th, c) {
      th.addEventListener('click', function () {
        var asc = th.getAttribute('data-order') !== 'asc';
        Array.prototype.forEach.call(head, function (h) { h.removeAttribute('data-order'); });
        th.setAttribute('data-order', asc ? 'asc' : 'desc');
        sortBy(c, asc);
      });
    });
    render();
  }
  if (tag.getAttribute('data-encoding') === 'gzip') {
    if (typeof DecompressionStream === 'undefined') {
      status.textContent = 'This browser cannot unpack the table; the TSV file beside this page holds every row.';
      return;
    }
    var bytes = Uint8Array.from(atob(tag.textContent.trim()), function (ch) { return ch.charCodeAt(0); });
    new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'))).text()
      .then(function (t) { start(JSON.parse(t)); });
  } else {
    start(JSON.parse(tag.textContent));
  }
})();
"""

#: Tables larger than this (JSON bytes) are embedded gzip-compressed.
COMPRESS_ABOVE = 1_000_000


def _column(values: pd.Series) -> dict:
    """One column as JSON: numbers to 6 significant digits (NaN: null), text by levels."""
    if pd.api.types.is_bool_dtype(values) and not values.isna().any():
        return {"kind": "bool", "values": [bool(v) for v in values]}
    if pd.api.types.is_bool_dtype(values):  # a nullable flag with gaps: shown as text, gaps empty
        values = values.astype(object)
    if pd.api.types.is_numeric_dtype(values):
        data = values.to_numpy(dtype=float)
        out = [None if not np.isfinite(v) else (int(v) if v.is_integer() and abs(v) < 2**53 else float(f"{v:.6g}"))
               for v in data]  # fmt: skip
        return {"kind": "num", "values": out}
    text = values.astype(object).where(values.notna(), None)
    codes, levels = pd.factorize(text.map(lambda v: None if v is None else str(v)), use_na_sentinel=True)
    if len(levels) < 0.5 * max(len(values), 1):
        return {"kind": "text", "levels": [*map(str, levels), None], "values": [int(c) for c in codes]}
    return {"kind": "text", "values": [None if v is None else str(v) for v in text]}


def _payload(frame: pd.DataFrame) -> tuple[str, str]:
    """The table as (encoding, text to embed): plain JSON, or gzip-compressed and base64."""
    cols = []
    for c in frame.columns:
        col = _column(frame[c])
        if "levels" in col:  # the missing level is the last one; factorize's -1 points to it
            col["values"] = [len(col["levels"]) - 1 if v < 0 else v for v in col["values"]]
        cols.append(col)
    text = json.dumps({"n": len(frame), "columns": cols}, separators=(",", ":"), allow_nan=False)
    if len(text) <= COMPRESS_ABOVE:
        return "json", text.replace("</", "<\\/")
    packed = gzip.compress(text.encode("utf-8"), compresslevel=6, mtime=0)
    return "gzip", base64.b64encode(packed).decode("ascii")


#: What an empty table says when its step gives no reason of its own.
NO_ROWS = "No rows: nothing in this dataset met this step's conditions (its log says more)."


def render_table(frame: pd.DataFrame, *, title: str, note: str = "", empty: str = NO_ROWS) -> str:
    """A standalone HTML page holding every row of ``frame``, shown a page at a time; the
    filter and the column sort act on the whole table (``empty``: the sentence an empty
    table shows in its one row, saying why)."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    encoding, data = _payload(frame)
    body = ""
    if frame.empty:
        body = f'<tr class="empty"><td colspan="{max(len(frame.columns), 1)}">{html.escape(empty)}</td></tr>'
    sizes = "".join(f'<option value="{k}"{" selected" if k == 100 else ""}>{k} per page</option>'
                    for k in (25, 100, 500, 2000))  # fmt: skip
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p class="note">{html.escape(note)} All {len(frame):,} rows; type to filter, click a column header to sort.</p>
<div class="bar">
<input id="filter" type="search" placeholder="filter rows" aria-label="filter rows">
<button id="prev" type="button">&larr; previous</button>
<button id="next" type="button">next &rarr;</button>
<select id="size" aria-label="rows per page">{sizes}</select>
<span id="status"></span>
<span hidden><span id="shown">{len(frame)}</span> rows shown</span>
</div>
<table id="data">
<thead><tr>{head}</tr></thead>
<tbody>
{body}
</tbody>
</table>
<script type="application/json" id="table-data" data-encoding="{encoding}">{data}</script>
<script>{SCRIPT}</script>
</body>
</html>
"""


def write_table_html(
    frame: pd.DataFrame, path: str | Path, *, title: str, note: str = "", empty: str = NO_ROWS
) -> None:
    """Write every row of ``frame`` as a browsable page, atomically; an empty ``frame``
    shows ``empty`` (why there are no rows)."""
    page = render_table(frame, title=title, note=note, empty=empty)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
