"""Adapter of rule car_t: CAR+ fraction of T cells per sample (plot_car_t draws it)."""

from csfcart.io import read_obs
from csfcart.logs import setup
from csfcart.measure import car_fractions

setup(snakemake.log[0], snakemake.output, threads=snakemake.threads)
obs = read_obs(snakemake.input[0])
table = car_fractions(obs, snakemake.params.lineages)
table.to_csv(snakemake.output.table, sep="\t")
