# What produced this results folder (effective config after extends: and --config,
# the sample sheet as validated, software versions, workflow version and commit).


rule provenance:
    output:
        config=f"{OUT}/provenance/config.yaml",
        samples=f"{OUT}/provenance/samples.tsv",
        versions=f"{OUT}/provenance/versions.tsv",
        workflow=f"{OUT}/provenance/workflow.yaml",
        page=report(
            f"{OUT}/provenance/index.html",
            caption="../report/provenance.rst",
            category="9. Provenance",
            labels={"result": "what produced these results"},
        ),
    log:
        f"{OUT}/logs/provenance.log",
    benchmark:
        f"{OUT}/benchmarks/provenance.tsv"
    conda:
        "../../envs/csfcart.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        config=CONFIG,
        samples=SAMPLES.to_dict("records"),
        basedir=str(BASE),
    script:
        "../scripts/provenance.py"
