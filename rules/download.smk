# Verified downloads (issue 2): one generic rule keyed by file name.
#
# DOWNLOADS (skydetect.io.download.DownloadTable) maps a file name under results/download/ to
# {url, size, sha256}. It is filled here from config["planck"]["download"] (per band, and per
# catalogue under `catalogs`); later rules files may register their own files (e.g. Spitzer
# tiles) with DOWNLOADS.add({...}) - the rule looks the table up when a job is created, after
# every rules file was read. Input functions for later stages:
#   downloaded_map(band)    -> "results/download/<PR3 file name>"
#   downloaded_catalog(name) -> "results/download/<file name>"  (psz2, mcxc, redmapper, sources)
from skydetect.io.download import DownloadTable
from skydetect.sky.instrument import CHANNELS

DOWNLOADS = DownloadTable.from_config(
    config["planck"]["download"], {band: ch.filename for band, ch in CHANNELS.items()}
)
downloaded_map = DOWNLOADS.map_path
downloaded_catalog = DOWNLOADS.catalog_path


# Runs where the workflow was started (the login node on a cluster: compute nodes are often
# offline). The transfer streams to <file>.part, resumes, and is renamed only once verified.
rule download_file:
    output:
        "results/download/{filename}",
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
        url=lambda wc: DOWNLOADS.entry(wc.filename)["url"],
        size=lambda wc: DOWNLOADS.entry(wc.filename)["size"],
        sha256=lambda wc: DOWNLOADS.entry(wc.filename)["sha256"],
        retries=config["planck"]["download"]["retries"],
        timeout=config["planck"]["download"]["timeout"],
    script:
        "../scripts/download_file.py"
