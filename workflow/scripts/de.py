"""Adapter of rule de: PyDESeq2 on the pseudobulk of one cell type, every contrast."""

import anndata as ad

from csfcart.de import run_cell_type
from csfcart.logs import setup
from csfcart.timepoints import order_timepoints

setup(snakemake.log[0], snakemake.output, threads=snakemake.threads)
pb = ad.read_h5ad(snakemake.input[0])
cell_type = snakemake.wildcards.cell_type
results, status = run_cell_type(
    pb,
    cell_type,
    baseline=snakemake.params.baseline,
    order=order_timepoints(pb.obs["timepoint"].unique()),
    min_cells=snakemake.params.min_cells,
    min_counts=snakemake.params.min_counts,
    seed=snakemake.params.seed,
    reference_condition=snakemake.params.reference_condition,
    covariates=snakemake.params.covariates,
)
results.to_csv(snakemake.output.table, sep="\t", index=False)
status.to_csv(snakemake.output.status, sep="\t", index=False)
