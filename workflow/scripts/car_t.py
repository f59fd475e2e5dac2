"""Adapter of rule car_t: CAR+ fraction of T cells per sample, and its figure."""

import anndata as ad
import matplotlib.pyplot as plt

from csfcart.logs import setup
from csfcart.measure import car_fractions
from csfcart.plotting import plot_car_fraction

setup(snakemake.log[0])
obs = ad.read_h5ad(snakemake.input[0], backed="r").obs
table = car_fractions(obs)
table.to_csv(snakemake.output.table, sep="\t")
fig = plot_car_fraction(table)
fig.savefig(snakemake.output.figure, dpi=110)
plt.close(fig)
