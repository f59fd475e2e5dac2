"""Adapter of rule ingest: one sample's counts into an AnnData."""

from csfcart.io import read_sample
from csfcart.logs import setup

setup(snakemake.log[0], snakemake.output, threads=snakemake.threads)
row = snakemake.params.sample
adata = read_sample(row["path"], row["format"], row, labels=snakemake.params.labels)
adata.write_h5ad(snakemake.output[0])
