"""Adapter of rule evaluate_annotation: annotation and QC scored against the truth."""

import pandas as pd

from csfcart.evaluate import annotation_scores, qc_scores
from csfcart.io import read_obs
from csfcart.logs import setup

setup(snakemake.log[0], snakemake.output, threads=snakemake.threads)
truth = pd.read_csv(snakemake.input.truth, sep="\t")
ari, per_type = annotation_scores(read_obs(snakemake.input.annotated), truth, baseline=snakemake.params.baseline)
per_type.insert(0, "accuracy", round(per_type.attrs["accuracy"], 4))
per_type.insert(0, "ari", round(ari, 4))
per_type.to_csv(snakemake.output.annotation, sep="\t", index=False)
cells = pd.concat([pd.read_csv(p, sep="\t") for p in snakemake.input.qc_cells], ignore_index=True)
qc_scores(cells, truth).to_csv(snakemake.output.qc, sep="\t", index=False)
