"""Adapter of rule qc: QC of one sample, its cell table and summary row (plot_qc draws them)."""

import anndata as ad
import pandas as pd

from csfcart.logs import setup
from csfcart.qc import run_qc

setup(snakemake.log[0], snakemake.output, threads=snakemake.threads)
adata = ad.read_h5ad(snakemake.input[0])
kept, cells, summary = run_qc(
    adata, snakemake.params.qc, seed=snakemake.params.seed, car_feature=snakemake.params.car_feature
)
kept.write_h5ad(snakemake.output.h5ad, compression="gzip")
cols = ["sample_id", "barcode", "total_counts", "n_genes_by_counts", "pct_counts_mt", "doublet_score",
        "low_quality_counts", "low_quality_genes", "high_mt", "doublet", "qc_pass"]  # fmt: skip
cells.reindex(columns=cols).to_csv(snakemake.output.cells, sep="\t", index=False)
pd.DataFrame([summary]).to_csv(snakemake.output.summary, sep="\t", index=False)
