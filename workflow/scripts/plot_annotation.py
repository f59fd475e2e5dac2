"""Adapter of rule plot_annotation: UMAPs and the marker dot plot."""

import anndata as ad
import matplotlib.pyplot as plt

from csfcart.annotate import read_markers
from csfcart.logs import setup
from csfcart.plotting import plot_marker_dotplot, plot_umaps

setup(snakemake.log[0], snakemake.output, threads=snakemake.threads)
adata = ad.read_h5ad(snakemake.input[0])
for fig, path in (
    (plot_umaps(adata), snakemake.output.umap),
    (plot_marker_dotplot(adata, read_markers(snakemake.params.markers)), snakemake.output.markers),
):
    fig.savefig(path, dpi=110)
    plt.close(fig)
