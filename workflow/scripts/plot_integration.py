"""Adapter of rule plot_integration: training curve and mixing metrics before and after."""

import json

import anndata as ad
import matplotlib.pyplot as plt

from csfcart.integrate import mixing_metrics, pca_on_hvg
from csfcart.logs import setup
from csfcart.plotting import plot_integration
from csfcart.tables import write_table_html

setup(snakemake.log[0])
adata = ad.read_h5ad(snakemake.input.h5ad)
info = json.loads(open(snakemake.input.info).read())
embedding = adata.uns["integration"]["embedding"]
before = adata.obsm["X_pca"] if "X_pca" in adata.obsm else pca_on_hvg(adata, n_pcs=30, seed=snakemake.params.seed)
metrics = mixing_metrics(
    adata,
    {"unintegrated PCA": before, f"{info['method']} ({embedding})": adata.obsm[embedding]},
    batch_key=adata.uns["integration"]["batch_key"],
    n_jobs=snakemake.threads,
)
metrics.to_csv(snakemake.output.table, sep="\t", index=False)
write_table_html(metrics, snakemake.output.page, title="Integration: mixing and purity per cell type")
fig = plot_integration(metrics, info)
fig.savefig(snakemake.output.figure, dpi=110)
plt.close(fig)
