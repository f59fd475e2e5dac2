"""Adapter of rule plot_annotation: UMAPs and the marker dot plot."""

import matplotlib.pyplot as plt

from csfcart.annotate import read_markers
from csfcart.io import read_cells
from csfcart.logs import setup
from csfcart.plotting import plot_marker_dotplot, plot_umaps

setup(snakemake.log[0], snakemake.output, threads=snakemake.threads)
markers = read_markers(snakemake.params.markers)
# the cell table, the UMAP and the markers' expression: not the counts, the graph or other genes
adata = read_cells(snakemake.input[0], genes=sorted({g for gs in markers.values() for g in gs}), obsm=["X_umap"])
for fig, path in (
    (plot_umaps(adata), snakemake.output.umap),
    (plot_marker_dotplot(adata, markers), snakemake.output.markers),
):
    fig.savefig(path, dpi=110)
    plt.close(fig)
