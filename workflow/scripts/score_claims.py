"""Adapter of rule score_claims: the claims joined with the simulation's truth."""

import pandas as pd

from csfcart.claims import score_against_truth
from csfcart.logs import setup

setup(snakemake.log[0], snakemake.output, threads=snakemake.threads)
claims = pd.read_csv(snakemake.input.claims, sep="\t")
truth = pd.read_csv(snakemake.input.truth, sep="\t")
score_against_truth(claims, truth).to_csv(snakemake.output[0], sep="\t", index=False)
