"""Adapter of rule de_summary: every cell type's contrasts in one table (plot_de_summary draws the heat map)."""

import pandas as pd

from csfcart.logs import setup
from csfcart.tables import write_table_html

setup(snakemake.log[0], snakemake.output, threads=snakemake.threads)
status = pd.concat([pd.read_csv(p, sep="\t") for p in snakemake.input.status], ignore_index=True)
status.to_csv(snakemake.output.status, sep="\t", index=False)
write_table_html(status, snakemake.output.status_page, title="Pseudobulk contrasts tested")
results = pd.concat([pd.read_csv(p, sep="\t") for p in snakemake.input.tables], ignore_index=True)
if "padj" in results:
    results = results.sort_values(["padj", "pvalue"], na_position="last")
results.to_csv(snakemake.output.results, sep="\t", index=False)
write_table_html(results, snakemake.output.results_page, title="Pseudobulk differential expression, all cell types")
