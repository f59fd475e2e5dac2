"""Adapter of rule plot_integration: training curve and mixing metrics before and after.

Reads only what the figure needs from the annotated object (cell labels, the unintegrated
PCA and the integrated embedding's neighbour graph, both computed upstream), not its
expression matrices. The metrics score up to ``MIXING_CELLS_PER_TYPE`` cells of each type
(every cell of a smaller type), whose exact neighbours on the PCA are searched among all
cells: the cost grows with the cells, where a neighbour graph of all cells grows faster.
"""

import json
import logging
import time
from pathlib import Path

import h5py
import matplotlib.pyplot as plt
from anndata import AnnData
from anndata.io import read_elem

from csfcart.integrate import MIXING_CELLS_PER_TYPE, graph_neighbours, mixing_cells, mixing_metrics, nearest_neighbours
from csfcart.keys import CELL_TYPE
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
scored = mixing_cells(cells.obs[CELL_TYPE], MIXING_CELLS_PER_TYPE, seed=snakemake.params.seed)
# the integrated side reuses the clustering's kNN graph; the unintegrated PCA gets one of the same k
neighbours = {
    "unintegrated PCA": nearest_neighbours(
        pca, graph.shape[1], n_jobs=snakemake.threads, seed=snakemake.params.seed, cells=scored
    ),
    f"{info['method']} ({embedding})": graph[scored],
}
metrics = mixing_metrics(cells, neighbours, batch_key=integration["batch_key"], cells=scored)
logging.info(
    "mixing metrics (k=%d) of %d of %d cells in %.1f s",
    graph.shape[1],
    len(scored),
    cells.n_obs,
    time.perf_counter() - start,
)
metrics.to_csv(snakemake.output.table, sep="\t", index=False)
write_table_html(metrics, snakemake.output.page, title="Integration: mixing and purity per cell type")
fig = plot_integration(metrics, info)
fig.savefig(snakemake.output.figure, dpi=110)
plt.close(fig)
