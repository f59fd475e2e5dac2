"""Paired communication statistics: lost interactions, absent baselines, the B / microglia axis."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from csfcart.communication import axis_scores, paired_interactions
from tests.conftest import shipped_lineages

B_MG = {"source": "naive_B", "target": "microglia_like", "ligand_complex": "TNFSF13B", "receptor_complex": "TNFRSF13C"}
T_T = {"source": "CD4_T", "target": "CD8_T", "ligand_complex": "CD40LG", "receptor_complex": "CD40"}
MG_T = {"source": "microglia_like", "target": "CD4_T", "ligand_complex": "TNF", "receptor_complex": "TNFRSF1B"}


def _meta(patients=("P1", "P2", "P3")):
    rows = [(f"{p}_{t}", p, t) for p in patients for t in ("baseline", "m3")]
    return (
        pd.DataFrame(rows, columns=["sample_id", "patient_id", "timepoint"])
        .set_index("sample_id")
        .assign(compartment="CSF")
    )


def _scores(rows):
    return pd.DataFrame([{**key, "lrscore": v, "sample_id": s} for key, s, v in rows])


def _present(samples, types):
    return pd.DataFrame([(s, t) for s in samples for t in types], columns=["sample_id", "cell_type"])


def test_an_interaction_lost_with_its_cell_type_is_counted_apart_not_as_a_fall():
    # B cells are gone after infusion in every patient: no B rows in the m3 samples
    rows = [(B_MG, f"P{i}_baseline", 0.6 + 0.1 * i) for i in (1, 2, 3)]
    rows += [(T_T, f"P{i}_{t}", 0.5) for i in (1, 2, 3) for t in ("baseline", "m3")]
    meta = _meta()
    present = pd.concat([_present(meta.index, ["CD4_T", "CD8_T", "microglia_like"]),
                         _present([f"P{i}_baseline" for i in (1, 2, 3)], ["naive_B"])])  # fmt: skip
    _, summary = paired_interactions(_scores(rows), meta, baseline="baseline", present=present)
    b = summary[summary["source"] == "naive_B"].iloc[0]
    assert b["lost_in_patients"] == 3 and b["n_patients"] == 0 and np.isnan(b["estimate"])
    t = summary[summary["source"] == "CD4_T"].iloc[0]
    assert t["estimate"] == 0 and t["lost_in_patients"] == 0


def test_an_interaction_not_detected_where_both_partners_are_there_scores_zero():
    # P3 has B and microglia-like cells at both visits but the pair is never detected: 0 -> 0
    rows = [(B_MG, "P1_baseline", 0.7), (B_MG, "P2_baseline", 0.8)]
    meta = _meta()
    present = _present(meta.index, ["naive_B", "microglia_like"])
    per_patient, summary = paired_interactions(_scores(rows), meta, baseline="baseline", present=present)
    b = summary.iloc[0]
    assert b["n_patients"] == 3 and b["estimate"] == pytest.approx(-0.5)
    assert per_patient.set_index("patient_id").loc["P3", "change"] == 0


def test_interactions_are_chosen_at_any_visit_not_at_baseline_alone():
    # expressed only after infusion: still tested (a baseline-only choice would see only falls)
    rows = [({**T_T, "expressed": True}, f"P{i}_m3", 0.4) for i in (1, 2, 3)]
    meta = _meta()
    present = _present(meta.index, ["CD4_T", "CD8_T"])
    _, summary = paired_interactions(_scores(rows), meta, baseline="baseline", present=present)
    assert summary.iloc[0]["estimate"] == pytest.approx(0.4) and summary.iloc[0]["n_patients"] == 3


def test_axis_score_is_zero_without_b_cells_and_undefined_without_microglia():
    rows = [(B_MG, "P1_baseline", 0.6), (MG_T, "P1_baseline", 0.4), (MG_T, "P1_m3", 0.3)]
    axis = axis_scores(_scores(rows), _meta(("P1", "P2")), lineage_of=shipped_lineages())
    assert axis.loc["P1_baseline", "b_microglia"] == pytest.approx(0.6)
    assert axis.loc["P1_m3", "b_microglia"] == 0.0  # B cells gone, microglia-like cells scored
    assert axis.loc["P1_m3", "microglia_inflammatory"] == pytest.approx(0.3)
    assert np.isnan(axis.loc["P2_baseline", "b_microglia"])  # no microglia-like cells scored


def test_axis_scores_carry_an_interval_and_mark_visits_without_b_cells():
    mg_t2 = {**MG_T, "receptor_complex": "TNFRSF1A"}
    rows = [(B_MG, "P1_baseline", 0.6), ({**B_MG, "receptor_complex": "TNFRSF17"}, "P1_baseline", 0.4)]
    rows += [(MG_T, "P1_m3", 0.3), (mg_t2, "P1_m3", 0.5), (MG_T, "P1_baseline", 0.4)]
    meta = _meta(("P1",))
    present = pd.concat([_present(meta.index, ["microglia_like", "CD4_T"]), _present(["P1_baseline"], ["naive_B"])])
    axis = axis_scores(_scores(rows), meta, present, lineage_of=shipped_lineages())
    base = axis.loc["P1_baseline"]
    assert base["b_microglia"] == pytest.approx(0.5)
    assert base["b_microglia_low"] < 0.5 < base["b_microglia_high"]
    assert base["b_microglia_n"] == 2 and not base["b_microglia_absent"]
    assert axis.loc["P1_m3", "b_microglia_absent"] and axis.loc["P1_m3", "b_microglia"] == 0
    assert axis.loc["P1_m3", "microglia_inflammatory_n"] == 2
    assert np.isnan(base["microglia_inflammatory_low"])  # one interaction: no interval


def test_pair_heatmap_hatches_pairs_tested_in_fewer_than_two_patients():
    import matplotlib.pyplot as plt

    from csfcart.communication import plot_pair_heatmap

    pairs = pd.DataFrame({"source": ["CD4_T", "naive_B"], "target": ["CD8_T", "CD4_T"], "compartment": "CSF",
                          "estimate": [0.1, -0.5], "p_adjusted": [0.01, np.nan], "n_patients": [4, 1]})  # fmt: skip
    fig = plot_pair_heatmap(pairs, ["CD4_T", "CD8_T", "naive_B"])
    image = fig.axes[0].images[0].get_array()
    assert image[0, 1] == pytest.approx(0.1)
    assert np.ma.is_masked(image[2, 0]) or np.isnan(image[2, 0])
    assert len(fig.axes[0].collections[0].get_offsets()) == 1  # one significance dot
    plt.close(fig)


def test_sender_receiver_pairs_are_paired_over_patients():
    from csfcart.communication import paired_pairs

    rows = [(B_MG, f"P{i}_baseline", 0.6 + 0.1 * i) for i in (1, 2, 3)]
    rows += [(T_T, f"P{i}_{t}", 0.5) for i in (1, 2, 3) for t in ("baseline", "m3")]
    meta = _meta()
    present = _present(meta.index, ["naive_B", "microglia_like", "CD4_T", "CD8_T"])
    per_patient, _ = paired_interactions(_scores(rows), meta, baseline="baseline", present=present)
    pairs = paired_pairs(per_patient).set_index(["source", "target"])
    b = pairs.loc[("naive_B", "microglia_like")]
    assert b["n_patients"] == 3 and b["estimate"] == pytest.approx(-0.8) and b["p_adjusted"] < 0.05
    assert pairs.loc[("CD4_T", "CD8_T"), "estimate"] == 0


def test_top_changes_legend_names_the_two_sides():
    from csfcart.communication import plot_top_changes

    rows = [(B_MG, f"P{i}_baseline", 0.6 + 0.1 * i) for i in (1, 2, 3)]
    meta = _meta()
    present = _present(meta.index, ["naive_B", "microglia_like"])
    _, summary = paired_interactions(_scores(rows), meta, baseline="baseline", present=present)
    fig = plot_top_changes(summary, legend=("control", "MS"))
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["control", "MS"]


def test_ligand_receptor_expression_of_a_sample_depends_on_that_sample_alone():
    import yaml

    from csfcart.measure import lr_expression
    from csfcart.pipeline import oracle_anndata
    from csfcart.simulate.cohort import load_cohort
    from csfcart.simulate.model import CohortModel
    from tests.conftest import ROOT

    cohort = load_cohort(ROOT / "config" / "datasets" / "csf_ligand_only.yaml").with_changes(n_patients=1, n_genes=1500)
    adata = oracle_anndata(CohortModel(cohort))
    axes = yaml.safe_load((ROOT / "config" / "interactions.yaml").read_text())
    together = lr_expression(adata, axes, lineage_of=shipped_lineages(), min_cells=5)
    sample = together["sample_id"].iloc[0]
    alone = lr_expression(
        adata[(adata.obs["sample_id"] == sample).to_numpy()].copy(), axes, lineage_of=shipped_lineages(), min_cells=5
    )
    mine = together[together["sample_id"] == sample].reset_index(drop=True)
    pd.testing.assert_frame_equal(mine, alone.reset_index(drop=True), check_dtype=False, check_categorical=False)
    # a pair of cell types is listed only where both have enough cells: absent is missing, never 0
    counts = adata.obs.groupby(["sample_id", "cell_type"], observed=True).size()
    for row in together.drop_duplicates(["sample_id", "sender", "receiver"]).itertuples():
        assert counts[(row.sample_id, row.sender)] >= 5 and counts[(row.sample_id, row.receiver)] >= 5


def test_a_samples_axis_score_does_not_depend_on_the_other_patients():
    rows = [(B_MG, "P1_baseline", 0.6), (MG_T, "P1_baseline", 0.4), (B_MG, "P2_baseline", 0.2), (MG_T, "P2_m3", 0.3)]
    rows += [({**B_MG, "ligand_complex": "MIF", "receptor_complex": "CD74"}, "P2_baseline", 0.9)]
    together = axis_scores(_scores(rows), _meta(("P1", "P2")), lineage_of=shipped_lineages())
    alone = axis_scores(
        _scores([r for r in rows if r[1].startswith("P2")]), _meta(("P2",)), lineage_of=shipped_lineages()
    )
    assert together.loc["P2_baseline", "b_microglia"] == alone.loc["P2_baseline", "b_microglia"] == pytest.approx(0.55)


def test_top_changes_draw_an_unpaired_table_too():
    from csfcart.communication import plot_top_changes

    summary = pd.DataFrame([{**B_MG, "compartment": "CSF", "estimate": 0.3, "ci_low": 0.1, "ci_high": 0.5,
                             "p_value": 0.01, "n_patients": 4, "baseline_score": 0.2, "post_score": 0.5}])  # fmt: skip
    fig = plot_top_changes(summary, legend=("control", "MS"))
    assert "4 donors" in " ".join(t.get_text() for t in fig.axes[0].texts)


def test_top_changes_draw_a_table_with_nothing_paired(tmp_path):
    """Donors seen once each and no condition column: the table is empty, and so is the figure."""
    from csfcart.communication import plot_top_changes

    rows = [({**B_MG, "expressed": True}, "P1_baseline", 0.6), ({**B_MG, "expressed": True}, "P2_m3", 0.5)]
    meta = _meta(("P1", "P2")).loc[["P1_baseline", "P2_m3"]]
    _, summary = paired_interactions(_scores(rows), meta, baseline="baseline")
    path = tmp_path / "interactions.tsv"
    summary.to_csv(path, sep="\t", index=False)
    fig = plot_top_changes(pd.read_csv(path, sep="\t"))
    assert len(fig.axes) == 1


def test_interaction_tensor_zero_where_present_missing_where_absent():
    from csfcart.communication import interaction_tensor

    rows = [({**B_MG, "expressed": True}, "P1_baseline", 0.6), ({**T_T, "expressed": True}, "P1_baseline", 0.5),
            ({**T_T, "expressed": True}, "P1_m3", 0.2)]  # fmt: skip
    samples = ["P1_baseline", "P1_m3"]
    present = pd.concat(
        [_present(samples, ["CD4_T", "CD8_T", "microglia_like"]), _present(["P1_baseline"], ["naive_B"])]
    )
    tensor, names = interaction_tensor(_scores(rows), samples, present, n_interactions=10)
    lrs, types = names[1], names[2]
    b_mg = (lrs.index("TNFSF13B^TNFRSF13C"), types.index("naive_B"), types.index("microglia_like"))
    t_t = (lrs.index("CD40LG^CD40"), types.index("CD4_T"), types.index("CD8_T"))
    assert tensor[(0, *b_mg)] == pytest.approx(0.6) and np.isnan(tensor[(1, *b_mg)])  # B cells gone: missing
    assert tensor[(1, *t_t)] == pytest.approx(0.2)
    # both T types present, the B / microglia-like pair not scored between them: 0
    assert tensor[1, lrs.index("TNFSF13B^TNFRSF13C"), types.index("CD4_T"), types.index("CD8_T")] == 0


def test_tensor_decomposition_finds_the_factor_that_falls():
    """A planted program (one sender, one receiver, a few pairs) halves after infusion in
    every patient; another stays. The factor carrying the program falls, the other not."""
    from csfcart.communication import decompose_tensor, factor_changes

    rng = np.random.default_rng(0)
    patients, visits = [f"P{i}" for i in range(1, 6)], ["baseline", "m3"]
    samples = [f"{p}_{v}" for p in patients for v in visits]
    meta = pd.DataFrame({"patient_id": [s.split("_")[0] for s in samples], "timepoint": [s.split("_")[1] for s in samples],
                         "compartment": "CSF"}, index=samples)  # fmt: skip
    n_lr, types = 12, ["A", "B", "C"]
    tensor = rng.uniform(0, 0.02, (len(samples), n_lr, 3, 3)).astype(np.float32)
    falling = np.array([0.5 if s.endswith("m3") else 1.0 for s in samples])
    tensor[:, :4, 0, 1] += falling[:, None] * rng.uniform(0.8, 1.0, (len(samples), 4))
    tensor[:, 6:10, 2, 2] += rng.uniform(0.8, 1.0, (len(samples), 4))
    names = [samples, [f"L{i}^R{i}" for i in range(n_lr)], types, types]
    loadings = decompose_tensor(tensor, names, rank=2, seed=0)
    changes = factor_changes(loadings, meta, baseline="baseline").set_index("top_senders")
    drop = changes.loc[changes.index.str.startswith("A")].iloc[0]
    flat = changes.loc[changes.index.str.startswith("C")].iloc[0]
    assert drop["ci_high"] < 0 and drop["patients_consistent"] == 5
    assert abs(flat["estimate"]) < abs(drop["estimate"]) / 3


@pytest.mark.parametrize("shape", [(6, 5, 4), (7, 3, 5, 4), (3, 4, 2, 5, 3)])
def test_mttkrp_is_the_unfolded_tensor_times_tensorlys_khatri_rao(shape):
    """The decomposition's product of the tensor with the other modes' factors, computed
    without unfolding, is tensorly's ``unfold(tensor, mode) @ (khatri_rao(others) * weights)``
    for every mode of 3- to 5-way tensors."""
    from tensorly.base import unfold
    from tensorly.tenalg import khatri_rao

    from csfcart.communication import _mttkrp

    rng = np.random.default_rng(len(shape))
    tensor = rng.gamma(0.5, 1.0, shape)
    factors = [rng.uniform(0.1, 1.0, (n, 3)) for n in shape]
    weights = rng.uniform(0.5, 2.0, 3)
    for mode in range(len(shape)):
        expected = unfold(tensor, mode) @ (khatri_rao(factors, skip_matrix=mode) * weights)
        np.testing.assert_allclose(_mttkrp(tensor, factors, weights, mode), expected, rtol=1e-12)


def test_tensor_decomposition_equals_tensor_cell2cell():
    """decompose_tensor runs Tensor-cell2cell's masked non-negative CP without the package's
    slow Khatri-Rao products: the same loadings, factor order and normalisation."""
    import cell2cell as c2c

    from csfcart.communication import TENSOR_MODES, decompose_tensor

    rng = np.random.default_rng(1)
    tensor = rng.gamma(0.3, 1.0, (8, 40, 5, 5)).astype(np.float32)
    tensor[:, :, 3, :] = np.nan  # a receiver absent everywhere, a sender absent in one sample
    tensor[2, :, :, 1] = np.nan
    names = [[f"S{i}" for i in range(8)], [f"L{i}^R{i}" for i in range(40)], list("ABCDE"), list("ABCDE")]
    ours = decompose_tensor(tensor, names, rank=3, seed=0)
    missing = np.isnan(tensor)
    theirs = c2c.tensor.PreBuiltTensor(tensor=np.nan_to_num(tensor), order_names=names, mask=(~missing).astype(int),
                                       loc_nans=missing.astype(int))  # fmt: skip
    theirs.compute_tensor_factorization(rank=3, tf_type="non_negative_cp", init="random", random_state=0,
                                        n_iter_max=100, tol=1e-7, verbose=False)  # fmt: skip
    for mode, label in zip(TENSOR_MODES, theirs.order_labels, strict=True):
        expected = theirs.factors[label].to_numpy()
        got = ours[ours["mode"] == mode].pivot(index="element", columns="factor", values="loading")
        got = got.loc[theirs.factors[label].index, [f"F{k + 1}" for k in range(3)]].to_numpy()
        np.testing.assert_allclose(got, expected, atol=1e-6)
        assert expected.std() > 0.05  # loadings that differ, not a degenerate solution


def _random_cohort(seed=0, patients=5):
    """Scores of a few interactions in baseline, m1 and m3 samples, each cell type present or
    absent at random, and interactions scored or undetected at random."""
    rng = np.random.default_rng(seed)
    types = ["naive_B", "microglia_like", "CD4_T", "CD8_T"]
    meta = pd.DataFrame(
        [(f"P{p}_{t}", f"P{p}", t) for p in range(patients) for t in ("baseline", "m1", "m3")],
        columns=["sample_id", "patient_id", "timepoint"],
    ).set_index("sample_id")
    meta["compartment"] = "CSF"
    present = pd.DataFrame(
        [(s, t) for s in meta.index for t in types if rng.random() < 0.8], columns=["sample_id", "cell_type"]
    )
    have = set(zip(present["sample_id"], present["cell_type"], strict=True))
    keys = [dict(zip(("source", "target"), (a, b), strict=True)) | {"ligand_complex": lig, "receptor_complex": "R1"}
            for a in types for b in types for lig in ("L1", "L2")]  # fmt: skip
    rows = [
        {**k, "lrscore": float(rng.uniform(0.1, 0.9)), "expressed": bool(rng.random() < 0.7), "sample_id": s}
        for s in meta.index
        for k in keys
        if (s, k["source"]) in have and (s, k["target"]) in have and rng.random() < 0.7
    ]
    return pd.DataFrame(rows), meta, present, have


def test_paired_change_follows_its_definition_interaction_by_interaction():
    """Each interaction's per-patient change recomputed by hand: 0 where both partners are
    there and it was not scored, missing where a partner is absent, post-infusion visits
    averaged, minus baseline."""
    scores, meta, present, have = _random_cohort()
    per_patient, summary = paired_interactions(scores, meta, baseline="baseline", present=present)
    universe = scores.loc[scores["expressed"], ["source", "target", "ligand_complex", "receptor_complex"]]
    universe = universe.drop_duplicates()
    assert len(summary) == len(universe)
    lookup = scores.set_index(["sample_id", "source", "target", "ligand_complex", "receptor_complex"])["lrscore"]
    checked = 0
    for key in universe.itertuples(index=False):
        changes = []
        for patient in sorted(set(meta["patient_id"])):

            def score(sample, key=key):
                if (sample, key.source) not in have or (sample, key.target) not in have:
                    return np.nan
                return float(lookup.get((sample, *key), 0.0))

            base = score(f"{patient}_baseline")
            post = np.nanmean([score(f"{patient}_m1"), score(f"{patient}_m3")]) if any(
                (f"{patient}_{t}", key.source) in have and (f"{patient}_{t}", key.target) in have for t in ("m1", "m3")
            ) else np.nan  # fmt: skip
            changes.append(post - base)
        changes = np.array(changes)
        row = summary[(summary["source"] == key.source) & (summary["target"] == key.target)
                      & (summary["ligand_complex"] == key.ligand_complex)].iloc[0]  # fmt: skip
        assert row["n_patients"] == np.isfinite(changes).sum()
        if np.isfinite(changes).any():
            assert row["estimate"] == pytest.approx(np.nanmean(changes))
            checked += 1
        mine = per_patient[(per_patient["source"] == key.source) & (per_patient["target"] == key.target)
                           & (per_patient["ligand_complex"] == key.ligand_complex)]  # fmt: skip
        np.testing.assert_allclose(mine.sort_values("patient_id")["change"].to_numpy(dtype=float), changes)
    assert checked > 10


def test_scores_read_as_categories_give_the_same_tables(tmp_path):
    from csfcart.communication import interaction_tensor, paired_pairs, read_scores

    scores, meta, present, _ = _random_cohort(seed=1)
    paths = []
    for sample, part in scores.groupby("sample_id"):
        paths.append(str(tmp_path / f"{sample}.parquet"))
        part.to_parquet(paths[-1], index=False)
    read = read_scores(paths)
    assert isinstance(read["source"].dtype, pd.CategoricalDtype) and isinstance(read["sample_id"].dtype,
                                                                                pd.CategoricalDtype)  # fmt: skip
    assert read["source"].cat.categories.is_monotonic_increasing
    plain_pp, plain = paired_interactions(scores, meta, baseline="baseline", present=present)
    cat_pp, cat = paired_interactions(read, meta, baseline="baseline", present=present)
    pd.testing.assert_frame_equal(plain, cat)
    pd.testing.assert_frame_equal(paired_pairs(plain_pp), paired_pairs(cat_pp), check_categorical=False,
                                  check_dtype=False)  # fmt: skip
    samples = sorted(meta.index)
    a, names_a = interaction_tensor(scores, samples, present, n_interactions=5)
    b, names_b = interaction_tensor(read, samples, present, n_interactions=5)
    assert names_a == names_b
    np.testing.assert_array_equal(a, b)
    axis_plain = axis_scores(scores, meta, present, lineage_of=shipped_lineages())
    pd.testing.assert_frame_equal(axis_plain, axis_scores(read, meta, present, lineage_of=shipped_lineages()))


def test_the_pseudobulk_route_reads_the_resource_genes_alone_and_finds_the_same_interactions():
    """A rule reads only :func:`resource_genes` of the annotated object; LIANA's pseudobulk
    route over those columns gives the table it gives over all genes."""
    import anndata as ad
    import liana as li
    import scipy.sparse as sp

    from csfcart.communication import pseudobulk_interactions, resource_genes

    resource = li.rs.select_resource("consensus").head(60)
    lr = sorted(set(pd.concat([resource["ligand"], resource["receptor"]]).str.split("_").explode()))
    genes = lr + [f"OTHER{i}" for i in range(40)]
    rng = np.random.default_rng(3)
    n = 240
    x = sp.random(n, len(genes), density=0.4, format="csr", random_state=4, dtype=np.float32)
    obs = pd.DataFrame({"cell_type": np.repeat(["B", "microglia", "T"], n // 3)}, index=[f"c{i}" for i in range(n)])
    adata = ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=genes))
    de = pd.DataFrame(
        [
            {"compartment": "CSF", "contrast": "d14_vs_baseline", "cell_type": t, "gene": g,
             "stat": rng.normal(), "log2FoldChange": rng.normal(), "padj": rng.uniform()}
            for t in ("B", "microglia", "T") for g in genes
        ]
    )  # fmt: skip
    kept = resource_genes(adata.var_names)
    assert set(kept) == set(lr) & set(li.rs.select_resource("consensus").stack().str.split("_").explode())
    assert not any(g.startswith("OTHER") for g in kept)
    whole = pseudobulk_interactions(adata, de)
    part = pseudobulk_interactions(adata[:, kept].copy(), de)
    assert len(whole) > 0
    pd.testing.assert_frame_equal(whole.reset_index(drop=True), part.reset_index(drop=True))


def test_each_sample_is_scored_from_its_own_rows_of_the_file(tmp_path):
    """Rule communication reads the cell table once and each sample's rows of X alone: the
    tables it writes are those of each sample scored in memory, with one worker or two, where
    a sample's rows lie together in the file and where they are scattered."""
    import anndata as ad
    import liana as li
    import scipy.sparse as sp

    from csfcart.communication import score_sample, score_samples

    resource = li.rs.select_resource("consensus").head(80)
    genes = sorted(set(pd.concat([resource["ligand"], resource["receptor"]]).str.split("_").explode()))
    n = 360
    samples = np.repeat(["P1_CSF_baseline", "P1_CSF_d14", "P2_CSF_baseline"], n // 3)
    samples[[5, 200, 300]] = "P1_CSF_d14"  # this sample's rows are scattered through the file
    x = sp.random(n, len(genes), density=0.3, format="csr", random_state=5, dtype=np.float32)
    x.data = np.log1p(10 * x.data)
    obs = pd.DataFrame(
        {
            "sample_id": pd.Categorical(samples),
            "cell_type": pd.Categorical(np.tile(["B", "microglia_like", "CD4_T", "rare"], n // 4)),
            "total_counts": np.arange(n, dtype=float),
        },
        index=[f"cell{i}" for i in range(n)],
    )
    obs.loc[obs["sample_id"] == "P2_CSF_baseline", "cell_type"] = "CD4_T"  # one type: nothing to score
    adata = ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=genes))
    adata.obsm["X_umap"] = np.zeros((n, 2))
    path = tmp_path / "annotated.h5ad"
    adata.write_h5ad(path)
    for workers in (1, 2):
        outputs = {s: str(tmp_path / f"{s}.{workers}.parquet") for s in [*sorted(set(samples)), "P3_CSF_baseline"]}
        score_samples(str(path), outputs, min_cells=10, seed=0, workers=workers)
        for sample, out in outputs.items():
            alone = score_sample(adata[(obs["sample_id"] == sample).to_numpy()].copy(), min_cells=10, seed=0)
            written = pd.read_parquet(out)
            assert len(written) == len(alone)
            if sample == "P1_CSF_baseline":
                assert len(written) > 0 and set(written["source"]) == {"B", "microglia_like", "CD4_T", "rare"}
            if len(alone):
                pd.testing.assert_frame_equal(
                    written.reset_index(drop=True), alone.reset_index(drop=True), check_dtype=False
                )
