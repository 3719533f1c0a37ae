# Spitzer bubbles: every path, and the constants and input functions shared by
# rules/bubbles_data.smk (which includes this file) and rules/bubbles_model.smk (their
# wildcard constraints are in rules/common.smk). A bubble "field" is a Spitzer mosaic area
# (a GLIMPSE tile code such as 01500+0000, or the name of a local mosaic pair), never a
# HEALPix tile.
from skydetect.io.spitzer import (
    MIPSGAL_TILE_RE,
    field_center,
    field_name,
    glimpse_filename,
    mipsgal_filename,
    mipsgal_tiles,
)
from skydetect.bubbles.scales import check_config_scales
from skydetect.bubbles.survey import survey_longitudes
from skydetect.io.registry import glimpse_url, mipsgal_url

# --------------------------------------------------------------------------- bubbles paths
# Every file of the bubble stages, as the paths of rules/common.smk: path patterns whose
# {wildcards} a rule keeps or fills (expand, fill); {field} a bubble field, {brun} the bubble
# run (bubbles.train.run). Rules ask for these and spell no results/ path themselves.
BUBBLE_PATHS = SimpleNamespace(
    # data side: the mock's mosaics of a field, their truth and volunteers' catalogue
    mock_i4="results/bubbles/spitzer/{field}/GLM_{field}_mosaic_I4.fits",
    mock_m1="results/bubbles/spitzer/{field}/MPG_{field}_mosaic_M1.fits",
    mock_truth="results/bubbles/spitzer/{field}/truth.ecsv",
    mock_catalog="results/bubbles/spitzer/{field}/catalog.ecsv",
    # verified downloads: GLIMPSE / MIPSGAL mosaics and MWP DR2
    download="results/bubbles/download/{spitzer_file}",
    mwp_catalog="results/bubbles/download/mwp_dr2.csv",
    mwp_clear_names="results/bubbles/download/mwp_dr2_clear.npy",
    catalog="results/bubbles/catalog.ecsv",  # what training reads
    truth="results/bubbles/truth.ecsv",  # the mock's truth of every field
    aligned="results/bubbles/aligned/{field}.fits",  # both bands on the 8 µm grid
    masked="results/bubbles/masked/{field}.fits",
    negatives="results/bubbles/negatives/{field}.h5",
    negative_groups="results/bubbles/negatives/groups.ecsv",
    negative_figure="results/bubbles/figures/negatives_group_{group}.png",
    windows="results/bubbles/windows/{bubble_split}.h5",  # validation / test windows
    field_figure="results/bubbles/figures/field_{field}.png",
    # model side: the optuna study (a trial file per worker), the SSD, its detections
    tune_trials="results/bubbles/tuning/{brun}/worker_{worker}.json",
    tune_trial_dir="results/bubbles/tuning/{brun}/trials_{worker}",
    tune_study="results/bubbles/tuning/{brun}/study.journal",
    tune_best="results/bubbles/tuning/{brun}/best_params.json",
    model="results/bubbles/models/{brun}/model.json",
    weights="results/bubbles/models/{brun}/weights.h5",
    history="results/bubbles/models/{brun}/history.csv",
    learning_curve="results/bubbles/models/{brun}/learning_curve.png",
    detections="results/bubbles/detections/{brun}/{field}.ecsv",
    detections_csv="results/bubbles/detections/{brun}/{field}.csv",
    detection_figure="results/bubbles/figures/detections_{brun}_{field}.png",
    # the whole-plane survey catalogue, the test fields' scores, the injection recall
    survey="results/bubbles/survey/{brun}/catalog.fits",
    survey_csv="results/bubbles/survey/{brun}/catalog.csv",
    survey_counts="results/bubbles/survey/{brun}/counts.txt",
    survey_figure="results/bubbles/survey/{brun}/detections_along_l.png",
    evaluation="results/bubbles/evaluation/{brun}/summary.json",
    evaluation_table="results/bubbles/evaluation/{brun}/summary.txt",
    injections="results/bubbles/injection/{brun}/{field}/injections.ecsv",
    injection_truth="results/bubbles/injection/{brun}/{field}/truth.ecsv",
    recall="results/bubbles/evaluation/{brun}/injection.ecsv",
    recall_figure="results/bubbles/evaluation/{brun}/injection.png",
)


# --------------------------------------------------------------------------- settings
BUB_SOURCE = BUB["source"]  # BUB: config["bubbles"] (rules/common.smk)
# the window sides of the source (given, or from its bubble size range): every bubble size
# the config can produce must appear in some sliding window at a scale the training crops
# cover; given sides failing that stop here, naming the uncovered sizes
BUB["windows"]["sizes_arcmin"] = check_config_scales(
    BUB, check="bubbles" in config["detectors"]
)
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
# BUBBLE_MOSAICS (rules/common.smk): any 8 µm (+ 24 µm) FITS pair with a WCS, by name
# (Cygnus X, the LMC, NGC 628, ...)
BUBBLE_SPLIT_FIELDS = sorted(set(sum(BUBBLE_SPLITS.values(), [])))
# every GLIMPSE field of the run (the mock simulates them all; the catalogue covers them)
BUBBLE_FIELDS = sorted(set(BUBBLE_SPLIT_FIELDS) | set(SURVEY_FIELDS))
# the catalogue the detector trains on (BUBBLE_PATHS.catalog; the mock: the volunteers'
# catalogue of the truth; real data: MWP DR2) and the one it is scored against, BUBBLE_TRUTH
# (the mock truth; real data: MWP DR2)
BUBBLE_TRUTH = BUBBLE_PATHS.truth if BUB_SOURCE == "simulate" else BUBBLE_PATHS.catalog
# the negatives of the training fields and the figures of their k-means groups
BUBBLE_TRAIN_NEGATIVES = expand(BUBBLE_PATHS.negatives, field=BUBBLE_SPLITS["train"])
BUBBLE_NEG_FIGURES = expand(
    BUBBLE_PATHS.negative_figure, group=range(BUB["negatives"]["n_groups"])
)
# the bubble run, and the fields it detects on (bubbles.detect.splits) besides the survey's
# and the named mosaics
BUBBLE_RUN = BUB["train"]["run"]
BUBBLE_DETECT_FIELDS = sorted(
    {f for split in BUB["detect"]["splits"] for f in BUBBLE_SPLITS[split]}
)


def spitzer_mosaics(wildcards):
    """The raw 8 µm and 24 µm mosaics of a GLIMPSE field for the configured source: one 24 µm
    mosaic on the GLIMPSE grid, or the MIPSGAL 1° tiles under the field (download without
    bubbles.download.mipsgal_url; local without MPG_<field>_mosaic_M1.fits), mosaicked onto
    the 8 µm grid by align_spitzer_field."""
    i4, m1 = glimpse_filename(wildcards.field), mipsgal_filename(wildcards.field)
    if BUB_SOURCE == "simulate":
        return {
            "i4": fill(BUBBLE_PATHS.mock_i4, field=wildcards.field),
            "m1": fill(BUBBLE_PATHS.mock_m1, field=wildcards.field),
        }
    if BUB_SOURCE == "download":
        downloaded = BUBBLE_PATHS.download
        if BUB["download"]["mipsgal_url"]:
            m1 = fill(downloaded, spitzer_file=m1)
        else:
            m1 = expand(downloaded, spitzer_file=mipsgal_tiles(wildcards.field))
        return {"i4": fill(downloaded, spitzer_file=i4), "m1": m1}
    mosaic_dir = BUB["local"]["mosaic_dir"]
    if not mosaic_dir:
        raise ValueError(
            "config key 'bubbles.local.mosaic_dir' is missing: bubbles.source is 'local'"
        )
    tiles = [
        f"{mosaic_dir}/{t}"
        for t in mipsgal_tiles(wildcards.field)
        if os.path.exists(f"{mosaic_dir}/{t}")
    ]
    if tiles and not os.path.exists(f"{mosaic_dir}/{m1}"):
        return {"i4": f"{mosaic_dir}/{i4}", "m1": tiles}
    return {"i4": f"{mosaic_dir}/{i4}", "m1": f"{mosaic_dir}/{m1}"}


def mosaic_pair(wildcards):
    """The 8 µm (and, unless 8 µm-only, 24 µm) files of a named mosaic pair."""
    entry = BUBBLE_MOSAICS[wildcards.field]
    return {"i4": entry["i8"], **({"m1": entry["m24"]} if entry.get("m24") else {})}


def bubble_catalog_inputs(wildcards):
    if BUB_SOURCE == "simulate":
        return {"fields": expand(BUBBLE_PATHS.mock_catalog, field=BUBBLE_FIELDS)}
    if BUB_SOURCE == "download":
        return {
            "catalog": BUBBLE_PATHS.mwp_catalog,
            "clear_names": BUBBLE_PATHS.mwp_clear_names,
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
    return BUBBLE_TRUTH if wildcards.bubble_split == "test" else BUBBLE_PATHS.catalog


def spitzer_download(wildcards):
    """URL, size and checksum of a downloadable bubble file, from the config (URL templates
    bubbles.download.glimpse_url / mipsgal_url) or the registry's published location."""
    dl = BUB["download"]
    name = wildcards.spitzer_file
    if name.startswith("GLM"):
        field = name.split("_")[1]
        template = dl["glimpse_url"]
        url = (
            template.format(file=name)
            if template
            else glimpse_url(DOWNLOAD_REGISTRY, name, field_center(field)[0])
        )
    elif MIPSGAL_TILE_RE.match(name):
        url = mipsgal_url(DOWNLOAD_REGISTRY, name)  # a published 1° tile
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
    return expand(BUBBLE_PATHS.aligned, field=BUBBLE_SPLITS[wildcards.bubble_split])


def simulate_mem_mb(wildcards):
    """The mock works on float64 copies of the padded 8 µm grid: ~120 bytes per pixel."""
    sim = BUB["simulate"]
    px = sim["width_deg"] * sim["height_deg"] * (3600.0 / sim["pixel_arcsec"]) ** 2
    return int(1000 + 120 * px / 2**20)
