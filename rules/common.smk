# Configuration validation, shared constants, every path and input function of the Planck and
# cluster stages, the default target list (final_outputs) and every global wildcard
# constraint. (The bubbles' own paths, constants and input functions are in
# rules/bubbles_common.smk.)
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
    # beside src/: the library's defaults (skydetect.schema)
    workflow_file("config/schema.yaml")
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


PLANCK = config["planck"]
CL = config["clusters"]
BUB = config["bubbles"]
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

# Job priorities, for few cores: the jobs that feed a training start ahead of inference and
# plots (priority 0), which fill the cores around the trainings. Snakemake weighs the sum of
# the priorities of the jobs it starts together: the mock sky (two threads) outranks two
# one-core jobs, and the bubble SSD with one U-Net (15 + 10) outranks the two U-Nets (10 + 10),
# so the SSD trains beside the first U-Net and the second follows on the core the first frees.
# Measured: docs/performance.md, "The default run".
PRIORITY = SimpleNamespace(mock_sky=50, bubble_training=15, cluster_training=10)


def computing_params(section):
    """A config section without its scheduling keys (what the script computes with)."""
    return {k: v for k, v in section.items() if k not in SCHEDULING_KEYS}


# --------------------------------------------------------------------------- paths
# Every file of the Planck and cluster stages, one namespace per stage: each attribute is a
# path pattern whose {wildcards} a rule keeps or fills (expand, or fill for one value). Rules
# ask for these and spell no results/ path themselves; logs and benchmarks stay beside their
# one rule. The bubbles' paths: BUBBLE_PATHS in rules/bubbles_common.smk.
def fill(pattern, **values):
    """``pattern`` with the wildcards of ``values`` filled in, the others left open."""
    (path,) = expand(pattern, allow_missing=True, **values)
    return path


def fill_each(patterns, wildcard, values):
    """Every pattern of ``patterns`` filled with each of ``values`` of ``wildcard`` in turn
    (the files of one value together), the other wildcards left open."""
    return [fill(pattern, **{wildcard: v}) for v in values for pattern in patterns]


DOWNLOAD_PATHS = SimpleNamespace(directory="results/download")
# a verified download (table DOWNLOADS below): planck.download
DOWNLOAD_PATHS.file = f"{DOWNLOAD_PATHS.directory}/{{filename}}"

SKY_PATHS = SimpleNamespace(
    # the mock sky (simulate only): maps in the PR3 layout ({filename}: the band's PR3 file
    # name, mock_map(band)), its clusters and its catalogues
    mock_map="results/sky/maps/{filename}",
    truth="results/sky/truth_clusters.ecsv",
    mock_catalogs={
        "psz2": "results/sky/catalogs/psz2_union.fits",
        "mcxc": "results/sky/catalogs/mcxc.fits",
        "redmapper": "results/sky/catalogs/redmapper.fits",
        "sources": "results/sky/catalogs/sources.ecsv",
    },
    summary="results/sky/sky_summary.json",
    # RING, float32, GALACTIC map of a band and its check report (rule check_map)
    checked_map="results/sky/checked/{band}.fits",
    checked_report="results/sky/checked/{band}.json",
)

MASK_PATHS = SimpleNamespace(
    galactic="results/masks/galactic.fits",
    point_sources="results/masks/point_sources.fits",
)

TILE_PATHS = SimpleNamespace(tile="results/tiles/{tile}.h5")

DATASET_PATHS = SimpleNamespace(
    catalog="results/catalogs/{name}.ecsv",  # a training catalogue (clusters.catalog.name)
    patches="results/patches/{split}/{tile}.h5",  # train / validation patches of a tile
    cover="results/patches/cover/{tile}.h5",  # the cover grid of a tile (the detectors')
    normalisation="results/datasets/normalisation.json",
    dataset="results/datasets/{split}.h5",
    examples="results/datasets/{split}_examples.png",
)

TRAIN_PATHS = SimpleNamespace(
    run_dataset="results/datasets/{run}/{split}.h5",  # a split in a U-Net run's bands
    model="results/models/{run}/model.json",
    weights="results/models/{run}/weights.h5",
    history="results/models/{run}/history.csv",
    learning_curve="results/models/{run}/learning_curve.png",
)

# {run}: a detector (U-Net run, mmf, combined); the test tiles' candidates and their scores
DETECT_PATHS = SimpleNamespace(
    prediction="results/predictions/{run}/{tile}.h5",
    detections="results/detections/{run}/{tile}.ecsv",
    candidates="results/candidates/{run}.fits",
    candidates_csv="results/candidates/{run}.csv",
    summary="results/evaluation/{run}/summary.json",
    completeness="results/evaluation/{run}/completeness.csv",
    truth_matched="results/evaluation/{run}/truth_matched.ecsv",
    completeness_figure="results/evaluation/{run}/completeness.png",
    sky_map="results/evaluation/{run}/sky_map.png",
    patches_figure="results/evaluation/{run}/patches.png",
    comparison="results/evaluation/comparison.csv",
    comparison_figure="results/evaluation/comparison.png",
    matched_candidates="results/evaluation/{run}/matched_candidates.ecsv",
    scorecard="results/evaluation/scorecard.ecsv",
    scorecard_markdown="results/evaluation/scorecard.md",
    purity_completeness="results/evaluation/purity_completeness.ecsv",
    purity_completeness_figure="results/evaluation/purity_completeness.png",
    completeness_mass_z="results/evaluation/completeness_mass_z.png",
)

# the validation tiles' candidates, and the thresholds fixed on them (rule choose_thresholds)
VALIDATION_PATHS = SimpleNamespace(
    candidates="results/validation/candidates/{run}.fits",
    candidates_csv="results/validation/candidates/{run}.csv",
    matched_candidates="results/validation/evaluation/{run}/matched_candidates.ecsv",
    thresholds="results/evaluation/thresholds.json",
)

# the matched filter's detections follow the U-Net's contract as run `mmf`
MMF_PATHS = SimpleNamespace(
    detections=fill(DETECT_PATHS.detections, run="mmf"),
    snr="results/mmf/{tile}.h5",
    snr_figure="results/mmf/{tile}_snr.png",
)

CALIBRATION_PATHS = SimpleNamespace(
    model="results/models/calibration/{detector}.json",
    table="results/evaluation/calibration.ecsv",
    reliability="results/evaluation/reliability.png",
)

INJECT_PATHS = SimpleNamespace(
    injections="results/inject/{tile}.ecsv",
    selection_function="results/evaluation/selection_function.fits",
    selection_function_figure="results/evaluation/selection_function.png",
    vs_truth="results/evaluation/selection_function_vs_truth.csv",
)

CATALOG_PATHS = SimpleNamespace(
    photometry="results/photometry/{run}/{tile}.ecsv",
    ir_flag_chance="results/catalogs/ir_flag_chance.json",
    fits="results/catalogs/{run}.fits",
    csv="results/catalogs/{run}.csv",
)


# --------------------------------------------------------------------------- report
# `snakemake --report` gathers the figures and, beside them, the summary tables. To add one,
# wrap the output in report() where it is written, like this
#     table=report(
#         DETECT_PATHS.comparison,          # the stage's path (paths above)
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
# DOWNLOADS (skydetect.io.registry.DownloadTable) maps a file name under DOWNLOAD_PATHS to
# {url, size, sha256, unpack, member}, from config["planck"]["download"] (per band, per
# catalogue under `catalogs`, per mask under `masks`); rule download_file looks it up when a
# job is created.
DOWNLOADS = DownloadTable.from_config(
    PLANCK["download"],
    {band: ch.filename for band, ch in CHANNELS.items()},
    directory=DOWNLOAD_PATHS.directory,
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
CATALOG_NAMES = tuple(SKY_PATHS.mock_catalogs)  # psz2, mcxc, redmapper, sources
# nside of the maps check_map reads (real PR3 maps are 2048)
MAP_NSIDE = int(PLANCK["nside"]) if SIMULATED_SKY else 2048


def mock_map(band):
    """The mock sky's map of ``band`` (its PR3 file name)."""
    return fill(SKY_PATHS.mock_map, filename=channel(band).filename)


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
        return SKY_PATHS.mock_catalogs[name]
    if PLANCK["source"] == "download":
        return DOWNLOADS.catalog_path(name)
    path = PLANCK.get("local", {}).get("catalogs", {}).get(name)
    if not path:
        raise ValueError(
            f"config key 'planck.local.catalogs.{name}' is missing: planck.source is 'local'"
        )
    return path


def truth_input(wildcards):
    """{"truth": the mock's clusters} on a simulated sky (completeness is measured), else
    nothing."""
    return {"truth": SKY_PATHS.truth} if SIMULATED_SKY else {}


# --------------------------------------------------------------------------- masks
# Galactic and point-source masks of rule make_masks, configured by planck.masks. The mock sky
# makes its own from its dust-dominated band and its source catalogue; a real sky takes the
# published Planck HFI masks.
MASKS_CFG = PLANCK["masks"]
SURVEY_MASK_NAMES = tuple(vars(MASK_PATHS))  # galactic, point_sources


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
        return {
            "dust": fill(SKY_PATHS.checked_map, band=band),
            "sources": SKY_PATHS.mock_catalogs["sources"],
        }
    if PLANCK["source"] == "download":
        return {name: DOWNLOADS.mask_path(name) for name in SURVEY_MASK_NAMES}
    local = PLANCK.get("local", {}).get("masks", {})
    missing = [name for name in SURVEY_MASK_NAMES if not local.get(name)]
    if missing:
        raise ValueError(
            f"config key 'planck.local.masks.{missing[0]}' is missing: planck.source is "
            "'local', so the Planck masks need local paths (HFI_Mask_GalPlane-apo0_2048_R2.00"
            ".fits, HFI_Mask_PointSrc_2048_R2.00.fits)"
        )
    return {name: local[name] for name in SURVEY_MASK_NAMES}


# --------------------------------------------------------------------------- cluster stages
KNOWN_CATALOGS = list(CL["crossmatch"]["catalogs"])
TRAINING_CATALOG = fill(DATASET_PATHS.catalog, name=CL["catalog"]["name"])
SPLIT_TILES = {"train": TRAIN_TILES, "validation": VALIDATION_TILES}
# the patch files each dataset split is assembled from (test: the test tiles' cover grids)
DATASET_PATCHES = {
    **{
        split: expand(DATASET_PATHS.patches, split=split, tile=tiles)
        for split, tiles in SPLIT_TILES.items()
    },
    "test": expand(DATASET_PATHS.cover, tile=TEST_TILES),
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
    return expand(DETECT_PATHS.detections, run=wildcards.run, tile=DETECT_TILES)


def validation_detections(wildcards):
    """Per-tile detections of run ``wildcards.run`` on the validation tiles (the per-tile
    rules are the test tiles' own: their outputs are named by tile)."""
    return expand(DETECT_PATHS.detections, run=wildcards.run, tile=VALIDATION_TILES)


# --------------------------------------------------------------------------- U-Net runs
UNET_RUN_CFG = CL["train"].get("runs") or {r: {} for r in UNET_RUNS}


def unet_train_params(wildcards):
    """clusters.train without the runs mapping and the seed, for run ``wildcards.run`` (its
    own epochs where the run sets them)."""
    train = {
        k: v
        for k, v in computing_params(CL["train"]).items()
        if k not in ("runs", "seed")
    }
    epochs = (UNET_RUN_CFG.get(wildcards.run) or {}).get("epochs")
    if epochs is not None:
        train["epochs"] = epochs
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
MMF_CFG = CL["mmf"]  # the matched multi-frequency filter (rules/mmf.smk)
CATALOG_CFG = CL["cluster_catalog"]  # the published catalogues (rules/catalog.smk)
CLUSTER_RUNS = UNET_RUNS + (["mmf"] if MMF_CFG["enabled"] else [])
# The scorecard's rows: every U-Net run, the MMF, and their combination (U-Net run
# clusters.evaluate.combine_run, default the first, merged with the MMF by position).
COMBINE_RUN = EVAL_CFG.get("combine_run") or UNET_RUNS[0]
SCORECARD_DETECTORS = CLUSTER_RUNS + (["combined"] if "mmf" in CLUSTER_RUNS else [])
# Detectors with a published catalogue (rules/catalog.smk): as the scorecard's rows.
CATALOG_RUNS = SCORECARD_DETECTORS
SCORECARD_COMMAND = f"snakemake --cores all {DETECT_PATHS.scorecard_markdown}"
# Every scorecard threshold is fixed on the validation tiles (rule choose_thresholds,
# VALIDATION_PATHS.thresholds) and the test tiles are scored once at it; both write
# per-candidate truth flags.


def scorecard_params():
    """clusters.evaluate plus the lowest sweep thresholds (the detection thresholds)."""
    return {
        **EVAL_CFG,
        "unet_detect_threshold": DETECT_CFG["threshold"],
        "mmf_snr_threshold": MMF_CFG["snr_threshold"],
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
    return {"mask": [MASK_PATHS.galactic, MASK_PATHS.point_sources]}


def catalog_calibration(wildcards):
    """{"calibration": its P(real) model} where one is fitted (a simulated sky, whose
    validation tiles have a truth; rule calibrate), else nothing (P_REAL NaN)."""
    if not SIMULATED_SKY:
        return {}
    return {"calibration": fill(CALIBRATION_PATHS.model, detector=wildcards.run)}


# The fixed thresholds of the selection function: chosen on the validation tiles of a
# simulated sky (rule choose_thresholds); on a real sky, clusters.inject.thresholds_file
# (a thresholds.json chosen on a mock's validation tiles; null: no selection function).
INJECT_THRESHOLDS = (
    VALIDATION_PATHS.thresholds if SIMULATED_SKY else INJECT_CFG.get("thresholds_file")
)


# --------------------------------------------------------------------------- targets
def final_outputs():
    """The final products of the configured detectors: what `rule all` asks for. Called by
    the Snakefile once every stage is included (the bubbles' names are theirs)."""
    targets = []
    if "clusters" in config["detectors"]:
        targets += expand([SKY_PATHS.checked_map, SKY_PATHS.checked_report], band=BANDS)
        targets += expand(
            [DATASET_PATHS.dataset, DATASET_PATHS.examples],
            split=["train", "validation", "test"],
        )
        targets += expand(DATASET_PATHS.cover, tile=DETECT_TILES)
        targets += [TRAINING_CATALOG, DATASET_PATHS.normalisation]
        unet = [TRAIN_PATHS.model, TRAIN_PATHS.weights, TRAIN_PATHS.history]
        targets += fill_each([*unet, TRAIN_PATHS.learning_curve], "run", UNET_RUNS)
        targets += expand(
            [
                DETECT_PATHS.candidates,
                DETECT_PATHS.candidates_csv,
                DETECT_PATHS.summary,
                DETECT_PATHS.completeness_figure,
                DETECT_PATHS.sky_map,
            ],
            run=CLUSTER_RUNS,
        )
        targets += expand(DETECT_PATHS.patches_figure, run=UNET_RUNS)
        targets += [DETECT_PATHS.comparison, DETECT_PATHS.comparison_figure]
        if SIMULATED_SKY and len(SCORECARD_DETECTORS) > 1:
            targets += [
                DETECT_PATHS.scorecard,
                DETECT_PATHS.scorecard_markdown,
                DETECT_PATHS.purity_completeness_figure,
                DETECT_PATHS.completeness_mass_z,
                VALIDATION_PATHS.thresholds,
            ]
        if MMF_CFG["enabled"]:
            mmf = [MMF_PATHS.detections, MMF_PATHS.snr, MMF_PATHS.snr_figure]
            targets += expand(mmf, tile=DETECT_TILES)
        if SIMULATED_SKY:
            targets += [CALIBRATION_PATHS.table, CALIBRATION_PATHS.reliability]
        # the selection function at the validation-fixed thresholds (and, on a simulated
        # sky, its comparison with the truth)
        if INJECT_CFG["enabled"] and INJECT_THRESHOLDS:
            targets += [
                INJECT_PATHS.selection_function,
                INJECT_PATHS.selection_function_figure,
            ]
            targets += [INJECT_PATHS.vs_truth] if SIMULATED_SKY else []
        if CATALOG_CFG["enabled"]:
            targets += expand([CATALOG_PATHS.fits, CATALOG_PATHS.csv], run=CATALOG_RUNS)
            targets += [CATALOG_PATHS.ir_flag_chance]
    if "bubbles" in config["detectors"]:
        targets += [BUBBLE_PATHS.catalog, BUBBLE_TRUTH]
        targets += expand(BUBBLE_PATHS.masked, field=BUBBLE_SPLITS["train"])
        targets += [*BUBBLE_TRAIN_NEGATIVES, BUBBLE_PATHS.negative_groups]
        targets += BUBBLE_NEG_FIGURES
        targets += expand(BUBBLE_PATHS.windows, bubble_split=["validation", "test"])
        targets += expand(BUBBLE_PATHS.field_figure, field=BUBBLE_SPLIT_FIELDS)
        # the bubble run's files ({brun} filled at the end)
        run = [BUBBLE_PATHS.model, BUBBLE_PATHS.weights, BUBBLE_PATHS.history]
        run += [BUBBLE_PATHS.learning_curve]
        detections = [BUBBLE_PATHS.detections, BUBBLE_PATHS.detections_csv]
        run += fill_each(detections, "field", BUBBLE_DETECT_FIELDS)
        run += fill_each([BUBBLE_PATHS.detection_figure], "field", BUBBLE_DETECT_FIELDS)
        run += [BUBBLE_PATHS.evaluation, BUBBLE_PATHS.evaluation_table]
        if BUBBLE_INJECT_CFG["enabled"]:
            run += [BUBBLE_PATHS.recall, BUBBLE_PATHS.recall_figure]
        if SURVEY_FIELDS:
            run += [BUBBLE_PATHS.survey, BUBBLE_PATHS.survey_csv]
            run += [BUBBLE_PATHS.survey_counts, BUBBLE_PATHS.survey_figure]
        run += fill_each(detections, "field", list(BUBBLE_MOSAICS))
        targets += expand(run, brun=BUBBLE_RUN)
    return targets


# --------------------------------------------------------------------------- wildcards
# Every global wildcard constraint of the workflow. A bubble {field} is a GLIMPSE tile code
# (01500+0000) or the name of a bubbles.mosaics pair (any 8 µm + 24 µm FITS pair with a
# WCS), never a HEALPix {tile}; {brun} the bubble run (bubbles.train.run).
GLIMPSE_FIELD = r"\d{5}[+-]\d{4}"
BUBBLE_MOSAICS = BUB["mosaics"]


wildcard_constraints:
    band=one_of(BANDS),
    tile=r"\d+",
    split="train|validation|test",
    run=one_of(UNET_RUNS + DETECTOR_RUNS),
    detector=one_of(UNET_RUNS + DETECTOR_RUNS),
    field="|".join([GLIMPSE_FIELD, *map(re.escape, BUBBLE_MOSAICS)]),
    spitzer_file=r"(GLM|MPG)_\d{5}[+-]\d{4}_mosaic_(I4|M1)\.fits|MG\d{4}[pn]005_024\.fits",
    bubble_split="validation|test",
    brun=r"[A-Za-z0-9_\-]+",
    worker=r"\d+",
