"""Adapter of rule programs: program scores per sample and cell type; Ig of ASCs;
ligand-receptor expression of the configured axes."""

import yaml

from csfcart.annotate import read_markers
from csfcart.io import read_cells
from csfcart.logs import setup
from csfcart.measure import asc_immunoglobulin, lr_expression, programs_per_sample
from csfcart.pseudobulk import pseudobulk_file

setup(snakemake.log[0], snakemake.output, threads=snakemake.threads)
# counts summed per sample and cell type, one sample's cells at a time: all the programs
# and Ig readouts need, and the ligand-receptor expression's log2 CPM
pb = pseudobulk_file(snakemake.input[0])
lineages = snakemake.params.lineages
with open(snakemake.params.programs) as fh:
    programs = yaml.safe_load(fh)
with open(snakemake.params.interactions) as fh:
    axes = yaml.safe_load(fh)
programs_per_sample(
    pb, programs, lineage_of=lineages, markers=read_markers(snakemake.params.markers),
    min_cells=snakemake.params.min_cells, axes=axes,
).to_csv(snakemake.output.programs, sep="\t", index=False)  # fmt: skip
asc_immunoglobulin(pb, lineages).to_csv(snakemake.output.ig, sep="\t")
# the share of cells detecting each gene needs the cells, of the axes' genes alone
genes = {g for axis in axes.values() for pair in axis["pairs"] for g in pair}
cells = read_cells(snakemake.input[0], matrix="layers/counts", genes=sorted(genes))
lr_expression(cells, axes, lineage_of=lineages, min_cells=snakemake.params.min_cells, pb=pb).to_csv(
    snakemake.output.lr, sep="\t", index=False
)
