"""QC thresholds, ambient estimate and the per-cluster resolution of cell types."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from csfcart import qc
from csfcart.annotate import mixed_clusters, read_markers, resolve_clusters
from csfcart.errors import InputError
from csfcart.qc import mad_outlier, qc_metrics, settings_for
from tests.conftest import ROOT


def test_mad_outlier_flags_tails_only():
    values = np.r_[np.random.default_rng(0).normal(0, 1, 1000), [10.0, -10.0]]
    flags = mad_outlier(values, 5)
    assert flags[-2:].all() and flags[:-2].sum() == 0
    assert mad_outlier(values, 5, upper_only=True)[-2:].tolist() == [True, False]
    assert not mad_outlier(np.ones(10), 3).any()


def test_per_sample_overrides():
    qc = {
        "nmads": {"pct_counts_mt": 3, "log1p_total_counts": 5},
        "max_pct_mt": 15,
        "per_sample": {"S2": {"max_pct_mt": 30, "nmads": {"pct_counts_mt": 4}}},
    }
    assert settings_for("S1", qc)["max_pct_mt"] == 15
    s2 = settings_for("S2", qc)
    assert s2["max_pct_mt"] == 30 and s2["nmads"] == {"pct_counts_mt": 4, "log1p_total_counts": 5}


def test_clusters_take_the_best_type_or_low_confidence_or_none():
    scores = pd.DataFrame({"T": [1.0, 0.9, 0.0, 0.3, 0.02], "B": [0.0, 0.1, 1.2, 0.28, 0.01]})
    clusters = pd.Series(["0", "0", "1", "2", "3"])
    table = resolve_clusters(scores, clusters, min_score=0.1, min_margin=0.05)
    assert table["cell_type"].to_dict() == {"0": "T", "1": "B", "2": "low_confidence", "3": "unassigned"}


def test_a_cluster_of_mixed_identity_is_labelled_cell_by_cell():
    # cluster 0: 70 naive-like and 30 memory-like cells; cluster 1: 95 T cells and 5 strays
    naive = np.r_[np.ones(70), np.zeros(30), np.zeros(100)]
    memory = np.r_[np.zeros(70), np.ones(30), np.r_[np.zeros(95), np.ones(5)]]
    t = np.r_[np.zeros(100), np.r_[np.full(95, 2.0), np.zeros(5)]]
    scores = pd.DataFrame({"naive_B": naive, "memory_B": memory * 0.9, "T": t})
    clusters = pd.Series(["0"] * 100 + ["1"] * 100)
    table = resolve_clusters(scores, clusters, min_score=0.1, min_margin=0.05)
    mixed, best = mixed_clusters(scores, clusters, table, min_fraction=0.2, min_cells=20)
    assert mixed == ["0"]  # 30 % disagree; in cluster 1 only 5 cells (below min_cells)
    assert best.iloc[:100].value_counts().to_dict() == {"naive_B": 70, "memory_B": 30}


def test_marker_table_errors_name_the_file(tmp_path):
    path = tmp_path / "markers.tsv"
    path.write_text("type\tgenes\nT\tCD3D\n")
    with pytest.raises(InputError, match=r"markers\.tsv: column 'cell_type' missing"):
        read_markers(path)


def test_shipped_marker_table_covers_the_simulated_types():
    from csfcart.simulate.biology import CELL_TYPES
    from tests.conftest import ROOT

    markers = read_markers(ROOT / "config" / "markers.tsv")
    assert set(markers) == set(CELL_TYPES)


def test_the_claims_groups_come_from_the_marker_tables_lineages(tmp_path):
    """A run counts the types its own marker table puts in a lineage; the simulator's truth
    resolves the same lineages with its own map, which agrees with the shipped table."""
    from csfcart import registry
    from csfcart.annotate import lineage_of
    from csfcart.simulate.biology import CLAIM_LINEAGE

    shipped = lineage_of(ROOT / "config" / "markers.tsv")
    assert shipped == {t: CLAIM_LINEAGE[t] for t in shipped}
    c3 = registry.CLAIMS["C3"].primary
    assert set(c3.types(shipped)) == {"naive_B", "memory_B"}
    # a lab's own table with its own names: its B cells are C3's cells, its plasmablasts C4's
    path = tmp_path / "markers.tsv"
    path.write_text("cell_type\tlineage\tmarkers\nT cells\tT\tCD3D\nB cells\tB\tMS4A1\nPlasmablasts\tplasma\tMZB1\n")
    own = lineage_of(path)
    assert c3.types(own) == ["B cells"] and registry.CLAIMS["C4"].primary.types(own) == ["Plasmablasts"]
    assert registry.CLAIMS["C9"].primary.types(own) == ["CAR_T", "CD8_T"]  # named types stay named
    path.write_text("cell_type\tlineage\tmarkers\nT\tlymphoid\tCD3D\n")
    with pytest.raises(InputError, match=r"markers\.tsv: row T: lineage 'lymphoid' is not known"):
        lineage_of(path)
    path.write_text("cell_type\tmarkers\nT\tCD3D\n")
    with pytest.raises(InputError, match=r"markers\.tsv: column 'lineage' missing.*Fix: add a column lineage"):
        lineage_of(path)


@pytest.mark.parametrize("sparse", [True, False])
def test_gene_set_scores_are_scanpys(sparse):
    """The marker scores computed with the gene means taken once equal scanpy's
    ``score_genes`` run per set (same bins, same sampled controls, same seed)."""
    import scanpy as sc

    from csfcart.annotate import GeneSetScorer

    rng = np.random.default_rng(1)
    means = np.exp(rng.uniform(np.log(0.01), np.log(8), 600))
    x = np.log1p(rng.poisson(means, (500, 600)).astype(np.float32))
    x[:, 7] = 0  # a gene never seen
    adata = ad.AnnData(sp.csr_matrix(x) if sparse else x, var=pd.DataFrame(index=[f"G{i}" for i in range(600)]))
    sets = [["G1", "G2", "G3"], ["G500", "G7", "G42", "G43", "G599"], ["G10"], [f"G{i}" for i in range(100, 160)]]
    for seed, ctrl in ((0, 50), (3, 20), (7, 150)):
        scorer = GeneSetScorer(adata, seed=seed, ctrl_size=ctrl)
        for genes in sets:
            sc.tl.score_genes(adata, genes, score_name="s", random_state=seed, ctrl_size=ctrl)
            np.testing.assert_allclose(scorer(genes), adata.obs.pop("s").to_numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("sparse", [True, False])
def test_cluster_top_genes_are_scanpys_t_test_ranking(sparse):
    """Each cluster's top genes, from moments summed in row blocks, are the ones scanpy's
    ``rank_genes_groups(method='t-test')`` ranks first, in its order."""
    import scanpy as sc

    from csfcart.annotate import cluster_top_genes, group_moments

    rng = np.random.default_rng(2)
    n_cells, n_genes = 900, 300
    labels = rng.integers(0, 4, n_cells)
    means = np.exp(rng.uniform(np.log(0.05), np.log(4), (4, n_genes)))
    means[np.arange(4)[:, None], np.arange(4)[:, None] * 10 + np.arange(10)] *= 6  # each cluster's own genes
    x = np.log1p(rng.poisson(means[labels]).astype(np.float32))
    adata = ad.AnnData(sp.csr_matrix(x) if sparse else x, var=pd.DataFrame(index=[f"G{i}" for i in range(n_genes)]))
    adata.obs["cluster"] = pd.Categorical(labels.astype(str))
    ours = cluster_top_genes(adata, n=8)
    sc.tl.rank_genes_groups(adata, "cluster", method="t-test", n_genes=8, use_raw=False)
    theirs = pd.DataFrame(adata.uns["rank_genes_groups"]["names"]).apply(lambda c: ",".join(map(str, c)))
    assert ours.to_dict() == theirs.to_dict()
    sums, squares = group_moments(adata.X, labels, 4, block=128)  # blocks that split the cells unevenly
    np.testing.assert_allclose(sums[1], x[labels == 1].astype(float).sum(axis=0), rtol=1e-9)
    np.testing.assert_allclose(squares[3], (x[labels == 3].astype(float) ** 2).sum(axis=0), rtol=1e-9)


def test_a_negative_marker_counts_against_a_type():
    """Expression of a type's negative genes above background lowers its score, not others'."""
    from csfcart.annotate import score_cell_types

    rng = np.random.default_rng(0)
    genes = [f"G{i}" for i in range(400)]
    means = np.exp(rng.uniform(np.log(0.05), np.log(5), 400))
    x = rng.poisson(means, (300, 400)).astype(np.float32)
    x[:, 3:6] += rng.poisson(20, (300, 3))  # genes B does not express, expressed here
    adata = ad.AnnData(np.log1p(x), var=pd.DataFrame(index=genes))
    markers = {"A": ["G0", "G1", "G2"], "B": ["G0", "G1", "G2"]}
    plain = score_cell_types(adata, markers, seed=0).mean()
    scored = score_cell_types(adata, markers, seed=0, negative={"B": ["G3", "G4", "G5"], "A": ["G6"]}).mean()
    assert scored["B"] < plain["B"] - 1.0
    assert scored["A"] == pytest.approx(plain["A"], abs=0.05)  # G6 at background: no penalty


def test_nk_cells_that_carry_fcgr3a_are_still_called_nk():
    """The csf_nk_cd16 cohort's NK cells express FCGR3A as much as CD16 monocytes do; with
    the shipped marker table, every simulated type's cells take its name."""
    import anndata as ad_
    import scanpy as sc

    from csfcart.annotate import marker_table, score_cell_types
    from csfcart.simulate.cohort import load_cohort
    from csfcart.simulate.model import CohortModel
    from tests.conftest import ROOT

    cohort = load_cohort(ROOT / "config" / "datasets" / "csf_nk_cd16.yaml").with_changes(n_patients=1)
    model = CohortModel(cohort)
    profiles = model.expected_profiles("blood", cohort.baseline)
    assert profiles["NK"][model.gene_index["FCGR3A"]] > profiles["CD16_mono"][model.gene_index["FCGR3A"]] / 2
    parts = []
    for i, sample in enumerate(cohort.samples()):
        if sample["timepoint"] == cohort.baseline:
            draw = model.draw_sample(i)
            part = ad_.AnnData(sp.csr_matrix(draw.counts, dtype=np.float32), var=pd.DataFrame(index=model.features))
            part.obs["truth"] = draw.truth["cell_type"].to_numpy()
            parts.append(part)
    adata = ad_.concat(parts, index_unique="-")
    adata = adata[adata.obs["truth"] != "doublet"].copy()
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    table = marker_table(ROOT / "config" / "markers.tsv")
    scores = score_cell_types(adata, table["markers"].to_dict(), seed=0, negative=table["negative"].to_dict())
    truth = adata.obs["truth"].astype(str)
    resolved = resolve_clusters(scores, truth, min_score=0.0, min_margin=0.0)
    assert (resolved["cell_type"] == resolved.index).all(), resolved
    best = scores.idxmax(axis=1)
    assert (best[truth == "NK"] == "NK").mean() >= 0.95
    assert (best == truth).mean() >= 0.9


def test_mitochondrial_fraction_of_human_and_mouse_symbols():
    import anndata as ad
    import scipy.sparse as sp

    for genes in (["MT-CO1", "RPL13A", "CD3D", "LYZ"], ["mt-Co1", "Rpl13a", "Cd3d", "Lyz2"]):
        counts = sp.csr_matrix(np.array([[10.0, 20.0, 30.0, 40.0], [0.0, 0.0, 50.0, 50.0]]))
        adata = ad.AnnData(X=counts.copy(), var=pd.DataFrame(index=genes), layers={"counts": counts})
        qc_metrics(adata)
        assert adata.obs["pct_counts_mt"].tolist() == [10.0, 0.0], genes
        assert adata.obs["pct_counts_ribo"].tolist() == [20.0, 0.0], genes


def test_qc_metrics_equal_scanpys():
    """The metrics are scanpy's calculate_qc_metrics (columns, dtypes, values), without importing it."""
    import scanpy as sc

    rng = np.random.default_rng(3)
    dense = rng.poisson(0.6, (60, 40)).astype(np.float32)
    dense[5] = 0  # a droplet without counts: its fractions are NaN, as scanpy's
    counts = sp.csr_matrix(dense)
    genes = [f"MT-{i}" for i in range(4)] + [f"RPL{i}" for i in range(6)] + [f"G{i}" for i in range(30)]
    ours = ad.AnnData(X=counts.copy(), var=pd.DataFrame(index=genes), layers={"counts": counts.copy()})
    theirs = ours.copy()
    qc_metrics(ours)
    theirs.var["mt"] = theirs.var_names.str.startswith(qc.MT_PREFIXES)
    theirs.var["ribo"] = theirs.var_names.str.startswith(qc.RIBO_PREFIXES)
    sc.pp.calculate_qc_metrics(
        theirs, qc_vars=["mt", "ribo"], layer="counts", percent_top=None, log1p=True, inplace=True
    )
    pd.testing.assert_frame_equal(ours.obs, theirs.obs, check_exact=False, rtol=1e-6)
    pd.testing.assert_frame_equal(ours.var, theirs.var, check_exact=False, rtol=1e-6)
    assert np.isnan(ours.obs["pct_counts_mt"].iloc[5])


def _types_with_doublets(n=1200, genes=200, rate=0.05, seed=0, types=4):
    """Cells of ``types`` distinct profiles; a ``rate`` share are sums of two cells of different types."""
    rng = np.random.default_rng(seed)
    profiles = rng.gamma(0.3, 1.0, (types, genes))
    profiles /= profiles.sum(axis=1, keepdims=True)
    kind = rng.integers(0, types, n)
    depth = rng.lognormal(np.log(1500), 0.3, n)
    counts = rng.poisson(profiles[kind] * depth[:, None])
    doublet = rng.random(n) < rate
    partner_kind = (kind + rng.integers(1, types, n)) % types
    extra = rng.poisson(profiles[partner_kind] * rng.lognormal(np.log(1500), 0.3, n)[:, None])
    counts[doublet] += extra[doublet]
    return sp.csr_matrix(counts.astype(np.float32)), doublet


def test_doublet_calls_find_planted_heterotypic_doublets():
    counts, doublet = _types_with_doublets()
    score, called, info = qc.doublet_scores(counts, expected_rate=0.05, seed=1)
    hits = (called & doublet).sum()
    assert hits / doublet.sum() > 0.6 and hits / called.sum() > 0.85
    assert score[doublet].mean() > score[~doublet].mean() + 0.5
    assert 0.5 < info["heterotypic_share"] <= 1


def test_doublet_calls_stay_few_without_doublets():
    counts, _ = _types_with_doublets(rate=0.0)
    _, called, _ = qc.doublet_scores(counts, expected_rate=0.05, seed=1)
    assert called.mean() < 0.02  # the expected 5 % would be called blindly


def test_doublet_scoring_is_reproducible_and_skips_tiny_samples():
    counts, _ = _types_with_doublets(n=400)
    a = qc.doublet_scores(counts, expected_rate=0.05, seed=3)[0]
    b = qc.doublet_scores(counts, expected_rate=0.05, seed=3)[0]
    np.testing.assert_array_equal(a, b)
    tiny = ad.AnnData(X=counts[:60], layers={"counts": counts[:60]})
    qc.score_doublets(tiny, rate_per_1000=8, seed=0)
    assert not tiny.obs["predicted_doublet"].any()


def test_a_covariate_that_varies_within_patients_enters_the_de_design():
    """analysis.covariates: a sample-level column (10x chemistry, changed between visits for
    two patients) enters ~ patient + chemistry + timepoint; a patient-level one (sex) is
    absorbed by the patient term and left out."""
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    from csfcart.de import run_contrast

    rng = np.random.default_rng(0)
    rows = []
    for p, sex in zip(["P1", "P2", "P3", "P4"], ["F", "M", "F", "M"], strict=True):
        for tp in ("baseline", "d14"):
            chemistry = "v3" if tp == "baseline" or p in ("P1", "P2") else "v2"
            rows.append({"sample_id": f"{p}_{tp}", "patient_id": p, "timepoint": tp, "compartment": "CSF",
                         "sex": sex, "chemistry": chemistry, "psbulk_cells": 50, "psbulk_counts": 50_000})  # fmt: skip
    obs = pd.DataFrame(rows).set_index("sample_id", drop=False)
    pb = ad.AnnData(X=sp.csr_matrix(rng.poisson(50, size=(8, 200)).astype(np.float32)), obs=obs)
    res, reason = run_contrast(pb, compartment="CSF", timepoint="d14", baseline="baseline", min_cells=5,
                               min_counts=1000, seed=0, covariates=("sex", "chemistry"))  # fmt: skip
    assert reason == "" and set(res["design"]) == {"~ patient_id + chemistry + timepoint"}


def test_de_tests_genes_with_ten_counts_in_a_groups_worth_of_samples():
    """DESeq2's vignette pre-filter: >= 10 counts in at least as many samples as the smallest
    group; a gene of one group passes, one carried by a single sample does not, whatever its sum."""
    from csfcart.de import expressed_genes

    groups = np.array(["baseline"] * 3 + ["d14"] * 4)
    counts = np.zeros((7, 4), dtype=int)
    counts[:3, 0] = 12  # one group only, every sample: kept
    counts[0, 1] = 500  # one sample, large sum: left out (the old sum >= 10 filter kept it)
    counts[:2, 2] = 40  # two samples: fewer than the smallest group (3)
    counts[:, 3] = 10
    assert expressed_genes(counts, groups).tolist() == [True, False, False, True]


def test_own_labels_become_the_cell_types_and_marker_labels_stay_beside():
    import anndata as ad
    import pandas as pd

    from csfcart.annotate import use_own_labels

    obs = pd.DataFrame({"own_label": ["B cells", "B cells", "CD4 T", "CD4 T", "Mono"],
                        "cell_type": ["naive_B", "memory_B", "CD4_T", "CAR_T", "CD14_mono"]})  # fmt: skip
    adata = ad.AnnData(obs=obs.set_axis([f"c{i}" for i in range(5)]))
    agreement = use_own_labels(adata, {"B cells": "naive_B", "CD4 T": "CD4_T"})
    assert list(adata.obs["cell_type"]) == ["naive_B", "naive_B", "CD4_T", "CAR_T", "Mono"]  # CAR+ T kept CAR_T
    assert list(adata.obs["cell_type_markers"]) == list(obs["cell_type"])
    assert int(agreement.set_index(["own_label", "marker_label"]).loc[("naive_B", "memory_B"), "cells"]) == 1


def _three_groups(n: int = 240) -> ad.AnnData:
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 4, (3, 8))
    adata = ad.AnnData(obs=pd.DataFrame(index=[f"c{i}" for i in range(n)]))
    adata.obsm["X_scVI"] = (centres[np.arange(n) % 3] + rng.normal(size=(n, 8))).astype(np.float32)
    return adata


def test_umap_beside_the_annotation_is_scanpys_layout():
    """UMAP laid out in a forked process (started before the graph exists) while the
    annotation goes on equals scanpy's own call, as does the layout made here when the
    process is lost."""
    import os
    import signal

    import scanpy as sc

    from csfcart.annotate import UmapBeside

    adata = _three_groups()
    beside = UmapBeside()
    sc.pp.neighbors(adata, use_rep="X_scVI", n_neighbors=10, transformer="sklearn")
    own, lost = adata.copy(), adata.copy()
    beside.start(own, seed=3)
    assert "X_umap" not in own.obsm
    beside.wait()
    sc.tl.umap(adata, random_state=3)
    np.testing.assert_array_equal(own.obsm["X_umap"], adata.obsm["X_umap"])

    beside = UmapBeside()
    beside.start(lost, seed=3)
    for pid in list(beside._pool._processes):
        os.kill(pid, signal.SIGKILL)
    beside.wait()
    np.testing.assert_array_equal(lost.obsm["X_umap"], adata.obsm["X_umap"])


def test_the_umaps_spectral_start_with_a_bounded_lanczos_basis_is_umaps_own(monkeypatch):
    """Within lanczos_basis, umap-learn's spectral start asks ARPACK for at most the bounded
    basis (here 8 vectors for a graph of 600 cells, where umap-learn asks 24) and finds the
    same eigenvectors, up to their sign; outside the block ARPACK is as before."""
    import scanpy as sc
    import scipy.sparse.linalg as sla
    from umap.spectral import spectral_layout

    from csfcart.annotate import lanczos_basis

    # cells along a curve: one connected graph whose leading eigenvectors are well apart
    t = np.linspace(0, 1, 600)
    curve = np.c_[np.cos(np.pi * t), np.sin(np.pi * t), t, np.zeros((600, 5))] * 10
    adata = ad.AnnData(obs=pd.DataFrame(index=[f"c{i}" for i in range(600)]))
    adata.obsm["X_scVI"] = (curve + np.random.default_rng(0).normal(0, 0.1, curve.shape)).astype(np.float32)
    sc.pp.neighbors(adata, use_rep="X_scVI", n_neighbors=10, transformer="sklearn")
    graph = adata.obsp["connectivities"].tocoo()
    assert sp.csgraph.connected_components(graph)[0] == 1
    own = spectral_layout(None, graph, 2, np.random.RandomState(0))
    asked = []
    eigsh = sla.eigsh

    def recorded(a, k=6, *args, ncv=None, **kwargs):
        asked.append(ncv)
        return eigsh(a, k, *args, ncv=ncv, **kwargs)

    monkeypatch.setattr(sla, "eigsh", recorded)
    with lanczos_basis(8):
        bounded = spectral_layout(None, graph, 2, np.random.RandomState(0))
    assert asked and set(asked) == {8}
    assert sla.eigsh is recorded
    for column in range(2):
        assert abs(np.corrcoef(own[:, column], bounded[:, column])[0, 1]) > 0.999
    spectral_layout(None, graph, 2, np.random.RandomState(0))
    assert asked[-1] == 24


def test_exact_neighbours_are_scanpys_graph():
    """The neighbour graph with connectivities computed without umap-learn is scanpy's, to the
    bit (obsp and uns), also with a duplicated cell (distance 0 to another)."""
    import scanpy as sc

    from csfcart.annotate import exact_neighbours

    for n, k in ((600, 12), (4, 3)):
        adata = _three_groups(n)
        adata.obsm["X_scVI"][1] = adata.obsm["X_scVI"][0]
        own = adata.copy()
        exact_neighbours(own, use_rep="X_scVI", n_neighbors=k, seed=0)
        sc.pp.neighbors(adata, use_rep="X_scVI", n_neighbors=k, random_state=0, transformer="sklearn")
        assert own.uns["neighbors"] == adata.uns["neighbors"]
        for key in ("distances", "connectivities"):
            assert own.obsp[key].dtype == adata.obsp[key].dtype
            assert (own.obsp[key] != adata.obsp[key]).nnz == 0
            assert own.obsp[key].nnz == adata.obsp[key].nnz


def test_qc_figures_drawn_by_forked_processes_equal_those_drawn_in_turn(tmp_path):
    """plot_qc's per-sample figures, drawn by two processes, are the PNGs drawn one by one;
    a figure count that does not match the outputs fails before anything is drawn."""
    from types import SimpleNamespace

    from csfcart.figures import save_figures

    rng = np.random.default_rng(0)
    cells = []
    for s in range(3):
        total = rng.lognormal(8, 0.5, 300)
        table = pd.DataFrame({"total_counts": total, "n_genes_by_counts": total / 3,
                              "pct_counts_mt": rng.uniform(0, 20, 300), "qc_pass": rng.random(300) > 0.1})  # fmt: skip
        cells.append(tmp_path / f"S{s}.cells.tsv.gz")
        table.to_csv(cells[-1], sep="\t", index=False)
    inputs = SimpleNamespace(cells=[str(p) for p in cells])
    outputs = {threads: [str(tmp_path / f"t{threads}_S{s}.png") for s in range(3)] for threads in (1, 2)}
    for threads, paths in outputs.items():
        save_figures("qc_sample", inputs, {}, paths, threads=threads)
    for one, two in zip(outputs[1], outputs[2], strict=True):
        assert Path(one).read_bytes() == Path(two).read_bytes()
    with pytest.raises(ValueError, match="draws 3 figures for 2 outputs"):
        save_figures("qc_sample", inputs, {}, [str(tmp_path / "x.png"), str(tmp_path / "y.png")], threads=2)
    assert not (tmp_path / "x.png").exists()


def test_annotated_file_written_before_the_umap_reads_as_one_written_after(tmp_path):
    """write_annotated writes the AnnData while the UMAP is laid out and adds the layout
    after: read back, it is the AnnData as written once the UMAP was there."""
    import scanpy as sc

    from csfcart.annotate import UmapBeside, write_annotated

    groups = _three_groups()
    adata = ad.AnnData(sp.csr_matrix(np.ones((groups.n_obs, 3), dtype=np.float32)), obs=groups.obs, obsm=groups.obsm)
    sc.pp.neighbors(adata, use_rep="X_scVI", n_neighbors=10, transformer="sklearn")
    own = adata.copy()
    beside = UmapBeside()
    try:
        beside.start(own, seed=3)
        write_annotated(own, tmp_path / "own.h5ad", beside)
    finally:
        beside.close()
    sc.tl.umap(adata, random_state=3)
    adata.write_h5ad(tmp_path / "after.h5ad", compression="gzip")
    back, after = ad.read_h5ad(tmp_path / "own.h5ad"), ad.read_h5ad(tmp_path / "after.h5ad")
    assert sorted(back.obsm) == sorted(after.obsm) and sorted(back.uns) == sorted(after.uns)
    np.testing.assert_array_equal(back.obsm["X_umap"], after.obsm["X_umap"])
    assert back.uns["umap"] == after.uns["umap"]
    # (scanpy's UMAP in this process zeroes the graph's weakest edges in place; the forked one does not)
    assert (back.obsp["connectivities"] != own.obsp["connectivities"]).nnz == 0
    np.testing.assert_array_equal(back.X.toarray(), after.X.toarray())


def test_log_normalisation_is_scanpys_for_all_genes_or_some():
    """scanpy's normalize_total(1e4) + log1p, computed in place in row blocks; with columns,
    the same values for those genes (the library still counts all genes); counts untouched."""
    import scanpy as sc

    from csfcart.annotate import log_normalised, normalise

    rng = np.random.default_rng(5)
    counts = sp.csr_matrix(rng.poisson(rng.uniform(0.05, 3, 200), (300, 200)).astype(np.float32))
    counts[7] = 0  # a cell without counts stays zero
    counts.eliminate_zeros()
    before = counts.copy()
    reference = ad.AnnData(counts.copy())
    sc.pp.normalize_total(reference, target_sum=1e4)
    sc.pp.log1p(reference)
    whole = log_normalised(counts, block=64)
    np.testing.assert_allclose(whole.toarray(), reference.X.toarray(), rtol=1e-6, atol=1e-6)
    some = np.array([3, 150, 9, 42])
    np.testing.assert_allclose(log_normalised(counts, columns=some, block=17).toarray(), reference.X[:, some].toarray(),
                               rtol=1e-6, atol=1e-6)  # fmt: skip
    assert (counts != before).nnz == 0 and whole.dtype == np.float32
    own = counts.copy()
    data = own.data
    result = log_normalised(own, in_place=True, block=64)
    assert np.shares_memory(result.data, data)
    np.testing.assert_array_equal(result.toarray(), whole.toarray())
    with pytest.raises(ValueError, match="in_place needs all genes of float32 CSR counts"):
        log_normalised(counts.astype(np.int64), in_place=True)
    # the annotate rule's normalisation: X from the counts, the layer gone, the same values
    for stored in (counts, counts.astype(np.int32)):
        adata = ad.AnnData(
            obs=pd.DataFrame(index=[str(i) for i in range(counts.shape[0])]), layers={"counts": stored.copy()}
        )
        normalise(adata, keep_counts=False)
        assert "counts" not in adata.layers
        np.testing.assert_array_equal(adata.X.toarray(), whole.toarray())


def _cells(rows: dict[str, list[str]], genes: list[str]) -> ad.AnnData:
    """Cells (name -> genes with a count) over ``genes``, log-normalised as the annotation
    sees them (above 0 exactly where a count is)."""
    x = np.array([[1.0 if g in expressed else 0.0 for g in genes] for expressed in rows.values()])
    adata = ad.AnnData(X=sp.csr_matrix(x), obs=pd.DataFrame(index=list(rows)), var=pd.DataFrame(index=genes))
    adata.obs["sample_id"] = "S1"
    return adata


def test_a_rare_call_in_a_t_cell_cluster_needs_the_types_own_markers_and_no_cd3():
    """The soup lends T cells immunoglobulins (and now and then a stray marker); a T cell
    scoring best for plasma or B must not become one without that type's own genes, and a
    cell expressing CD3D/E is a T cell whatever else it carries. Treg among CD4 T cells
    need only their own markers; a CAR_T call needs the CAR transcript."""
    from csfcart.annotate import gated_moves, marker_table

    table = marker_table(ROOT / "config" / "markers.tsv")
    genes = sorted({g for col in ("markers", "negative") for gs in table[col] for g in gs} | {"IGKC", "IGHG1"})
    rows = {
        "ig_soup_only": ["CD3D", "IGKC", "IGHG1", "JCHAIN", "MZB1"],
        "ig_soup_no_cd3": ["IGKC", "IGHG1", "JCHAIN", "MZB1"],
        "real_plasma": ["MZB1", "XBP1", "PRDM1", "TNFRSF17", "CD38", "IGKC"],
        "plasma_genes_and_cd3": ["MZB1", "XBP1", "PRDM1", "TNFRSF17", "CD38", "CD3E"],
        "one_b_marker": ["MS4A1", "IGHM", "IGHD"],
        "real_b": ["MS4A1", "CD79A", "CD19", "TCL1A"],
        "treg": ["CD3D", "FOXP3", "IL2RA", "CTLA4"],
        "activated_no_car": ["CD3D", "GZMB", "PRF1", "MKI67", "TOP2A", "TYMS"],
        "activated_car": ["CD3D", "GZMB", "PRF1", "MKI67", "TOP2A", "TYMS"],
    }
    adata = _cells(rows, genes)
    own = pd.Series(
        ["plasma", "plasma", "plasma", "plasma", "naive_B", "naive_B", "Treg", "CAR_T", "CAR_T"], index=adata.obs_names
    )
    label = pd.Series("CD4_T", index=adata.obs_names)
    car = np.array([False] * 8 + [True])
    moves, moved = gated_moves(
        adata, own, label, table, table["lineage"].to_dict(), np.ones(adata.n_obs, bool), car=car
    )
    assert dict(zip(adata.obs_names, moves, strict=True)) == {
        "ig_soup_only": False,
        "ig_soup_no_cd3": False,
        "real_plasma": True,
        "plasma_genes_and_cd3": False,
        "one_b_marker": False,
        "real_b": True,
        "treg": True,
        "activated_no_car": False,
        "activated_car": True,
    }
    plasma = moved.set_index("to_type").loc["plasma"]
    assert (plasma["sample_id"], plasma["from_type"], plasma["moved"], plasma["kept"]) == ("S1", "CD4_T", 1, 3)


def test_a_cluster_without_its_types_markers_is_unassigned():
    """Epithelial cells share a few genes with pDC (TCF4, IRF7) and score highest for it,
    but express few of its markers: the cluster's evidence stays low, a true pDC cluster's
    is complete, and a T-cell cluster's counts only genes T cells express more than others."""
    from csfcart.annotate import cluster_evidence, marker_table

    table = marker_table(ROOT / "config" / "markers.tsv")
    genes = sorted({g for gs in table["markers"] for g in gs} | {"KRT8", "KRT18"})
    pdc = table.loc["pDC", "markers"]
    rows = {}
    for i in range(30):
        rows[f"t{i}"] = ["CD3D", "CD3E", "CD4", "IL7R", "LTB", "CCR7", "TCF7"]
        rows[f"epi{i}"] = ["KRT8", "KRT18", "TCF4", "IRF7"]
        rows[f"pdc{i}"] = pdc
    adata = _cells(rows, genes)
    adata.obs["cluster"] = pd.Categorical([n.rstrip("0123456789") for n in rows])
    clusters = pd.DataFrame({"best_type": {"t": "CD4_T", "epi": "pDC", "pdc": "pDC"}})
    evidence = cluster_evidence(adata, clusters, table, table["lineage"].to_dict())
    assert evidence["pdc"] == 1.0
    assert evidence["epi"] == pytest.approx(2 / 7)
    assert evidence["t"] == pytest.approx(7 / 9)


def test_label_quality_is_scored_per_visit_class():
    """A B call that is right at baseline and wrong after depletion shows in the
    post-infusion precision, not in the pooled one alone."""
    from csfcart.evaluate import annotation_scores

    truth = pd.DataFrame(
        {
            "sample_id": ["S0"] * 4 + ["S1"] * 4,
            "barcode": [f"b{i}" for i in range(8)],
            "cell_type": ["naive_B", "naive_B", "CD4_T", "CD4_T", "naive_B", "CD4_T", "CD4_T", "CD4_T"],
        }
    )
    cells = truth[["sample_id", "barcode"]].copy()
    cells["timepoint"] = ["baseline"] * 4 + ["d28"] * 4
    cells["cell_type"] = ["naive_B", "naive_B", "CD4_T", "CD4_T", "naive_B", "naive_B", "naive_B", "CD4_T"]
    cells.index = cells["sample_id"] + ":" + cells["barcode"]
    _, table = annotation_scores(cells, truth, baseline="baseline")
    b = table.set_index("cell_type").loc["naive_B"]
    assert (b["precision_baseline"], b["recall_baseline"]) == (1.0, 1.0)
    assert (b["precision_post"], b["recall_post"], b["n_true_post"]) == (pytest.approx(1 / 3), 1.0, 1)


def test_marker_detection_shows_calls_without_the_types_genes():
    """For real data (no truth): per sample and type, the share of calls detecting the
    type's own markers; a B call carrying only soup immunoglobulins counts as without."""
    from csfcart.annotate import marker_detection, marker_table

    table = marker_table(ROOT / "config" / "markers.tsv")
    genes = sorted({g for gs in table["markers"] for g in gs} | {"IGKC"})
    rows = {"b1": ["MS4A1", "CD79A"], "b2": ["MS4A1", "CD19"], "b3": ["IGKC", "IGHM", "IGHD"], "u1": ["KRT8"]}
    adata = _cells(rows, genes)
    adata.obs["cell_type"] = ["naive_B", "naive_B", "naive_B", "unassigned"]
    out = marker_detection(adata, table).set_index("cell_type")
    assert out.loc["naive_B", "cells"] == 3 and out.loc["naive_B", "share_with_markers"] == pytest.approx(0.667)
    assert np.isnan(out.loc["unassigned", "share_with_markers"])


def test_cells_of_an_ambiguous_cluster_of_one_lineage_keep_their_own_type():
    """Naive and memory B cells too alike to call their cluster either (low_confidence):
    the lineage is not in question, so each cell takes its own B type on its scores, while a
    T cell's call in the same cluster still needs its own markers."""
    from csfcart.annotate import gated_moves, marker_table

    table = marker_table(ROOT / "config" / "markers.tsv")
    genes = sorted({g for col in ("markers", "negative") for gs in table[col] for g in gs})
    rows = {"naive": ["MS4A1", "CD79A"], "memory": ["MS4A1", "CD79A"], "t_call": ["CD3D"]}
    adata = _cells(rows, genes)
    own = pd.Series(["naive_B", "memory_B", "CD4_T"], index=adata.obs_names)
    label = pd.Series("low_confidence", index=adata.obs_names)
    best = pd.Series("memory_B", index=adata.obs_names)
    moves, _ = gated_moves(adata, own, label, table, table["lineage"].to_dict(), np.ones(3, bool), cluster_best=best)
    assert moves.tolist() == [True, True, False]
