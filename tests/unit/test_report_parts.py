"""The report's own pieces: browsable tables, the standalone summary page, mixing metrics."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from csfcart.integrate import graph_neighbours, mixing_cells, mixing_metrics, nearest_neighbours
from csfcart.summary import render_summary
from csfcart.tables import render_table, write_table_html
from tests.conftest import shipped_lineages


def _embedded(page: str) -> dict:
    """The table a page carries, decoded as its script does."""
    import base64
    import gzip
    import json
    import re

    m = re.search(r'<script type="application/json" id="table-data" data-encoding="(\w+)">(.*?)</script>', page, re.S)
    text = m.group(2) if m.group(1) == "json" else gzip.decompress(base64.b64decode(m.group(2))).decode()
    return json.loads(text.replace("<\\/", "</"))


def _column(table: dict, i: int) -> list:
    col = table["columns"][i]
    return [col["levels"][v] for v in col["values"]] if "levels" in col else col["values"]


def test_tables_escape_their_cells_and_carry_every_row(tmp_path):
    frame = pd.DataFrame({"gene": ["<script>alert(1)</script>", "CD3E", "MS4A1"], "padj": [0.01, np.nan, 0.5]})
    page = render_table(frame, title="DE & more")
    assert "<script>alert(1)</script>" not in page and "DE &amp; more" in page
    table = _embedded(page)
    assert table["n"] == 3 and _column(table, 0) == list(frame["gene"]) and _column(table, 1) == [0.01, None, 0.5]
    out = tmp_path / "t.html"
    write_table_html(frame, out, title="t")
    assert "All 3 rows" in out.read_text()
    assert not list(tmp_path.glob("*.tmp"))


def test_a_large_table_is_embedded_whole_and_compressed():
    rng = np.random.default_rng(0)
    n = 60_000
    frame = pd.DataFrame({"source": rng.choice(["CD4_T", "naive_B", "microglia_like"], n),
                          "ligand": [f"L{i}" for i in range(n)], "estimate": rng.normal(size=n)})  # fmt: skip
    page = render_table(frame, title="big")
    assert 'data-encoding="gzip"' in page and len(page) < 2_000_000
    table = _embedded(page)
    assert table["n"] == n and _column(table, 1)[-1] == f"L{n - 1}" and _column(table, 0) == list(frame["source"])
    np.testing.assert_allclose(_column(table, 2), frame["estimate"], rtol=1e-5)


def test_summary_page_carries_every_claim_and_needs_nothing_else():
    claims = pd.DataFrame(
        {
            "claim_id": ["C1", "C7"],
            "statement": ["CAR-T cells reach the CSF", "B / microglia interactions fall"],
            "metric": ["m1", "m2"],
            "estimate": [0.12, np.nan],
            "ci_low": [0.05, np.nan],
            "ci_high": [0.2, np.nan],
            "bound": [0.07, np.nan],
            "bound_level": [0.95, np.nan],
            "n_patients": [5, 0],
            "patients_consistent": [5, 0],
            "verdict": ["reproduced", "not_testable"],
            "reason": ["5/5 patients", "no microglia-like cells"],
        }
    )
    truth = pd.DataFrame({"claim_id": ["C1", "C7"], "true_effect": [0.1, -0.2], "ci_covers_truth": [True, False]})
    page = render_summary(claims, b"\x89PNG fake", dataset="demo", truth=truth)
    body = page.split("<tbody>")[1].split("</tbody>")[0]
    assert body.count("<tr>") == 2
    assert "not testable" in body and "reproduced" in body and "0.12 (0.05 to 0.2)" in body
    assert "0.07 (95%)" in body  # the bound that decided, with its confidence
    assert "simulated effect" in page
    assert "data:image/png;base64," in page
    assert "http://" not in page and "https://" not in page and "<script" not in page


def test_mixing_metrics_tell_mixed_from_separated_batches():
    rng = np.random.default_rng(0)
    n = 200
    labels = np.repeat(["A", "B"], n)
    batch = np.tile(["s1", "s2"], n)
    centres = np.where(labels == "A", 0.0, 20.0)[:, None]
    mixed = centres + rng.normal(size=(2 * n, 2))
    apart = mixed + np.where(batch == "s1", 0.0, 8.0)[:, None]  # each batch its own island
    adata = ad.AnnData(
        obs=pd.DataFrame({"cell_type": labels, "sample_id": batch}, index=[str(i) for i in range(2 * n)])
    )
    graph = {name: nearest_neighbours(xy, 15, seed=0) for name, xy in {"mixed": mixed, "apart": apart}.items()}
    m = mixing_metrics(adata, graph, batch_key="sample_id").set_index(["embedding", "cell_type"])
    assert (m.loc["mixed", "batch_mixing"] > 0.9).all()
    assert (m.loc["apart", "batch_mixing"] < 0.2).all()
    assert (m["label_purity"] > 0.99).all()
    # a stored kNN graph (scanpy's obsp['distances']) gives the same neighbours
    import scanpy as sc

    adata.obsm["apart"] = apart.astype(np.float32)
    sc.pp.neighbors(adata, use_rep="apart", n_neighbors=16)
    stored = graph_neighbours(adata.obsp["distances"])
    assert stored.shape == (2 * n, 15)
    exact = np.sort(graph["apart"], axis=1)
    assert (np.sort(stored, axis=1) == exact).all(axis=1).mean() > 0.95


def test_mixing_entropy_is_the_batch_entropy_of_each_cells_same_type_neighbours(monkeypatch):
    """Checked cell by cell against the definition, with many batches (the metric no longer
    holds a cells x batches table) and neighbours found approximately (above the exact limit)."""
    import csfcart.integrate as integrate

    rng = np.random.default_rng(1)
    n = 600
    xy = rng.normal(size=(n, 5))
    exact = nearest_neighbours(xy, 12, seed=0)
    monkeypatch.setattr(integrate, "EXACT_NEIGHBOURS", 100)
    approx = nearest_neighbours(xy, 12, seed=0)
    assert approx.shape == exact.shape and not (approx == np.arange(n)[:, None]).any()
    assert np.mean([len(np.intersect1d(a, e)) for a, e in zip(approx, exact, strict=True)]) / 12 > 0.9
    code, b = rng.integers(0, 3, n), rng.integers(0, 40, n)
    purity, entropy = integrate._neighbour_entropy(exact, code, b, chunk=64)
    for cell in range(n):
        own = exact[cell][code[exact[cell]] == code[cell]]
        assert purity[cell] == pytest.approx(len(own) / 12)
        if len(own) == 0:
            assert np.isnan(entropy[cell])
            continue
        p = np.unique(b[own], return_counts=True)[1] / len(own)
        assert entropy[cell] == pytest.approx(-(p * np.log(p)).sum())


def test_mixing_metrics_of_a_sample_of_cells_are_those_cells_share_of_the_whole():
    """The rule scores a capped sample of each type: the sample keeps every cell of a small
    type, the sample's exact neighbours are those of the whole graph, and each type's means
    are the means over its sampled cells of the per-cell values of the whole computation."""
    import csfcart.integrate as integrate

    rng = np.random.default_rng(3)
    n = 900
    labels = pd.Series(np.repeat(["big", "mid", "rare"], [600, 260, 40]))
    xy = rng.normal(size=(n, 4)) + np.where(labels == "big", 0.0, 3.0)[:, None]
    batch = rng.integers(0, 5, n)
    cells = mixing_cells(labels, 100, seed=0)
    chosen = labels.iloc[cells].value_counts()
    assert chosen["big"] == 100 and chosen["mid"] == 100 and chosen["rare"] == 40
    assert (np.diff(cells) > 0).all()
    assert not np.array_equal(cells, mixing_cells(labels, 100, seed=1))

    whole = nearest_neighbours(xy, 10, seed=0)
    some = nearest_neighbours(xy, 10, seed=0, cells=cells)
    assert some.shape == (len(cells), 10) and not (some == cells[:, None]).any()
    assert (np.sort(some, axis=1) == np.sort(whole[cells], axis=1)).all()

    adata = ad.AnnData(obs=pd.DataFrame({"cell_type": labels.to_numpy(), "sample_id": batch.astype(str)}))
    m = mixing_metrics(adata, {"e": some}, batch_key="sample_id", cells=cells).set_index("cell_type")
    code = pd.Categorical(labels).codes
    purity, entropy = integrate._neighbour_entropy(whole, code, batch)
    for k, t in enumerate(["big", "mid", "rare"]):
        mine = cells[code[cells] == k]
        assert m.loc[t, "cells"] == (code == k).sum() and m.loc[t, "cells_scored"] == len(mine)
        assert m.loc[t, "label_purity"] == pytest.approx(purity[mine].mean())
        n_batches = len(np.unique(batch[code == k]))
        assert m.loc[t, "batch_mixing"] == pytest.approx(np.nanmean(entropy[mine]) / np.log(n_batches))
    with pytest.raises(ValueError, match="rows of neighbours"):
        mixing_metrics(adata, {"e": whole}, batch_key="sample_id", cells=cells)


def test_communication_recovery_ranks_significant_changes_by_size_against_the_truth():
    from csfcart.evaluate import communication_recovery

    key = ["source", "target", "ligand_complex", "receptor_complex"]
    rows = [
        ("microglia_like", "naive_B", "TNFSF13B", "TNFRSF13C"),  # large, significant, planted
        ("CD4_T", "plasma", "CD40LG", "CD40"),  # smaller, significant, the smallest p: ranks second
        ("CD4_T", "CD8_T", "IL2", "IL2RB"),  # the largest estimate but not significant: ranks last
        ("NK", "CD8_T", "CCL5", "CCR5"),
    ]
    measured = pd.DataFrame(rows, columns=key).assign(
        compartment="CSF", estimate=[-0.6, -0.2, -0.9, 0.01], ci_low=[-0.7, -0.3, -2.0, -0.05],
        ci_high=[-0.5, -0.1, 0.2, 0.06], p_value=[0.002, 0.001, 0.3, 0.8], p_adjusted=[0.004, 0.004, 0.4, 0.8],
    )  # fmt: skip
    filler = pd.DataFrame([(f"T{i}", "T", "L", "R") for i in range(96)], columns=key).assign(true_change=0.0)
    truth = pd.concat(
        [pd.DataFrame(rows, columns=key).assign(true_change=[-0.65, -0.6, 0.0, 0.0]), filler], ignore_index=True
    )
    table = communication_recovery(measured, truth, top=3, alpha=0.05, lineage_of=shipped_lineages())
    assert table["ligand_complex"].tolist() == ["TNFSF13B", "CD40LG", "IL2"]
    assert table["truth_rank"].tolist()[:2] == [1, 2]
    assert table["planted"].tolist() == [True, True, False]
    assert table["b_microglia_axis"].tolist() == [True, False, False]
    # the rank correlation of measured and true change: perfect when the analysis measures the truth
    exact = communication_recovery(
        measured.assign(estimate=[-0.65, -0.6, 0.0, 0.0]), truth, alpha=0.05, lineage_of=shipped_lineages()
    )
    assert exact.attrs["spearman"] == pytest.approx(1.0)
    assert table.attrs["spearman"] < 0.5  # the non-significant -0.9 against a true 0 spoils it


def test_condition_interactions_count_an_absent_interaction_as_zero():
    from csfcart.communication import condition_interactions

    key = dict(source="naive_B", target="microglia_like", ligand_complex="TNFSF13B", receptor_complex="TNFRSF13C")
    scores = pd.DataFrame(
        [{**key, "lrscore": v, "sample_id": s} for s, v in [("M1", 0.8), ("M2", 0.7), ("M3", 0.9), ("C1", 0.2)]]
    )  # C2 and C3 lack the interaction: their B cells are absent
    meta = pd.DataFrame(
        {"patient_id": ["m1", "m2", "m3", "c1", "c2", "c3"], "timepoint": "baseline", "compartment": "CSF"},
        index=pd.Index(["M1", "M2", "M3", "C1", "C2", "C3"], name="sample_id"),
    )
    conditions = {s: ("MS" if s.startswith("M") else "control") for s in meta.index}
    out = condition_interactions(scores, meta, conditions, reference="control")
    row = out.iloc[0]
    assert row["contrast"] == "MS_vs_control" and row["n_patients"] == 6
    assert row["baseline_score"] == pytest.approx(0.2 / 3) and row["estimate"] == pytest.approx(0.8 - 0.2 / 3)
    assert row["ci_low"] > 0 and row["p_value"] < 0.05


def test_an_empty_table_says_why_it_is_empty():
    page = render_table(pd.DataFrame(columns=["a", "b"]), title="t", empty="No rows: nothing testable.")
    assert '<tr class="empty"><td colspan="2">No rows: nothing testable.</td></tr>' in page


def test_a_flag_with_gaps_is_shown_with_its_gaps(tmp_path):
    # loo_stable of the claims table: true, false, or nothing (a claim that could not be tested)
    frame = pd.DataFrame({"claim": ["a", "b", "c"], "flag": pd.array([True, False, pd.NA], dtype="boolean")})
    write_table_html(frame, tmp_path / "t.html", title="flags")
    assert (tmp_path / "t.html").stat().st_size > 0
