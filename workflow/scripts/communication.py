"""Adapter of rule communication: LIANA scores of one sample."""

import anndata as ad

from csfcart.communication import score_sample
from csfcart.logs import setup

setup(snakemake.log[0])
adata = ad.read_h5ad(snakemake.input[0], backed="r")
sample = adata[(adata.obs["sample_id"] == snakemake.wildcards.sample).to_numpy()].to_memory()
score_sample(sample, min_cells=snakemake.params.min_cells, seed=snakemake.params.seed).to_parquet(
    snakemake.output[0], index=False
)
