"""Bad input never becomes a wrong result: each case stops with a message that names the file,
the config key or the column, and leaves no output behind (or gives the correct result).

Config cases go through :func:`skydetect.config.validate_config` (what rules/common.smk runs
before any job); file cases run the rule's script driver on files written in ``tmp_path``.
"""

import copy
import json
import logging
import os
import runpy
import sys
from pathlib import Path

import healpy as hp
import numpy as np
import pytest
import yaml

from skydetect.config import ConfigError, validate_config
from skydetect.io.catalogs import CatalogError, write_psz2
from skydetect.io.fits_maps import MapFormatError, write_pr3_map

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "config" / "schema.yaml"
NSIDE = 64


def shipped() -> dict:
    return copy.deepcopy(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()))


def config_error(cfg) -> str:
    with pytest.raises(ConfigError) as err:
        validate_config(cfg, SCHEMA)
    return str(err.value)


class Named(list):
    """Stand-in for Snakemake's Namedlist: positional and named access."""

    def __init__(self, *items, **named):
        super().__init__([*items, *named.values()])
        self._named = named
        for k, v in named.items():
            setattr(self, k, v)

    def __getitem__(self, key):
        return self._named[key] if isinstance(key, str) else super().__getitem__(key)

    def get(self, key, default=None):
        return self._named.get(key, default)


def run_script(name, tmp_path, *, input, output, config, params=None, wildcards=None):
    """Run scripts/<name>.py as Snakemake would (a ``snakemake`` object in its globals)."""
    log = tmp_path / f"{name}.log"
    sm = type("Snakemake", (), {})()
    sm.input, sm.output = (
        Named(**input),
        Named(*output) if isinstance(output, list) else Named(**output),
    )
    sm.log, sm.config = Named(str(log)), config
    sm.scriptdir = str(ROOT / "scripts")
    sm.params, sm.wildcards = Named(**(params or {})), Named(**(wildcards or {}))
    root, hook = logging.getLogger().handlers[:], sys.excepthook
    try:
        runpy.run_path(str(ROOT / "scripts" / f"{name}.py"), init_globals={"snakemake": sm})
    finally:
        for h in logging.getLogger().handlers:
            h.close()
        logging.getLogger().handlers[:] = root
        sys.excepthook = hook
    return log.read_text()


def leftovers(directory: Path, keep=()) -> list[str]:
    """Every file under ``directory`` that is not an input (``keep``) or a log."""
    keep = {Path(k).name for k in keep}
    return sorted(
        p.name
        for p in directory.rglob("*")
        if p.is_file() and p.name not in keep and p.suffix != ".log"
    )


# ------------------------------------------------------------------ cross-key config rules
def test_overlapping_cluster_tiles():
    cfg = shipped()
    cfg["clusters"]["tiles"].update(validation=[6, 9], test=[6])
    msg = config_error(cfg)
    assert "'clusters.tiles.validation' and 'clusters.tiles.test' share [6]" in msg


def test_bubble_field_in_two_splits():
    cfg = shipped()
    key = "fields" if "fields" in cfg["bubbles"] else "tiles"
    cfg["bubbles"][key]["test"] = [15, 33]
    msg = config_error(cfg)
    assert f"'bubbles.{key}.train' and 'bubbles.{key}.test' share [33]" in msg


def test_unet_run_named_like_the_baseline():
    schema = yaml.safe_load(SCHEMA.read_text())
    train = schema["properties"]["clusters"]["properties"]["train"]["properties"]
    cfg = shipped()
    if "runs" in train:
        cfg["clusters"]["train"].pop("run", None)
        cfg["clusters"]["train"]["runs"] = {"mmf": {"bands": ["100", "143"]}}
    else:
        cfg["clusters"]["train"]["run"] = "mmf"
    try:
        msg = config_error(cfg)
    except pytest.fail.Exception:
        pytest.skip("refusing the baseline's run name is the U-Net runs schema change (pending)")
    assert "clusters.train.run" in msg


def test_patch_size_incompatible_with_unet_depth():
    cfg = shipped()
    cfg["clusters"]["patch"]["size"] = 63
    msg = config_error(cfg)
    assert "'clusters.patch.size' (63)" in msg and "'clusters.model.filter_num'" in msg


def test_empty_test_tile_list():
    cfg = shipped()
    cfg["clusters"]["tiles"]["test"] = []
    assert "'clusters.tiles.test' is empty" in config_error(cfg)


def test_bubble_min_score_above_the_thresholds():
    cfg = shipped()
    cfg["bubbles"]["detect"]["min_score"] = 0.55
    msg = config_error(cfg)
    assert "'bubbles.detect.min_score' (0.55)" in msg and "'bubbles.train.thresholds'" in msg


def test_local_map_nside_differs_from_planck_nside(tmp_path):
    path = tmp_path / "HFI_SkyMap_100.fits"
    write_pr3_map(path, _sky(), "K_CMB")
    cfg = shipped()
    cfg["planck"].update(source="local", bands=["100"], local={"100": str(path)})
    msg = config_error(cfg)
    assert f"'planck.local.100': {path} has NSIDE = {NSIDE}" in msg and "'planck.nside'" in msg


# ------------------------------------------------------------------ catalogue values
def _psz2(path, **override):
    data = {
        "NAME": ["A", "B", "C"],
        "GLON": [10.0, 100.0, 200.0],
        "GLAT": [40.0, -50.0, 60.0],
        "REDSHIFT": [0.1, 0.2, 0.3],
        "MSZ": [3.0, 4.0, 5.0],
        "SNR": [5.0, 6.0, 7.0],
    }
    data.update(override)
    write_psz2(path, data)
    return path


def _build_catalog(tmp_path, psz2, name="planck_z"):
    out = tmp_path / "out" / f"{name}.ecsv"
    out.parent.mkdir()
    cfg = validate_config(shipped(), SCHEMA)
    held_out = set(cfg["clusters"]["tiles"]["validation"]) | set(cfg["clusters"]["tiles"]["test"])
    training = [t for t in range(48) if t not in held_out]
    run_script(
        "build_catalog",
        tmp_path,
        input={"psz2": str(psz2)},
        output=[str(out)],
        config={},
        params={"merge_radius_arcmin": 5.0, "training_tiles": training},
        wildcards={"name": name},
    )
    return out


@pytest.mark.parametrize(("glon", "glat"), [(np.nan, -50.0), (100.0, -95.0), (361.0, 0.0)])
def test_bad_psz2_position_stops_build_catalog(tmp_path, glon, glat):
    psz2 = _psz2(tmp_path / "psz2.fits", GLON=[10.0, glon, 200.0], GLAT=[40.0, glat, 60.0])
    with pytest.raises(CatalogError) as err:
        _build_catalog(tmp_path, psz2)
    col = "GLON" if not 0 <= glon <= 360 else "GLAT"
    assert f"{psz2}: psz2 catalogue column '{col}'" in str(err.value) and "row 2" in str(err.value)
    assert leftovers(tmp_path, keep=[psz2]) == []


def test_empty_training_catalogue_stops_build_catalog(tmp_path):
    psz2 = _psz2(tmp_path / "psz2.fits", REDSHIFT=[-1.0, -1.0, -1.0])
    with pytest.raises(CatalogError, match=r"'planck_z' \(clusters.catalog.name\) is empty"):
        _build_catalog(tmp_path, psz2)
    assert leftovers(tmp_path, keep=[psz2]) == []


def test_no_training_cluster_in_the_training_tiles_stops_build_catalog(tmp_path):
    # every entry in the test tile 6 of the default config
    glon, glat = hp.pix2ang(2, 6, lonlat=True)
    psz2 = _psz2(tmp_path / "psz2.fits", GLON=[glon] * 3, GLAT=[glat] * 3)
    with pytest.raises(CatalogError, match="none in the training tiles"):
        _build_catalog(tmp_path, psz2)
    assert leftovers(tmp_path, keep=[psz2]) == []


def _mwp_csv(path, theta="26", majaxis="0.53"):
    path.write_text(
        ",GLON,GLAT,Disp,MajAxis,MinAxis,Reff,e_Reff,theta,e_theta,Ecc\n"
        "2G0020120-0068213,2.012,-0.6821,0.12,0.53,0.47,0.5,0.14,26,84,0.44\n"
        f"2G0021660+0000943,2.166,0.0094,0.03,{majaxis},0.18,0.19,0.07,{theta},30,0.48\n"
    )
    return path


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"majaxis": "big"}, "column MajAxis row 2 is 'big', not a number"),
        ({"theta": ""}, "column theta row 2 is blank"),
        ({"majaxis": "-0.2"}, "column MajAxis must be finite and positive: row 2 is -0.2"),
    ],
)
def test_bad_mwp_value_names_file_column_row(tmp_path, kw, expected):
    from skydetect.bubbles.catalog import CatalogError as BubbleCatalogError
    from skydetect.bubbles.catalog import read_mwp

    path = _mwp_csv(tmp_path / "mwp.csv", **kw)
    with pytest.raises(BubbleCatalogError) as err:
        read_mwp(path)
    assert str(err.value).startswith(f"{path}: {expected}")


# ------------------------------------------------------------------ maps
def _sky(nside=NSIDE):
    return np.random.default_rng(3).normal(0.0, 1e-4, hp.nside2npix(nside))


def _check_map(tmp_path, path, band="100", planck=None):
    out = tmp_path / "checked"
    out.mkdir(exist_ok=True)
    planck = {"nside": NSIDE, "source": "local", **(planck or {})}
    log = run_script(
        "check_map",
        tmp_path,
        input={"map": str(path)},
        output={"map": str(out / f"{band}.fits"), "report": str(out / f"{band}.json")},
        config={},
        params={
            "max_bad_fraction": 0.1,
            "nside": planck["nside"],
            "source": planck["source"],
            "lock": str(tmp_path / "downloads.lock"),
        },
        wildcards={"band": band},
    )
    return out, log


def test_truncated_map_is_named_and_leaves_nothing(tmp_path):
    path = tmp_path / "HFI_SkyMap_100.fits"
    write_pr3_map(path, _sky(), "K_CMB")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(MapFormatError) as err:
        _check_map(tmp_path, path)
    assert str(path) in str(err.value) and "truncated" in str(err.value)
    assert leftovers(tmp_path, keep=[path]) == []


def test_map_nside_differs_from_planck_nside_in_download_mode(tmp_path):
    path = tmp_path / "HFI_SkyMap_100.fits"
    write_pr3_map(path, _sky(32), "K_CMB")
    with pytest.raises(MapFormatError) as err:
        _check_map(tmp_path, path, planck={"source": "download"})
    assert str(path) in str(err.value) and "config key 'planck.nside' is 64" in str(err.value)
    assert leftovers(tmp_path, keep=[path]) == []


def test_all_zero_map_is_refused(tmp_path):
    path = tmp_path / "zero.fits"
    write_pr3_map(path, np.zeros(hp.nside2npix(NSIDE)), "K_CMB")
    with pytest.raises(MapFormatError, match=r"zero.fits: column I_STOKES is all zero"):
        _check_map(tmp_path, path)
    assert leftovers(tmp_path, keep=[path]) == []


def test_bare_kelvin_unit_is_refused_with_k_cmb(tmp_path):
    path = tmp_path / "k.fits"
    write_pr3_map(path, _sky(), "K")
    with pytest.raises(MapFormatError, match=r"k.fits: TUNIT1 = 'K' .*ambiguous.*'K_CMB'"):
        _check_map(tmp_path, path)
    assert leftovers(tmp_path, keep=[path]) == []


def test_download_without_lock_entry_is_reported_unverified_by_check_map(tmp_path):
    path = tmp_path / "HFI_SkyMap_100.fits"
    write_pr3_map(path, _sky(), "K_CMB")
    out, log = _check_map(tmp_path, path, planck={"source": "download"})
    report = json.loads((out / "100.json").read_text())
    assert report["verified"] is False and "UNVERIFIED" in report["warnings"][0]
    assert "no entry 'HFI_SkyMap_100.fits'" in report["warnings"][0] and "UNVERIFIED" in log


def test_check_map_verifies_the_download_against_its_lock_entry(tmp_path):
    from skydetect.io.download import sha256_of
    from skydetect.io.lockfile import DownloadLock

    path = tmp_path / "HFI_SkyMap_100.fits"
    write_pr3_map(path, _sky(), "K_CMB")
    lock = DownloadLock(tmp_path / "downloads.lock")
    lock.record(path.name, {"url": "https://x.org/m.fits", "size": 1, "sha256": sha256_of(path)})
    out, _ = _check_map(tmp_path, path, planck={"source": "download"})
    report = json.loads((out / "100.json").read_text())
    assert report["verified"] is True and report["sha256"] == sha256_of(path)
    assert report["warnings"] == []


def test_check_map_refuses_a_download_that_changed_since_its_lock_entry(tmp_path):
    from skydetect.io.download import DownloadError, sha256_of
    from skydetect.io.lockfile import DownloadLock

    path = tmp_path / "HFI_SkyMap_100.fits"
    write_pr3_map(path, _sky(), "K_CMB")
    lock = DownloadLock(tmp_path / "downloads.lock")
    lock.record(path.name, {"url": "https://x.org/m.fits", "size": 1, "sha256": "ab" * 32})
    with pytest.raises(DownloadError) as err:
        _check_map(tmp_path, path, planck={"source": "download"})
    msg = str(err.value)
    assert str(path) in msg and "ab" * 32 in msg and sha256_of(path) in msg
    assert str(lock.path) in msg
    assert leftovers(tmp_path, keep=[path, lock.path]) == []


# ------------------------------------------------------------------ downloads
def test_stale_part_with_null_size_and_checksum_is_not_spliced(tmp_path, caplog):
    from skydetect.io.download import fetch, part_path, record_path

    src = tmp_path / "new.fits"
    src.write_bytes(b"the right file" * 100)
    dest = tmp_path / "dl" / "map.fits"
    dest.parent.mkdir()
    part_path(dest).write_bytes(b"x" * 500)  # left by a download of another file
    record_path(dest).write_text(json.dumps({"url": "https://other/x.fits"}))
    with caplog.at_level(logging.WARNING, logger="skydetect.io.download"):
        fetch(src.as_uri(), dest, progress=False)
    assert dest.read_bytes() == src.read_bytes()  # from zero, not appended to the stale bytes
    assert "UNVERIFIED" in caplog.text
    assert sorted(p.name for p in dest.parent.iterdir()) == ["map.fits"]


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("htps://irsa.ipac.caltech.edu/data/x.fits", "unknown scheme 'htps'"),
        ("irsa.ipac.caltech.edu/data/x.fits", "no scheme"),
        ("https://irsa..ipac.caltech.edu/data/x.fits", "malformed host name 'irsa..ipac.caltech.edu'"),
        ("https://irsa_ipac/x.fits", "malformed host name 'irsa_ipac'"),
        ("https://irsa.ipac.caltech.edu:99999/x.fits", "malformed host or port"),
        ("https:///data/x.fits", "no host name"),
    ],
)
def test_bad_download_url_is_refused_at_validation(url, problem):
    cfg = shipped()
    cfg["planck"]["download"] = {"100": {"url": url}}
    msg = config_error(cfg)
    assert f"'planck.download.100.url': {url!r}: {problem}" in msg


def test_bad_bubble_url_template_is_refused_at_validation():
    cfg = shipped()
    cfg["bubbles"].setdefault("download", {})["glimpse_url"] = "htp://irsa.ipac.caltech.edu/{file}"
    msg = config_error(cfg)
    assert "'bubbles.download.glimpse_url'" in msg and "unknown scheme 'htp'" in msg


@pytest.mark.parametrize(
    "url", ["htps://127.0.0.1/x.fits", "http://bad host/x.fits", "http://a..b/x.fits"]
)
def test_unusable_url_fails_at_once_and_leaves_nothing(tmp_path, url):
    import time

    from skydetect.io.download import DownloadError, fetch

    dest = tmp_path / "dl" / "x.fits"
    start = time.monotonic()
    with pytest.raises(DownloadError) as err:
        fetch(url, dest, retries=5, backoff=1.0, progress=False)
    assert time.monotonic() - start < 1.0  # not retried
    msg = str(err.value)
    assert url in msg and ".part" not in msg and "partial" not in msg
    assert not (tmp_path / "dl").exists()


# ------------------------------------------------------------------ killed writers
def test_failed_writer_leaves_no_temporary_file(tmp_path):
    from skydetect.io.atomic import atomic_path

    target = tmp_path / "results" / "x.h5"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert list(target.parent.iterdir()) == []


# ------------------------------------------------------------------ training reruns
@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    import h5py

    d = tmp_path_factory.mktemp("datasets")
    paths = []
    for split, n in (("train", 32), ("validation", 8)):
        rng = np.random.default_rng(n)
        x = rng.normal(0, 1, (n, 16, 16, 2)).astype(np.float32)
        m = (rng.random((n, 16, 16)) < 0.05).astype(np.uint8)
        with h5py.File(d / f"{split}.h5", "w") as f:
            f["inputs"], f["masks"] = x, m
            f.attrs["bands"], f.attrs["size"] = ["143", "353"], 16
        paths.append(d / f"{split}.h5")
    return paths


TRAIN = {"loss": "dice_loss", "optimizer": "adam", "learning_rate": 1e-2, "batch_size": 16}
TRAIN |= {"epochs": 1, "patience": 5, "lr_patience": 1, "mixed_precision": False}
MODEL = {"architecture": "unet", "filter_num": [4, 8]}


def test_forced_rerun_of_training_trains_from_scratch(datasets, tmp_path):
    pytest.importorskip("tensorflow")
    from skydetect.clusters import train as T

    first = T.train(*datasets, tmp_path, MODEL, TRAIN, seed=1)
    again = T.train(*datasets, tmp_path, MODEL, TRAIN, seed=1)  # what --forcerun does
    assert not again["resumed"] and again["initial_epoch"] == 0 and again["epochs_done"] == 1
    assert [r["epoch"] for r in T.read_history(tmp_path / "history.csv")] == [0]
    assert first["epochs_done"] == 1


def test_resume_fingerprint_covers_the_whole_dataset_and_the_code(datasets, tmp_path, monkeypatch):
    import h5py

    from skydetect.clusters import datasets as D
    from skydetect.clusters import train as T

    train, val = (tmp_path / "train.h5", tmp_path / "validation.h5")
    train.write_bytes(datasets[0].read_bytes())
    val.write_bytes(datasets[1].read_bytes())
    fp = T.fingerprint(MODEL, TRAIN, 1, [str(train), str(val)])
    with h5py.File(train, "a") as f:
        f["masks"][30] = 1 - f["masks"][30]  # a patch far beyond the first few
    assert T.fingerprint(MODEL, TRAIN, 1, [str(train), str(val)]) != fp
    with h5py.File(train, "a") as f:  # the assemble step's stored hash is what counts
        f.attrs["content_sha256"] = D.content_hash(f)
        stored = T.fingerprint(MODEL, TRAIN, 1, [str(train), str(val)])
        f.attrs["content_sha256"] = "0" * 64
    current = T.fingerprint(MODEL, TRAIN, 1, [str(train), str(val)])
    assert current != stored
    monkeypatch.setattr(T, "code_version", lambda: "9.9.9+other")
    assert T.fingerprint(MODEL, TRAIN, 1, [str(train), str(val)]) != current


# ------------------------------------------------------------------ config before any job
def _schema_bounds(node=None, path=()):
    """(dotted path, bound keyword, bound value) of every numeric bound in the schema; a path
    part '*' is any key of a mapping, '[]' any item of a list."""
    node = yaml.safe_load(SCHEMA.read_text()) if node is None else node
    if not isinstance(node, dict):
        return []
    found = []
    for keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        if keyword in node:
            found.append((path, keyword, node[keyword]))
    for name, sub in node.get("properties", {}).items():
        found += _schema_bounds(sub, (*path, name))
    if isinstance(node.get("additionalProperties"), dict):
        found += _schema_bounds(node["additionalProperties"], (*path, "*"))
    if isinstance(node.get("items"), dict):
        found += _schema_bounds(node["items"], (*path, "[]"))
    return found


def _beyond(keyword, bound, integer: bool):
    step = 1 if integer else max(abs(bound) * 1e-3, 1e-6)
    if keyword == "minimum":
        return bound - step
    if keyword == "maximum":
        return bound + step
    return bound  # exclusive bounds refuse the bound itself


def _set_path(cfg: dict, path, value) -> bool:
    """Set ``path`` in ``cfg`` (a '*' takes the first existing key, '[]' the first item);
    False when the path does not exist in the shipped configuration."""
    node = cfg
    for part in path[:-1]:
        if part == "*":
            if not isinstance(node, dict) or not node:
                return False
            node = node[next(iter(node))]
        elif part == "[]":
            if not isinstance(node, list) or not node:
                return False
            node = node[0]
        else:
            node = node.setdefault(part, {}) if isinstance(node, dict) else None
            if node is None:
                return False
    last = path[-1]
    if last == "[]":
        if not isinstance(node, list) or not node:
            return False
        node[0] = value
    elif last == "*":
        return False
    else:
        node[last] = value
    return True


def test_every_numeric_bound_of_the_schema_is_enforced_before_any_job():
    bounds = _schema_bounds()
    assert len(bounds) > 100  # the schema's numeric keys, not an empty walk
    schema_text = SCHEMA.read_text()
    checked = 0
    for path, keyword, bound in bounds:
        integer = f"{path[-1]}: {{type: integer" in schema_text and isinstance(bound, int)
        cfg = shipped()
        if not _set_path(cfg, path, _beyond(keyword, bound, integer)):
            continue
        msg = config_error(cfg)
        shown = ".".join(p for p in path if p not in ("*", "[]"))
        assert shown.split(".")[0] in msg, (path, msg)
        checked += 1
    assert checked >= 0.8 * len(bounds), f"only {checked} of {len(bounds)} bounds reachable"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"seed": -1}, "config key 'seed': -1 is less than the minimum of 0"),
        (
            {"clusters": {"patch": {"size": 32, "cover_margin": 16}}},
            "'clusters.patch.cover_margin' (16) leaves nothing of a 'clusters.patch.size' (32)",
        ),
        (
            {"clusters": {"patch": {"size": 32, "max_shift": 16}}},
            "'clusters.patch.max_shift' (16) can move a cluster out",
        ),
    ],
)
def test_config_values_refused_before_any_job(change, expected):
    cfg = shipped()
    for key, value in change.items():
        if isinstance(value, dict):
            for sub, entries in value.items():
                cfg[key][sub].update(entries)
        else:
            cfg[key] = value
    assert expected in config_error(cfg)


def test_command_line_strings_are_read_as_the_schema_types():
    # snakemake --config 'clusters={train: {epochs: 3}}' hands every nested value as a string
    cfg = shipped()
    cfg["clusters"]["train"]["epochs"] = "3"
    cfg["clusters"]["patch"]["pixel_arcmin"] = "1.5"
    cfg["clusters"]["mmf"]["enabled"] = "false"
    validate_config(cfg, SCHEMA)
    assert cfg["clusters"]["train"]["epochs"] == 3
    assert cfg["clusters"]["patch"]["pixel_arcmin"] == 1.5
    assert cfg["clusters"]["mmf"]["enabled"] is False
    cfg = shipped()
    cfg["clusters"]["train"]["epochs"] = "three"
    assert "config key 'clusters.train.epochs': 'three' is not of type 'integer'" in config_error(
        cfg
    )


def test_configured_files_missing_empty_or_repeated_are_named(tmp_path):
    first, empty = tmp_path / "100.fits", tmp_path / "143.fits"
    write_pr3_map(first, _sky(), "K_CMB")
    empty.write_bytes(b"")
    cfg = shipped()
    cfg["planck"].update(
        source="local",
        nside=NSIDE,
        bands=["100", "143", "217", "353"],
        local={
            "100": str(first),
            "143": str(empty),
            "217": str(tmp_path / "missing.fits"),
            "353": str(first),
        },
    )
    msg = config_error(cfg)
    assert f"'planck.local.143': {empty} is empty (0 bytes)" in msg
    assert f"'planck.local.217': {tmp_path / 'missing.fits'} not found" in msg
    assert f"'planck.local.100' and 'planck.local.353' name the same file {first}" in msg


def test_same_mosaic_for_both_bands_is_refused_before_any_job(tmp_path):
    path = _mosaic(tmp_path / "i8.fits")
    cfg = shipped()
    cfg["bubbles"]["mosaics"] = {"NGC628": {"i8": str(path), "m24": str(path)}}
    msg = config_error(cfg)
    assert "'bubbles.mosaics.NGC628.i8' and 'bubbles.mosaics.NGC628.m24' name the same" in msg


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--config", "seed=-1"], "config key 'seed': -1 is less than the minimum of 0"),
        (
            ["--config", "clusters={patch: {size: 32, cover_margin: 16}}"],
            "'clusters.patch.cover_margin' (16) leaves nothing",
        ),
    ],
)
def test_dry_run_stops_before_any_job_naming_the_key(tmp_path, args, expected):
    import subprocess

    cmd = [sys.executable, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile")]
    res = subprocess.run(
        [*cmd, "--directory", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = res.stdout + res.stderr
    assert res.returncode != 0 and expected in out, out
    assert "Job stats" not in out and not (tmp_path / "results").exists()


# ------------------------------------------------------------------ image content
def _mosaic(path, data=None, shape=(40, 50)):
    from astropy.io import fits

    from skydetect.io.spitzer import field_wcs

    w, shape = field_wcs(15.0, 0.0, shape[1] * 6 / 3600, shape[0] * 6 / 3600, 6.0)
    if data is None:
        data = np.random.default_rng(1).normal(20.0, 2.0, shape)
    h = w.to_header()
    h["BUNIT"] = "MJy/sr"
    fits.PrimaryHDU(np.asarray(data, np.float32), header=h).writeto(path, overwrite=True)
    return path


def _align(tmp_path, i4, m1):
    out = tmp_path / "aligned" / "01500+0000.fits"
    run_script(
        "align_spitzer_field",
        tmp_path,
        input={"i4": str(i4), **({"m1": str(m1)} if m1 else {})},
        output=[str(out)],
        config={},
        params={"name": "01500+0000"},
    )
    return out


@pytest.mark.parametrize(
    ("fill", "expected"), [(np.nan, "has no finite data"), (0.0, "is all zero")]
)
def test_empty_8um_mosaic_stops_align_naming_the_file(tmp_path, fill, expected):
    i4 = _mosaic(tmp_path / "i4.fits", np.full((40, 50), fill))
    m1 = _mosaic(tmp_path / "m1.fits")
    from skydetect.io.spitzer import SpitzerError

    with pytest.raises(SpitzerError) as err:
        _align(tmp_path, i4, m1)
    assert str(err.value).startswith(f"{i4}: the 8 µm mosaic {expected}")
    assert leftovers(tmp_path, keep=[i4, m1]) == []


def test_all_nan_24um_mosaic_is_not_called_non_overlapping(tmp_path):
    i4 = _mosaic(tmp_path / "i4.fits")
    m1 = _mosaic(tmp_path / "m1.fits", np.full((40, 50), np.nan))
    from skydetect.io.spitzer import SpitzerError

    with pytest.raises(SpitzerError) as err:
        _align(tmp_path, i4, m1)
    assert str(err.value).startswith(f"{m1}: the 24 µm mosaic has no finite data")
    assert "overlap" not in str(err.value)
    assert leftovers(tmp_path, keep=[i4, m1]) == []


def test_truncated_spitzer_mosaic_is_named(tmp_path):
    i4 = _mosaic(tmp_path / "i4.fits", shape=(200, 200))
    i4.write_bytes(i4.read_bytes()[: i4.stat().st_size // 2])
    from skydetect.io.spitzer import SpitzerError

    with pytest.raises(SpitzerError) as err:
        _align(tmp_path, i4, None)
    assert str(err.value).startswith(f"{i4}:") and "truncated" in str(err.value)
    assert leftovers(tmp_path, keep=[i4]) == []


def test_identical_8_and_24um_images_are_refused(tmp_path):
    i4 = _mosaic(tmp_path / "i4.fits")
    m1 = tmp_path / "m1.fits"
    m1.write_bytes(i4.read_bytes())
    from skydetect.io.spitzer import SpitzerError

    with pytest.raises(SpitzerError, match="the 24 µm and 8 µm mosaics must be different"):
        _align(tmp_path, i4, m1)
    assert leftovers(tmp_path, keep=[i4, m1]) == []


def test_two_bands_with_the_same_map_stop_split_tiles(tmp_path):
    from skydetect.geometry.tiles import TileError, split_maps

    sky = _sky()
    paths = {}
    for band in ("100", "143", "217"):
        paths[band] = tmp_path / f"{band}.fits"
        hp.write_map(paths[band], sky if band != "143" else sky * 1.1, dtype=np.float32)
    out = {t: tmp_path / "tiles" / f"{t}.h5" for t in (0, 1)}
    paths["217"].write_bytes(paths["100"].read_bytes())
    with pytest.raises(TileError) as err:
        split_maps(paths, out, 1.0)
    assert f"bands 100 ({paths['100']}) and 217 ({paths['217']}) hold the same values" in str(
        err.value
    )
    assert not (tmp_path / "tiles").exists() or list((tmp_path / "tiles").iterdir()) == []


def test_map_in_micro_kelvin_labelled_k_cmb_is_refused(tmp_path):
    path = tmp_path / "HFI_SkyMap_100.fits"
    write_pr3_map(path, _sky() * 1e6, "K_CMB")  # the values are uK
    with pytest.raises(MapFormatError) as err:
        _check_map(tmp_path, path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: column I_STOKES scatters by 100 K_CMB")
    assert "not in the unit the header says (TUNIT1 = 'K_CMB')" in msg
    assert leftovers(tmp_path, keep=[path]) == []


# ------------------------------------------------------------------ catalogue content
def test_redshift_zero_is_unknown_not_a_redshift(tmp_path):
    psz2 = _psz2(tmp_path / "psz2.fits", REDSHIFT=[0.0, 0.0, 0.3])
    out = _build_catalog(tmp_path, psz2)
    from astropy.table import Table

    cat = Table.read(out, format="ascii.ecsv")
    assert list(cat["NAME"]) == ["C"]  # planck_z: only the entry with a redshift
    note = "psz2 column 'REDSHIFT' is [0.0] in 2 row(s); a redshift <= 0 is unknown"
    assert any(note in w for w in cat.meta["warnings"])
    assert note in (tmp_path / "build_catalog.log").read_text()


def test_source_catalogue_without_rows_is_refused(tmp_path):
    from astropy.table import Table

    from skydetect.io.catalogs import read_sources

    path = tmp_path / "sources.ecsv"
    Table({"ID": [], "GLON": [], "GLAT": [], "TYPE": []}, dtype=[str, float, float, str]).write(
        path, format="ascii.ecsv"
    )
    with pytest.raises(CatalogError, match=f"{path}: sources catalogue has no rows"):
        read_sources(path)


def test_exact_repeats_are_dropped_with_a_note_and_conflicting_names_refused(tmp_path):
    from skydetect.io.catalogs import read_psz2

    psz2 = _psz2(
        tmp_path / "psz2.fits",
        NAME=["A", "B", "A"],
        GLON=[10.0, 100.0, 10.0],
        GLAT=[40.0, -50.0, 40.0],
        REDSHIFT=[0.1, 0.2, 0.1],
        MSZ=[3.0, 4.0, 3.0],
        SNR=[5.0, 6.0, 5.0],
        INDEX=[1, 2, 1],
    )
    table = read_psz2(psz2)
    assert list(table["NAME"]) == ["A", "B"]
    assert "repeats 1 row(s) exactly (first: row 3, NAME 'A')" in table.meta["warnings"][0]
    clash = _psz2(tmp_path / "clash.fits", NAME=["A", "B", "A"])
    with pytest.raises(CatalogError, match=r"'A' names rows 1 and 3 with different values"):
        read_psz2(clash)


@pytest.mark.parametrize(("z", "expected"), [(0.0, "finite and positive"), (50.0, "within")])
def test_implausible_mcxc_redshift_names_file_column_row(tmp_path, z, expected):
    from skydetect.io.catalogs import read_mcxc, write_mcxc

    path = tmp_path / "mcxc.fits"
    write_mcxc(
        path,
        {
            "MCXC": ["M0", "M1"],
            "GLON": [1.0, 2.0],
            "GLAT": [3.0, 4.0],
            "RAdeg": [5.0, 6.0],
            "DEdeg": [7.0, 8.0],
            "z": [0.1, z],
            "M500": [2.0, 3.0],
            "R500": [1.0, 1.1],
            "L500": [1.0, 1.0],
        },
    )
    with pytest.raises(CatalogError) as err:
        read_mcxc(path)
    assert str(err.value).startswith(f"{path}: mcxc catalogue column 'z' must")
    assert expected in str(err.value) and "row 2" in str(err.value)


def test_mwp_catalogue_without_rows_or_with_a_name_twice(tmp_path):
    from skydetect.bubbles.catalog import CatalogError as BubbleCatalogError
    from skydetect.bubbles.catalog import read_mwp

    empty = tmp_path / "empty.csv"
    empty.write_text(",GLON,GLAT,Disp,MajAxis,MinAxis,Reff,e_Reff,theta,e_theta,Ecc\n")
    with pytest.raises(BubbleCatalogError, match=f"{empty}: MWP DR2 catalogue has no rows"):
        read_mwp(empty)
    twice = _mwp_csv(tmp_path / "twice.csv")
    lines = twice.read_text().splitlines()
    twice.write_text("\n".join([*lines, lines[1], lines[2].replace("2.166", "2.2")]) + "\n")
    with pytest.raises(BubbleCatalogError, match="'2G0021660\\+0000943' is given to rows 2 and 4"):
        read_mwp(twice)


# ------------------------------------------------------------------ debris of killed writers
def test_sigkilled_writer_leaves_nothing_after_the_rerun(tmp_path):
    import signal
    import subprocess

    from skydetect.io.atomic import atomic_path

    target = tmp_path / "results" / "patches" / "0.h5"
    code = (
        "import os, signal, sys\n"
        "from skydetect.io.atomic import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_bytes(b'x' * 96)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    res = subprocess.run([sys.executable, "-c", code, str(target)], timeout=60)
    assert res.returncode == -signal.SIGKILL
    hidden = [p.name for p in target.parent.iterdir()]
    assert len(hidden) == 1 and hidden[0].startswith(".0.tmp")  # what SIGKILL leaves
    alive = target.parent / f".0.tmp{os.getppid()}.h5"  # a live writer's file is left alone
    alive.write_bytes(b"busy")
    with atomic_path(target) as tmp:  # the rerun
        tmp.write_bytes(b"done")
    assert sorted(p.name for p in target.parent.iterdir()) == [alive.name, "0.h5"]
