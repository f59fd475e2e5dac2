"""Adapter of rule plot_integration: training curve and mixing metrics before and after.

Reads only what the figure needs from the annotated object (cell labels, the unintegrated
PCA and the integrated embedding's neighbour graph, both computed upstream), not its
expression matrices.
"""

import json
import logging
import time
from pathlib import Path

import h5py
import matplotlib.pyplot as plt
from anndata import AnnData
from anndata.io import read_elem

from csfcart.integrate import graph_neighbours, mixing_metrics, nearest_neighbours
from csfcart.logs import setup
from csfcart.plotting import plot_integration
from csfcart.tables import write_table_html

setup(snakemake.log[0], snakemake.output, threads=snakemake.threads)
start = time.perf_counter()
with h5py.File(snakemake.input.h5ad, "r") as f:
    integration = read_elem(f["uns/integration"])
    embedding = integration["embedding"]
    cells = AnnData(obs=read_elem(f["obs"]))
    pca = read_elem(f["obsm/X_pca"])
    graph = graph_neighbours(read_elem(f["obsp/distances"]))
info = json.loads(Path(snakemake.input.info).read_text())
logging.info("read %d cells in %.1f s", cells.n_obs, time.perf_counter() - start)
# the integrated side reuses the clustering's kNN graph; the unintegrated PCA gets one of the same k
neighbours = {
    "unintegrated PCA": nearest_neighbours(pca, graph.shape[1], n_jobs=snakemake.threads, seed=snakemake.params.seed),
    f"{info['method']} ({embedding})": graph,
}
metrics = mixing_metrics(cells, neighbours, batch_key=integration["batch_key"])
logging.info("mixing metrics (k=%d) in %.1f s", graph.shape[1], time.perf_counter() - start)
metrics.to_csv(snakemake.output.table, sep="\t", index=False)
write_table_html(metrics, snakemake.output.page, title="Integration: mixing and purity per cell type")
fig = plot_integration(metrics, info)
fig.savefig(snakemake.output.figure, dpi=110)
plt.close(fig)
