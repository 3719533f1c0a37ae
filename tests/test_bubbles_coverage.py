"""24 µm coverage: MIPSGAL tiles mosaicked onto the 8 µm grid, the per-pixel coverage of an
aligned field, COVER_24 / FILLED of every detection and the poor-cover flag or drop."""

import numpy as np
import pytest
from astropy.io import fits

from skydetect.bubbles.coverage import (
    apply_poor_cover,
    box_fraction,
    coverage_columns,
    filled_mask,
)
from skydetect.bubbles.detect import detections_table, read_detections
from skydetect.io import spitzer as sio


def _write(path, wcs, data):
    h = wcs.to_header()
    h["BUNIT"] = "MJy/sr"
    fits.PrimaryHDU(np.asarray(data, np.float32), header=h).writeto(path, overwrite=True)
    return path


@pytest.fixture
def tiles(tmp_path):
    """An 8 µm field (l 30°, 1° x 0.5° at 12") and two 24 µm tiles (15" TAN grids) covering
    its left and right parts with a 0.1° overlap; the right one has a NaN hole."""
    rng = np.random.default_rng(0)
    w8, sh8 = sio.field_wcs(30, 0, 1.0, 0.5, 12.0)
    i8 = _write(tmp_path / "i8.fits", w8, rng.normal(10, 1, sh8))
    out = []
    for name, lon in (("a", 30.2), ("b", 29.75)):
        w, sh = sio.field_wcs(lon, 0, 0.6, 0.6, 15.0, projection="TAN")
        d = rng.normal(20, 1, sh)
        if name == "b":
            d[60:80, 60:80] = np.nan
        out.append(_write(tmp_path / f"{name}.fits", w, d))
    return i8, out


def test_two_overlapping_tiles_mosaic_to_the_union(tiles, tmp_path):
    i8, (a, b) = tiles
    fa, fb = sio.align_field(i8, a, "x"), sio.align_field(i8, b, "x")
    both = sio.align_field(i8, [a, b], "x")
    assert 0.3 < fa.coverage_24.mean() < 0.7 and 0.3 < fb.coverage_24.mean() < 0.7
    union = fa.coverage_24 | fb.coverage_24
    assert np.array_equal(both.coverage_24, union)
    assert union.mean() > 0.97 and not union.all()  # the NaN hole stays uncovered
    assert np.array_equal(both.coverage_24, np.isfinite(both.data[0]))
    # where only one tile has data the mosaic holds its values; where both, their mean
    only_a = fa.coverage_24 & ~fb.coverage_24
    np.testing.assert_allclose(both.data[0][only_a], fa.data[0][only_a], rtol=1e-5)
    two = fa.coverage_24 & fb.coverage_24
    assert two.any()
    np.testing.assert_allclose(
        both.data[0][two], (fa.data[0][two] + fb.data[0][two]) / 2, rtol=1e-4
    )
    # the coverage travels with the aligned field
    sio.write_field(tmp_path / "al.fits", both)
    back = sio.read_field(tmp_path / "al.fits")
    assert back.cover24 is not None and np.array_equal(back.coverage_24, both.coverage_24)
    assert sio.align_field(i8, None, "x").coverage_24.sum() == 0  # 8 µm only


def test_tiles_that_miss_the_field_are_refused(tiles, tmp_path):
    i8, _ = tiles
    w, sh = sio.field_wcs(40, 0, 0.5, 0.5, 15.0)
    far = _write(tmp_path / "far.fits", w, np.ones(sh) + np.arange(sh[1]))
    with pytest.raises(sio.SpitzerError, match="does not overlap"):
        sio.align_field(i8, [far, far], "x")
    with pytest.raises(sio.SpitzerError, match="empty list"):
        sio.align_field(i8, [], "x")


def test_mipsgal_tiles_of_a_field_and_their_urls():
    from skydetect.io.registry import mipsgal_url

    assert sio.mipsgal_tiles("01500+0000") == [
        "MG0140n005_024.fits", "MG0140p005_024.fits", "MG0150n005_024.fits",
        "MG0150p005_024.fits", "MG0160n005_024.fits", "MG0160p005_024.fits",
    ]
    assert sio.mipsgal_tiles("00000+0000")[0] == "MG3590n005_024.fits"  # wraps at l = 0
    reg = {"bubbles": {"mipsgal": {"url": "https://x.org/MG{lon10:04d}{hemisphere}005_024.fits"}}}
    assert mipsgal_url(reg, "MG0150p005_024.fits") == "https://x.org/MG0150p005_024.fits"
    with pytest.raises(ValueError, match="not a MIPSGAL tile"):
        mipsgal_url(reg, "MPG_01500+0000_mosaic_M1.fits")


def _field(m24, i8):
    w, _ = sio.field_wcs(30, 0, 1.0, 1.0, 60.0)
    return sio.SpitzerField(np.stack([m24, i8]).astype(np.float32), w, 60.0, "f")


def test_cover_24_and_filled_of_boxes():
    h, w = 40, 60
    m24 = np.ones((h, w))
    m24[:, 30:] = np.nan  # no 24 µm on the right half
    i8 = np.ones((h, w))
    i8[0:10, 0:10] = np.nan  # a saturated 8 µm core
    f = _field(m24, i8)
    boxes = np.array(
        [
            [40, 10, 50, 20],  # all in the uncovered half
            [25, 10, 35, 20],  # half covered
            [10, 20, 20, 30],  # fully covered, nothing filled
            [0, 0, 10, 10],  # covered, its 8 µm filled
            [-10, 20, 10, 30],  # half beyond the field edge
            [12.2, 22.2, 12.4, 22.4],  # smaller than a pixel: the pixel of its centre
        ],
        float,
    )
    cols = coverage_columns(boxes, f)
    np.testing.assert_allclose(cols["COVER_24"], [0, 0.5, 1, 1, 0.5, 1])
    np.testing.assert_allclose(cols["FILLED"], [1, 0.5, 0, 1, 0.5, 0])
    # an all-NaN 24 µm region without a stored coverage also gives 0
    f.cover24 = None
    assert coverage_columns(boxes[:1], f)["COVER_24"][0] == 0
    # the stored coverage wins over finite values (e.g. a band filled later)
    f.cover24 = np.zeros((h, w), bool)
    assert coverage_columns(boxes[2:3], f)["COVER_24"][0] == 0
    # a band without any data (8 µm only) is zeroed, not filled
    only8 = _field(np.full((h, w), np.nan), np.ones((h, w)))
    assert not filled_mask(only8.data).any()
    assert coverage_columns(boxes[2:3], only8)["FILLED"][0] == 0
    # by brute force on random boxes
    rng = np.random.default_rng(1)
    mask = rng.random((h, w)) < 0.3
    for _ in range(50):
        x0, y0 = rng.uniform(-5, 55), rng.uniform(-5, 35)
        b = np.array([[x0, y0, x0 + rng.uniform(1, 20), y0 + rng.uniform(1, 20)]])
        xs = np.arange(-30, 100)
        ys = np.arange(-30, 80)
        ix = xs[(xs + 0.5 >= b[0, 0]) & (xs + 0.5 < b[0, 2])]
        iy = ys[(ys + 0.5 >= b[0, 1]) & (ys + 0.5 < b[0, 3])]
        if not len(ix) or not len(iy):
            continue
        yy, xx = np.meshgrid(iy, ix, indexing="ij")
        inside = (xx >= 0) & (xx < w) & (yy >= 0) & (yy < h)
        want = mask[yy[inside], xx[inside]].sum() / xx.size
        assert box_fraction(b, mask)[0] == pytest.approx(want)


def test_poor_cover_flags_or_drops_and_reaches_the_catalogues(tmp_path):
    from skydetect.bubbles.survey import merge_fields, survey_catalog

    f = _field(np.where(np.arange(60) < 30, 1.0, np.nan)[None].repeat(40, 0), np.ones((40, 60)))
    boxes = np.array([[40, 10, 50, 20], [25, 10, 35, 20], [10, 20, 20, 30]], float)
    scores = np.array([0.9, 0.8, 0.7])
    t = detections_table(boxes, scores, f.wcs, 60.0, "f", coverage_columns(boxes, f))
    flagged, keep = apply_poor_cover(t.copy(), 0.6, "flag")
    assert keep.all() and list(flagged["POOR_COVER"]) == [True, True, False]
    dropped, keep = apply_poor_cover(t.copy(), 0.5, "drop")
    assert list(keep) == [False, True, True] and len(dropped) == 2
    kept, keep = apply_poor_cover(t.copy(), 0.5, "drop", has_24=False)  # 8 µm only
    assert keep.all() and kept["POOR_COVER"][0]
    with pytest.raises(ValueError, match="bubbles.detect.poor_cover"):
        apply_poor_cover(t.copy(), 0.5, "hide")
    # the columns survive the detection file and reach the survey catalogue
    dropped.write(tmp_path / "f.ecsv", format="ascii.ecsv")
    b, s, back = read_detections(tmp_path / "f.ecsv")
    np.testing.assert_allclose(b, boxes[1:])
    np.testing.assert_allclose(back["COVER_24"], [0.5, 1.0])
    np.testing.assert_allclose(back["FILLED"], [0.5, 0.0])
    cat = survey_catalog(merge_fields([back]), back[:0])
    assert {"COVER_24", "FILLED", "POOR_COVER"} <= set(cat.colnames)


def test_config_takes_several_24um_files_and_the_poor_cover_keys(tiles):
    from pathlib import Path

    import yaml

    from skydetect.config import ConfigError, validate_config

    root = Path(__file__).resolve().parents[1]

    def bubbles(**kw):
        cfg = yaml.safe_load((root / "config/config.yaml").read_text())
        cfg["bubbles"].update(kw)
        return validate_config(cfg, root / "config/schema.yaml")["bubbles"]

    i8, (a, b24) = (str(tiles[0]), [str(p) for p in tiles[1]])
    b = bubbles(mosaics={"LMC": {"i8": i8, "m24": [a, b24]}})
    assert b["mosaics"]["LMC"]["m24"] == [a, b24]
    with pytest.raises(ConfigError, match=r"'bubbles.mosaics.LMC.m24\[1\]': .*nope.fits not found"):
        bubbles(mosaics={"LMC": {"i8": i8, "m24": [a, "nope.fits"]}})
    assert (b["detect"]["min_cover_24"], b["detect"]["poor_cover"]) == (0.5, "flag")
    with pytest.raises(ConfigError, match="m24"):
        bubbles(mosaics={"LMC": {"i8": "i8.fits", "m24": []}})
    with pytest.raises(ConfigError, match="poor_cover"):
        bubbles(detect={"poor_cover": "hide"})
    with pytest.raises(ConfigError, match="min_cover_24"):
        bubbles(detect={"min_cover_24": 1.5})
