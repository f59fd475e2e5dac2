"""Adapter of rule evaluate_annotation: annotation and QC scored against the truth."""

import pandas as pd

from csfcart.evaluate import annotation_scores, confusion, qc_scores
from csfcart.io import read_obs
from csfcart.logs import setup
from csfcart.tables import write_table_html

setup(snakemake.log[0], snakemake.output, threads=snakemake.threads)
truth = pd.read_csv(snakemake.input.truth, sep="\t")
obs = read_obs(snakemake.input.annotated)
ari, per_type = annotation_scores(obs, truth, baseline=snakemake.params.baseline)
table = confusion(obs, truth, baseline=snakemake.params.baseline)
table.to_csv(snakemake.output.confusion, sep="\t", index=False)
write_table_html(
    table,
    snakemake.output.confusion_page,
    title="Cell labels against the simulated truth",
    note="cells per called type and true type, at baseline and after infusion (post); the diagonal is right",
)
per_type.insert(0, "accuracy", round(per_type.attrs["accuracy"], 4))
per_type.insert(0, "ari", round(ari, 4))
per_type.to_csv(snakemake.output.annotation, sep="\t", index=False)
cells = pd.concat([pd.read_csv(p, sep="\t") for p in snakemake.input.qc_cells], ignore_index=True)
qc_scores(cells, truth).to_csv(snakemake.output.qc, sep="\t", index=False)
