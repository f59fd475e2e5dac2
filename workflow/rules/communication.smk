# Cell-cell communication (LIANA+) of each CSF sample on its own cells (one job, the samples
# shared among its threads), then the paired change per interaction.


rule communication:
    input:
        f"{OUT}/annotated.h5ad",
    output:
        expand(f"{OUT}/communication/{{sample}}.parquet", sample=CSF_SAMPLES),
    log:
        f"{OUT}/logs/communication.log",
    benchmark:
        f"{OUT}/benchmarks/communication.tsv"
    priority: 50
    conda:
        "../../envs/csfcart.yaml"
    threads: 4
    resources:
        mem_mb=memory("communication", 3000, workers=True),
        runtime=lambda wc, attempt: (20 + len(CSF_SAMPLES)) * attempt,
    params:
        samples=CSF_SAMPLES,
        min_cells=CONFIG["analysis"]["min_cells"],
        seed=CONFIG["seed"],
    script:
        "../scripts/communication.py"


rule communication_diff:
    input:
        scores=expand(f"{OUT}/communication/{{sample}}.parquet", sample=CSF_SAMPLES),
        annotated=f"{OUT}/annotated.h5ad",
    output:
        interactions=f"{OUT}/communication/interactions.tsv",
        page=report(
            f"{OUT}/communication/interactions.html",
            caption="../report/communication_table.rst",
            category="7. Communication",
            labels={"result": "changed interactions (table)"},
        ),
        axis=f"{OUT}/communication/axis.tsv",
        pairs=f"{OUT}/communication/pairs.tsv",
        samples=f"{OUT}/communication/samples.tsv",
        pairs_page=report(
            f"{OUT}/communication/pairs.html",
            caption="../report/communication_pairs.rst",
            category="7. Communication",
            labels={"result": "sender-receiver pairs (table)"},
        ),
    log:
        f"{OUT}/logs/communication_diff.log",
    benchmark:
        f"{OUT}/benchmarks/communication_diff.tsv"
    priority: 10
    conda:
        "../../envs/csfcart.yaml"
    threads: 1
    resources:
        mem_mb=scores_memory("communication_diff", 4000),
        runtime=20,
    params:
        baseline=BASELINE,
        min_cells=CONFIG["analysis"]["min_cells"],
        conditions=CONDITIONS,
        reference_condition=CONFIG["reference_condition"],
        lineages=LINEAGE_OF,
    script:
        "../scripts/communication_diff.py"


rule plot_communication:
    input:
        axis=rules.communication_diff.output.axis,
        interactions=rules.communication_diff.output.interactions,
        pairs=rules.communication_diff.output.pairs,
        samples=rules.communication_diff.output.samples,
    output:
        lines=report(
            f"{OUT}/communication/b_microglia.png",
            caption="../report/communication_lines.rst",
            category="7. Communication",
            labels={"result": "B / microglia-like score per patient"},
        ),
        top=report(
            f"{OUT}/communication/top_changes.png",
            caption="../report/communication_top.rst",
            category="7. Communication",
            labels={"result": "top changed interactions"},
        ),
        heatmap=report(
            f"{OUT}/communication/sender_receiver.png",
            caption="../report/communication_heatmap.rst",
            category="7. Communication",
            labels={"result": "sender x receiver change"},
        ),
    log:
        f"{OUT}/logs/plot_communication.log",
    benchmark:
        f"{OUT}/benchmarks/plot_communication.tsv"
    conda:
        "../../envs/csfcart.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        figure="communication",
    script:
        "../scripts/plot_communication.py"


rule communication_tensor:
    input:
        scores=expand(f"{OUT}/communication/{{sample}}.parquet", sample=CSF_SAMPLES),
        annotated=f"{OUT}/annotated.h5ad",
    output:
        loadings=f"{OUT}/communication/tensor_loadings.tsv",
        factors=f"{OUT}/communication/tensor_factors.tsv",
        page=report(
            f"{OUT}/communication/tensor_factors.html",
            caption="../report/communication_tensor_table.rst",
            category="7. Communication",
            labels={"result": "tensor factors (table)"},
        ),
    log:
        f"{OUT}/logs/communication_tensor.log",
    benchmark:
        f"{OUT}/benchmarks/communication_tensor.tsv"
    priority: 10
    conda:
        "../../envs/csfcart.yaml"
    threads: 1
    resources:
        mem_mb=scores_memory("communication_tensor", 4000),
        runtime=60,
    params:
        baseline=BASELINE,
        min_cells=CONFIG["analysis"]["min_cells"],
        rank=CONFIG["analysis"]["tensor_rank"],
        interactions=CONFIG["analysis"]["tensor_interactions"],
        seed=CONFIG["seed"],
    script:
        "../scripts/communication_tensor.py"


rule plot_tensor:
    input:
        loadings=rules.communication_tensor.output.loadings,
        factors=rules.communication_tensor.output.factors,
        samples=rules.communication_diff.output.samples,
    output:
        figure=report(
            f"{OUT}/communication/tensor.png",
            caption="../report/communication_tensor.rst",
            category="7. Communication",
            labels={"result": "tensor decomposition"},
        ),
    log:
        f"{OUT}/logs/plot_tensor.log",
    benchmark:
        f"{OUT}/benchmarks/plot_tensor.tsv"
    conda:
        "../../envs/csfcart.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        figure="tensor",
    script:
        "../scripts/plot_tensor.py"


rule communication_pseudobulk:
    input:
        annotated=f"{OUT}/annotated.h5ad",
        de=f"{OUT}/de/results.tsv",
    output:
        table=f"{OUT}/communication/pseudobulk.tsv",
        page=report(
            f"{OUT}/communication/pseudobulk.html",
            caption="../report/communication_pseudobulk.rst",
            category="7. Communication",
            labels={"result": "pseudobulk route (table)"},
        ),
    log:
        f"{OUT}/logs/communication_pseudobulk.log",
    benchmark:
        f"{OUT}/benchmarks/communication_pseudobulk.tsv"
    priority: 10
    conda:
        "../../envs/csfcart.yaml"
    threads: 1
    resources:
        mem_mb=memory("communication_pseudobulk", 4000),
        runtime=30,
    script:
        "../scripts/communication_pseudobulk.py"


rule evaluate_communication:
    input:
        measured=f"{OUT}/communication/interactions.tsv",
        truth=f"{OUT}/simulated/truth/interactions.tsv",
    output:
        f"{OUT}/evaluation/communication.tsv",
    log:
        f"{OUT}/logs/evaluate_communication.log",
    benchmark:
        f"{OUT}/benchmarks/evaluate_communication.tsv"
    conda:
        "../../envs/csfcart.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    params:
        alpha=CONFIG["analysis"]["alpha"],
        lineages=LINEAGE_OF,
    script:
        "../scripts/evaluate_communication.py"
