"""Adapter of rule evaluate_communication: are the planted interactions the top changed ones?"""

import pandas as pd

from csfcart.evaluate import communication_recovery
from csfcart.logs import setup

setup(snakemake.log[0], snakemake.output, threads=snakemake.threads)
measured = pd.read_csv(snakemake.input.measured, sep="\t")
truth = pd.read_csv(snakemake.input.truth, sep="\t")
table = communication_recovery(measured, truth, alpha=snakemake.params.alpha, lineage_of=snakemake.params.lineages)
print(
    f"top {len(table)} changed interactions: {int(table['planted'].sum())} planted (the truth moves "
    f"{table.attrs['n_planted']} of {table.attrs['n_truth']} interactions by >= {table.attrs['min_change']}), "
    f"{int(table['b_microglia_axis'].sum())} between B-lineage and microglia-like cells; "
    f"rank correlation of measured and true change over all interactions: {table.attrs['spearman']:.2f}"
)
table.to_csv(snakemake.output[0], sep="\t", index=False)
