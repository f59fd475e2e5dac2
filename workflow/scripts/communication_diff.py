"""Adapter of rule communication_diff: paired change per interaction, axis scores, figures."""

import anndata as ad
import matplotlib.pyplot as plt
import pandas as pd

from csfcart.communication import (
    axis_scores,
    condition_interactions,
    paired_interactions,
    paired_pairs,
    plot_axis_lines,
    plot_pair_heatmap,
    plot_top_changes,
    present_types,
)
from csfcart.logs import setup
from csfcart.measure import sample_meta
from csfcart.tables import write_table_html
from csfcart.timepoints import order_timepoints

setup(snakemake.log[0])
obs = ad.read_h5ad(snakemake.input.annotated, backed="r").obs
meta = sample_meta(obs)
present = present_types(obs, min_cells=snakemake.params.min_cells)
scores = pd.concat([pd.read_parquet(p) for p in snakemake.input.scores], ignore_index=True)
meta = meta.loc[meta.index.isin(set(scores["sample_id"])) | (meta["compartment"] == "CSF")]
per_patient, summary = paired_interactions(scores, meta, baseline=snakemake.params.baseline, present=present)
pairs = paired_pairs(per_patient)
pairs.to_csv(snakemake.output.pairs, sep="\t", index=False)
write_table_html(pairs, snakemake.output.pairs_page, title="Paired change per sender-receiver pair")
title, legend = "Paired change of each interaction", ("baseline", "after infusion")
if summary.empty and snakemake.params.conditions:  # one visit per donor: conditions compared instead
    reference = snakemake.params.reference_condition
    summary = condition_interactions(scores, meta, snakemake.params.conditions, reference=reference)
    title, legend = f"Interactions by condition (unpaired, against {reference})", (reference, "other condition")
summary.to_csv(snakemake.output.interactions, sep="\t", index=False)
write_table_html(summary, snakemake.output.page, title=title)
axis = axis_scores(scores, meta, present)
csf_types = sorted(
    present.loc[present["sample_id"].isin(meta.index[meta["compartment"] == "CSF"]), "cell_type"].unique()
)
axis.to_csv(snakemake.output.axis, sep="\t")
for fig, path in (
    (plot_axis_lines(axis, order_timepoints(meta["timepoint"].unique())), snakemake.output.lines),
    (plot_top_changes(summary, legend=legend), snakemake.output.top),
    (plot_pair_heatmap(pairs, csf_types), snakemake.output.heatmap),
):
    fig.savefig(path, dpi=110)
    plt.close(fig)
