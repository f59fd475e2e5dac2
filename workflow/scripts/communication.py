"""Adapter of rule communication: LIANA scores of each CSF sample, from its own cells alone."""

from csfcart.communication import score_samples
from csfcart.logs import setup

setup(snakemake.log[0], snakemake.output, threads=snakemake.threads)
score_samples(
    snakemake.input[0],
    dict(zip(snakemake.params.samples, snakemake.output, strict=True)),
    min_cells=snakemake.params.min_cells,
    seed=snakemake.params.seed,
    workers=snakemake.threads,
)
