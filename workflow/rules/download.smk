# A public dataset's archive (GEO supplementary files), fetched once, verified and unpacked.

if DOWNLOAD:

    localrules:
        download,
        unpack,

    rule download:
        output:
            archive_path(CONFIG),
        log:
            f"{OUT}/logs/download.log",
        conda:
            "../../envs/csfcart.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=120,
        params:
            url=DOWNLOAD["url"],
            sha256=DOWNLOAD["sha256"],
            size=DOWNLOAD["size"],
        script:
            "../scripts/download.py"

    rule unpack:
        input:
            archive_path(CONFIG),
        output:
            f"{download_dir(CONFIG)}/raw.done",
        log:
            f"{OUT}/logs/unpack.log",
        conda:
            "../../envs/csfcart.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=30,
        params:
            url=DOWNLOAD["url"],
            sha256=DOWNLOAD["sha256"],
            size=DOWNLOAD["size"],
            required=[name for p in SAMPLES["path"] for name in mtx_files(Path(p).name)],
            raw=f"{download_dir(CONFIG)}/raw",
        script:
            "../scripts/unpack.py"
