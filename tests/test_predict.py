"""Per-tile inference: batching, combination of overlapping patches on the sphere, files."""

import h5py
import healpy as hp
import numpy as np
import pytest
from astropy.table import Table

from skydetect.clusters.detect import DetectParams, find_detections
from skydetect.clusters.predict import (
    ProbabilityMap,
    combine_on_sphere,
    patch_pixels,
    predict_patches,
    prediction_nside,
    read_cover,
    read_prediction,
    write_prediction,
)
from skydetect.geometry import projection, tiles

NSIDE = 1024
SIZE, PIX = 64, 1.7
TILE = 6
LON0, LAT0 = hp.pix2ang(2, TILE, lonlat=True)


def _grid(step_deg=0.3, n=3, lon0=LON0, lat0=LAT0):
    """n x n overlapping patch centres (a sixth of a patch apart) with varied angle and flip."""
    d = (np.arange(n) - (n - 1) / 2) * step_deg
    lat = lat0 + np.repeat(d, n)
    lon = lon0 + np.tile(d, n) / np.cos(np.radians(lat))
    rng = np.random.default_rng(1)
    return lon, lat, rng.uniform(0, 360, n * n), rng.random(n * n) < 0.5


def test_predict_patches_batches_any_size():
    x = np.random.default_rng(0).normal(size=(10, 8, 8, 2)).astype(np.float32)

    def model(batch):
        return 1 / (1 + np.exp(-batch[..., :1] * batch[..., 1:]))  # (n, 8, 8, 1)

    full = model(x)[..., 0]
    for bs in (1, 3, 10, 64):
        np.testing.assert_allclose(predict_patches(model, x, bs), full, rtol=1e-6)
    assert predict_patches(model, x[:0], 4).shape[0] == 0


def test_patch_pixels_agree_with_healpy_on_patch_lonlat():
    lon, lat, angle, flip = _grid()
    pix = patch_pixels(lon, lat, angle, flip, SIZE, PIX, NSIDE)
    plon, plat = projection.patch_lonlat(lon, lat, SIZE, PIX, angle, flip)
    ref = hp.ang2pix(NSIDE, plon, plat, lonlat=True)
    assert pix.shape == (9, SIZE, SIZE)
    assert np.mean(pix == ref) > 0.9999  # equal up to pixel-border round-off


def test_combining_a_sampled_map_returns_the_map():
    """Round trip: patches that sample a HEALPix map, averaged back per pixel, give the map."""
    sky = np.random.default_rng(2).random(hp.nside2npix(256)).astype(np.float32)
    lon, lat, angle, flip = _grid()
    pix = patch_pixels(lon, lat, angle, flip, SIZE, PIX, 256)
    pmap = combine_on_sphere(sky[pix], pix, 256, TILE)
    np.testing.assert_allclose(pmap.prob, sky[pmap.pixels], rtol=1e-6)
    assert pmap.count.sum() == pix.size
    assert np.array_equal(pmap.in_tile, tiles.tile_of_pixels(256, pmap.pixels) == TILE)
    assert np.all(np.diff(pmap.pixels) > 0)
    # overlapping patches: the central pixels were seen by several patches
    # overlapping patches: the central pixel was seen by all 9 patches, and averaged over them
    centre = hp.ang2pix(256, LON0, LAT0, lonlat=True)
    assert (pix == centre).any(axis=(1, 2)).sum() == 9
    assert pmap.count[pmap.pixels == centre][0] == (pix == centre).sum()


def test_overlapping_patches_give_one_detection():
    """A cluster seen by all 9 overlapping patches (each predicting it a little differently)
    is one detection; counted per patch it would be 9."""
    lon, lat, angle, flip = _grid()
    cl = hp.ang2vec(LON0 + 0.1, LAT0 - 0.1, lonlat=True)
    vec = projection.patch_vectors(lon, lat, SIZE, PIX, angle, flip)
    rng = np.random.default_rng(3)
    prob = np.full(vec.shape[:-1], 0.02, dtype=np.float32)
    per_patch = 0
    for i in range(len(lon)):
        # each patch sees the blob shifted by up to 1' and with its own radius 5-6'
        jitter = rng.normal(scale=1 / 60 / 57.3, size=3)
        centre = (cl + jitter) / np.linalg.norm(cl + jitter)
        sep = np.degrees(np.arccos(np.clip(vec[i] @ centre, -1, 1))) * 60
        blob = sep < rng.uniform(5, 6)
        prob[i][blob] = rng.uniform(0.93, 0.99)
        per_patch += int(blob.any())
    assert per_patch == 9
    nside = prediction_nside(PIX)
    assert nside == 2048
    pix = patch_pixels(lon, lat, angle, flip, SIZE, PIX, nside)
    pmap = combine_on_sphere(prob, pix, nside, TILE)
    det = find_detections(pmap.pixels, pmap.prob, nside, tile=TILE)
    assert len(det) == 1
    glon, glat = hp.vec2ang(cl, lonlat=True)
    sep = hp.rotator.angdist([det["GLON"][0], det["GLAT"][0]], [glon[0], glat[0]], lonlat=True)
    assert np.degrees(sep[0]) * 60 < 1.5  # arcmin


def test_prediction_nside():
    assert prediction_nside(1.7) == 2048
    assert prediction_nside(3.4) == 1024
    assert prediction_nside(1.7, 512) == 512
    with pytest.raises(ValueError, match="clusters.detect.nside"):
        prediction_nside(1.7, 1000)


def test_prediction_file_round_trip_and_errors(tmp_path):
    pmap = ProbabilityMap(
        pixels=np.array([3, 5, 9]),
        prob=np.array([0.1, 0.5, 0.95], np.float32),
        count=np.array([1, 2, 4], np.int32),
        in_tile=np.array([True, False, True]),
        nside=64,
        tile=0,
        attrs={"n_patches": 2, "bands": ["100", "y"]},
    )
    path = tmp_path / "p" / "0.h5"
    write_prediction(pmap, path, "default")
    back = read_prediction(path)
    assert back.nside == 64 and back.tile == 0 and back.attrs["run"] == "default"
    assert back.attrs["bands"] == ["100", "y"]
    np.testing.assert_array_equal(back.pixels, pmap.pixels)
    np.testing.assert_array_equal(back.in_tile, pmap.in_tile)
    assert sorted(p.name for p in path.parent.iterdir()) == ["0.h5"]
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["pixels"] = [1]
    with pytest.raises(ValueError, match="bad.h5: missing dataset"):
        read_prediction(tmp_path / "bad.h5")
    (tmp_path / "junk.h5").write_text("no hdf5")
    with pytest.raises(ValueError, match="cannot read prediction file"):
        read_prediction(tmp_path / "junk.h5")


def _cover(path, n=4, bands=("100", "143", "y"), normalised=False):
    with h5py.File(path, "w") as f:
        f["inputs"] = np.random.default_rng(0).normal(size=(n, 16, 16, len(bands)))
        f["masks"] = np.zeros((n, 16, 16), np.uint8)
        f["glon"] = np.full(n, LON0)
        f["glat"] = np.full(n, LAT0)
        f["angle"] = np.zeros(n, np.float32)
        f["flip"] = np.zeros(n, bool)
        f.attrs.update(
            bands=list(bands),
            size=16,
            pixel_arcmin=PIX,
            nside=256,
            tile=TILE,
            normalised=normalised,
        )


def test_read_cover_selects_model_bands_and_checks(tmp_path):
    _cover(tmp_path / "c.h5")
    data, attrs = read_cover(tmp_path / "c.h5", ["y", "100"])
    with h5py.File(tmp_path / "c.h5") as f:
        np.testing.assert_array_equal(data["inputs"], f["inputs"][...][..., [2, 0]])
    assert attrs["size"] == 16 and data["masks"].shape == (4, 16, 16)
    with pytest.raises(ValueError, match=r"band\(s\) \['857'\] needed by the model"):
        read_cover(tmp_path / "c.h5", ["857"])
    _cover(tmp_path / "n.h5", normalised=True)
    with pytest.raises(ValueError, match="already normalised"):
        read_cover(tmp_path / "n.h5", ["100"])


@pytest.mark.slow  # imports TensorFlow (~10 s alone, much more on a busy machine)
def test_small_keras_unet_gives_probabilities():
    import skydetect  # noqa: F401  (legacy Keras before TensorFlow)
    from skydetect.clusters.models import build_model

    model = build_model((16, 16, 3), {"architecture": "unet", "filter_num": [4, 8]})
    x = np.random.default_rng(0).normal(size=(5, 16, 16, 3)).astype(np.float32)
    p = predict_patches(model, x, batch_size=2)
    assert p.shape == (5, 16, 16)
    assert np.all((p >= 0) & (p <= 1))
    np.testing.assert_allclose(p, model(x, training=False).numpy()[..., 0], atol=1e-5)


def test_sample_map_sees_the_map_through_patches(tmp_path):
    from skydetect.clusters.predict import sample_map
    from skydetect.plots.detections import plot_patch_panels

    sky = np.random.default_rng(4).random(hp.nside2npix(256)).astype(np.float32)
    lon, lat, angle, flip = _grid()
    pix = patch_pixels(lon, lat, angle, flip, SIZE, PIX, 256)
    pmap = combine_on_sphere(sky[pix[:4]], pix[:4], 256, TILE)  # the map from 4 patches only
    seen = sample_map(pmap, lon, lat, angle, flip, SIZE, PIX)
    np.testing.assert_array_equal(seen[:4], sky[pix[:4]])
    # the other patches see the map where the first four did, NaN elsewhere
    covered = np.isin(pix[4:], pmap.pixels)
    np.testing.assert_array_equal(np.isfinite(seen[4:]), covered)
    np.testing.assert_array_equal(seen[4:][covered], sky[pix[4:]][covered])
    inputs = np.random.default_rng(5).normal(size=(2, SIZE, SIZE, 2))
    marks = [(np.array([10.0]), np.array([20.0]), np.array([3.0])), (np.array([]),) * 3]
    out = tmp_path / "panels.png"
    plot_patch_panels(inputs, ["100", "y"], None, seen[:2], marks, out, ["a", "b"], "t")
    assert out.stat().st_size > 5_000


# ------------------------------------------------------------------ sparse cover, precision
SKY_NSIDE, SKY_TILE, SKY_PIX, SKY_SIZE = 512, 20, 6.87, 32  # patch pixels ~ the map pixels


NOISE = 0.5  # white noise rms per pixel; blobs of amplitude 3


def _blob_patches(rng, n, size=SKY_SIZE, sigma_px=1.5, amp=3.0):
    """Flat training patches: white noise, Gaussian blobs (+ in band a, - in band b) and
    masks of radius 3 px around them."""
    yy, xx = np.mgrid[0:size, 0:size]
    x = NOISE * rng.normal(size=(n, size, size, 2)).astype(np.float32)
    m = np.zeros((n, size, size, 1), np.float32)
    for i in range(n):
        for cy, cx in rng.uniform(2, size - 3, size=(rng.integers(0, 4), 2)):
            r2 = (yy - cy) ** 2 + (xx - cx) ** 2
            g = amp * np.exp(-r2 / (2 * sigma_px**2))
            x[i, ..., 0] += g
            x[i, ..., 1] -= g
            m[i, ..., 0][r2 <= 9] = 1
    return x, m


def _blob_sky(rng, n_blobs=40, sigma_arcmin=1.5 * SKY_PIX, amp=3.0):
    """Two-band HEALPix maps (noise + blobs in the test tile) and the blob centres."""
    npix = hp.nside2npix(SKY_NSIDE)
    pix = tiles.tile_pixels(SKY_NSIDE, SKY_TILE)
    centres = []  # isolated blobs, 30' or more inside the tile
    for c in rng.permutation(pix):
        v = hp.pix2vec(SKY_NSIDE, c)
        if centres and np.max(np.array(hp.pix2vec(SKY_NSIDE, centres)).T @ v) > np.cos(
            np.radians(1.0)
        ):
            continue
        near = hp.query_disc(SKY_NSIDE, v, np.radians(0.5))
        if np.all(tiles.tile_of_pixels(SKY_NSIDE, near) == SKY_TILE):
            centres.append(c)
        if len(centres) == n_blobs:
            break
    centres = np.array(centres)
    a = NOISE * rng.normal(size=npix)
    sig = np.radians(sigma_arcmin / 60)
    for c in centres:
        v = hp.pix2vec(SKY_NSIDE, c)
        near = hp.query_disc(SKY_NSIDE, v, 5 * sig)
        d = np.arccos(np.clip(np.dot(np.array(hp.pix2vec(SKY_NSIDE, near)).T, v), -1, 1))
        a[near] += amp * np.exp(-(d**2) / (2 * sig**2))
    b = -a + NOISE * rng.normal(size=npix)  # the blobs negative, noise partly independent
    return {"a": a.astype(np.float32), "b": b.astype(np.float32)}, centres


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-level U-Net trained for a few epochs on blob patches, saved as model.json +
    weights.h5, and the dense and sparse cover files of a tile of a blob sky."""
    from skydetect.clusters import inference, models  # (legacy Keras before TensorFlow)
    from skydetect.clusters import patches as P
    from skydetect.clusters.patch_files import write_patches

    tf = pytest.importorskip("tensorflow")

    inference.configure_threads(2, streams=1)
    tf.keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    params = {"architecture": "unet", "filter_num": [8, 16]}
    model = models.build_model((SKY_SIZE, SKY_SIZE, 2), params)
    x, m = _blob_patches(rng, 768)
    x = np.arcsinh(x)  # the normalisation of predict_tile with unit scales
    model.compile(tf.keras.optimizers.Adam(3e-3), "binary_crossentropy")
    model.fit(x, m, batch_size=32, epochs=8, verbose=0)
    d = tmp_path_factory.mktemp("model")
    models.write_model_json(d, {"params": params, "bands": ["a", "b"], "input_size": SKY_SIZE})
    model.save_weights(str(d / models.WEIGHTS_FILE))

    maps, centres = _blob_sky(rng)
    margin = tiles.cluster_margin_deg(SKY_SIZE, SKY_PIX, 0, SKY_NSIDE)
    pix = tiles.tile_margin_pixels(SKY_NSIDE, SKY_TILE, margin)
    tile = tiles.Tile(SKY_TILE, SKY_NSIDE, margin, pix,
                      tiles.tile_of_pixels(SKY_NSIDE, pix) == SKY_TILE,
                      {b: v[pix] for b, v in maps.items()})  # fmt: skip
    cat = Table({"GLON": [0.0], "GLAT": [-89.0]})
    files = {}
    for name, cm in (("dense", None), ("sparse", 4)):
        cfg = P.PatchConfig(bands=["a", "b"], size=SKY_SIZE, pixel_arcmin=SKY_PIX,
                            cover_overlap=0.2, cover_margin=cm)  # fmt: skip
        attrs, chunks = P.cover_chunks(tile, cat, cfg, seed=0)
        index = P.cover_index(tile, cfg, SKY_NSIDE)
        files[name] = d / f"{name}.h5"
        write_patches(files[name], chunks, cfg, attrs, lambda f, i=index: cover_write(f, i))
    stats = {"method": "mad", "bands": {b: {"sigma": 1.0, "median": 0.0} for b in "ab"}}
    return {"dir": d, "files": files, "stats": stats, "centres": centres}


def cover_write(f, index):
    from skydetect.clusters.cover import write_index

    write_index(f, index)


def _detect(pmap):
    p = DetectParams(threshold=0.5, min_pixels=3, max_radius_arcmin=60.0)
    return find_detections(pmap.pixels, pmap.prob, pmap.nside, p, pmap.tile)


def _same_detections(a, b, tol_arcmin):
    assert len(a) == len(b) > 0
    va = projection.lonlat_to_vec(a["GLON"], a["GLAT"])
    vb = projection.lonlat_to_vec(b["GLON"], b["GLAT"])
    sep = np.degrees(np.arccos(np.clip(va @ vb.T, -1, 1))) * 60
    assert max(sep.min(axis=1).max(), sep.min(axis=0).max()) < tol_arcmin, np.sort(sep.min(1))


def _predict(trained, name, precision="float32"):
    from skydetect.clusters import inference
    from skydetect.clusters.predict import predict_tile

    model = inference.load_for_inference(trained["dir"], precision)
    return predict_tile(trained["files"][name], model, ["a", "b"], trained["stats"], SKY_TILE,
                        batch_size=16, nside=SKY_NSIDE, precision=precision)  # fmt: skip


@pytest.mark.slow  # trains a small network (~30 s on 2 busy cores)
def test_sparse_cover_matches_dense_cover_and_finds_the_same_clusters(trained):
    """Tolerance: on the tile's pixels the sparse map (prediction kept 4 px from the patch
    edges, less than half the patches) differs from the dense map (every patch pixel of ~7x
    overlapping patches averaged) by < 0.01 in probability on average and < 0.2 on 99 % of
    the pixels (measured 0.004 and 0.13; the largest differences, up to ~0.6, lie on the
    edges of the predicted discs, which the patch grid's sampling moves by a pixel); the
    detections are the same (centres within 1.5 pixels)."""
    dense, sparse = _predict(trained, "dense"), _predict(trained, "sparse")
    with h5py.File(trained["files"]["dense"]) as f, h5py.File(trained["files"]["sparse"]) as g:
        n_dense, n_sparse = len(f["glon"]), len(g["glon"])
        assert "combine" in f and "combine" in g  # the index cut_cover stores for predict_tile
        assert g.attrs["cover_redundancy"] < 0.5 * f.attrs["cover_redundancy"]
    assert n_sparse < 0.5 * n_dense
    tpix = tiles.tile_pixels(SKY_NSIDE, SKY_TILE)
    assert np.isin(tpix, sparse.pixels).all() and np.isin(tpix, dense.pixels).all()
    pd = dense.prob[np.searchsorted(dense.pixels, tpix)]
    ps = sparse.prob[np.searchsorted(sparse.pixels, tpix)]
    diff = np.abs(pd - ps)
    assert diff.mean() < 0.01 and np.percentile(diff, 99) < 0.2, (diff.mean(), diff.max())
    det_d, det_s = _detect(dense), _detect(sparse)
    # centres within 1.5 pixels: nearest-pixel sampling of the map (patch pixels = map pixels
    # here) quantises a blob's position in each patch to half a pixel on both axes
    _same_detections(det_d, det_s, tol_arcmin=1.5 * SKY_PIX)
    # and they are the injected blobs
    lon, lat = hp.pix2ang(SKY_NSIDE, trained["centres"], lonlat=True)
    sep = np.degrees(np.arccos(np.clip(
        projection.lonlat_to_vec(det_s["GLON"], det_s["GLAT"])
        @ projection.lonlat_to_vec(lon, lat).T, -1, 1))) * 60  # fmt: skip
    assert np.all(sep.min(axis=1) < 2 * SKY_PIX)  # every detection is a blob
    assert len(det_s) >= 0.8 * len(lon)


@pytest.mark.slow
def test_bfloat16_inference_stays_within_tolerance_of_float32(trained):
    """Tolerance: bfloat16 probabilities within 0.05 of float32 on every pixel of the tile
    (0.005 on average); the same detections within a pixel."""
    from skydetect.clusters import inference

    tf = pytest.importorskip("tensorflow")
    model = inference.load_for_inference(trained["dir"], "bfloat16")
    convs = [la for la in model.layers if isinstance(la, tf.keras.layers.Conv2D)]
    assert convs and all(la.compute_dtype == "bfloat16" for la in convs)  # computes in bfloat16
    assert model.outputs[0].dtype == tf.float32  # float32 probabilities out
    assert tf.keras.mixed_precision.global_policy().name == "float32"  # the policy restored
    f32, bf16 = _predict(trained, "sparse"), _predict(trained, "sparse", "bfloat16")
    np.testing.assert_array_equal(f32.pixels, bf16.pixels)
    diff = np.abs(f32.prob - bf16.prob)
    print(f"bfloat16 against float32: max {diff.max():.4f}, mean {diff.mean():.5f}")
    assert diff.max() < 0.05 and diff.mean() < 0.005, (diff.max(), diff.mean())
    assert diff.max() > 0  # bfloat16 rounds: an exact match would mean float32 ran
    assert bf16.attrs["precision"] == "bfloat16"
    _same_detections(_detect(f32), _detect(bf16), tol_arcmin=SKY_PIX)


@pytest.mark.slow  # imports TensorFlow
def test_model_macs_counts_convolutions_and_the_precision_switch_checks_its_name():
    from skydetect.clusters import inference

    tf = pytest.importorskip("tensorflow")
    x = tf.keras.Input((16, 16, 3))
    y = tf.keras.layers.Conv2D(8, 3, padding="same")(x)  # 16*16*3*3*3*8
    y = tf.keras.layers.MaxPooling2D()(y)
    y = tf.keras.layers.Conv2DTranspose(4, 2, strides=2)(y)  # 8*8 inputs * 2*2*8*4
    y = tf.keras.layers.Conv2D(1, 1, activation="sigmoid")(y)  # 16*16*4
    model = tf.keras.Model(x, y)
    assert inference.model_macs(model) == 16 * 16 * 27 * 8 + 8 * 8 * 4 * 32 + 16 * 16 * 4
    batch = np.random.default_rng(0).normal(size=(5, 16, 16, 3)).astype(np.float32)
    predictor = inference.CompiledPredictor(model, batch_size=4)
    p = predictor(batch)  # a batch of 4, then one of 1
    np.testing.assert_allclose(p, model(batch).numpy()[..., 0], atol=1e-6)
    np.testing.assert_allclose(predictor(batch[:2]), p[:2], atol=1e-6)
    assert predictor._step.experimental_get_tracing_count() == 1  # one trace for all sizes
    # two batches in flight: every patch in its place, the last batch of what remains
    streamed = inference.CompiledPredictor(model, batch_size=2, streams=2)
    np.testing.assert_allclose(streamed(batch), p, atol=1e-6)
    assert streamed._step.experimental_get_tracing_count() == 1
    with pytest.raises(ValueError, match="clusters.detect.streams"):
        inference.resolve_streams(0, 2)
    assert inference.resolve_streams(3, 2) == 3
    with pytest.raises(ValueError, match="clusters.detect.precision"):
        inference.resolve_precision("float16")
    assert inference.resolve_precision("auto") in ("float32", "bfloat16", "mixed")
