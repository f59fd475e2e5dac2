"""Adapter of rule merge: the QC'd samples into one AnnData."""

import pandas as pd

from csfcart.integrate import merge_samples
from csfcart.logs import setup

setup(snakemake.log[0], snakemake.output, threads=snakemake.threads)
merged = merge_samples(snakemake.input.h5ads, pd.read_csv(snakemake.input.summary, sep="\t"))
merged.write_h5ad(snakemake.output[0])
