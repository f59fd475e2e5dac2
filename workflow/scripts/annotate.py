"""Adapter of rule annotate: clusters, UMAP, cell types and the CAR+ flag."""

import anndata as ad
import pandas as pd

from csfcart.annotate import UmapBeside, annotate_step, marker_detection, marker_table, normalise, write_annotated
from csfcart.logs import setup
from csfcart.tables import write_table_html

setup(snakemake.log[0], snakemake.output, threads=snakemake.threads)
layout = UmapBeside()  # its process prepares UMAP while the cells are read and clustered
try:
    adata = ad.read_h5ad(snakemake.input.h5ad)
    # the annotation works on the normalised X, made from the counts in place; the counts
    # are copied into the output file from the input, block by block, instead of being
    # held beside X
    normalise(adata, keep_counts=False)
    table = annotate_step(
        adata,
        clustering=snakemake.params.clustering,
        annotation={
            **snakemake.params.annotation,
            "markers": snakemake.input.markers,
            "celltypist_model": snakemake.input.celltypist_model or "",
        },
        car_feature=snakemake.params.car_feature,
        seed=snakemake.params.seed,
        umap=layout,
    )
    # cells of mixed clusters that took (moved) or were refused (kept) their own type, per sample
    relabelled = pd.DataFrame(adata.uns.pop("relabelled"))
    detection = marker_detection(adata, marker_table(snakemake.input.markers))
    write_annotated(adata, snakemake.output.h5ad, layout, counts_from=snakemake.input.h5ad)
finally:
    layout.close()
# with own labels (annotation.labels): cells per own label and marker label
agreement = pd.DataFrame(adata.uns.get("label_agreement", {"own_label": [], "marker_label": [], "cells": []}))
agreement.to_csv(snakemake.output.agreement, sep="\t", index=False)
table.to_csv(snakemake.output.clusters, sep="\t", index_label="cluster")
relabelled.to_csv(snakemake.output.relabelled, sep="\t", index=False)
detection.to_csv(snakemake.output.detection, sep="\t", index=False)
write_table_html(
    detection,
    snakemake.output.detection_page,
    title="Marker genes detected per cell type and sample",
    note="share_with_markers: the share of a type's cells that detect at least two of its own markers "
    "(immunoglobulins left out); a low share flags calls without the type's genes",
)
write_table_html(
    table.rename_axis("cluster").reset_index(), snakemake.output.clusters_page, title="Clusters and their cell types"
)
