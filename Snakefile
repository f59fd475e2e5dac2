# csfcart: CSF and blood single-cell RNA-seq after B-cell-depleting CAR-T therapy.
# The default config runs a synthetic CSF cohort end to end; see README.md.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/qc.smk"
include: "workflow/rules/integrate.smk"
include: "workflow/rules/annotate.smk"
include: "workflow/rules/differential.smk"
include: "workflow/rules/communication.smk"
include: "workflow/rules/provenance.smk"


localrules:
    all,
    qc_summary,
    evaluate_annotation,
    claims,
    score_claims,
    de_summary,
    summary_page,
    evaluate_communication,
    provenance,


rule all:
    input:
        all_targets(),
