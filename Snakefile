# skydetect: galaxy clusters in Planck HFI maps and infrared bubbles in Spitzer mosaics.
# Stages live in rules/<stage>.smk; the library they call lives in src/skydetect/.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "rules/report/workflow.rst"


include: "rules/common.smk"
include: "rules/sky.smk"


rule all:
    input:
        FINAL_OUTPUT,
    default_target: True
