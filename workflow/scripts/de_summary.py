"""Adapter of rule de_summary: every cell type's contrasts in one table and a heat map."""

import matplotlib.pyplot as plt
import pandas as pd

from csfcart.de import plot_heatmap
from csfcart.logs import setup

setup(snakemake.log[0])
status = pd.concat([pd.read_csv(p, sep="\t") for p in snakemake.input.status], ignore_index=True)
status.to_csv(snakemake.output.status, sep="\t", index=False)
results = pd.concat([pd.read_csv(p, sep="\t") for p in snakemake.input.tables], ignore_index=True)
fig = plot_heatmap(results)
fig.savefig(snakemake.output.heatmap, dpi=110)
plt.close(fig)
