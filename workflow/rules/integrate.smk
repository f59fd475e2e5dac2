# Merge the QC'd samples, select genes and integrate (scVI by default, or Harmony).
# merged.h5ad and integrated.h5ad are temporary (each is read once, and annotated.h5ad holds
# all integrated.h5ad does; snakemake --notemp keeps them).


rule merge:
    input:
        h5ads=expand(f"{OUT}/qc/{{sample}}.h5ad", sample=SAMPLES.index),
        summary=f"{OUT}/qc/summary.tsv",
    output:
        temp(f"{OUT}/merged.h5ad"),
    log:
        f"{OUT}/logs/merge.log",
    benchmark:
        f"{OUT}/benchmarks/merge.tsv"
    priority: 10
    conda:
        "../../envs/csfcart.yaml"
    threads: 1
    resources:
        mem_mb=memory("merge", 4000),
        runtime=30,
    script:
        "../scripts/merge.py"


rule integrate:
    input:
        f"{OUT}/merged.h5ad",
    output:
        h5ad=temp(f"{OUT}/integrated.h5ad"),
        info=f"{OUT}/integration.json",
    log:
        f"{OUT}/logs/integrate.log",
    benchmark:
        f"{OUT}/benchmarks/integrate.tsv"
    priority: 10
    conda:
        "../../envs/csfcart.yaml"
    threads: 4
    resources:
        mem_mb=memory("integrate", 8000),
        runtime=240,
    params:
        integration=CONFIG["integration"],
        seed=CONFIG["seed"],
    script:
        "../scripts/integrate.py"
