"""Adapter of rule unpack: verify the archive (a hand-placed one too) and extract its files."""

from pathlib import Path

from csfcart.download import unpack
from csfcart.logs import setup

setup(snakemake.log[0], snakemake.output, threads=snakemake.threads)
names = unpack(snakemake.input[0], snakemake.params.raw, required=snakemake.params.required, url=snakemake.params.url,
               sha256=snakemake.params.sha256, size=snakemake.params.size)  # fmt: skip
Path(snakemake.output[0]).write_text("\n".join(names) + "\n")
