"""Adapter of rule plot_qc: figures from the tables the compute rule wrote."""

from csfcart.figures import save_figures
from csfcart.logs import setup

setup(snakemake.log[0], snakemake.output, threads=snakemake.threads)
save_figures(snakemake.params.figure, snakemake.input, snakemake.wildcards, snakemake.output, threads=snakemake.threads)
