# A synthetic cohort with a known truth, made when the dataset has a `simulation:` block.


rule simulate:
    output:
        sheet=f"{OUT}/simulated/samples.tsv",
        truth_cells=f"{OUT}/simulated/truth/cells.tsv.gz",
        truth_claims=f"{OUT}/simulated/truth/claims.tsv",
        truth_samples=f"{OUT}/simulated/truth/samples.tsv",
        truth_interactions=f"{OUT}/simulated/truth/interactions.tsv",
        counts=directory(f"{OUT}/simulated/counts"),
    log:
        f"{OUT}/logs/simulate.log",
    benchmark:
        f"{OUT}/benchmarks/simulate.tsv"
    conda:
        "../../envs/csfcart.yaml"
    threads: 2  # samples drawn side by side (each from its own random stream)
    resources:
        mem_mb=3000,
        runtime=20,
    params:
        simulation=CONFIG.get("simulation"),
        dataset=CONFIG["dataset"],
    script:
        "../scripts/simulate.py"


rule plot_simulation:
    input:
        sheet=rules.simulate.output.sheet,
    output:
        metrics=report(
            f"{OUT}/simulated/figures/cell_metrics.png",
            caption="../report/simulation_metrics.rst",
            category="1. Data and QC",
            subcategory="Simulated cohort",
            labels={"result": "UMIs, genes, MT per cell vs real CSF"},
        ),
        composition=report(
            f"{OUT}/simulated/figures/composition.png",
            caption="../report/simulation_composition.rst",
            category="1. Data and QC",
            subcategory="Simulated cohort",
            labels={"result": "true composition vs real CSF"},
        ),
        summary=f"{OUT}/simulated/figures/summary_by_cell_type.tsv",
    log:
        f"{OUT}/logs/plot_simulation.log",
    benchmark:
        f"{OUT}/benchmarks/plot_simulation.tsv"
    conda:
        "../../envs/csfcart.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/plot_simulation.py"
