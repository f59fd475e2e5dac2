"""Pseudobulk differential expression with PyDESeq2, per cell type and contrast.

Counts are summed per sample and cell type; pseudobulk samples with too few cells or
counts are dropped. With paired samples (a patient seen at both time points) the design is
``~ patient_id + timepoint``, otherwise ``~ timepoint``; Benjamini-Hochberg within each
contrast. A contrast that cannot be fitted (the cell type is absent, or fewer than two
samples per time point remain) is reported with its reason instead of failing the run.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scipy.sparse as sp

if TYPE_CHECKING:  # only in annotations: the plot jobs import this module
    import anndata as ad

log = logging.getLogger(__name__)

RESULT_COLUMNS = [
    "compartment",
    "contrast",
    "gene",
    "baseMean",
    "log2FoldChange",
    "lfcSE",
    "stat",
    "pvalue",
    "padj",
    "design",
    "n_samples",
]


def contrasts(
    pb_obs: pd.DataFrame, baseline: str, order: list[str], reference_condition: str
) -> list[tuple[str, str, str, str]]:
    """(compartment, factor, level, reference): each time point against the baseline; for a
    compartment seen at one time point only, each condition against the reference condition."""
    out = []
    for comp in sorted(pb_obs["compartment"].unique()):
        here = pb_obs[pb_obs["compartment"] == comp]
        tps = set(here["timepoint"])
        out += [(comp, "timepoint", tp, baseline) for tp in order if tp in tps and tp != baseline]
        if len(tps) == 1 and "condition" in here:
            levels = sorted(set(here["condition"].astype(str)) - {reference_condition, "nan", ""})
            if reference_condition in set(here["condition"].astype(str)):
                out += [(comp, "condition", level, reference_condition) for level in levels]
    return out


def expressed_genes(counts: np.ndarray, groups: np.ndarray, *, min_count: int = 10) -> np.ndarray:
    """Genes worth testing: at least ``min_count`` counts in at least as many samples as the
    smallest group holds (the pre-filter of DESeq2's vignette, ``rowSums(counts >= 10) >=
    smallestGroupSize``). A gene expressed in one group only passes; one seen in a sample or
    two of a group does not, and would not reach significance anyway. Fewer genes make the
    dispersion fits faster and the BH correction less strict."""
    smallest = int(pd.Series(groups).value_counts().min())
    return (counts >= min_count).sum(axis=0) >= smallest


def run_contrast(
    pb: ad.AnnData,
    *,
    compartment: str,
    timepoint: str,
    baseline: str,
    min_cells: int,
    min_counts: int,
    seed: int,
    factor: str = "timepoint",
    covariates: tuple[str, ...],
) -> tuple[pd.DataFrame, str]:
    """DESeq2 of level ``timepoint`` vs ``baseline`` of ``factor`` (the time point, or the
    condition of an unpaired design, ``~ condition``) in one compartment; (results, reason).

    ``covariates`` (sample-level columns) enter the design between the patient and the
    factor; one that is constant over the samples compared, or within every patient of a
    paired design (the patient term absorbs it), is left out, and the ``design`` column of
    the results says what was fitted."""
    from pydeseq2.dds import DeseqDataSet
    from pydeseq2.ds import DeseqStats

    obs = pb.obs
    keep = (obs["compartment"] == compartment) & obs[factor].astype(str).isin([baseline, timepoint])
    keep &= (obs["psbulk_cells"] >= min_cells) & (obs["psbulk_counts"] >= min_counts)
    sub = pb[keep.to_numpy()]
    n_by_tp = sub.obs[factor].astype(str).value_counts()
    if n_by_tp.get(baseline, 0) < 2 or n_by_tp.get(timepoint, 0) < 2:
        return pd.DataFrame(columns=RESULT_COLUMNS), (
            f"too few pseudobulk samples with >= {min_cells} cells and >= {min_counts} counts "
            f"({n_by_tp.get(baseline, 0)} at {baseline}, {n_by_tp.get(timepoint, 0)} at {timepoint}; 2 each needed)"
        )
    counts = sub.X.toarray() if sp.issparse(sub.X) else np.asarray(sub.X)
    counts = pd.DataFrame(counts.astype(int), index=sub.obs_names, columns=sub.var_names)
    meta = sub.obs[["patient_id", factor, *covariates]].astype(str).copy()
    meta[factor] = pd.Categorical(meta[factor], categories=[baseline, timepoint])
    paired = meta.groupby("patient_id")[factor].nunique()
    is_paired = (paired == 2).sum() >= 2 and meta["patient_id"].nunique() < len(meta)
    if is_paired:
        both = paired.index[paired == 2]
        meta, counts = meta[meta["patient_id"].isin(both)], counts[meta["patient_id"].isin(both).to_numpy()]
    counts = counts.loc[:, expressed_genes(counts.to_numpy(), meta[factor].to_numpy())]
    if counts.shape[1] < 2:
        smallest = int(meta[factor].value_counts().min())
        return pd.DataFrame(columns=RESULT_COLUMNS), (
            f"{counts.shape[1]} genes with >= 10 counts in >= {smallest} samples (the smallest group); 2 needed"
        )
    used = [c for c in covariates if meta[c].nunique() > 1
            and not (is_paired and (meta.groupby("patient_id")[c].nunique() <= 1).all())]  # fmt: skip
    design = " + ".join([*(["patient_id"] if is_paired else []), *used, factor])
    design = f"~ {design}"
    dds = DeseqDataSet(counts=counts, metadata=meta, design=design, quiet=True, n_cpus=1)
    dds.deseq2()
    stats_ = DeseqStats(dds, contrast=[factor, timepoint, baseline], quiet=True, n_cpus=1)
    stats_.summary()
    res = stats_.results_df.reset_index(names="gene")
    res.insert(0, "contrast", f"{timepoint}_vs_{baseline}")
    res.insert(0, "compartment", compartment)
    res["design"] = design
    res["n_samples"] = len(meta)
    return res[RESULT_COLUMNS], ""


def run_cell_type(
    pb: ad.AnnData,
    cell_type: str,
    *,
    baseline: str,
    order: list[str],
    min_cells: int,
    min_counts: int,
    seed: int,
    reference_condition: str,
    covariates: list[str],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All contrasts for one cell type; returns (results, status per contrast).
    ``covariates``: sample-sheet columns for the design (see :func:`run_contrast`)."""
    sub = pb[(pb.obs["cell_type"] == cell_type).to_numpy()]
    results, status = [], []
    for comp, factor, tp, ref in contrasts(pb.obs, baseline, order, reference_condition):
        if sub.n_obs == 0:
            res, reason = pd.DataFrame(columns=RESULT_COLUMNS), f"no {cell_type} cells in the data"
        else:
            log.info("%s, %s: %s against %s", cell_type, comp, tp, ref)
            res, reason = run_contrast(
                sub,
                compartment=comp,
                timepoint=tp,
                baseline=ref,
                min_cells=min_cells,
                min_counts=min_counts,
                seed=seed,
                factor=factor,
                covariates=tuple(covariates),
            )
        status.append({"cell_type": cell_type, "compartment": comp, "contrast": f"{tp}_vs_{ref}", "tested": not reason,
                       "n_genes": len(res), "n_significant": int((res["padj"] < 0.05).sum()) if len(res) else 0, "reason": reason})  # fmt: skip
        if len(res):
            results.append(res)
    if not status:
        # one sample, or every sample at one time point with no conditions: nothing to compare
        status.append({"cell_type": cell_type, "compartment": "-", "contrast": "-", "tested": False, "n_genes": 0,
                       "n_significant": 0, "reason": f"no contrast: no time point after '{baseline}' and no "
                       "condition column with the reference condition in the sample sheet"})  # fmt: skip
    table = pd.concat(results, ignore_index=True) if results else pd.DataFrame(columns=RESULT_COLUMNS)
    table.insert(0, "cell_type", cell_type)
    return table, pd.DataFrame(status)


def plot_volcanoes(results: pd.DataFrame, status: pd.DataFrame, cell_type: str) -> plt.Figure:
    """One volcano per contrast; untested contrasts show their reason."""
    panels = status.to_dict("records") or [{"compartment": "-", "contrast": "-", "reason": "no contrast"}]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4), layout="constrained", squeeze=False)
    for ax, st in zip(axes.ravel(), panels, strict=True):
        res = results[(results["compartment"] == st["compartment"]) & (results["contrast"] == st["contrast"])]
        ax.set_title(f"{cell_type}, {st['compartment']}: {st['contrast']}", fontsize=9)
        if res.empty:
            ax.text(
                0.5,
                0.5,
                "not tested:\n" + "\n".join(_wrap(st.get("reason", ""), 40)),
                ha="center",
                va="center",
                transform=ax.transAxes,
                fontsize=8,
            )
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        y = -np.log10(res["pvalue"].clip(lower=1e-300).fillna(1))
        sig = (res["padj"] < 0.05).to_numpy()
        ax.scatter(res["log2FoldChange"], y, s=4, c=np.where(sig, "#CC3311", "#BBBBBB"), linewidths=0)
        for _, r in res[sig].nsmallest(8, "pvalue").iterrows():
            ax.annotate(r["gene"], (r["log2FoldChange"], -np.log10(max(r["pvalue"], 1e-300))), fontsize=7)
        ax.axvline(0, color="black", lw=0.5)
        ax.set_xlabel("log2 fold change (vs baseline)")
        ax.set_ylabel("-log10 p")
    return fig


def _wrap(text: str, width: int) -> list[str]:
    words, lines, line = text.split(), [], ""
    for w in words:
        if len(line) + len(w) + 1 > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    return [*lines, line]


def plot_heatmap(results: pd.DataFrame, *, n_genes: int = 30) -> plt.Figure:
    """log2 fold changes of the most significant genes (rows) across cell type x contrast."""
    res = results.dropna(subset=["padj"])
    fig, ax = plt.subplots(figsize=(8, 6), layout="constrained")
    if res.empty:
        ax.text(0.5, 0.5, "no contrast could be tested", ha="center", va="center", transform=ax.transAxes)
        ax.axis("off")
        return fig
    res = res.assign(
        column=res["cell_type"] + " " + res["compartment"] + " " + res["contrast"].str.replace("_vs_", " vs ")
    )
    top = res.nsmallest(n_genes * 3, "padj")["gene"].drop_duplicates().head(n_genes)
    wide = res[res["gene"].isin(top)].pivot_table(index="gene", columns="column", values="log2FoldChange").reindex(top)
    lim = float(np.nanmax(np.abs(wide.to_numpy()))) if wide.size else 1.0
    fig.set_size_inches(max(6, 0.45 * wide.shape[1] + 3), max(4, 0.22 * wide.shape[0] + 2.5))
    im = ax.imshow(wide.to_numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(wide.shape[1]), wide.columns, rotation=90, fontsize=7)
    ax.set_yticks(range(wide.shape[0]), wide.index, fontsize=7)
    fig.colorbar(im, ax=ax, label="log2 fold change vs baseline", shrink=0.6)
    ax.set_title(f"Top {len(top)} genes by adjusted p (blank: not tested)", fontsize=9)
    return fig
