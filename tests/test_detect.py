"""Detections from a synthetic HEALPix probability map with known blobs."""

import astropy.units as u
import healpy as hp
import numpy as np
import pytest
from astropy.coordinates import SkyCoord

from skydetect.clusters.detect import (
    DETECTION_COLUMNS,
    DetectParams,
    connected_regions,
    find_detections,
    read_detections,
    write_table_atomic,
)

NSIDE = 1024  # 3.4' pixels
PIX_ARCMIN = hp.nside2resol(NSIDE, arcmin=True)


def _disc(lon, lat, radius_arcmin):
    vec = hp.ang2vec(lon, lat, lonlat=True)
    return hp.query_disc(NSIDE, vec, np.radians(radius_arcmin / 60.0))


def _sep_arcmin(lon1, lat1, lon2, lat2):
    a = SkyCoord(np.asarray(lon1), np.asarray(lat1), unit="deg", frame="galactic")
    b = SkyCoord(np.asarray(lon2), np.asarray(lat2), unit="deg", frame="galactic")
    return a.separation(b).arcmin


@pytest.fixture
def sky():
    """A 4-degree field at (l, b) = (40, 60) with a 0.1 background and known blobs."""
    background = _disc(40.0, 60.0, 240.0)
    prob = dict.fromkeys(background.tolist(), 0.1)
    blobs = {
        "good": (38.0, 59.0, 6.0, 0.97),  # detected
        "faint": (42.0, 61.0, 6.0, 0.85),  # below the threshold
        "huge": (40.0, 62.0, 25.0, 0.95),  # radius > 15'
    }
    for lon, lat, r, p in blobs.values():
        for pix in _disc(lon, lat, r):
            prob[int(pix)] = p
    # two isolated above-threshold pixels (fewer than 3): not a detection
    pair = hp.ang2pix(NSIDE, 41.0, 58.5, lonlat=True)
    prob[int(pair)] = 0.99
    prob[int(hp.get_all_neighbours(NSIDE, pair)[0])] = 0.99
    pixels = np.array(sorted(prob))
    values = np.array([prob[p] for p in pixels])
    return pixels, values, blobs


def test_blobs_give_exactly_the_expected_detections(sky):
    pixels, prob, blobs = sky
    det = find_detections(pixels, prob, NSIDE)
    assert det.colnames == DETECTION_COLUMNS
    assert len(det) == 1
    lon, lat, r, p = blobs["good"]
    assert _sep_arcmin(det["GLON"][0], det["GLAT"][0], lon, lat) < 0.5 * PIX_ARCMIN
    assert det["PEAK_PROB"][0] == pytest.approx(p)
    assert det["MEAN_PROB"][0] == pytest.approx(p)
    npix = _disc(lon, lat, r).size
    assert det["NPIX"][0] == npix
    assert det["AREA_ARCMIN2"][0] == pytest.approx(npix * PIX_ARCMIN**2)
    # the disc radius, within a pixel
    assert abs(det["RADIUS_ARCMIN"][0] - r) < PIX_ARCMIN
    assert det["RADIUS_ARCMIN"].unit == u.arcmin and det["GLON"].unit == u.deg
    # ICRS agrees with astropy's transformation of the Galactic centre
    icrs = SkyCoord(det["GLON"][0] * u.deg, det["GLAT"][0] * u.deg, frame="galactic").icrs
    assert det["RA"][0] == pytest.approx(icrs.ra.deg)
    assert det["DEC"][0] == pytest.approx(icrs.dec.deg)
    assert det["TILE"][0] == hp.ang2pix(2, lon, lat, lonlat=True)


def test_threshold_min_pixels_and_radius_are_parameters(sky):
    pixels, prob, blobs = sky
    # a lower threshold recovers the faint blob
    det = find_detections(pixels, prob, NSIDE, DetectParams(threshold=0.8))
    assert len(det) == 2
    # the 2-pixel pair passes when 2 pixels suffice
    det = find_detections(pixels, prob, NSIDE, DetectParams(min_pixels=2))
    assert len(det) == 2 and sorted(det["NPIX"])[0] == 2
    # a larger radius cap keeps the huge blob
    det = find_detections(pixels, prob, NSIDE, DetectParams(max_radius_arcmin=30.0))
    assert len(det) == 2
    assert det["RADIUS_ARCMIN"].max() == pytest.approx(25.0, abs=PIX_ARCMIN)


def test_three_pixel_rule_counts_neighbours_only():
    centre = hp.ang2pix(NSIDE, 10.0, 20.0, lonlat=True)
    nb = hp.get_all_neighbours(NSIDE, centre)
    far = hp.ang2pix(NSIDE, 10.5, 20.0, lonlat=True)
    # 3 adjacent pixels -> one detection; 2 adjacent + 1 far away -> none
    adj = np.array([centre, nb[0], nb[2]])
    det = find_detections(adj, np.full(3, 0.95), NSIDE)
    assert len(det) == 1 and det["NPIX"][0] == 3
    split = np.array([centre, nb[0], far])
    assert len(find_detections(split, np.full(3, 0.95), NSIDE)) == 0


def test_weighted_and_plain_barycentre():
    centre = hp.ang2pix(NSIDE, 100.0, -30.0, lonlat=True)
    pix = np.array([centre, *hp.get_all_neighbours(NSIDE, centre)[[0, 2, 4]]])
    prob = np.array([0.99, 0.91, 0.95, 0.93])
    vec = np.stack(hp.pix2vec(NSIDE, pix), axis=-1)
    for mode, weights in (("weighted", prob), ("plain", None)):
        det = find_detections(pix, prob, NSIDE, DetectParams(centre=mode))
        expect = np.average(vec, axis=0, weights=weights)
        lon, lat = hp.vec2ang(expect / np.linalg.norm(expect), lonlat=True)
        assert _sep_arcmin(det["GLON"][0], det["GLAT"][0], lon[0], lat[0]) < 1e-6
    w = find_detections(pix, prob, NSIDE, DetectParams(centre="weighted"))
    p = find_detections(pix, prob, NSIDE, DetectParams(centre="plain"))
    assert _sep_arcmin(w["GLON"][0], w["GLAT"][0], p["GLON"][0], p["GLAT"][0]) > 0.01


def test_oversize_region_is_split_at_higher_thresholds():
    # two 5' cores (0.99) joined by a 0.92 bridge into one region of radius > 15'
    pixels = _disc(200.0, 45.0, 30.0)
    vec = np.stack(hp.pix2vec(NSIDE, pixels), axis=-1)
    prob = np.full(pixels.size, 0.1)
    bridge = np.abs(vec @ hp.ang2vec(200.0, 45.0, lonlat=True) - 1) < (20 / 60 * np.pi / 180) ** 2
    prob[bridge] = 0.92
    cores = [(199.75, 45.0), (200.25, 45.0)]
    for lon, lat in cores:
        prob[np.isin(pixels, _disc(lon, lat, 5.0))] = 0.99
    assert len(find_detections(pixels, prob, NSIDE, DetectParams(oversize="reject"))) == 0
    det = find_detections(pixels, prob, NSIDE, DetectParams(oversize="split"))
    assert len(det) == 2
    for lon, lat in cores:
        assert _sep_arcmin(det["GLON"], det["GLAT"], lon, lat).min() < PIX_ARCMIN


def test_tile_filter_keeps_regions_centred_in_the_tile():
    # a blob straddling the border of tile 6: it belongs to the tile of its centre only
    corners = hp.boundaries(2, 6, step=2).T  # (8, 3) points along the border
    edge = corners[1] / np.linalg.norm(corners[1])  # middle of the first edge
    inside = hp.pix2vec(2, 6)
    centre = edge + 0.002 * (np.array(inside) - edge)  # a few arcmin inside tile 6
    lon, lat = hp.vec2ang(centre / np.linalg.norm(centre), lonlat=True)
    pix = _disc(lon[0], lat[0], 8.0)
    tiles = np.unique(hp.ang2pix(2, *hp.pix2ang(NSIDE, pix, lonlat=True), lonlat=True))
    assert 6 in tiles and tiles.size == 2  # the blob straddles the border
    other = int(tiles[tiles != 6][0])
    det = find_detections(pix, np.full(pix.size, 0.95), NSIDE, tile=6)
    assert len(det) == 1 and det["TILE"][0] == 6
    assert len(find_detections(pix, np.full(pix.size, 0.95), NSIDE, tile=other)) == 0


def test_connected_regions_match_disc_membership():
    a, b = _disc(0.0, 0.0, 10.0), _disc(0.0, 1.0, 10.0)
    pixels = np.concatenate([b, a])  # unsorted input
    regions = connected_regions(pixels, NSIDE, np.ones(pixels.size, bool))
    assert sorted(len(r) for r in regions) == sorted([a.size, b.size])
    assert {frozenset(pixels[r].tolist()) for r in regions} == {
        frozenset(a.tolist()),
        frozenset(b.tolist()),
    }


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="unique"):
        find_detections(np.array([1, 1, 2]), np.ones(3), NSIDE)
    with pytest.raises(ValueError, match="out of range"):
        find_detections(np.array([hp.nside2npix(NSIDE)]), np.ones(1), NSIDE)
    with pytest.raises(ValueError, match="clusters.detect.threshold"):
        DetectParams(threshold=1.5)
    with pytest.raises(ValueError, match="clusters.detect.centre"):
        DetectParams(centre="peak")


def test_empty_map_and_round_trip(tmp_path, sky):
    pixels, prob, _ = sky
    empty = find_detections(pixels, np.zeros(pixels.size), NSIDE, tile=7)
    assert len(empty) == 0 and empty.colnames == DETECTION_COLUMNS
    det = find_detections(pixels, prob, NSIDE)
    path = tmp_path / "d" / "6.ecsv"
    write_table_atomic(det, path)
    back = read_detections(path)
    assert back["RADIUS_ARCMIN"].unit == u.arcmin
    np.testing.assert_allclose(back["GLON"], det["GLON"])
    assert [p.name for p in path.parent.iterdir()] == ["6.ecsv"]  # no temporary left
    det.remove_column("NPIX")
    write_table_atomic(det, tmp_path / "bad.ecsv")
    with pytest.raises(ValueError, match="bad.ecsv: missing detection column"):
        read_detections(tmp_path / "bad.ecsv")
