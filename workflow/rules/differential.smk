# Per-sample measurements and paired, patient-level differential analysis.


rule composition:
    input:
        f"{OUT}/annotated.h5ad",
    output:
        counts=f"{OUT}/composition/counts.tsv",
        changes=f"{OUT}/composition/changes.tsv",
        summary=f"{OUT}/composition/summary.tsv",
        page=report(
            f"{OUT}/composition/summary.html",
            caption="../report/composition_summary.rst",
            category="5. Composition",
            labels={"result": "paired composition changes (table)"},
        ),
    log:
        f"{OUT}/logs/composition.log",
    benchmark:
        f"{OUT}/benchmarks/composition.tsv"
    priority: 10
    conda:
        "../../envs/csfcart.yaml"
    threads: 1
    resources:
        mem_mb=memory("composition", 4000),
        runtime=20,
    params:
        baseline=BASELINE,
        conditions=CONDITIONS,
        reference_condition=CONFIG["reference_condition"],
    script:
        "../scripts/composition.py"


rule plot_composition:
    input:
        counts=rules.composition.output.counts,
    output:
        lines=report(
            f"{OUT}/composition/patients.png",
            caption="../report/composition_lines.rst",
            category="5. Composition",
            labels={"result": "per-patient composition"},
        ),
        stacked=report(
            f"{OUT}/composition/stacked.png",
            caption="../report/composition_stacked.rst",
            category="5. Composition",
            labels={"result": "composition per sample"},
        ),
    log:
        f"{OUT}/logs/plot_composition.log",
    benchmark:
        f"{OUT}/benchmarks/plot_composition.tsv"
    conda:
        "../../envs/csfcart.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        figure="composition",
    script:
        "../scripts/plot_composition.py"


rule car_t:
    input:
        f"{OUT}/annotated.h5ad",
    output:
        table=f"{OUT}/car_t/fractions.tsv",
    log:
        f"{OUT}/logs/car_t.log",
    benchmark:
        f"{OUT}/benchmarks/car_t.tsv"
    priority: 10
    conda:
        "../../envs/csfcart.yaml"
    threads: 1
    resources:
        mem_mb=memory("car_t", 4000),
        runtime=20,
    params:
        lineages=LINEAGE_OF,
    script:
        "../scripts/car_t.py"


rule plot_car_t:
    input:
        table=rules.car_t.output.table,
    output:
        figure=report(
            f"{OUT}/car_t/car_fraction.png",
            caption="../report/car_fraction.rst",
            category="4. CAR-T",
            labels={"result": "CAR+ fraction of T cells"},
        ),
    log:
        f"{OUT}/logs/plot_car_t.log",
    benchmark:
        f"{OUT}/benchmarks/plot_car_t.tsv"
    conda:
        "../../envs/csfcart.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        figure="car_t",
    script:
        "../scripts/plot_car_t.py"


rule pseudobulk:
    input:
        f"{OUT}/annotated.h5ad",
    output:
        f"{OUT}/pseudobulk/cell_types.h5ad",
    log:
        f"{OUT}/logs/pseudobulk.log",
    benchmark:
        f"{OUT}/benchmarks/pseudobulk.tsv"
    priority: 20
    conda:
        "../../envs/csfcart.yaml"
    threads: 1
    resources:
        mem_mb=memory("pseudobulk", 4000),
        runtime=20,
    script:
        "../scripts/pseudobulk.py"


rule programs:
    input:
        f"{OUT}/annotated.h5ad",
    output:
        programs=f"{OUT}/scores/programs.tsv",
        ig=f"{OUT}/scores/asc_immunoglobulin.tsv",
        lr=f"{OUT}/scores/lr_expression.tsv",
    log:
        f"{OUT}/logs/programs.log",
    benchmark:
        f"{OUT}/benchmarks/programs.tsv"
    priority: 10
    conda:
        "../../envs/csfcart.yaml"
    threads: 1
    resources:
        mem_mb=memory("programs", 4000),
        runtime=20,
    params:
        programs=CONFIG["analysis"]["programs"],
        interactions=CONFIG["analysis"]["interactions"],
        markers=CONFIG["annotation"]["markers"],
        min_cells=CONFIG["analysis"]["min_cells"],
        lineages=LINEAGE_OF,
    script:
        "../scripts/programs.py"


rule de:
    input:
        f"{OUT}/pseudobulk/cell_types.h5ad",
    output:
        table=f"{OUT}/de/{{cell_type}}.tsv",
        status=f"{OUT}/de/{{cell_type}}.status.tsv",
    log:
        f"{OUT}/logs/de/{{cell_type}}.log",
    benchmark:
        f"{OUT}/benchmarks/de/{{cell_type}}.tsv"
    priority: 20
    conda:
        "../../envs/csfcart.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        covariates=CONFIG["analysis"]["covariates"],
        baseline=BASELINE,
        min_cells=CONFIG["analysis"]["min_cells"],
        min_counts=CONFIG["analysis"]["min_counts"],
        seed=CONFIG["seed"],
        reference_condition=CONFIG["reference_condition"],
    script:
        "../scripts/de.py"


rule plot_de:
    input:
        tables=expand(rules.de.output.table, cell_type=DE_CELL_TYPES),
        status=expand(rules.de.output.status, cell_type=DE_CELL_TYPES),
    output:
        # one job draws every cell type's volcanoes: a job per cell type cost more to start than to draw
        [
            report(
                f"{OUT}/de/{cell_type}.png",
                caption="../report/volcano.rst",
                category="6. Expression",
                subcategory="Volcano plots",
                labels={"cell type": cell_type},
            )
            for cell_type in DE_CELL_TYPES
        ],
    log:
        f"{OUT}/logs/plot_de.log",
    benchmark:
        f"{OUT}/benchmarks/plot_de.tsv"
    conda:
        "../../envs/csfcart.yaml"
    threads: 2  # figures drawn by as many processes
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        figure="de",
    script:
        "../scripts/plot_de.py"


rule claims:
    input:
        unpack(claims_input),
    output:
        table=f"{OUT}/claims.tsv",
        page=report(
            f"{OUT}/claims.html",
            caption="../report/claims_table.rst",
            category="8. Claims",
            labels={"result": "claims table"},
        ),
        patients=f"{OUT}/claims_patients.tsv",
    log:
        f"{OUT}/logs/claims.log",
    benchmark:
        f"{OUT}/benchmarks/claims.tsv"
    priority: 10
    conda:
        "../../envs/csfcart.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        baseline=BASELINE,
        claims=CLAIMS,
        days=DAYS,
        cells_per_ul=CELLS_PER_UL,
        alpha=CONFIG["analysis"]["alpha"],
        min_patients=CONFIG["analysis"]["min_patients"],
        conditions=CONDITIONS,
        reference_condition=CONFIG["reference_condition"],
        lineages=LINEAGE_OF,
    script:
        "../scripts/claims.py"


rule plot_claims:
    input:
        claims=rules.claims.output.table,
        patients=rules.claims.output.patients,
    output:
        forest=report(
            f"{OUT}/claims.png",
            caption="../report/claims_forest.rst",
            category="8. Claims",
            labels={"result": "forest plot of the claims"},
        ),
        patients_figure=report(
            f"{OUT}/claims_patients.png",
            caption="../report/claims_patients.rst",
            category="8. Claims",
            labels={"result": "per-patient values behind each claim"},
        ),
    log:
        f"{OUT}/logs/plot_claims.log",
    benchmark:
        f"{OUT}/benchmarks/plot_claims.tsv"
    priority: 10
    conda:
        "../../envs/csfcart.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        figure="claims",
    script:
        "../scripts/plot_claims.py"


rule score_claims:
    input:
        claims=rules.claims.output.table,
        truth=f"{OUT}/simulated/truth/claims.tsv",
    output:
        f"{OUT}/evaluation/claims.tsv",
    log:
        f"{OUT}/logs/score_claims.log",
    benchmark:
        f"{OUT}/benchmarks/score_claims.tsv"
    conda:
        "../../envs/csfcart.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/score_claims.py"


rule summary_page:
    input:
        claims=rules.claims.output.table,
        forest=rules.plot_claims.output.forest,
        truth=f"{OUT}/evaluation/claims.tsv" if SYNTHETIC else [],
        workflow=f"{OUT}/provenance/workflow.yaml",
    output:
        f"{OUT}/summary.html",
    log:
        f"{OUT}/logs/summary_page.log",
    benchmark:
        f"{OUT}/benchmarks/summary_page.tsv"
    priority: 10
    conda:
        "../../envs/csfcart.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        dataset=CONFIG["dataset"],
    script:
        "../scripts/summary_page.py"


rule de_summary:
    input:
        tables=expand(rules.de.output.table, cell_type=DE_CELL_TYPES),
        status=expand(rules.de.output.status, cell_type=DE_CELL_TYPES),
    output:
        status=f"{OUT}/de/summary.tsv",
        status_page=report(
            f"{OUT}/de/summary.html",
            caption="../report/de_summary.rst",
            category="6. Expression",
            labels={"result": "contrasts tested (table)"},
        ),
        results=f"{OUT}/de/results.tsv",
        results_page=report(
            f"{OUT}/de/results.html",
            caption="../report/de_results.rst",
            category="6. Expression",
            labels={"result": "differential expression results (table)"},
        ),
    log:
        f"{OUT}/logs/de_summary.log",
    benchmark:
        f"{OUT}/benchmarks/de_summary.tsv"
    conda:
        "../../envs/csfcart.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/de_summary.py"


rule plot_de_summary:
    input:
        results=rules.de_summary.output.results,
    output:
        heatmap=report(
            f"{OUT}/de/heatmap.png",
            caption="../report/de_heatmap.rst",
            category="6. Expression",
            labels={"result": "heat map of top genes"},
        ),
    log:
        f"{OUT}/logs/plot_de_summary.log",
    benchmark:
        f"{OUT}/benchmarks/plot_de_summary.tsv"
    conda:
        "../../envs/csfcart.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        figure="de_summary",
    script:
        "../scripts/plot_de_summary.py"
