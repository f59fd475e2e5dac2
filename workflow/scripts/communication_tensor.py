"""Adapter of rule communication_tensor: Tensor-cell2cell decomposition of CSF communication."""

import logging

from csfcart.communication import decompose_tensor, factor_changes, interaction_tensor, present_types, read_scores
from csfcart.io import read_obs
from csfcart.logs import setup
from csfcart.measure import sample_meta
from csfcart.tables import write_table_html

setup(snakemake.log[0], snakemake.output, threads=snakemake.threads)
obs = read_obs(snakemake.input.annotated)
meta = sample_meta(obs)
present = present_types(obs, min_cells=snakemake.params.min_cells)
scores = read_scores(snakemake.input.scores)
samples = sorted(set(scores["sample_id"].unique()) & set(meta.index[meta["compartment"] == "CSF"]))
tensor, names = interaction_tensor(scores, samples, present, n_interactions=snakemake.params.interactions)
logging.info("tensor: %s samples x %s interactions x %s x %s cell types", *tensor.shape)
loadings = decompose_tensor(tensor, names, rank=snakemake.params.rank, seed=snakemake.params.seed)
changes = factor_changes(loadings, meta, baseline=snakemake.params.baseline)
loadings.to_csv(snakemake.output.loadings, sep="\t", index=False)
changes.to_csv(snakemake.output.factors, sep="\t", index=False)
write_table_html(changes, snakemake.output.page, title="Tensor factors: paired change of each factor's sample loading")
