# Configuration validation, shared constants, every path and input function of the Planck and
# cluster stages, and the wildcard constraints. (The bubbles' own constants and input
# functions are in rules/bubbles_common.smk.)
import os
import re
import sys
from types import SimpleNamespace

from snakemake.sourcecache import LocalSourceFile

# This workflow's own files, found from the workflow itself (workflow.basedir is the
# *importing* workflow's when this one is a module): WORKFLOW_SOURCE is the repository root,
# a local directory or, when the Snakefile was loaded from a URL or a git host (a module with
# `snakefile: "https://..."` or `github(...)`, as snakedeploy writes it), that remote source.
WORKFLOW_SOURCE = workflow.current_basedir.join("..")
WORKFLOW_IS_LOCAL = isinstance(WORKFLOW_SOURCE, LocalSourceFile)


def workflow_file(rel):
    """Local path of ``rel`` (relative to the repository root): the file itself in a local
    checkout, else its copy fetched through Snakemake's source cache."""
    source = WORKFLOW_SOURCE.join(rel)
    if WORKFLOW_IS_LOCAL:
        return os.path.normpath(source.get_path_or_uri(secret_free=False))
    return workflow.sourcecache.get_path(source)


def workflow_library():
    """Directory holding this workflow's library (the skydetect package of src/).

    In a local checkout, src/ itself. Loaded from a remote source, every file that
    src/skydetect.files lists is fetched through the source cache, which keeps the paths
    below src/; PYTHONPATH then carries that copy to the jobs' scripts (their
    `snakemake.scriptdir` is a URL there).
    """
    if WORKFLOW_IS_LOCAL:
        return workflow_file("src")
    with open(workflow_file("src/skydetect.files")) as fh:
        listing = fh.read().split()
    fetched = [workflow_file(f"src/{rel}") for rel in listing]
    # .../src of .../src/skydetect/__init__.py
    library = fetched[0][: -len(os.sep + listing[0])]
    # set for the jobs (each job, local or on a cluster node, parses the workflow again and
    # sets it there), not required from the user: hence no envvars: directive
    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ.update(PYTHONPATH=os.pathsep.join([library, *inherited]))
    return library


# The embedded default configuration; a module's `config:` or --configfile replaces or
# extends it.
configfile: workflow_file("config/config.yaml")


# The workflow's library comes first on sys.path, so the workflow always runs the code it
# was written with, installed or not.
sys.path.insert(0, workflow_library())

from skydetect.config import mask_dust_band, unet_run_names, validate_config
from skydetect.io.registry import DownloadTable, fill_downloads, load_registry
from skydetect.sky.instrument import CHANNELS, channel

validate_config(config, workflow_file("config/schema.yaml"))

# The published location of every real file (config/downloads.yaml): with a source
# `download`, it fills each planck.download entry the config does not give. Each download
# records its size and SHA-256 in the lock file, DOWNLOAD_LOCK, and is verified against it.
DOWNLOAD_REGISTRY = load_registry(workflow_file("config/downloads.yaml"))
if config["planck"]["source"] == "download":
    fill_downloads(config, DOWNLOAD_REGISTRY)
DOWNLOAD_LOCK = config["download_lock"]


# Every stage appends its final products here; `rule all` asks for them.
FINAL_OUTPUT = []

PLANCK = config["planck"]
CL = config["clusters"]
BANDS = [str(b) for b in PLANCK["bands"]]
N_TILES = 48  # HEALPix nside 2, RING ordering, 0-based
SIMULATED_SKY = PLANCK["source"] == "simulate"

# Environments (paths relative to the rules files; Snakemake resolves them from there, also
# when this workflow is a module). envs/gpu.yaml: the training rules (TensorFlow + CUDA).
ENV_SKY = "../envs/sky.yaml"
ENV_ML = "../envs/ml.yaml"
ENV_GPU = "../envs/gpu.yaml"

# Config keys that size a job (resources / threads of the rule); they never reach params:, so
# a changed memory request does not rerun a training.
SCHEDULING_KEYS = ("threads", "mem_mb", "runtime", "gpus")


def computing_params(section):
    """A config section without its scheduling keys (what the script computes with)."""
    return {k: v for k, v in section.items() if k not in SCHEDULING_KEYS}


# --------------------------------------------------------------------------- report
# `snakemake --report` gathers the figures and, beside them, the summary tables. To add one,
# wrap the output in report() where it is written, like this
#     table=report(
#         "results/<stage>/<name>.csv",
#         caption="report/<name>.rst",      # rules/report/<name>.rst: what each column means
#         category="Cluster detection",     # the category of the figures it summarises
#         subcategory="{run}",
#     ),
# CSV/TSV files are shown as tables; ECSV, JSON and text files are embedded as files.
# Categories: "Cluster training data", "Cluster model", "Cluster detection",
# "Bubble training data", "Bubble detector".


# --------------------------------------------------------------------------- HEALPix tiles
# Tiles of the test split, and the tiles the detectors (U-Net and MMF) run on: the test
# tiles, or every tile for all-sky inference.
TEST_TILES = sorted(int(t) for t in CL["tiles"]["test"])
VALIDATION_TILES = sorted(int(t) for t in CL["tiles"]["validation"])
TRAIN_TILES = [t for t in range(N_TILES) if t not in VALIDATION_TILES + TEST_TILES]
DETECT_TILES = (
    list(range(N_TILES)) if CL.get("detect", {}).get("all_sky", False) else TEST_TILES
)


# --------------------------------------------------------------------------- runs
# U-Net run names (clusters.train) and the other detectors' run names, which the schema
# refuses as U-Net runs. The {run} wildcard takes only these; rules of the U-Net alone
# (training, inference, detection) take only UNET_RUNS.
UNET_RUNS = unet_run_names(config)
DETECTOR_RUNS = ["mmf", "combined"]


def one_of(names):
    """A wildcard constraint matching exactly one of ``names``."""
    return "|".join(re.escape(str(n)) for n in names)


# --------------------------------------------------------------------------- downloads
# DOWNLOADS (skydetect.io.registry.DownloadTable) maps a file name under results/download/ to
# {url, size, sha256, unpack, member}, from config["planck"]["download"] (per band, per
# catalogue under `catalogs`, per mask under `masks`); rule download_file looks it up when a
# job is created.
DOWNLOADS = DownloadTable.from_config(
    PLANCK["download"], {band: ch.filename for band, ch in CHANNELS.items()}
)


def download_url(wildcards):
    return DOWNLOADS.entry(wildcards.filename)["url"]


def download_size(wildcards):
    return DOWNLOADS.entry(wildcards.filename)["size"]


def download_sha256(wildcards):
    return DOWNLOADS.entry(wildcards.filename)["sha256"]


def download_unpack(wildcards):
    """{"unpack": None | "gzip" | "tar", "member": archive member or None}."""
    entry = DOWNLOADS.entry(wildcards.filename)
    return {"unpack": entry["unpack"], "member": entry["member"]}


# --------------------------------------------------------------------------- Planck sky
CATALOG_NAMES = ("psz2", "mcxc", "redmapper", "sources")
MOCK_CATALOGS = {
    "psz2": "results/sky/catalogs/psz2_union.fits",
    "mcxc": "results/sky/catalogs/mcxc.fits",
    "redmapper": "results/sky/catalogs/redmapper.fits",
    "sources": "results/sky/catalogs/sources.ecsv",
}
TRUTH = "results/sky/truth_clusters.ecsv"  # the mock sky's clusters (simulate only)
# nside of the maps check_map reads (real PR3 maps are 2048)
MAP_NSIDE = int(PLANCK["nside"]) if SIMULATED_SKY else 2048


def mock_map(band):
    return f"results/sky/maps/{channel(band).filename}"


def checked_map(band):
    """RING, float32, GALACTIC map of ``band`` (rule check_map)."""
    return f"results/sky/checked/{band}.fits"


def checked_report(band):
    return f"results/sky/checked/{band}.json"


def raw_map(wildcards):
    """The map file that rule check_map reads for ``wildcards.band`` (planck.source)."""
    band = str(wildcards.band)
    if PLANCK["source"] == "simulate":
        return mock_map(band)
    if PLANCK["source"] == "download":
        return DOWNLOADS.map_path(band)
    path = PLANCK.get("local", {}).get(band)
    if not path:
        raise ValueError(
            f"config key 'planck.local.{band}' is missing: planck.source is 'local', so "
            "every band in planck.bands needs a local map path"
        )
    return path


def planck_catalog_file(name):
    """Catalogue ``name`` (psz2, mcxc, redmapper, sources) of the configured planck.source."""
    if name not in CATALOG_NAMES:
        raise ValueError(
            f"unknown catalogue {name!r}: expected one of {', '.join(CATALOG_NAMES)}"
        )
    if PLANCK["source"] == "simulate":
        return MOCK_CATALOGS[name]
    if PLANCK["source"] == "download":
        return DOWNLOADS.catalog_path(name)
    path = PLANCK.get("local", {}).get("catalogs", {}).get(name)
    if not path:
        raise ValueError(
            f"config key 'planck.local.catalogs.{name}' is missing: planck.source is 'local'"
        )
    return path


def truth_input(wildcards):
    """{"truth": TRUTH} on a simulated sky (completeness is measured), else nothing."""
    return {"truth": TRUTH} if SIMULATED_SKY else {}


# --------------------------------------------------------------------------- masks
# Galactic and point-source masks of rule make_masks, configured by planck.masks. The mock sky
# makes its own from its dust-dominated band and its source catalogue; a real sky takes the
# published Planck HFI masks.
MASKS_CFG = PLANCK["masks"]
SURVEY_MASKS = {
    "galactic": "results/masks/galactic.fits",
    "point_sources": "results/masks/point_sources.fits",
}


def mask_inputs(wildcards):
    """Simulate: {dust: checked map of the dust band, sources}; else the published mask files
    {galactic, point_sources} (downloaded, or planck.local.masks)."""
    if SIMULATED_SKY:
        band = mask_dust_band(config)
        if band is None:
            raise ValueError(
                "config key 'planck.masks.dust_band' is null and planck.bands has no 353, 545 "
                "or 857 GHz band: the mock sky's Galactic mask needs a dust-dominated map"
            )
        return {"dust": checked_map(band), "sources": MOCK_CATALOGS["sources"]}
    if PLANCK["source"] == "download":
        return {name: DOWNLOADS.mask_path(name) for name in SURVEY_MASKS}
    local = PLANCK.get("local", {}).get("masks", {})
    missing = [name for name in SURVEY_MASKS if not local.get(name)]
    if missing:
        raise ValueError(
            f"config key 'planck.local.masks.{missing[0]}' is missing: planck.source is "
            "'local', so the Planck masks need local paths (HFI_Mask_GalPlane-apo0_2048_R2.00"
            ".fits, HFI_Mask_PointSrc_2048_R2.00.fits)"
        )
    return {name: local[name] for name in SURVEY_MASKS}


# --------------------------------------------------------------------------- cluster stages
KNOWN_CATALOGS = list(CL["crossmatch"]["catalogs"])
TRAINING_CATALOG = f"results/catalogs/{CL['catalog']['name']}.ecsv"
SPLIT_TILES = {"train": TRAIN_TILES, "validation": VALIDATION_TILES}
DATASET_PATCHES = {
    "train": expand("results/patches/train/{tile}.h5", tile=TRAIN_TILES),
    "validation": expand("results/patches/validation/{tile}.h5", tile=VALIDATION_TILES),
    "test": expand("results/patches/cover/{tile}.h5", tile=TEST_TILES),
}


def build_catalog_inputs(wildcards):
    """The Planck-sky catalogues that training catalogue ``wildcards.name`` is built from."""
    from skydetect.clusters.catalogs import needed_inputs

    return {k: planck_catalog_file(k) for k in needed_inputs(wildcards.name)}


def split_tiles_of(wildcards):
    return SPLIT_TILES[wildcards.split]


def split_patches(wildcards):
    return DATASET_PATCHES[wildcards.split]


def known_catalogs(wildcards):
    """The known-cluster catalogues (clusters.crossmatch.catalogs) of the configured sky."""
    return {name: planck_catalog_file(name) for name in KNOWN_CATALOGS}


def has_catalog_file(name):
    """Whether the configured sky has a file for known-cluster catalogue ``name`` (the mock
    always, a download when listed, a local file when configured)."""
    if SIMULATED_SKY:
        return True
    if PLANCK["source"] == "download":
        return name in DOWNLOADS.catalogs
    return bool(PLANCK.get("local", {}).get("catalogs", {}).get(name))


# The known-cluster catalogues the published catalogues are matched with (MATCH_PSZ2,
# MATCH_MCXC, MATCH_RM): every one the sky has a file for.
CATALOG_KNOWN = [n for n in ("psz2", "mcxc", "redmapper") if has_catalog_file(n)]


def catalog_known_files(wildcards):
    """{name: file} of CATALOG_KNOWN."""
    return {name: planck_catalog_file(name) for name in CATALOG_KNOWN}


def source_catalogs(wildcards):
    """The IR/radio compact-source catalogues: one file or a list of them, flagged against
    their union (looked up only when a job needs them)."""
    files = planck_catalog_file("sources")
    return [files] if isinstance(files, str) else list(files)


def run_detections(wildcards):
    return expand(
        "results/detections/{run}/{tile}.ecsv", run=wildcards.run, tile=DETECT_TILES
    )


def validation_detections(wildcards):
    """Per-tile detections of run ``wildcards.run`` on the validation tiles (the per-tile
    rules are the test tiles' own: their outputs are named by tile)."""
    return expand(
        "results/detections/{run}/{tile}.ecsv", run=wildcards.run, tile=VALIDATION_TILES
    )


# --------------------------------------------------------------------------- U-Net runs
UNET_RUN_CFG = CL["train"].get("runs") or {r: {} for r in UNET_RUNS}


def unet_train_params(wildcards):
    """clusters.train without the runs mapping and the seed, for run ``wildcards.run``."""
    train = {
        k: v
        for k, v in computing_params(CL["train"]).items()
        if k not in ("runs", "seed")
    }
    return {**train, "run": wildcards.run}


# The U-Net trainings' seed: clusters.train.seed, or the master seed.
TRAIN_SEED = config["seed"] if CL["train"].get("seed") is None else CL["train"]["seed"]


def unet_run_bands(wildcards):
    """Input bands of U-Net run ``wildcards.run`` (clusters.train.runs)."""
    from skydetect.clusters.datasets import run_bands

    return run_bands(UNET_RUN_CFG, wildcards.run, BANDS)


# --------------------------------------------------------------------------- detection
DETECT_CFG = CL["detect"]
XMATCH_CFG = CL["crossmatch"]
EVAL_CFG = CL["evaluate"]
CLUSTER_RUNS = UNET_RUNS + (["mmf"] if CL["mmf"].get("enabled", False) else [])
# The scorecard's rows: every U-Net run, the MMF, and their combination (U-Net run
# clusters.evaluate.combine_run, default the first, merged with the MMF by position).
COMBINE_RUN = EVAL_CFG.get("combine_run") or UNET_RUNS[0]
SCORECARD_DETECTORS = CLUSTER_RUNS + (["combined"] if "mmf" in CLUSTER_RUNS else [])
# Detectors with a published catalogue (rules/catalog.smk): as the scorecard's rows.
CATALOG_RUNS = SCORECARD_DETECTORS
SCORECARD_COMMAND = "snakemake --cores all results/evaluation/scorecard.md"
# Every scorecard threshold is fixed on the validation tiles (rule choose_thresholds) and
# the test tiles are scored once at it; both write per-candidate truth flags.
THRESHOLDS = "results/evaluation/thresholds.json"


def scorecard_params():
    """clusters.evaluate plus the lowest sweep thresholds (the detection thresholds)."""
    return {
        **EVAL_CFG,
        "unet_detect_threshold": DETECT_CFG["threshold"],
        "mmf_snr_threshold": CL["mmf"]["snr_threshold"],
    }


def operating_point(wildcards):
    """(score column, threshold) at which run ``wildcards.run`` is evaluated."""
    if wildcards.run == "mmf":
        return ["SNR", EVAL_CFG["operating_point"]["mmf"]]
    return ["PEAK_PROB", EVAL_CFG["operating_point"]["unet"]]


# --------------------------------------------------------------------------- injections
# The selection function by injection (rules/inject.smk): the detectors whose completeness it
# measures, and the per-run settings of the injection jobs.
INJECT_CFG = CL["inject"]
INJECT_DETECTORS = CLUSTER_RUNS + (["combined"] if "mmf" in CLUSTER_RUNS else [])
INJECT_RUN_BANDS = {run: unet_run_bands(SimpleNamespace(run=run)) for run in UNET_RUNS}
INJECT_OPERATING_POINTS = {
    run: operating_point(SimpleNamespace(run=run)) for run in CLUSTER_RUNS
}


def inject_mask(wildcards):
    """{"mask": [files]}: clusters.inject.mask when given, else the survey's Galactic and
    point-source masks (made by make_masks): injections go where every mask is valid."""
    if INJECT_CFG.get("mask"):
        return {"mask": [INJECT_CFG["mask"]]}
    return {"mask": [SURVEY_MASKS["galactic"], SURVEY_MASKS["point_sources"]]}


def catalog_calibration(wildcards):
    """{"calibration": its P(real) model} where one is fitted (a simulated sky, whose
    validation tiles have a truth; rule calibrate), else nothing (P_REAL NaN)."""
    if not SIMULATED_SKY:
        return {}
    return {"calibration": f"results/models/calibration/{wildcards.run}.json"}


# The fixed thresholds of the selection function: chosen on the validation tiles of a
# simulated sky (rule choose_thresholds); on a real sky, clusters.inject.thresholds_file
# (a thresholds.json chosen on a mock's validation tiles; null: no selection function).
INJECT_THRESHOLDS = THRESHOLDS if SIMULATED_SKY else INJECT_CFG.get("thresholds_file")


wildcard_constraints:
    band=one_of(BANDS),
    tile=r"\d+",
    split="train|validation|test",
    run=one_of(UNET_RUNS + DETECTOR_RUNS),
    detector=one_of(UNET_RUNS + DETECTOR_RUNS),
