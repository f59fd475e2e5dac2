"""Adapter of rule annotate: clusters, UMAP, cell types and the CAR+ flag."""

import anndata as ad

from csfcart.annotate import annotate, read_markers
from csfcart.logs import setup
from csfcart.tables import write_table_html

setup(snakemake.log[0])
adata = ad.read_h5ad(snakemake.input.h5ad)
clustering, annotation = snakemake.params.clustering, snakemake.params.annotation
table = annotate(
    adata,
    markers=read_markers(snakemake.input.markers),
    use_rep=adata.uns["integration"]["embedding"],
    n_neighbors=clustering.get("n_neighbors", 15),
    resolution=clustering.get("resolution", 1.0),
    min_score=annotation.get("min_score", 0.1),
    min_margin=annotation.get("min_margin", 0.05),
    car_feature=snakemake.params.car_feature,
    seed=snakemake.params.seed,
    car_cluster_fraction=annotation.get("car_cluster_fraction", 0.15),
    mixed_cluster_fraction=annotation["mixed_cluster_fraction"],
)
adata.write_h5ad(snakemake.output.h5ad, compression="gzip")
table.to_csv(snakemake.output.clusters, sep="\t", index_label="cluster")
write_table_html(
    table.rename_axis("cluster").reset_index(), snakemake.output.clusters_page, title="Clusters and their cell types"
)
