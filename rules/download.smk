# Verified downloads: one generic rule keyed by file name. The table of files (DOWNLOADS:
# name -> {url, size, sha256, unpack, member}), the paths (DOWNLOAD_PATHS) and the input
# functions are in rules/common.smk; the published URLs in config/downloads.yaml.


# Runs where the workflow was started (the login node on a cluster: compute nodes are often
# offline). The transfer streams to <file>.part, resumes, and is renamed only once verified
# (size, sha256, FITS CHECKSUM / DATASUM, and the lock file DOWNLOAD_LOCK, in which the first
# download of a file records its SHA-256).
rule download_file:
    output:
        DOWNLOAD_PATHS.file,
    log:
        "logs/download_file/{filename}.log",
    benchmark:
        "benchmarks/rules/download_file/{filename}.tsv"
    wildcard_constraints:
        filename=r"[^/]+",
    localrule: True
    conda:
        ENV_SKY
    threads: 1
    resources:
        mem_mb=500,
        runtime=240,
    params:
        url=download_url,
        size=download_size,
        sha256=download_sha256,
        unpack=download_unpack,
        lock=DOWNLOAD_LOCK,
        retries=PLANCK["download"]["retries"],
        timeout=PLANCK["download"]["timeout"],
    script:
        "../scripts/download_file.py"
