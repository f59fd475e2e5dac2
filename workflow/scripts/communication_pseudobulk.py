"""Adapter of rule communication_pseudobulk: LIANA's multi-sample route on the pseudobulk DE."""

import pandas as pd

from csfcart.communication import pseudobulk_interactions, resource_genes
from csfcart.io import read_cells, read_obs, read_var
from csfcart.logs import setup
from csfcart.tables import write_table_html

setup(snakemake.log[0], snakemake.output, threads=snakemake.threads)
obs = read_obs(snakemake.input.annotated)
# the ligand and receptor genes alone: LIANA reads no other column
genes = resource_genes(read_var(snakemake.input.annotated).index)
csf = read_cells(snakemake.input.annotated, rows=(obs["compartment"].astype(str) == "CSF").to_numpy(), genes=genes)
de = pd.read_csv(snakemake.input.de, sep="\t")
table = pseudobulk_interactions(csf, de)
print(f"{len(table)} interactions over {table['contrast'].nunique()} contrast(s)")
table.to_csv(snakemake.output.table, sep="\t", index=False)
write_table_html(
    table,
    snakemake.output.page,
    title="Communication, pseudobulk route (ligand and receptor DE)",
    empty="No interactions: in no CSF contrast did two or more cell types have a tested pseudobulk DE "
    "(de/summary.tsv says why each was not tested).",
)
