# skydetect: galaxy clusters in Planck HFI maps and infrared bubbles in Spitzer mosaics.
# Stages live in rules/<stage>.smk; the library they call lives in src/skydetect/.
from snakemake.utils import min_version

min_version("9.0")


# Every job can run in this image (Dockerfile: the pinned packages of pyproject.toml and the
# workflow): snakemake --cores all --software-deployment-method apptainer (docs/container.md).
containerized: "docker://ghcr.io/skydetect/skydetect:0.3.0"


report: "rules/report/workflow.rst"


# common.smk first: it loads the embedded config/config.yaml, validates the configuration and
# finds the workflow's files, also when this Snakefile is loaded from a URL or a git host.
include: "rules/common.smk"
include: "rules/download.smk"
include: "rules/sky.smk"
include: "rules/masks.smk"
include: "rules/tiles.smk"
include: "rules/dataset.smk"
include: "rules/train.smk"
include: "rules/detect.smk"
include: "rules/mmf.smk"
include: "rules/calibrate.smk"
include: "rules/inject.smk"
include: "rules/catalog.smk"
include: "rules/validation.smk"
include: "rules/bubbles_data.smk"
include: "rules/bubbles_model.smk"


# The final products of the configured detectors (rules/common.smk).
rule all:
    default_target: True
    input:
        final_outputs(),
