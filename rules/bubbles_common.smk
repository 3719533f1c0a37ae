# Spitzer bubbles: constants, wildcard constraints and input functions shared by
# rules/bubbles_data.smk (which includes this file) and rules/bubbles_model.smk.
# A bubble "field" is a Spitzer mosaic area (a GLIMPSE tile code such as 01500+0000, or the
# name of a local mosaic pair), never a HEALPix tile.
from skydetect.io.spitzer import (
    field_center,
    field_name,
    glimpse_filename,
    mipsgal_filename,
)
from skydetect.bubbles.survey import survey_longitudes
from skydetect.io.registry import glimpse_url

BUB = config["bubbles"]
BUB_SOURCE = BUB["source"]
BUBBLE_SPLITS = {
    split: [field_name(lon) for lon in BUB["fields"][split]]
    for split in ("train", "validation", "test")
}
# the whole-plane survey: one detection job per field, merged across fields
BUBBLE_SURVEY = BUB["survey"]
SURVEY_FIELDS = (
    [field_name(lon) for lon in survey_longitudes(BUBBLE_SURVEY["fields"])]
    if BUBBLE_SURVEY["enabled"]
    else []
)
# any 8 µm (+ 24 µm) FITS pair with a WCS, by name (Cygnus X, the LMC, NGC 628, ...)
BUBBLE_MOSAICS = BUB["mosaics"]
BUBBLE_SPLIT_FIELDS = sorted(set(sum(BUBBLE_SPLITS.values(), [])))
# every GLIMPSE field of the run (the mock simulates them all; the catalogue covers them)
BUBBLE_FIELDS = sorted(set(BUBBLE_SPLIT_FIELDS) | set(SURVEY_FIELDS))
# the catalogue the detector trains on (the mock: the volunteers' catalogue of the truth;
# real data: MWP DR2) and the one it is scored against (the mock truth; real data: MWP DR2)
BUBBLE_CATALOG = "results/bubbles/catalog.ecsv"
BUBBLE_TRUTH = (
    "results/bubbles/truth.ecsv" if BUB_SOURCE == "simulate" else BUBBLE_CATALOG
)
BUBBLE_NEG_GROUPS = "results/bubbles/negatives/groups.ecsv"
BUBBLE_NEG_FIGURES = expand(
    "results/bubbles/figures/negatives_group_{cls}.png",
    cls=range(BUB["negatives"]["n_classes"]),
)
GLIMPSE_FIELD = r"\d{5}[+-]\d{4}"


wildcard_constraints:
    field="|".join([GLIMPSE_FIELD, *map(re.escape, BUBBLE_MOSAICS)]),
    spitzer_file=r"(GLM|MPG)_\d{5}[+-]\d{4}_mosaic_(I4|M1)\.fits",
    bubble_split="validation|test",


def bubble_field(field):
    return f"results/bubbles/aligned/{field}.fits"


def bubble_negatives():
    return expand("results/bubbles/negatives/{field}.h5", field=BUBBLE_SPLITS["train"])


def bubble_windows(split):
    return f"results/bubbles/windows/{split}.h5"


def spitzer_mosaics(wildcards):
    """The raw 8 µm and 24 µm mosaics of a GLIMPSE field for the configured source."""
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


def mosaic_pair(wildcards):
    """The 8 µm (and, unless 8 µm-only, 24 µm) files of a named mosaic pair."""
    entry = BUBBLE_MOSAICS[wildcards.field]
    return {"i4": entry["i8"], **({"m1": entry["m24"]} if entry.get("m24") else {})}


def bubble_catalog_inputs(wildcards):
    if BUB_SOURCE == "simulate":
        return {
            "fields": expand(
                "results/bubbles/spitzer/{field}/catalog.ecsv", field=BUBBLE_FIELDS
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
    keys = ("positions_from", "statistics_from", "clear_names_from")
    return {k: sim[k] for k in keys if sim[k]}


def window_catalog(wildcards):
    """Validation windows carry the training catalogue's boxes (model selection sees what
    training sees); test windows the truth's (the evaluation)."""
    return BUBBLE_TRUTH if wildcards.bubble_split == "test" else BUBBLE_CATALOG


def spitzer_download(wildcards):
    """URL, size and checksum of a downloadable bubble file, from the config (URL templates
    bubbles.download.glimpse_url / mipsgal_url) or the registry's published location."""
    dl = BUB["download"]
    name = wildcards.spitzer_file
    field = name.split("_")[1]
    if name.startswith("GLM"):
        template = dl["glimpse_url"]
        url = (
            template.format(file=name)
            if template
            else glimpse_url(DOWNLOAD_REGISTRY, name, field_center(field)[0])
        )
    elif dl["mipsgal_url"]:
        url = dl["mipsgal_url"].format(file=name)
    else:
        raise ValueError(
            f"config key 'bubbles.download.mipsgal_url' is null: MIPSGAL publishes 1-degree "
            f"tiles (config/downloads.yaml, bubbles.mipsgal), not {name} on the GLIMPSE grid; "
            "give a URL template of such mosaics, or use bubbles.source: local"
        )
    entry = dl["files"].get(name, {})
    return {"url": url, "size": entry.get("size"), "sha256": entry.get("sha256")}


# Job memory from the field's size: an aligned field is 8 bytes per pixel (two float32
# bands), and its FITS file about as large. The preprocessing holds the field, its filled
# copy and one smoothed copy (plus masks); ``factor`` field sizes are requested on top of a
# fixed base.
def bubble_field_mem(factor, base=800):
    def mem_mb(wildcards, input):
        return int(base + factor * input.size_mb)

    return mem_mb


def split_fields(wildcards):
    """The aligned fields of bubble split ``wildcards.bubble_split``."""
    return [bubble_field(f) for f in BUBBLE_SPLITS[wildcards.bubble_split]]


def simulate_mem_mb(wildcards):
    """The mock works on float64 copies of the padded 8 µm grid: ~120 bytes per pixel."""
    sim = BUB["simulate"]
    px = sim["width_deg"] * sim["height_deg"] * (3600.0 / sim["pixel_arcsec"]) ** 2
    return int(1000 + 120 * px / 2**20)
