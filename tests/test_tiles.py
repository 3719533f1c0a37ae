"""nside-2 tiles: indices, margins, tile files and their failure paths."""

import h5py
import healpy as hp
import numpy as np
import pytest

from skydetect.geometry import projection, tiles


def test_tile_of_is_healpy_ring_nside2():
    rng = np.random.default_rng(0)
    lon, lat = rng.uniform(0, 360, 500), rng.uniform(-90, 90, 500)
    assert np.array_equal(tiles.tile_of(lon, lat), hp.ang2pix(2, lon, lat, lonlat=True))
    assert tiles.N_TILES == 48


@pytest.mark.parametrize("nside", [64, 256])
def test_tile_of_pixels_matches_pixel_centres(nside):
    pix = np.arange(hp.nside2npix(nside))
    lon, lat = hp.pix2ang(nside, pix, lonlat=True)
    assert np.array_equal(tiles.tile_of_pixels(nside, pix), tiles.tile_of(lon, lat))
    t6 = tiles.tile_pixels(nside, 6)
    assert np.array_equal(t6, pix[tiles.tile_of(lon, lat) == 6])


@pytest.mark.parametrize("tile", [0, 6, 20, 47])
def test_margin_contains_every_point_within_margin(tile):
    nside, margin = 256, 3.0
    pix = tiles.tile_margin_pixels(nside, tile, margin)
    assert np.all(np.diff(pix) > 0)
    # points within `margin` of the tile: random points near tile pixels
    inside = tiles.tile_pixels(nside, tile)
    rng = np.random.default_rng(tile)
    src = rng.choice(inside, 3000)
    lon, lat = hp.pix2ang(nside, src, lonlat=True)
    d = rng.uniform(0, margin * 0.999, src.size)
    pa = rng.uniform(0, 2 * np.pi, src.size)
    pl, pb = projection.offset_lonlat(
        lon,
        lat,
        np.degrees(np.tan(np.radians(d))) * np.cos(pa),
        np.degrees(np.tan(np.radians(d))) * np.sin(pa),
    )
    assert np.isin(hp.ang2pix(nside, pl, pb, lonlat=True), pix).all()
    # and the margin is not absurdly wide (tile area 859 deg2)
    area = pix.size * hp.nside2pixarea(nside, degrees=True)
    assert area < 859.4 + 4 * 30 * (margin + 2.0) + 100


def test_cluster_margin_covers_shifted_patches():
    m = tiles.cluster_margin_deg(64, 1.7, 20, 2048)
    assert m > np.sqrt(2) * (32 + 20) * 1.7 / 60


def test_mmf_margin_holds_every_pixel_of_a_flat_patch_centred_in_the_tile():
    """The MMF's flat patches, centred on tile pixels next to its boundary, read only pixels
    of the tile file cut with the margin the workflow gives it."""
    nside, tile, size, pix_arcmin = 256, 6, 64, 6.8
    margin = tiles.mmf_margin_deg(size, pix_arcmin, nside)
    held = tiles.tile_margin_pixels(nside, tile, margin)
    inner = tiles.tile_pixels(nside, tile)
    neighbours = hp.get_all_neighbours(nside, inner).T
    neighbours = np.where(neighbours < 0, inner[:, None], neighbours)
    edge = inner[(tiles.tile_of_pixels(nside, neighbours) != tile).any(axis=1)]
    lon, lat = hp.pix2ang(nside, edge[:: max(1, edge.size // 40)], lonlat=True)
    plon, plat = projection.patch_lonlat(lon, lat, size, pix_arcmin)
    assert np.isin(hp.ang2pix(nside, plon, plat, lonlat=True), held).all()
    # the margin is what the patch needs, not the whole sky
    assert held.size < 3 * inner.size


def _write_maps(tmp_path, nside, bands):
    paths = {}
    for i, b in enumerate(bands):
        m = np.arange(hp.nside2npix(nside), dtype=np.float32) + 1000 * i
        paths[b] = tmp_path / f"{b}.fits"
        hp.write_map(paths[b], m, dtype=np.float32)
    return paths


def test_split_and_read_round_trip(tmp_path):
    nside = 64
    paths = _write_maps(tmp_path, nside, ["100", "y"])
    out = {t: tmp_path / f"{t}.h5" for t in (0, 6, 30)}
    tiles.split_maps(paths, out, margin_deg=4.0)
    for t, p in out.items():
        tl = tiles.read_tile(p)
        assert tl.tile == t and tl.nside == nside and tl.bands == ["100", "y"]
        assert np.array_equal(tl.maps["100"], tl.pixels.astype(np.float32))
        assert np.array_equal(tl.maps["y"], tl.pixels.astype(np.float32) + 1000)
        assert np.array_equal(tl.pixels[tl.in_tile], tiles.tile_pixels(nside, t))
    assert not list(tmp_path.glob("*.tmp"))


def test_patch_outside_margin_is_an_error(tmp_path):
    paths = _write_maps(tmp_path, 64, ["100"])
    tiles.split_maps(paths, {6: tmp_path / "6.h5"}, margin_deg=1.0)
    tl = tiles.read_tile(tmp_path / "6.h5")
    lon, lat = hp.pix2ang(2, 6, lonlat=True)
    tl.cut_patches(lon, lat, ["100"], 16, 5.0)  # fine
    with pytest.raises(tiles.TileError, match="outside tile 6"):
        tl.cut_patches(lon + 60, lat, ["100"], 16, 5.0)


def test_missing_band_is_named(tmp_path):
    paths = _write_maps(tmp_path, 64, ["100"])
    tiles.split_maps(paths, {6: tmp_path / "6.h5"}, margin_deg=1.0)
    with pytest.raises(tiles.TileError, match=r"\['857'\] absent from tile file"):
        tiles.read_tile(tmp_path / "6.h5", bands=["100", "857"])
    tl = tiles.read_tile(tmp_path / "6.h5")
    with pytest.raises(tiles.TileError, match="857"):
        tl.cut_patches(0.0, 0.0, ["857"], 8, 5.0)


def test_empty_tile_is_an_error(tmp_path):
    p = tmp_path / "3.h5"
    with h5py.File(p, "w") as f:
        f.attrs.update(tile=3, nside=64, margin_deg=1.0, bands=["100"])
        f.create_dataset("pixels", data=np.zeros(0, np.int64))
        f.create_dataset("in_tile", data=np.zeros(0, bool))
        f.create_group("maps").create_dataset("100", data=np.zeros(0, np.float32))
    with pytest.raises(tiles.TileError, match=r"3.h5 is empty"):
        tiles.read_tile(p)


def test_bad_tile_index_and_nside_mismatch(tmp_path):
    with pytest.raises(tiles.TileError, match="tile index 48"):
        tiles.tile_pixels(64, 48)
    p1 = _write_maps(tmp_path, 64, ["100"])
    (tmp_path / "b").mkdir()
    p2 = _write_maps(tmp_path / "b", 128, ["143"])
    with pytest.raises(tiles.TileError, match="band 143 .* nside 128"):
        tiles.split_maps({**p1, **p2}, {6: tmp_path / "6.h5"}, margin_deg=1.0)
    assert not (tmp_path / "6.h5").exists()


def test_unseen_becomes_nan_and_patch_tiles(tmp_path):
    nside = 64
    m = np.ones(hp.nside2npix(nside), np.float32)
    m[tiles.tile_pixels(nside, 6)[:10]] = hp.UNSEEN
    hp.write_map(tmp_path / "100.fits", m, dtype=np.float32)
    tiles.split_maps({"100": tmp_path / "100.fits"}, {6: tmp_path / "6.h5"}, margin_deg=1.0)
    tl = tiles.read_tile(tmp_path / "6.h5")
    assert np.isnan(tl.maps["100"]).sum() == 10
    lon, lat = hp.pix2ang(2, 6, lonlat=True)
    assert list(tiles.patch_tiles(lon, lat, 16, 5.0)[0]) == [6]
    near_edge = tiles.patch_tiles([lon], [lat + 12.0], 64, 30.0)  # 32 deg patch: several tiles
    assert 6 in near_edge[0] and len(near_edge[0]) > 1


def test_tile_without_valid_data_is_an_error(tmp_path):
    nside = 64
    m = np.ones(hp.nside2npix(nside), np.float32)
    m[tiles.tile_pixels(nside, 6)] = hp.UNSEEN
    hp.write_map(tmp_path / "545.fits", m, dtype=np.float32)
    tiles.split_maps({"545": tmp_path / "545.fits"}, {6: tmp_path / "6.h5"}, margin_deg=1.0)
    with pytest.raises(tiles.TileError, match="band 545 has no valid .* in tile 6"):
        tiles.read_tile(tmp_path / "6.h5")
