"""Patches: guard band between splits, complete cover of test tiles, masks, file layout."""

import healpy as hp
import numpy as np
import pytest
from astropy.table import Table

from skydetect.clusters import masks as masklib
from skydetect.clusters import patches as P
from skydetect.clusters.patch_files import read_patches, write_patches
from skydetect.geometry import projection, tiles

NSIDE = 128
TEST_TILES = [6]
VAL_TILES = [9, 25]
TRAIN_TILES = [t for t in range(48) if t not in TEST_TILES + VAL_TILES]


def _tile(t, cfg, nside=NSIDE, seed=0):
    rng = np.random.default_rng(seed)
    margin = tiles.cluster_margin_deg(cfg.size, cfg.pixel_arcmin, cfg.max_shift_px, nside)
    pix = tiles.tile_margin_pixels(nside, t, margin)
    maps = {b: rng.normal(size=pix.size).astype(np.float32) for b in cfg.bands}
    return tiles.Tile(t, nside, margin, pix, tiles.tile_of_pixels(nside, pix) == t, maps)


def _catalog(n=3000, seed=1):
    rng = np.random.default_rng(seed)
    return Table(
        {
            "GLON": rng.uniform(0, 360, n),
            "GLAT": np.degrees(np.arcsin(rng.uniform(-1, 1, n))),
            "THETA500": rng.uniform(2, 10, n),
        }
    )


@pytest.fixture(scope="module")
def cfg():
    return P.PatchConfig(bands=["a", "b"], size=32, pixel_arcmin=8.0, loops=4, max_shift_px=12)


@pytest.mark.parametrize(
    "tile,split,allowed",
    [(5, "train", TRAIN_TILES), (7, "train", TRAIN_TILES), (9, "validation", VAL_TILES)],
)
def test_guard_band_no_patch_touches_another_split(cfg, tile, split, allowed):
    """Tiles 5 and 7 border test tile 6: no training patch may reach into it."""
    cat = _catalog()
    ps = P.cut_training(_tile(tile, cfg), cat, cfg, split, allowed, seed=3)
    assert len(ps) > 0
    lon, lat = projection.patch_lonlat(
        ps.glon, ps.glat, cfg.size, cfg.pixel_arcmin, ps.angle, ps.flip
    )
    t = tiles.tile_of(lon, lat)
    assert np.isin(t, allowed).all()
    assert not np.isin(t, TEST_TILES).any()
    # every healpix pixel the patches sampled lies in the split's tiles too
    pix = hp.ang2pix(NSIDE, lon, lat, lonlat=True)
    assert np.isin(tiles.tile_of_pixels(NSIDE, pix), allowed).all()


def test_guard_band_drops_patches_next_to_the_test_tile(cfg):
    nb = hp.get_all_neighbours(2, 6)
    nb = [int(t) for t in nb[nb >= 0] if t in TRAIN_TILES]
    assert nb
    cat = _catalog()
    dropped = 0
    for t in nb:
        ps = P.cut_training(_tile(t, cfg), cat, cfg, "train", TRAIN_TILES, seed=3)
        dropped += ps.attrs["n_candidates"] - len(ps)
    assert dropped > 0


def test_shifts_independent_on_both_axes_and_bounded(cfg):
    rng = np.random.default_rng(0)
    g, b, a, f, src = P.training_centres(
        np.array([30.0, 200.0]), np.array([70.0, -10.0]), 500, 12, 8.0, rng
    )
    assert len(g) == 1000 and set(src) == {0, 1}
    # centre position in the tangent plane of its cluster (x towards -l)
    x, y = projection.lonlat_to_patch(
        g, b, np.array([30.0, 200.0])[src], np.array([70.0, -10.0])[src], 101, 8.0
    )
    dx, dy = x - 50, y - 50
    assert np.abs(dx).max() <= 12 + 1e-6 and np.abs(dy).max() <= 12 + 1e-6
    assert abs(np.corrcoef(dx, dy)[0, 1]) < 0.1  # not the same shift on both axes
    assert np.abs(dx).max() > 11 and np.abs(dy).max() > 11  # tangent-plane, no cos(b) shrink
    assert a.min() >= 0 and a.max() < 360 and 0.3 < f.mean() < 0.7


@pytest.mark.parametrize("tile", [6, 0, 20])
@pytest.mark.parametrize("overlap", [0.0, 0.5])
def test_dense_cover_is_complete(cfg, tile, overlap):
    c = P.PatchConfig(
        bands=["a"], size=16, pixel_arcmin=20.0, cover_overlap=overlap, cover_margin=None
    )
    tl = _tile(tile, c)
    ps = P.cut_cover(tl, _catalog(50), c, seed=0)
    assert np.all(ps.angle == 0) and not ps.flip.any()
    tpix = tiles.tile_pixels(NSIDE, tile)
    lon, lat = hp.pix2ang(NSIDE, tpix, lonlat=True)
    seen = np.zeros(tpix.size, bool)
    for g, b in zip(ps.glon, ps.glat, strict=True):
        x, y = projection.lonlat_to_patch(lon, lat, g, b, c.size, c.pixel_arcmin)
        seen |= (x >= -0.5) & (x <= c.size - 0.5) & (y >= -0.5) & (y <= c.size - 0.5)
    assert seen.all(), f"{(~seen).sum()} tile pixels in no cover patch"
    # and each tile pixel is the nearest-sampled value of some patch pixel
    vec = projection.patch_vectors(ps.glon, ps.glat, c.size, c.pixel_arcmin).reshape(-1, 3)
    sampled = np.unique(hp.vec2pix(NSIDE, vec[:, 0], vec[:, 1], vec[:, 2]))
    assert np.isin(tpix, sampled).all()


@pytest.mark.parametrize("tile", [0, 6, 20, 27])
def test_sparse_cover_central_squares_cover_the_tile_below_2x(tile):
    """Every tile pixel lies in the central square (margin from the edges) of a patch of the
    sparse cover, at less than twice the patch area of a tiling without overlap (polar,
    equatorial and intermediate tiles alike)."""
    size, pix, margin, nside = 64, 1.7, 6, 256  # the default patches; the tile at nside 256
    c = P.PatchConfig(bands=["a"], size=size, pixel_arcmin=pix, cover_margin=margin)
    tl = _tile(tile, c, nside=nside)
    glon, glat, angle, flip = P.cover_grid(tl, c)
    assert not flip.any()
    red = P.coverlib.cover_redundancy(len(glon), size, pix, nside, tile)
    assert 1.0 < red < 2.0
    tpix = tiles.tile_pixels(nside, tile)
    lon, lat = hp.pix2ang(nside, tpix, lonlat=True)
    seen = np.zeros(tpix.size, bool)
    lo, hi = margin - 0.5, size - margin - 0.5
    for g, b, a in zip(glon, glat, angle, strict=True):
        x, y = projection.lonlat_to_patch(lon, lat, g, b, size, pix, a)
        seen |= (x >= lo) & (x <= hi) & (y >= lo) & (y <= hi)
    assert seen.all(), f"{(~seen).sum()} tile pixels in no central square"


def test_cover_index_resamples_a_map_and_sees_every_tile_pixel():
    """Patches that sample a smooth HEALPix map, combined through the cover index, give the
    map back on every pixel of the tile (none left unseen, none outside the kept squares)."""
    nside, tile = 256, 6
    c = P.PatchConfig(bands=["a"], size=32, pixel_arcmin=13.7, cover_margin=4)
    tl = _tile(tile, c, nside=nside)
    lon, lat = hp.pix2ang(nside, np.arange(hp.nside2npix(nside)), lonlat=True)
    sky = (np.sin(np.radians(3 * lon)) * np.cos(np.radians(4 * lat))).astype(np.float32)
    glon, glat, angle, flip = P.cover_grid(tl, c)
    pix = hp.ang2pix(nside, *projection.patch_lonlat(glon, glat, c.size, c.pixel_arcmin, angle),
                     lonlat=True)  # fmt: skip
    index = P.cover_index(tl, c, nside)
    mean, count = P.coverlib.combine(sky[pix], index)
    tpix = tiles.tile_pixels(nside, tile)
    assert np.isin(tpix, index.pixels[count > 0]).all()
    assert index.in_tile.sum() == tpix.size
    # nearest-pixel resampling: the error is the map's change over about a pixel
    step = np.radians(13.7 / 60) * 4 * 1.5
    assert np.max(np.abs(mean - sky[index.pixels])) < step
    assert np.mean(np.abs(mean - sky[index.pixels])) < step / 4
    with pytest.raises(ValueError, match="do not match the cover index"):
        P.coverlib.combine(sky[pix][:-1], index)


def test_masks_disk_radius_and_every_cluster_drawn(cfg):
    size, pix = 64, 1.0
    glon, glat = np.array([100.0]), np.array([45.0])
    # three clusters: centre, off-centre, and one just outside the patch whose disk overlaps
    cl_l, cl_b = projection.offset_lonlat(
        100.0, 45.0, np.array([0.0, 10 / 60, 33.5 / 60]), np.array([0.0, -12 / 60, 0.0])
    )
    vec = projection.patch_vectors(glon, glat, size, pix)
    m, ids = masklib.draw_masks(
        vec,
        glon,
        glat,
        np.zeros(1),
        np.zeros(1, bool),
        size,
        pix,
        cl_l,
        cl_b,
        lambda idx: np.full(len(idx), 5.0),
    )
    area = np.pi * 5.0**2  # arcmin^2 at 1' pixels
    d = 33.5 - 32.0  # third disk: centre 1.5' beyond the patch edge; its segment is inside
    segment = 25 * np.arccos(d / 5) - d * np.sqrt(25 - d**2)
    lab = m[0].astype(bool)
    assert sorted(ids[0][ids[0] >= 0].tolist()) == [0, 1]  # the outside one is not "inside"
    assert abs(lab.sum() - (2 * area + segment)) < 0.08 * area
    x, y = projection.lonlat_to_patch(cl_l[1], cl_b[1], 100.0, 45.0, size, pix)
    assert lab[int(round(float(y))), int(round(float(x)))]


def test_mask_radius_options():
    rng = np.random.default_rng(0)
    r = masklib.mask_radii(
        1000, None, disk_radius=None, random_max_arcmin=15.0, pixel_arcmin=1.7, rng=rng
    )
    assert r.min() >= 1.7 and r.max() <= 15.0 and r.std() > 3
    r = masklib.mask_radii(
        3, np.array([4.0, np.nan, 8.0]), disk_radius=2.5, theta500_mode=True, theta500_scale=0.5
    )
    assert np.allclose(r, [2.0, 2.5, 4.0])


def test_training_patch_masks_follow_rotation(cfg):
    """The cluster the patch was cut around is in its mask wherever the rotation put it."""
    cat = _catalog(400)
    c = P.PatchConfig(
        bands=["a"], size=32, pixel_arcmin=4.0, loops=2, max_shift_px=8, disk_radius=6.0
    )
    ps = P.cut_training(_tile(12, c), cat, c, "train", TRAIN_TILES, seed=0)
    assert len(ps) > 0
    for i in range(len(ps)):
        ids = ps.cluster_ids[i][ps.cluster_ids[i] >= 0]
        assert ids.size >= 1
        x, y = projection.lonlat_to_patch(
            cat["GLON"][ids],
            cat["GLAT"][ids],
            ps.glon[i],
            ps.glat[i],
            c.size,
            c.pixel_arcmin,
            ps.angle[i],
            ps.flip[i],
        )
        assert ps.masks[i][np.round(y).astype(int), np.round(x).astype(int)].all()


def test_patches_are_seeded(cfg):
    cat = _catalog()
    a = P.cut_training(_tile(12, cfg), cat, cfg, "train", TRAIN_TILES, seed=5)
    b = P.cut_training(_tile(12, cfg), cat, cfg, "train", TRAIN_TILES, seed=5)
    c = P.cut_training(_tile(12, cfg), cat, cfg, "train", TRAIN_TILES, seed=6)
    assert np.array_equal(a.glon, b.glon) and np.array_equal(a.inputs, b.inputs)
    assert not np.array_equal(a.glon[: len(c)], c.glon[: len(a)])


def test_write_read_round_trip(tmp_path, cfg):
    ps = P.cut_training(_tile(12, cfg), _catalog(), cfg, "train", TRAIN_TILES, seed=1)
    p = tmp_path / "12.h5"
    write_patches(p, ps, cfg, {"catalog": "x"})
    back = read_patches(p)
    assert np.array_equal(back.inputs, ps.inputs) and np.array_equal(back.masks, ps.masks)
    assert back.inputs.dtype == np.float32 and back.masks.dtype == np.uint8
    assert back.attrs["tile"] == 12 and back.attrs["nside"] == NSIDE
    assert list(back.attrs["bands"]) == ["a", "b"] and not back.attrs["normalised"]
    assert not list(tmp_path.glob("*.tmp"))


def test_training_tile_not_in_split_is_an_error(cfg):
    with pytest.raises(ValueError, match="not a tile of split 'validation'"):
        P.cut_training(_tile(12, cfg), _catalog(), cfg, "validation", VAL_TILES, seed=1)


def test_background_patches_sample_the_tile_and_label_what_falls_in_them():
    """background_per_tile adds patches at random positions of the tile (uniform in area):
    their centres lie in the tile, spread over it rather than on clusters, they respect the
    guard band, and their masks hold exactly the catalogue clusters that fall in them."""
    import dataclasses

    base = P.PatchConfig(bands=["a"], size=32, pixel_arcmin=8.0, loops=1, max_shift_px=0)
    cfg = dataclasses.replace(base, background_per_tile=200)
    cat = _catalog(n=300)
    t = 7  # borders test tile 6: the guard band drops some background patches too
    tl = _tile(t, cfg)
    plain = P.cut_training(tl, cat, base, "train", TRAIN_TILES, seed=3)
    ps = P.cut_training(tl, cat, cfg, "train", TRAIN_TILES, seed=3)
    assert ps.attrs["n_background"] == 200
    assert ps.attrs["n_candidates"] == plain.attrs["n_candidates"] + 200
    bg = slice(len(plain), None)  # the cluster patches come first, drawn as without background
    g, b = ps.glon[bg], ps.glat[bg]
    assert len(g) > 100  # most of the 200 survive the guard band
    assert (tiles.tile_of(g, b) == t).all()
    # spread over the tile: far from every catalogue cluster for most of them
    from astropy.coordinates import SkyCoord

    c = SkyCoord(g, b, unit="deg", frame="galactic")
    k = SkyCoord(cat["GLON"], cat["GLAT"], unit="deg", frame="galactic")
    _, sep, _ = c.match_to_catalog_sky(k)
    assert np.median(sep.deg) > 1.0
    # uniform in area: the tile's two halves in z = sin(b) hold similar numbers
    z = np.sin(np.radians(b))
    zt = np.sin(np.radians(90 - np.degrees(hp.pix2ang(NSIDE, tl.pixels[tl.in_tile])[0])))
    lo = np.mean(z < np.median(zt))
    assert 0.35 < lo < 0.65
    # masks: nonzero exactly where a catalogue cluster overlaps the patch
    has_ids = (ps.cluster_ids[bg] >= 0).any(axis=1)
    assert (ps.masks[bg].any(axis=(1, 2)) <= has_ids).all()
    assert has_ids.sum() < len(g)  # most background patches hold no cluster
