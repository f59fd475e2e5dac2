"""Adapter of rule communication: LIANA scores of one sample."""

from csfcart.communication import score_sample
from csfcart.io import read_sample_rows
from csfcart.keys import CELL_TYPE
from csfcart.logs import setup

setup(snakemake.log[0])
sample = read_sample_rows(snakemake.input[0], snakemake.wildcards.sample, obs_columns=(CELL_TYPE,))
score_sample(sample, min_cells=snakemake.params.min_cells, seed=snakemake.params.seed).to_parquet(
    snakemake.output[0], index=False
)
