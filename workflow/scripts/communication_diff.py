"""Adapter of rule communication_diff: paired change per interaction, axis scores (plot_communication draws them)."""

from csfcart.communication import (
    axis_scores,
    condition_interactions,
    paired_interactions,
    paired_pairs,
    present_types,
    read_scores,
)
from csfcart.io import read_obs
from csfcart.logs import setup
from csfcart.measure import sample_meta
from csfcart.tables import write_table_html

setup(snakemake.log[0], snakemake.output, threads=snakemake.threads)
obs = read_obs(snakemake.input.annotated)
meta = sample_meta(obs)
present = present_types(obs, min_cells=snakemake.params.min_cells)
scores = read_scores(snakemake.input.scores)
meta = meta.loc[meta.index.isin(set(scores["sample_id"].unique())) | (meta["compartment"] == "CSF")]
per_patient, summary = paired_interactions(scores, meta, baseline=snakemake.params.baseline, present=present)
pairs = paired_pairs(per_patient)
pairs.to_csv(snakemake.output.pairs, sep="\t", index=False)
write_table_html(pairs, snakemake.output.pairs_page, title="Paired change per sender-receiver pair")
title = "Paired change of each interaction"
if summary.empty and snakemake.params.conditions:  # one visit per donor: conditions compared instead
    reference = snakemake.params.reference_condition
    summary = condition_interactions(scores, meta, snakemake.params.conditions, reference=reference)
    title = f"Interactions by condition (unpaired, against {reference})"
summary.to_csv(snakemake.output.interactions, sep="\t", index=False)
write_table_html(summary, snakemake.output.page, title=title)
axis = axis_scores(scores, meta, present, lineage_of=snakemake.params.lineages)
axis.to_csv(snakemake.output.axis, sep="\t")
# the samples compared and the cell types present in each (plot_communication, plot_tensor)
types = present.groupby("sample_id")["cell_type"].agg(lambda t: ",".join(sorted(map(str, t))))
meta.assign(cell_types_present=types.reindex(meta.index)).to_csv(snakemake.output.samples, sep="\t")
