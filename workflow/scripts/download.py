"""Adapter of rule download: fetch the archive once, verify it, record it in the lock file."""

from csfcart.download import fetch
from csfcart.logs import setup

setup(snakemake.log[0], snakemake.output, threads=snakemake.threads)
fetch(snakemake.params.url, snakemake.output[0], sha256=snakemake.params.sha256, size=snakemake.params.size)
