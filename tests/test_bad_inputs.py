"""Bad input never becomes a wrong result: each case stops with a message that names the file,
the config key or the column, and leaves no output behind (or gives the correct result).

Config cases go through :func:`skydetect.config.validate_config` (what rules/common.smk runs
before any job); file cases run the rule's script driver on files written in ``tmp_path``.
"""

import copy
import json
import logging
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
    with pytest.raises(MapFormatError, match=r"zero.fits: column I_STOKES is constant"):
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
