"""Adapter of rule integrate: HVGs and scVI or Harmony."""

import json
import logging
import time

import anndata as ad
import torch

from csfcart.integrate import integrate_step
from csfcart.logs import setup

setup(snakemake.log[0], snakemake.output, threads=snakemake.threads)
torch.set_num_threads(snakemake.threads)
settings = snakemake.params.integration
adata = ad.read_h5ad(snakemake.input[0])
start = time.perf_counter()
info = integrate_step(adata, settings, seed=snakemake.params.seed)
info.update(cells=adata.n_obs, genes=adata.n_vars, seconds=round(time.perf_counter() - start, 1))
logging.info("integration: %s", info)
adata.write_h5ad(snakemake.output.h5ad)  # temporary: read once, by annotate
with open(snakemake.output.info, "w") as fh:
    json.dump(info, fh, indent=2)
