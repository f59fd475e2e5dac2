"""Adapter of rule compare_integration: scib-metrics of PCA, scVI and Harmony on the same cells."""

import anndata as ad
import torch

from csfcart.integrate import compare_methods
from csfcart.logs import setup
from csfcart.tables import write_table_html

setup(snakemake.log[0], snakemake.output, threads=snakemake.threads)
torch.set_num_threads(snakemake.threads)
settings = snakemake.params.integration
adata = ad.read_h5ad(snakemake.input[0])
table = compare_methods(adata, batch_key=settings["batch_key"], seed=snakemake.params.seed, settings=settings,
                        n_jobs=snakemake.threads)  # fmt: skip
table.to_csv(snakemake.output.table, sep="\t", index=False)
write_table_html(table, snakemake.output.page, title="Integration methods compared (scib-metrics)")
