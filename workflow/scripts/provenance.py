"""Adapter of rule provenance: the effective config, the validated sheet, versions, commit."""

import pandas as pd

from csfcart.logs import setup
from csfcart.provenance import write_provenance

setup(snakemake.log[0], snakemake.output, threads=snakemake.threads)
write_provenance(
    snakemake.params.config,
    pd.DataFrame(snakemake.params.samples),
    snakemake.params.basedir,
    config_out=snakemake.output.config,
    samples_out=snakemake.output.samples,
    versions_out=snakemake.output.versions,
    workflow_out=snakemake.output.workflow,
    page_out=snakemake.output.page,
)
