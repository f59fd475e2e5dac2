"""Adapter of rule programs: program scores per sample and cell type; Ig of ASCs;
ligand-receptor expression of the configured axes."""

import yaml

from csfcart.io import read_cells
from csfcart.logs import setup
from csfcart.measure import asc_immunoglobulin, lr_expression, programs_per_sample
from csfcart.pseudobulk import pseudobulk_file

setup(snakemake.log[0], snakemake.output, threads=snakemake.threads)
adata = read_cells(snakemake.input[0], matrix="layers/counts")
pb = pseudobulk_file(snakemake.input[0])  # per sample and cell type, shared by programs and ligand-receptor expression
with open(snakemake.params.programs) as fh:
    programs = yaml.safe_load(fh)
lineages = snakemake.params.lineages
programs_per_sample(adata, programs, lineage_of=lineages, min_cells=snakemake.params.min_cells, pb=pb).to_csv(
    snakemake.output.programs, sep="\t", index=False
)
asc_immunoglobulin(adata, lineages).to_csv(snakemake.output.ig, sep="\t")
with open(snakemake.params.interactions) as fh:
    axes = yaml.safe_load(fh)
lr_expression(adata, axes, lineage_of=lineages, min_cells=snakemake.params.min_cells, pb=pb).to_csv(
    snakemake.output.lr, sep="\t", index=False
)
