# Per-sample QC (MAD thresholds, doublets, ambient estimate), then a summary.


rule qc:
    input:
        f"{OUT}/ingest/{{sample}}.h5ad",
    output:
        h5ad=f"{OUT}/qc/{{sample}}.h5ad",
        cells=f"{OUT}/qc/{{sample}}.cells.tsv.gz",
        summary=f"{OUT}/qc/{{sample}}.summary.tsv",
    log:
        f"{OUT}/logs/qc/{{sample}}.log",
    benchmark:
        f"{OUT}/benchmarks/qc/{{sample}}.tsv"
    priority: 1
    conda:
        "../../envs/csfcart.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 3000 * attempt,
        runtime=20,
    params:
        qc=CONFIG["qc"],
        seed=CONFIG["seed"],
        car_feature=CONFIG.get("car_feature")
        or (CONFIG.get("simulation") or {}).get("car_feature"),
    script:
        "../scripts/qc.py"


rule plot_qc:
    input:
        cells=expand(f"{OUT}/qc/{{sample}}.cells.tsv.gz", sample=SAMPLES.index),
    output:
        # one job draws every sample's figure: a job per sample cost more to start than to draw
        [
            report(
                f"{OUT}/qc/{sample}.png",
                caption="../report/qc_sample.rst",
                category="1. Data and QC",
                subcategory="Per sample",
                labels={"sample": sample},
            )
            for sample in SAMPLES.index
        ],
    log:
        f"{OUT}/logs/plot_qc.log",
    benchmark:
        f"{OUT}/benchmarks/plot_qc.tsv"
    conda:
        "../../envs/csfcart.yaml"
    threads: 2  # figures drawn by as many processes
    resources:
        mem_mb=2000,
        runtime=lambda wc, input: 10 + len(input.cells) // 20,
    params:
        figure="qc_sample",
    script:
        "../scripts/plot_qc.py"


rule qc_summary:
    input:
        expand(f"{OUT}/qc/{{sample}}.summary.tsv", sample=SAMPLES.index),
    output:
        table=f"{OUT}/qc/summary.tsv",
        page=report(
            f"{OUT}/qc/summary.html",
            caption="../report/qc_summary_table.rst",
            category="1. Data and QC",
            subcategory="Cohort",
            labels={"result": "QC per sample (table)"},
        ),
    log:
        f"{OUT}/logs/qc_summary.log",
    benchmark:
        f"{OUT}/benchmarks/qc_summary.tsv"
    priority: 10
    conda:
        "../../envs/csfcart.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        on_too_few_cells=CONFIG["qc"]["on_too_few_cells"],
    script:
        "../scripts/qc_summary.py"


rule plot_qc_summary:
    input:
        table=rules.qc_summary.output.table,
    output:
        figure=report(
            f"{OUT}/qc/summary.png",
            caption="../report/qc_summary.rst",
            category="1. Data and QC",
            subcategory="Cohort",
            labels={"result": "cells kept per sample"},
        ),
    log:
        f"{OUT}/logs/plot_qc_summary.log",
    benchmark:
        f"{OUT}/benchmarks/plot_qc_summary.tsv"
    conda:
        "../../envs/csfcart.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        figure="qc_summary",
    script:
        "../scripts/plot_qc_summary.py"
