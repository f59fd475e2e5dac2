"""Adapter of rule pseudobulk: counts summed per sample and cell type, sample by sample."""

from csfcart.logs import setup
from csfcart.pseudobulk import pseudobulk_file

setup(snakemake.log[0], snakemake.output, threads=snakemake.threads)
pseudobulk_file(snakemake.input[0]).write_h5ad(snakemake.output[0])
