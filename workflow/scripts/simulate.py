"""Adapter of rule simulate: a synthetic cohort into the results folder."""

from pathlib import Path

from csfcart.logs import setup
from csfcart.simulate.cohort import parse_cohort
from csfcart.simulate.write import simulate_cohort

setup(snakemake.log[0], snakemake.output, threads=snakemake.threads)
cohort = parse_cohort(snakemake.params.simulation, name=snakemake.params.dataset, where="config")
simulate_cohort(cohort, Path(snakemake.output.sheet).parent, workers=snakemake.threads)
