# Per-sample measurements and paired, patient-level differential analysis.


rule composition:
    input:
        f"{OUT}/annotated.h5ad",
    output:
        counts=f"{OUT}/composition/counts.tsv",
        changes=f"{OUT}/composition/changes.tsv",
        summary=report(
            f"{OUT}/composition/summary.tsv",
            caption="../report/composition_summary.rst",
            category="Composition",
            labels={"table": "paired composition changes"},
        ),
        lines=report(
            f"{OUT}/composition/patients.png",
            caption="../report/composition_lines.rst",
            category="Composition",
            labels={"figure": "per-patient composition"},
        ),
        stacked=report(
            f"{OUT}/composition/stacked.png",
            caption="../report/composition_stacked.rst",
            category="Composition",
            labels={"figure": "composition per sample"},
        ),
    log:
        f"{OUT}/logs/composition.log",
    conda:
        "../../envs/csfcart.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, input, attempt: max(4000, 3 * input.size_mb) * attempt,
        runtime=20,
    params:
        baseline=BASELINE,
    script:
        "../scripts/composition.py"


rule car_t:
    input:
        f"{OUT}/annotated.h5ad",
    output:
        table=f"{OUT}/car_t/fractions.tsv",
        figure=report(
            f"{OUT}/car_t/car_fraction.png",
            caption="../report/car_fraction.rst",
            category="CAR-T",
            labels={"figure": "CAR+ fraction of T cells"},
        ),
    log:
        f"{OUT}/logs/car_t.log",
    conda:
        "../../envs/csfcart.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, input, attempt: max(4000, 3 * input.size_mb) * attempt,
        runtime=20,
    script:
        "../scripts/car_t.py"


rule pseudobulk:
    input:
        f"{OUT}/annotated.h5ad",
    output:
        f"{OUT}/pseudobulk/cell_types.h5ad",
    log:
        f"{OUT}/logs/pseudobulk.log",
    conda:
        "../../envs/csfcart.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, input, attempt: max(4000, 3 * input.size_mb) * attempt,
        runtime=20,
    script:
        "../scripts/pseudobulk.py"


rule programs:
    input:
        f"{OUT}/annotated.h5ad",
    output:
        programs=f"{OUT}/scores/programs.tsv",
        ig=f"{OUT}/scores/asc_immunoglobulin.tsv",
    log:
        f"{OUT}/logs/programs.log",
    conda:
        "../../envs/csfcart.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, input, attempt: max(4000, 3 * input.size_mb) * attempt,
        runtime=20,
    params:
        programs=CONFIG["analysis"]["programs"],
        min_cells=CONFIG["analysis"].get("min_cells", 10),
    script:
        "../scripts/programs.py"


rule de:
    input:
        f"{OUT}/pseudobulk/cell_types.h5ad",
    output:
        table=f"{OUT}/de/{{cell_type}}.tsv",
        status=f"{OUT}/de/{{cell_type}}.status.tsv",
        volcano=report(
            f"{OUT}/de/{{cell_type}}.png",
            caption="../report/volcano.rst",
            category="Expression",
            subcategory="Volcano plots",
            labels={"cell type": "{cell_type}"},
        ),
    log:
        f"{OUT}/logs/de/{{cell_type}}.log",
    benchmark:
        f"{OUT}/benchmarks/de/{{cell_type}}.tsv"
    conda:
        "../../envs/csfcart.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        baseline=BASELINE,
        min_cells=CONFIG["analysis"].get("min_cells", 10),
        min_counts=CONFIG["analysis"].get("min_counts", 1000),
        seed=CONFIG["seed"],
    script:
        "../scripts/de.py"


rule claims:
    input:
        unpack(claims_input),
    output:
        table=report(
            f"{OUT}/claims.tsv",
            caption="../report/claims_table.rst",
            category="Claims",
            labels={"table": "claims"},
        ),
        forest=report(
            f"{OUT}/claims.png",
            caption="../report/claims_forest.rst",
            category="Claims",
            labels={"figure": "forest plot of the claims"},
        ),
    log:
        f"{OUT}/logs/claims.log",
    conda:
        "../../envs/csfcart.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        baseline=BASELINE,
        claims=CLAIMS,
        alpha=CONFIG["analysis"].get("alpha", 0.05),
    script:
        "../scripts/claims.py"


rule score_claims:
    input:
        claims=rules.claims.output.table,
        truth=f"{OUT}/simulated/truth/claims.tsv",
    output:
        f"{OUT}/evaluation/claims.tsv",
    log:
        f"{OUT}/logs/score_claims.log",
    conda:
        "../../envs/csfcart.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/score_claims.py"


rule de_summary:
    input:
        tables=expand(f"{OUT}/de/{{cell_type}}.tsv", cell_type=DE_CELL_TYPES),
        status=expand(f"{OUT}/de/{{cell_type}}.status.tsv", cell_type=DE_CELL_TYPES),
    output:
        status=report(
            f"{OUT}/de/summary.tsv",
            caption="../report/de_summary.rst",
            category="Expression",
            labels={"table": "contrasts tested"},
        ),
        heatmap=report(
            f"{OUT}/de/heatmap.png",
            caption="../report/de_heatmap.rst",
            category="Expression",
            labels={"figure": "heat map of top genes"},
        ),
    log:
        f"{OUT}/logs/de_summary.log",
    conda:
        "../../envs/csfcart.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/de_summary.py"
