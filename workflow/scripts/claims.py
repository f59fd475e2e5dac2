"""Adapter of rule claims: the claims table and per-patient values (plot_claims draws them)."""

import pandas as pd

from csfcart.claims import Measurements, applicable_claims, claim_patients, claims_table
from csfcart.logs import setup
from csfcart.tables import write_table_html

setup(snakemake.log[0], snakemake.output, threads=snakemake.threads)
read = lambda path, **kw: pd.read_csv(path, sep="\t", **kw)  # noqa: E731
m = Measurements(
    counts=read(snakemake.input.counts, index_col=0),
    car=read(snakemake.input.car, index_col=0),
    ig=read(snakemake.input.ig, index_col=0),
    programs=read(snakemake.input.programs),
    communication=read(snakemake.input.communication, index_col=0)
    if "communication" in snakemake.input.keys()
    else None,
    conditions=pd.Series(snakemake.params.conditions, dtype=str) if snakemake.params.conditions else None,
    reference_condition=snakemake.params.reference_condition,
    days=dict(snakemake.params.days) or None,
    cells_per_ul=pd.Series(snakemake.params.cells_per_ul, dtype=float) if snakemake.params.cells_per_ul else None,
    interactions=read(snakemake.input.lr),
    lineages=dict(snakemake.params.lineages),
)
ids = applicable_claims(m.counts, snakemake.params.claims)
claims = claims_table(
    m,
    ids,
    baseline=snakemake.params.baseline,
    alpha=snakemake.params.alpha,
    min_patients=snakemake.params.min_patients,
)
claims.to_csv(snakemake.output.table, sep="\t", index=False)
write_table_html(claims, snakemake.output.page, title="Claims")
patients = claim_patients(m, ids, baseline=snakemake.params.baseline)
patients.to_csv(snakemake.output.patients, sep="\t", index=False)
