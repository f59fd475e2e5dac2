"""Adapter of rule car_t: CAR+ fraction of T cells per sample (plot_car_t draws it)."""

import anndata as ad

from csfcart.logs import setup
from csfcart.measure import car_fractions

setup(snakemake.log[0], snakemake.output, threads=snakemake.threads)
obs = ad.read_h5ad(snakemake.input[0], backed="r").obs
table = car_fractions(obs, snakemake.params.lineages)
table.to_csv(snakemake.output.table, sep="\t")
