# Cell-cell communication (LIANA+) per CSF sample, then the paired change per interaction.


rule communication:
    input:
        f"{OUT}/annotated.h5ad",
    output:
        f"{OUT}/communication/{{sample}}.parquet",
    log:
        f"{OUT}/logs/communication/{{sample}}.log",
    benchmark:
        f"{OUT}/benchmarks/communication/{{sample}}.tsv"
    conda:
        "../../envs/csfcart.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, input, attempt: max(3000, 2 * input.size_mb) * attempt,
        runtime=20,
    params:
        min_cells=CONFIG["analysis"].get("min_cells", 10) // 2,
        seed=CONFIG["seed"],
    script:
        "../scripts/communication.py"


rule communication_diff:
    input:
        scores=expand(f"{OUT}/communication/{{sample}}.parquet", sample=CSF_SAMPLES),
        annotated=f"{OUT}/annotated.h5ad",
    output:
        interactions=f"{OUT}/communication/interactions.tsv",
        top_table=report(
            f"{OUT}/communication/top_interactions.tsv",
            caption="../report/communication_table.rst",
            category="Communication",
            labels={"table": "top 200 changed interactions"},
        ),
        axis=f"{OUT}/communication/axis.tsv",
        lines=report(
            f"{OUT}/communication/b_microglia.png",
            caption="../report/communication_lines.rst",
            category="Communication",
            labels={"figure": "B / microglia-like score per patient"},
        ),
        top=report(
            f"{OUT}/communication/top_changes.png",
            caption="../report/communication_top.rst",
            category="Communication",
            labels={"figure": "top changed interactions"},
        ),
        heatmap=report(
            f"{OUT}/communication/sender_receiver.png",
            caption="../report/communication_heatmap.rst",
            category="Communication",
            labels={"figure": "sender x receiver change"},
        ),
    log:
        f"{OUT}/logs/communication_diff.log",
    conda:
        "../../envs/csfcart.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        baseline=BASELINE,
    script:
        "../scripts/communication_diff.py"
