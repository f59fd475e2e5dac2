"""Adapter of rule pseudobulk: counts summed per sample and cell type."""

import anndata as ad

from csfcart.logs import setup
from csfcart.pseudobulk import pseudobulk

setup(snakemake.log[0], snakemake.output, threads=snakemake.threads)
pb = pseudobulk(ad.read_h5ad(snakemake.input[0]))
pb.write_h5ad(snakemake.output[0])
