"""Adapter of rule qc_summary: one table over all samples (plot_qc_summary draws it)."""

import pandas as pd

from csfcart.errors import InputError
from csfcart.logs import setup
from csfcart.tables import write_table_html

setup(snakemake.log[0], snakemake.output, threads=snakemake.threads)
table = pd.concat([pd.read_csv(p, sep="\t") for p in snakemake.input], ignore_index=True)
excluded = table[table["status"] != "ok"]
if len(excluded) and snakemake.params.on_too_few_cells == "fail":
    raise InputError(
        f"qc: sample '{excluded['sample_id'].iloc[0]}': {excluded['reason'].iloc[0]}. "
        "Fix: set qc.on_too_few_cells: exclude, lower qc.min_cells, or remove the sample"
    )
for row in excluded.itertuples():
    print(f"excluded sample {row.sample_id}: {row.reason}")
table.to_csv(snakemake.output.table, sep="\t", index=False)
write_table_html(table, snakemake.output.page, title="QC per sample")
