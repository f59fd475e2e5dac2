"""Adapter of rule summary_page: the standalone claims page (no Snakemake needed to open it)."""

from csfcart.logs import setup
from csfcart.summary import write_summary

setup(snakemake.log[0], snakemake.output, threads=snakemake.threads)
write_summary(
    snakemake.input.claims,
    snakemake.input.forest,
    snakemake.output[0],
    dataset=snakemake.params.dataset,
    truth_tsv=snakemake.input.truth or None,
    workflow_yaml=snakemake.input.workflow,
)
