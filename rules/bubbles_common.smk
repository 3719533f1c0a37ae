# Spitzer bubbles: constants, wildcard constraints and input functions shared by
# rules/bubbles_data.smk (issue 7, which includes this file) and rules/bubbles_model.smk.
from skydetect.sky.spitzer import (
    field_center,
    field_name,
    glimpse_filename,
    mipsgal_filename,
)

BUB = config["bubbles"]
BUB_SOURCE = BUB["source"]
BUBBLE_SPLITS = {
    split: [field_name(lon) for lon in BUB["tiles"][split]]
    for split in ("train", "validation", "test")
}
BUBBLE_FIELDS = sorted(set(sum(BUBBLE_SPLITS.values(), [])))
BUBBLE_CATALOG = "results/bubbles/catalog.ecsv"
BUBBLE_NEG_CLASSES = "results/bubbles/negatives/clusters.ecsv"
BUBBLE_NEG_FIGURES = expand(
    "results/bubbles/figures/negatives_class_{cls}.png",
    cls=range(BUB["negatives"]["n_classes"]),
)


wildcard_constraints:
    field=r"\d{5}[+-]\d{4}",
    spitzer_file=r"(GLM|MPG)_\d{5}[+-]\d{4}_mosaic_(I4|M1)\.fits",
    bubble_split="validation|test",


def bubble_tile(field):
    return f"results/bubbles/aligned/{field}.fits"


def bubble_negatives():
    return expand("results/bubbles/negatives/{field}.h5", field=BUBBLE_SPLITS["train"])


def bubble_windows(split):
    return f"results/bubbles/windows/{split}.h5"


def spitzer_mosaics(wildcards):
    """The raw 8 µm and 24 µm mosaics of a field for the configured source."""
    i4, m1 = glimpse_filename(wildcards.field), mipsgal_filename(wildcards.field)
    if BUB_SOURCE == "simulate":
        d = f"results/bubbles/spitzer/{wildcards.field}"
        return {"i4": f"{d}/{i4}", "m1": f"{d}/{m1}"}
    if BUB_SOURCE == "download":
        return {
            "i4": f"results/bubbles/download/{i4}",
            "m1": f"results/bubbles/download/{m1}",
        }
    mosaic_dir = BUB["local"]["mosaic_dir"]
    if not mosaic_dir:
        raise ValueError(
            "config key 'bubbles.local.mosaic_dir' is missing: bubbles.source is 'local'"
        )
    return {"i4": f"{mosaic_dir}/{i4}", "m1": f"{mosaic_dir}/{m1}"}


def bubble_catalog_inputs(wildcards):
    if BUB_SOURCE == "simulate":
        return {
            "truths": expand(
                "results/bubbles/spitzer/{field}/truth.ecsv", field=BUBBLE_FIELDS
            )
        }
    if BUB_SOURCE == "download":
        return {
            "catalog": "results/bubbles/download/mwp_dr2.csv",
            "clear_names": "results/bubbles/download/mwp_dr2_clear.npy",
        }
    for key in ("catalog", "clear_names"):
        if not BUB["local"][key]:
            raise ValueError(
                f"config key 'bubbles.local.{key}' is missing: bubbles.source is 'local'"
            )
    return {
        "catalog": BUB["local"]["catalog"],
        "clear_names": BUB["local"]["clear_names"],
    }


def simulate_positions(wildcards):
    sim = BUB["simulate"]
    return {k: sim[k] for k in ("positions_from", "clear_names_from") if sim[k]}


def spitzer_download(wildcards):
    """URL, size and checksum of a downloadable bubble file, from the config."""
    dl = BUB["download"]
    name = wildcards.spitzer_file
    template = dl["glimpse_url"] if name.startswith("GLM") else dl["mipsgal_url"]
    entry = dl["files"].get(name, {})
    return {
        "url": template.format(file=name),
        "size": entry.get("size"),
        "sha256": entry.get("sha256"),
    }
