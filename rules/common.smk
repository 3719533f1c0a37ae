# Configuration validation, shared constants, input functions and wildcard constraints.
from pathlib import Path

from skydetect.config import validate_config

validate_config(config, Path(workflow.basedir) / "config" / "schema.yaml")


# Every stage appends its final products here; `rule all` asks for them.
FINAL_OUTPUT = []

BANDS = [str(b) for b in config["planck"]["bands"]]
N_TILES = 48  # HEALPix nside 2, RING ordering, 0-based

# Environments (paths relative to this file).
ENV_SKY = "../envs/sky.yaml"
ENV_ML = "../envs/ml.yaml"


wildcard_constraints:
    band="|".join(BANDS),
    tile=r"\d+",
    split="train|validation|test",
    run=r"[A-Za-z0-9_\-]+",
