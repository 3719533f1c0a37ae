"""The mock's bubbles: MWP DR2 statistics, appearance of clear / unclear bubbles, and the
volunteers' catalogue the detector trains on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import schema_defaults

from skydetect.bubbles import catalog as cat
from skydetect.config import cross_check
from skydetect.sky import bubble_mock as bm
from skydetect.sky.spitzer import paint_bubble

CATALOGS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "catalogs"
DEFAULTS = schema_defaults("bubbles", "simulate")


def _cfg(**kw):
    return {**DEFAULTS, "width_deg": 4.0, "height_deg": 2.0, **kw}


@pytest.fixture(scope="module")
def big_truth():
    """~20,000 bubbles over 4° x 2° (density factor 30)."""
    cfg = _cfg(density_factor=30.0)
    return bm.draw_bubbles(np.random.default_rng(5), 30.0, 0.0, cfg), cfg


# ------------------------------------------------------------------ density and clear fraction
def test_density_follows_the_latitude_profile(big_truth):
    truth, cfg = big_truth
    expected = bm.expected_count(cfg, -1.0, 1.0, 4.0)
    assert abs(len(truth) - expected) < 4 * np.sqrt(expected)
    edges = np.arange(0.0, 1.01, 0.1)
    counts, _ = np.histogram(np.abs(truth["GLAT"]), edges)
    exp = np.array(
        [
            2 * bm.expected_count(cfg, lo, hi, 4.0)
            for lo, hi in zip(edges[:-1], edges[1:], strict=True)
        ]
    )
    assert np.all(np.abs(counts - exp) < 4 * np.sqrt(exp))
    # a flat profile would put as many bubbles at 0.9° as at 0°: the drawn one does not
    assert counts[0] > 5 * counts[-1]
    assert np.all(np.abs(cat.wrap_glon(truth["GLON"] - 30.0)) <= 2.0)


def test_clear_fraction_by_size_and_latitude(big_truth):
    truth, cfg = big_truth
    clear = np.asarray(truth["CLEAR"])
    p = bm.clear_probability(np.asarray(truth["GLAT"]), np.asarray(truth["MajAxis"]), cfg)
    # every bin of both tables: observed clear fraction = the probability drawn from
    for values, edges in (
        (np.abs(truth["GLAT"]), cfg["clear_glat_edges_deg"]),
        (np.asarray(truth["MajAxis"]), cfg["clear_size_edges_arcmin"]),
    ):
        idx = np.digitize(values, edges)
        for i in range(len(edges) + 1):
            sel = idx == i
            if sel.sum() < 50:
                continue
            tol = 4 * np.sqrt(p[sel].mean() * (1 - p[sel].mean()) / sel.sum())
            assert abs(clear[sel].mean() - p[sel].mean()) < tol
    # the size table matters: the largest bubbles are clear less often than mid-sized ones
    maj = np.asarray(truth["MajAxis"])
    assert clear[maj > 4].mean() < clear[(maj > 0.3) & (maj < 0.8)].mean()
    assert abs(clear.mean() - cfg["clear_fraction"]) < 0.04


@pytest.mark.catalogs
def test_schema_fallbacks_are_the_mwp_dr2_measurement():
    csv, npy = CATALOGS / "mwp_dr2_galactic_plane.csv", CATALOGS / "mwp_dr2_clear_bubbles.npy"
    if not (csv.exists() and npy.exists()):
        pytest.skip(f"real catalogues not found in {CATALOGS}")
    stats = bm.mwp_statistics(
        cat.read_mwp(csv, npy),
        DEFAULTS["clear_glat_edges_deg"],
        DEFAULTS["clear_size_edges_arcmin"],
    )
    for key, value in stats.items():
        assert np.asarray(DEFAULTS[key]) == pytest.approx(np.asarray(value), rel=0.03, abs=0.005), (
            key
        )
    # the measured profile predicts the catalogue's count in |b| < 0.5 to 15 %
    cfg = dict(DEFAULTS, **stats, density_factor=1.0)
    real = cat.read_mwp(csv, npy)
    span = 2 * (np.abs(real["GLON"]).max() - np.abs(real["GLON"]).min())
    n_pred = bm.expected_count(cfg, -0.5, 0.5, span)
    assert (np.abs(real["GLAT"]) < 0.5).sum() == pytest.approx(n_pred, rel=0.15)


def test_statistics_of_a_known_table():
    rng = np.random.default_rng(1)
    cfg = _cfg(density_factor=40.0, glat_scale_deg=0.25)
    t = bm.draw_bubbles(rng, 0.0, 0.0, dict(cfg, width_deg=20.0))
    t["GLON"] = t["GLON"] + 10.0  # |l| in [0, 20]: the span is 2 x 20
    t["GLON"] = np.where(rng.random(len(t)) < 0.5, t["GLON"], -t["GLON"])
    stats = bm.mwp_statistics(t, cfg["clear_glat_edges_deg"], cfg["clear_size_edges_arcmin"])
    assert stats["glat_scale_deg"] == pytest.approx(0.25, rel=0.1)
    # half of the table on each side of l = 0: the per-deg² density is half the drawn one
    assert stats["density_per_deg2"] == pytest.approx(40 * cfg["density_per_deg2"] / 2, rel=0.1)


# ------------------------------------------------------------------ appearance
def test_clear_and_unclear_appearance_draws(big_truth):
    truth, cfg = big_truth
    clear = np.asarray(truth["CLEAR"])
    kinds = np.asarray(truth["KIND"])
    assert np.all(kinds[clear] == "ring") and not np.any(kinds[~clear] == "ring")
    assert set(kinds[~clear]) == set(bm.UNCLEAR_KINDS)
    s24 = np.asarray(truth["STRENGTH24"])[clear]
    lo, hi = cfg["strength24_clear"]
    assert s24.min() >= lo and s24.max() <= hi
    assert s24.min() < 1.5 * lo and s24.max() > 0.7 * hi  # weak interiors included
    assert np.mean(s24 < 0.2) > 0.2  # and not rare
    con = np.asarray(truth["CONTRAST"])
    assert con[clear].min() >= cfg["contrast_clear"][0]
    faint = kinds == "faint"
    assert np.all(con[faint] <= cfg["contrast_clear"][0]) and con[faint].min() < 0.05
    assert np.all(np.asarray(truth["STRENGTH24"])[kinds == "ring_no24"] == 0)
    arcs = kinds == "arc"
    assert 0.3 < np.mean(np.asarray(truth["STRENGTH24"])[arcs] == 0) < 0.7


def _painted(kind, clear, contrast=1.0, strength24=1.0, seed=0, a=30.0):
    img8, img24 = np.zeros((161, 161)), np.zeros((161, 161))
    got = paint_bubble(
        img8, img24, 80.0, 80.0, a, contrast, strength24, clear, np.random.default_rng(seed),
        kind=kind, level8=50.0, level24=20.0,
    )  # fmt: skip
    assert got == kind
    phi = np.linspace(0, 2 * np.pi, 720, endpoint=False)
    ring8 = np.array(
        [img8[np.rint(80 + r * np.sin(phi)).astype(int), np.rint(80 + r * np.cos(phi)).astype(int)]
         for r in np.arange(a - 3, a + 4)]
    ).max(axis=0)  # fmt: skip
    return img8, img24, ring8


@pytest.mark.parametrize("seed", range(6))
def test_a_clear_bubble_is_a_closed_ring_around_24um(seed):
    img8, img24, ring8 = _painted("ring", True, contrast=1.0, strength24=1.0, seed=seed)
    assert ring8.max() == pytest.approx(50.0, rel=0.6)  # contrast x level, asymmetry <= 1.5
    assert ring8.min() > 0.3 * ring8.max()  # closed: no gap
    assert img8[80, 80] < 0.05 * ring8.max()  # the 8 µm interior is empty
    # the 24 µm peak is inside, at >= strength x level (a central source may add to it)
    assert img24[70:91, 70:91].max() >= 0.95 * 20.0
    assert img24[80, 80] > 3 * img24[80, 80 + 30]


def test_weak_24um_interior_scales_with_strength():
    _, strong, _ = _painted("ring", True, strength24=2.0, seed=3)
    _, weak, _ = _painted("ring", True, strength24=0.05, seed=3)
    inner = (slice(75, 86), slice(75, 86))
    assert weak[inner].max() == pytest.approx(strong[inner].max() * 0.05 / 2.0, rel=0.35)


@pytest.mark.parametrize("seed", range(6))
def test_unclear_arcs_are_broken_and_faint_rings_faint(seed):
    _, _, arc = _painted("arc", False, seed=seed)
    assert arc.min() < 0.05 * arc.max()  # a gap
    assert np.mean(arc < 0.2 * arc.max()) > 0.15  # >= ~30 % of the circumference, blurred
    _, no24, _ = _painted("ring_no24", False, strength24=0.0, seed=seed)
    assert no24[80, 80] < 1e-3  # nothing inside at 24 µm
    _, _, faint = _painted("faint", False, contrast=0.03, seed=seed)
    assert faint.max() < 0.05 * 50 * 1.6


def test_paint_bubble_rejects_a_clear_arc_and_uses_the_image_level():
    with pytest.raises(ValueError, match="clear bubbles are 'ring'"):
        paint_bubble(np.zeros((9, 9)), np.zeros((9, 9)), 4, 4, 2, 1, 1, True, None, kind="arc")
    img8, img24 = np.full((101, 101), 40.0), np.full((101, 101), 10.0)
    paint_bubble(img8, img24, 50, 50, 20, 0.5, 1.0, True, np.random.default_rng(0))
    assert img8.max() - 40 == pytest.approx(20.0, rel=0.6)  # 0.5 x the image's median


# ------------------------------------------------------------------ the volunteers' catalogue
def test_volunteer_catalogue_scatter_missing_and_spurious(big_truth):
    truth, cfg = big_truth
    cfg = dict(
        cfg,
        catalog_position_scatter=0.15,
        catalog_size_scatter=0.2,
        catalog_missing_fraction=0.1,
        catalog_spurious_fraction=0.04,
    )
    n = len(truth)
    out = bm.volunteer_catalog(np.random.default_rng(2), truth, 30.0, 0.0, cfg)
    real = out["TRUE_MWP"] != ""
    n_kept, n_fake = int(real.sum()), int((~real).sum())
    assert abs((n - n_kept) / n - 0.1) < 4 * np.sqrt(0.09 / n)
    assert abs(n_fake - 0.04 * n) < 4 * np.sqrt(0.04 * n)
    by_name = {str(m): i for i, m in enumerate(truth["MWP"])}
    idx = np.array([by_name[str(m)] for m in out["TRUE_MWP"][real]])
    maj = np.asarray(truth["MajAxis"])[idx]
    db = (np.asarray(out["GLAT"])[real] - np.asarray(truth["GLAT"])[idx]) * 60 / maj
    dl = cat.wrap_glon(np.asarray(out["GLON"])[real] - np.asarray(truth["GLON"])[idx]) * 60 / maj
    for d in (db, dl):
        assert np.std(d) == pytest.approx(0.15, rel=0.05) and abs(np.mean(d)) < 0.01
    ratio = np.log(np.asarray(out["MajAxis"])[real] / maj)
    inner = (maj > 2 * cfg["min_majaxis_arcmin"]) & (maj < cfg["max_majaxis_arcmin"] / 2)
    assert np.std(ratio[inner]) == pytest.approx(0.2, rel=0.05)
    # never outside the drawn size range (the windows cover that range)
    assert cfg["min_majaxis_arcmin"] <= out["MajAxis"].min()
    assert out["MajAxis"].max() <= cfg["max_majaxis_arcmin"]
    assert np.allclose(
        np.log(np.asarray(out["MinAxis"])[real] / np.asarray(truth["MinAxis"])[idx]), ratio
    )
    assert np.array_equal(np.asarray(out["CLEAR"])[real], np.asarray(truth["CLEAR"])[idx])
    # spurious entries: inside the field, with the mock's clear statistics
    fake = out[~real]
    assert np.all(np.abs(cat.wrap_glon(fake["GLON"] - 30.0)) <= 2.0)
    assert np.all(np.abs(fake["GLAT"]) <= 1.0) and 0 < fake["CLEAR"].sum() < len(fake)
    cat.write_catalog(Path("/dev/null"), out)  # the catalogue layout


def test_volunteer_catalogue_without_errors_is_the_truth(big_truth):
    truth, cfg = big_truth
    zero = dict(
        cfg,
        catalog_position_scatter=0.0,
        catalog_size_scatter=0.0,
        catalog_missing_fraction=0.0,
        catalog_spurious_fraction=0.0,
    )
    out = bm.volunteer_catalog(np.random.default_rng(2), truth, 30.0, 0.0, zero)
    order = np.argsort(np.asarray(truth["GLON"]), kind="stable")
    for col in ("GLON", "GLAT", "MajAxis", "MinAxis", "CLEAR"):
        assert np.array_equal(np.asarray(out[col]), np.asarray(truth[col])[order]), col


# ------------------------------------------------------------------ config
def test_config_rules_of_the_mock():
    def msgs(**sim):
        out = cross_check({"bubbles": {"simulate": dict(DEFAULTS, **sim)}})
        return [m for m in out if "bubbles.simulate" in m]

    assert msgs() == []
    assert any(
        "'bubbles.simulate.clear_fraction_by_size' has 2 entries" in m
        for m in msgs(clear_fraction_by_size=[0.2, 0.3])
    )
    assert any(
        "clear_glat_edges_deg' must increase" in m
        for m in msgs(clear_glat_edges_deg=[0.4, 0.2, 0.6, 0.8])
    )
    assert any(
        "contrast_clear' [2.0, 1.0]: low above high" in m for m in msgs(contrast_clear=[2.0, 1.0])
    )
    with pytest.raises(ValueError, match="clear_fraction_by_glat"):
        bm.clear_probability(np.zeros(2), np.ones(2), dict(DEFAULTS, clear_fraction_by_glat=[0.1]))


def test_a_missing_statistics_file_is_named_before_any_job(tmp_path):
    cfg = {
        "detectors": ["bubbles"],
        "bubbles": {
            "source": "simulate",
            "simulate": dict(DEFAULTS, statistics_from=str(tmp_path / "no.csv")),
        },
    }
    msgs = [m for m in cross_check(cfg) if "bubbles.simulate.statistics_from" in m]
    assert msgs and "no.csv" in msgs[0]


def test_statistics_from_replaces_the_configured_numbers():
    rng = np.random.default_rng(3)
    t = bm.draw_bubbles(rng, 0.0, 0.0, _cfg(density_factor=20.0, width_deg=10.0))
    cfg = bm.with_statistics(_cfg(), t)
    assert cfg["size_median_arcmin"] == pytest.approx(np.median(t["MajAxis"]))
    assert cfg["clear_fraction"] == pytest.approx(np.mean(t["CLEAR"]))
    assert cfg["width_deg"] == 4.0  # the other keys stay
