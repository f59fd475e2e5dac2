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
    n_neighbors=clustering["n_neighbors"],
    resolution=clustering["resolution"],
    min_score=annotation["min_score"],
    min_margin=annotation["min_margin"],
    car_feature=snakemake.params.car_feature,
    seed=snakemake.params.seed,
    car_cluster_fraction=annotation["car_cluster_fraction"],
    mixed_cluster_fraction=annotation["mixed_cluster_fraction"],
)
adata.write_h5ad(snakemake.output.h5ad, compression="gzip")
table.to_csv(snakemake.output.clusters, sep="\t", index_label="cluster")
write_table_html(
    table.rename_axis("cluster").reset_index(), snakemake.output.clusters_page, title="Clusters and their cell types"
)
