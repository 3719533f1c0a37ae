"""skydetect.bubbles.scales: window sizes that cover the catalogue's bubble sizes."""

import numpy as np
import pytest


def test_uncovered_catalogue_size_is_flagged():
    from skydetect.bubbles.scales import check_scales, covered

    shape = (900, 1350)  # 2° x 3° at 8"
    sizes = np.array([0.4, 0.55, 1.2, 3.0, 11.5])
    # the old default: 12' windows are too large for bubbles under ~1'
    ok = covered(sizes, [12, 24, 48], 8.0, shape)
    np.testing.assert_array_equal(ok, [False, False, True, True, True])
    with pytest.raises(ValueError, match=r"MajAxis 0\.40, 0\.55 arcmin \(2 of 5\)") as err:
        check_scales(sizes, [12, 24, 48], 8.0, shape)
    assert "bubbles.windows.sizes_arcmin" in str(err.value)
    check_scales(sizes, [4.5, 13.5, 40], 8.0, shape)  # covers 0.4'-11.5'
    # and the largest: without a window of >= 2 x 1.7 x 11.5' it is not covered
    with pytest.raises(ValueError, match=r"11\.50"):
        check_scales(sizes, [4.5, 13.5], 8.0, shape)


def test_coverage_is_the_crop_code_range():
    """covered() says yes exactly for windows within the sides crop_geometry draws."""
    from skydetect.bubbles.crops import crop_geometry
    from skydetect.bubbles.scales import covered, crop_side_range

    rng = np.random.default_rng(4)
    for maj_px in (1.5, 4.0, 30.0, 200.0):
        half_box = 1.3 * maj_px
        box = np.array([450 - half_box, 300 - half_box, 450 + half_box, 300 + half_box])
        sides = [crop_geometry(rng, box, maj_px, (600, 900), (1.7, 5.9))[2] for _ in range(400)]
        lo, hi = crop_side_range(maj_px, (1.7, 5.9), 1.3, 600)
        assert lo <= min(sides) and max(sides) <= hi
        assert min(sides) - lo <= 0.03 * hi + 1 and hi - max(sides) <= 0.03 * hi + 1
        maj_arcmin = maj_px * 8 / 60
        cases = [(lo, True), (hi, True), (lo - 2, False)] + ([(hi + 2, False)] if hi < 598 else [])
        for w_px, want in cases:
            got = covered([maj_arcmin], [w_px * 8 / 60], 8.0, (600, 900))[0]
            assert got == want, (maj_px, w_px)


def test_config_windows_cover_the_configured_sizes():
    from pathlib import Path

    import yaml

    from skydetect.bubbles.scales import check_config_scales, window_sizes_for
    from skydetect.config import validate_config

    root = Path(__file__).resolve().parents[1]
    for path in (root / "config/config.yaml", root / "tests/workflow/config.yaml"):
        cfg = yaml.safe_load(path.read_text())
        full = validate_config(cfg, root / "config/schema.yaml")["bubbles"]
        check_config_scales(full)
        full["windows"]["sizes_arcmin"] = [48]
        with pytest.raises(ValueError, match="bubbles.windows.sizes_arcmin"):
            check_config_scales(full)
    # the proposed sizes do cover what they are proposed for
    for lo, hi in ((0.13, 10.62), (0.4, 11.5)):
        full = validate_config({}, root / "config/schema.yaml")["bubbles"]
        full["windows"]["sizes_arcmin"] = window_sizes_for(lo, hi)
        full["simulate"].update(min_majaxis_arcmin=lo, max_majaxis_arcmin=hi)
        check_config_scales(full)
