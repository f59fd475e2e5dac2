# Leiden clusters and UMAP on the integrated embedding, marker-based cell types, CAR+ flag.


rule annotate:
    input:
        h5ad=f"{OUT}/integrated.h5ad",
        markers=CONFIG["annotation"]["markers"],
        celltypist_model=(
            CONFIG["annotation"]["celltypist_model"]
            if CONFIG["annotation"]["method"] == "celltypist"
            else []
        ),
    output:
        agreement=f"{OUT}/annotation/agreement.tsv",
        h5ad=f"{OUT}/annotated.h5ad",
        clusters=f"{OUT}/annotation/clusters.tsv",
        relabelled=f"{OUT}/annotation/relabelled.tsv",
        detection=f"{OUT}/annotation/marker_detection.tsv",
        detection_page=report(
            f"{OUT}/annotation/marker_detection.html",
            caption="../report/marker_detection.rst",
            category="3. Cell types",
            labels={"result": "marker genes detected per type and sample (table)"},
        ),
        clusters_page=report(
            f"{OUT}/annotation/clusters.html",
            caption="../report/clusters.rst",
            category="3. Cell types",
            labels={"result": "clusters and their labels (table)"},
        ),
    log:
        f"{OUT}/logs/annotate.log",
    benchmark:
        f"{OUT}/benchmarks/annotate.tsv"
    priority: 10
    conda:
        "../../envs/csfcart.yaml"
    threads: 4
    resources:
        mem_mb=memory("annotate", 6000),
        runtime=60,
    params:
        clustering=CONFIG["clustering"],
        annotation=CONFIG["annotation"],
        car_feature=CONFIG.get("car_feature")
        or (CONFIG.get("simulation") or {}).get("car_feature"),
        seed=CONFIG["seed"],
    script:
        "../scripts/annotate.py"


rule plot_annotation:
    input:
        f"{OUT}/annotated.h5ad",
    output:
        umap=report(
            f"{OUT}/figures/umap.png",
            caption="../report/umap.rst",
            category="3. Cell types",
            labels={"result": "UMAPs by type, time, patient, compartment, CAR"},
        ),
        markers=report(
            f"{OUT}/figures/markers.png",
            caption="../report/markers.rst",
            category="3. Cell types",
            labels={"result": "marker dot plot"},
        ),
    log:
        f"{OUT}/logs/plot_annotation.log",
    benchmark:
        f"{OUT}/benchmarks/plot_annotation.tsv"
    conda:
        "../../envs/csfcart.yaml"
    threads: 1
    resources:
        mem_mb=memory("plot_annotation", 4000),
        runtime=20,
    params:
        markers=CONFIG["annotation"]["markers"],
    script:
        "../scripts/plot_annotation.py"


rule evaluate_annotation:
    input:
        annotated=f"{OUT}/annotated.h5ad",
        qc_cells=expand(f"{OUT}/qc/{{sample}}.cells.tsv.gz", sample=SAMPLES.index),
        truth=f"{OUT}/simulated/truth/cells.tsv.gz",
    output:
        annotation=f"{OUT}/evaluation/annotation.tsv",
        qc=f"{OUT}/evaluation/qc.tsv",
        confusion=f"{OUT}/evaluation/confusion.tsv",
        confusion_page=report(
            f"{OUT}/evaluation/confusion.html",
            caption="../report/confusion.rst",
            category="3. Cell types",
            labels={"result": "labels against the simulated truth (table)"},
        ),
    log:
        f"{OUT}/logs/evaluate_annotation.log",
    benchmark:
        f"{OUT}/benchmarks/evaluate_annotation.tsv"
    conda:
        "../../envs/csfcart.yaml"
    threads: 1
    resources:
        mem_mb=memory("evaluate_annotation", 4000),
        runtime=10,
    params:
        baseline=CONFIG["analysis"]["baseline"],
    script:
        "../scripts/evaluate_annotation.py"


rule plot_integration:
    input:
        h5ad=f"{OUT}/annotated.h5ad",
        info=f"{OUT}/integration.json",
    output:
        table=f"{OUT}/integration/mixing.tsv",
        page=report(
            f"{OUT}/integration/mixing.html",
            caption="../report/integration_table.rst",
            category="2. Integration",
            labels={"result": "mixing per cell type (table)"},
        ),
        figure=report(
            f"{OUT}/integration/mixing.png",
            caption="../report/integration.rst",
            category="2. Integration",
            labels={"result": "training and mixing"},
        ),
    log:
        f"{OUT}/logs/plot_integration.log",
    benchmark:
        f"{OUT}/benchmarks/plot_integration.tsv"
    priority: 5
    conda:
        "../../envs/csfcart.yaml"
    threads: 2
    resources:
        mem_mb=memory("plot_integration", 4000),
        runtime=30,
    params:
        seed=CONFIG["seed"],
    script:
        "../scripts/plot_integration.py"


rule compare_integration:
    input:
        f"{OUT}/annotated.h5ad",
    output:
        table=f"{OUT}/integration/benchmark.tsv",
        page=report(
            f"{OUT}/integration/benchmark.html",
            caption="../report/integration_benchmark.rst",
            category="2. Integration",
            labels={"result": "scib-metrics: scVI vs Harmony (table)"},
        ),
    log:
        f"{OUT}/logs/compare_integration.log",
    benchmark:
        f"{OUT}/benchmarks/compare_integration.tsv"
    conda:
        "../../envs/csfcart.yaml"
    threads: 4
    resources:
        mem_mb=memory("compare_integration", 8000),
        runtime=240,
    params:
        integration=CONFIG["integration"],
        seed=CONFIG["seed"],
    script:
        "../scripts/compare_integration.py"
