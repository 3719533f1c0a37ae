"""Galactic and point-source masks: the published Planck readers, the mock's own masks,
and the mask flags of candidate positions."""

from __future__ import annotations

import healpy as hp
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from skydetect.io import planck_masks as pm
from skydetect.sky import survey_masks as sm


def write_published(path, columns: dict, nside: int, ordering: str, vector: int = 0):
    """A mask file in the published HFI layout: ``columns`` name -> RING map, stored in
    ``ordering``; ``vector`` > 0 stores that many pixels per row (as some HEALPix files do)."""
    cols = []
    for name, ring in columns.items():
        data = hp.reorder(ring, r2n=True) if ordering == "NESTED" else ring
        data = np.asarray(data, np.float32)
        fmt = "E" if not vector else f"{vector}E"
        cols.append(fits.Column(name=name, format=fmt,
                                array=data if not vector else data.reshape(-1, vector)))  # fmt: skip
    hdu = fits.BinTableHDU.from_columns(cols)
    hdu.header.update(PIXTYPE="HEALPIX", ORDERING=ordering, NSIDE=nside, COORDSYS="GALACTIC",
                      INDXSCHM="IMPLICIT", FIRSTPIX=0, LASTPIX=12 * nside**2 - 1)  # fmt: skip
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    return path


def band_mask(nside, max_abs_b):
    """RING map: 1 above |b| > max_abs_b, 0 in the band."""
    _, b = hp.pix2ang(nside, np.arange(hp.nside2npix(nside)), lonlat=True)
    return (np.abs(b) > max_abs_b).astype(np.float32)


@pytest.mark.parametrize("ordering", ["NESTED", "RING"])
@pytest.mark.parametrize("nside", [16, 32])
def test_galactic_reader_honours_ordering_and_column(tmp_path, ordering, nside):
    cols = {name: band_mask(nside, 5.0 * (i + 1)) for i, name in enumerate(pm.GALACTIC_COLUMNS)}
    path = write_published(tmp_path / "gal.fits", cols, nside, ordering)
    got = pm.read_mask_columns(path, ["GAL070"])
    assert got.dtype == bool and got.size == hp.nside2npix(nside)
    np.testing.assert_array_equal(got, cols["GAL070"] > 0.5)  # back in RING
    # two columns: kept only where both keep
    both = pm.read_mask_columns(path, ["GAL020", "GAL090"])
    np.testing.assert_array_equal(both, (cols["GAL020"] > 0.5) & (cols["GAL090"] > 0.5))


def test_ordering_header_is_what_decides(tmp_path):
    nside = 16
    ring = band_mask(nside, 20.0)
    nested = write_published(tmp_path / "n.fits", {"F100": ring}, nside, "NESTED")
    with fits.open(nested) as hdul:  # the same data relabelled RING is another map
        hdul[1].header["ORDERING"] = "RING"
        hdul.writeto(tmp_path / "r.fits")
    assert not np.array_equal(pm.read_mask_columns(tmp_path / "r.fits", "F100"), ring > 0.5)
    np.testing.assert_array_equal(pm.read_mask_columns(nested, "F100"), ring > 0.5)


def test_point_source_reader_vector_rows(tmp_path):
    nside = 32
    rng = np.random.default_rng(0)
    cols = {n: (rng.random(hp.nside2npix(nside)) > 0.1).astype(np.float32)
            for n in pm.POINT_SOURCE_COLUMNS}  # fmt: skip
    path = write_published(tmp_path / "ps.fits", cols, nside, "NESTED", vector=1024)
    got = pm.read_mask_columns(path, pm.POINT_SOURCE_COLUMNS)
    expect = np.logical_and.reduce([cols[n] > 0.5 for n in pm.POINT_SOURCE_COLUMNS])
    np.testing.assert_array_equal(got, expect)


def test_bad_mask_files_are_named(tmp_path):
    nside = 16
    path = write_published(tmp_path / "gal.fits", {"GAL070": band_mask(nside, 10)}, nside, "RING")
    with pytest.raises(pm.MaskFormatError, match=r"gal.fits: mask column 'GAL050' not found .*GAL070"):
        pm.read_mask_columns(path, ["GAL050"])
    with pytest.raises(pm.MaskFormatError, match="mask file not found"):
        pm.read_mask_columns(tmp_path / "none.fits", ["GAL070"])
    with fits.open(path) as hdul:
        hdul[1].header["ORDERING"] = "SPIRAL"
        hdul.writeto(tmp_path / "bad.fits")
    with pytest.raises(pm.MaskFormatError, match="bad.fits: header keyword ORDERING"):
        pm.read_mask_columns(tmp_path / "bad.fits", ["GAL070"])
    with fits.open(path) as hdul:
        hdul[1].header["NSIDE"] = 32
        hdul.writeto(tmp_path / "short.fits")
    with pytest.raises(pm.MaskFormatError, match="has 3072 pixels, NSIDE = 32"):
        pm.read_mask_columns(tmp_path / "short.fits", ["GAL070"])


def test_write_and_read_mask_round_trip(tmp_path):
    keep = band_mask(32, 15.0) > 0.5
    pm.write_mask(tmp_path / "m.fits", keep)
    np.testing.assert_array_equal(pm.read_mask(tmp_path / "m.fits"), keep)
    with fits.open(tmp_path / "m.fits") as hdul:
        assert hdul[1].header["FSKY"] == pytest.approx(keep.mean())


def test_mask_flags_on_a_hand_built_mask():
    nside = 32
    gal = band_mask(nside, 20.0) > 0.5  # masked |b| <= 20
    ps = np.ones(hp.nside2npix(nside), bool)
    ps[hp.query_disc(nside, hp.ang2vec(100.0, 60.0, lonlat=True), np.radians(3.0))] = False
    glon = np.array([0.0, 100.0, 100.0, 250.0])
    glat = np.array([5.0, 60.0, 70.0, -45.0])
    mask_gal, mask_ps = sm.mask_flags(glon, glat, gal, ps)
    assert mask_gal.dtype == bool and mask_ps.dtype == bool
    np.testing.assert_array_equal(mask_gal, [True, False, False, False])
    np.testing.assert_array_equal(mask_ps, [False, True, False, False])
    # masks of another resolution: the same answer
    g2, p2 = sm.mask_flags(glon, glat, hp.ud_grade(gal, 64), hp.ud_grade(ps, 64))
    np.testing.assert_array_equal(g2, mask_gal)
    np.testing.assert_array_equal(p2, mask_ps)
    with pytest.raises(ValueError, match="differ in shape"):
        sm.mask_flags([1.0, 2.0], [3.0], gal, ps)


@pytest.mark.parametrize("fraction", [0.4, 0.7, 0.97])
def test_mock_galactic_mask_covers_the_configured_fraction(fraction):
    nside = 128
    _, b = hp.pix2ang(nside, np.arange(hp.nside2npix(nside)), lonlat=True)
    rng = np.random.default_rng(1)
    dust = np.exp(-np.abs(b) / 10.0) * (1 + 0.1 * rng.standard_normal(b.size))
    keep = sm.galactic_mask_from_dust(dust, fraction, smoothing_deg=5.0)
    assert keep.size == b.size
    assert keep.mean() == pytest.approx(fraction, abs=1.0 / hp.nside2npix(64))
    # the plane is masked (half the width of the equivalent |b| band), the poles are kept
    half_band = 0.5 * np.degrees(np.arcsin(1.0 - fraction))
    assert not keep[np.abs(b) < half_band].any() and keep[np.abs(b) > 80].all()


def test_mock_point_source_mask():
    nside = 256
    src = Table({"GLON": [10.0, 200.0, 300.0], "GLAT": [40.0, -30.0, 60.0],
                 "FLUX_100": [900.0, 10.0, 20.0], "FLUX_857": [5.0, 2000.0, 100.0]})  # fmt: skip
    keep = sm.point_source_mask(nside, src, ["100", "857"], flux_mjy=500.0, radius_arcmin=30.0)
    flags = ~keep[hp.ang2pix(nside, src["GLON"], src["GLAT"], lonlat=True)]
    np.testing.assert_array_equal(flags, [True, True, False])
    # the hole's area is that of a 30' disk
    area = (~keep).sum() * hp.nside2pixarea(nside)
    assert area == pytest.approx(2 * np.pi * (1 - np.cos(np.radians(0.5))) * 2, rel=0.1)
    keep100 = sm.point_source_mask(nside, src, ["100"], 500.0, 30.0)
    assert keep100[hp.ang2pix(nside, 200.0, -30.0, lonlat=True)]
    with pytest.raises(ValueError, match="FLUX_353 missing"):
        sm.point_source_mask(nside, src, ["353"], 500.0, 30.0)


def test_download_table_knows_the_published_mask_files():
    from conftest import ROOT

    from skydetect.io.registry import DownloadTable, fill_downloads, load_registry

    cfg = {"planck": {"download": {}}}
    fill_downloads(cfg, load_registry(ROOT / "config" / "downloads.yaml"))
    table = DownloadTable.from_config(cfg["planck"]["download"], {})
    assert table.mask_path("galactic") == "results/download/HFI_Mask_GalPlane-apo0_2048_R2.00.fits"
    assert table.mask_path("point_sources").endswith("HFI_Mask_PointSrc_2048_R2.00.fits")
    with pytest.raises(ValueError, match="'planck.download.masks.galactic'"):
        DownloadTable.from_config({}, {}).mask_path("galactic")


def test_survey_masks_of_the_mock_and_of_published_files(tmp_path):
    from skydetect.io.catalogs import write_sources
    from skydetect.io.fits_maps import write_checked_map

    nside = 64
    _, b = hp.pix2ang(nside, np.arange(hp.nside2npix(nside)), lonlat=True)
    write_checked_map(tmp_path / "857.fits", np.exp(-np.abs(b) / 8.0), "MJy/sr")
    src = Table({"ID": ["a", "b"], "GLON": [30.0, 120.0], "GLAT": [50.0, -60.0],
                 "TYPE": ["ir", "radio"], "FLUX_857": [900.0, 10.0],
                 "FLUX_100": [1.0, 10.0]})  # fmt: skip
    write_sources(tmp_path / "sources.ecsv", src)
    cfg = {"sky_fraction": 0.6, "dust_smoothing_deg": 5.0, "point_source_flux_mjy": 500.0,
           "point_source_bands": ["100", "857"], "point_source_radius_arcmin": 60.0,
           "galactic_columns": ["GAL060"], "point_source_columns": ["F857"]}  # fmt: skip
    inputs = {"dust": tmp_path / "857.fits", "sources": tmp_path / "sources.ecsv"}
    masks = sm.survey_masks(True, inputs, cfg)
    assert masks["galactic"].mean() == pytest.approx(0.6, abs=1e-3)
    gal, ps = sm.mask_flags(src["GLON"], src["GLAT"], masks["galactic"], masks["point_sources"])
    np.testing.assert_array_equal(ps, [True, False])
    np.testing.assert_array_equal(gal, [False, False])
    # a real sky: the configured columns of the published files
    cols = {n: band_mask(nside, 10.0 * (i + 1)) for i, n in enumerate(pm.GALACTIC_COLUMNS)}
    write_published(tmp_path / "gal.fits", cols, nside, "NESTED")
    write_published(tmp_path / "ps.fits", {"F857": band_mask(nside, 1.0)}, nside, "RING")
    real = sm.survey_masks(False, {"galactic": tmp_path / "gal.fits",
                                   "point_sources": tmp_path / "ps.fits"}, cfg)  # fmt: skip
    np.testing.assert_array_equal(real["galactic"], cols["GAL060"] > 0.5)
    np.testing.assert_array_equal(real["point_sources"], band_mask(nside, 1.0) > 0.5)


def test_apply_mask_policy_flags_or_drops():
    nside = 32
    gal = band_mask(nside, 20.0) > 0.5
    ps = np.ones(hp.nside2npix(nside), bool)
    ps[hp.query_disc(nside, hp.ang2vec(100.0, 60.0, lonlat=True), np.radians(3.0))] = False
    t = Table({"ID": [1, 2, 3], "GLON": [0.0, 100.0, 250.0], "GLAT": [5.0, 60.0, -45.0]})
    flagged = sm.apply_mask_policy(t, gal, ps, "flag")
    assert list(flagged["MASK_GAL"]) == [True, False, False]
    assert list(flagged["MASK_PS"]) == [False, True, False]
    assert "MASK_GAL" not in t.colnames  # the input is left alone
    assert list(sm.apply_mask_policy(t, gal, ps, "drop")["ID"]) == [3]
    empty = sm.apply_mask_policy(t[:0], gal, ps, "drop")
    assert len(empty) == 0 and empty["MASK_GAL"].dtype == bool
    with pytest.raises(ValueError, match="clusters.mask_candidates: 'hide'"):
        sm.apply_mask_policy(t, gal, ps, "hide")
    with pytest.raises(ValueError, match="GLAT missing"):
        sm.apply_mask_policy(Table({"GLON": [1.0]}), gal, ps, "flag")
