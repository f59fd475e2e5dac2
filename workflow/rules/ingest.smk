# Read each sample's counts (10x mtx v2/v3, 10x h5, h5ad, CSV), one job per sample.
# The per-sample h5ad is temporary: QC reads it once (snakemake --notemp keeps it).


rule ingest:
    input:
        unpack(ingest_input),
    output:
        temp(f"{OUT}/ingest/{{sample}}.h5ad"),
    log:
        f"{OUT}/logs/ingest/{{sample}}.log",
    benchmark:
        f"{OUT}/benchmarks/ingest/{{sample}}.tsv"
    priority: 1
    conda:
        "../../envs/csfcart.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=15,
    params:
        sample=lambda wc: SAMPLES.loc[wc.sample].to_dict(),
        labels="" if SYNTHETIC else CONFIG["annotation"]["labels"],
    script:
        "../scripts/ingest.py"
