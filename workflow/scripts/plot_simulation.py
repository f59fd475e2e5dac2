"""Adapter of rule plot_simulation: figures of the simulated cohort beside real CSF."""

from pathlib import Path

from csfcart.logs import setup
from csfcart.simulate.qc import write_figures

setup(snakemake.log[0], snakemake.output, threads=snakemake.threads)
write_figures(Path(snakemake.input.sheet).parent, Path(snakemake.output.metrics).parent)
