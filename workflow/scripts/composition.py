"""Adapter of rule composition: cells per sample and type, paired changes (plot_composition draws them)."""

from csfcart.composition import (
    composition_summary,
    condition_summary,
    long_fractions,
    paired_changes,
)
from csfcart.io import read_obs
from csfcart.logs import setup
from csfcart.measure import cell_counts
from csfcart.tables import write_table_html

setup(snakemake.log[0], snakemake.output, threads=snakemake.threads)
obs = read_obs(snakemake.input[0])
counts = cell_counts(obs)
counts.to_csv(snakemake.output.counts, sep="\t")
long = long_fractions(counts)
changes = paired_changes(long, baseline=snakemake.params.baseline)
changes.to_csv(snakemake.output.changes, sep="\t", index=False)
summary = composition_summary(changes)
title = "Paired composition changes"
if changes.empty and snakemake.params.conditions:  # one visit per donor: conditions compared instead
    summary = condition_summary(long, snakemake.params.conditions, reference=snakemake.params.reference_condition)
    title = f"Composition by condition (unpaired, against {snakemake.params.reference_condition})"
summary.to_csv(snakemake.output.summary, sep="\t", index=False)
write_table_html(summary, snakemake.output.page, title=title)
