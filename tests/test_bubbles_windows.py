"""Sliding windows and their boxes (skydetect.bubbles.windows): coverage, edge windows, the
window file, box coordinates between field and network input."""

from __future__ import annotations

import numpy as np

from skydetect.bubbles.windows import (
    field_to_input,
    field_truth,
    input_to_field,
    make_windows,
    positions,
    read_windows,
    sliding_windows,
    write_windows,
)


def test_sliding_windows_cover_and_stay_inside():
    np.testing.assert_array_equal(positions(100, 30, 10), [0, 10, 20, 30, 40, 50, 60, 70])
    np.testing.assert_array_equal(positions(105, 30, 10)[-2:], [70, 75])  # last one shifted in
    x0, y0, size = sliding_windows((70, 130), [30, 60], 1 / 3)
    assert np.all((x0 + size <= 130) & (y0 + size <= 70) & (x0 >= 0) & (y0 >= 0))
    covered = np.zeros((70, 130), bool)
    for a, b, s in zip(x0[size == 30], y0[size == 30], size[size == 30], strict=True):
        covered[b : b + s, a : a + s] = True
    assert covered.all()


def test_edge_windows_reach_past_the_field_by_edge_pad_only():
    np.testing.assert_array_equal(
        positions(100, 30, 10, pad=10), [-10, 0, 10, 20, 30, 40, 50, 60, 70, 80]
    )
    np.testing.assert_array_equal(positions(100, 30, 10, pad=0), positions(100, 30, 10))
    shape = (70, 130)
    x0, y0, size = sliding_windows(shape, [30, 60], 1 / 3, edge_pad=1 / 3)
    for s, reach in ((30, 10), (60, 20)):  # a third of the side, not more, on every edge
        sel = size == s
        assert x0[sel].min() == -reach and y0[sel].min() == -reach
        assert (x0[sel] + s).max() == 130 + reach and (y0[sel] + s).max() == 70 + reach
    # the edge windows are added to the inside grid: a bubble on the field's edge sits a
    # third of a window from the nearest window edge instead of on it
    inner = sliding_windows(shape, [30, 60], 1 / 3)
    assert len(x0) > len(inner[0])
    left = (size == 30) & (x0 == -10)
    assert left.any() and np.all(x0[left] + 10 == 0)


def test_window_boxes_never_leave_window_or_image(tmp_path, spitzer_field, truth):
    fields = {"03000+0000": field_truth(spitzer_field, truth)}
    # add a bubble straddling the corner of the field
    t = fields["03000+0000"]
    t["boxes"] = np.vstack([t["boxes"], [[-5.0, -5.0, 7.0, 7.0]]])
    for k, v in (
        ("clear", True),
        ("mwp", "EDGE"),
        ("glon", 0.0),
        ("glat", 0.0),
        ("maj_arcmin", 1.0),
    ):
        t[k] = np.append(t[k], v)
    arrays = make_windows(fields, [8, 16], 1 / 3)
    write_windows(tmp_path / "w.h5", arrays, {"split": "validation"})
    w = read_windows(tmp_path / "w.h5")
    h, wd = spitzer_field.shape
    assert np.all((w["x0"] >= 0) & (w["y0"] >= 0))
    assert np.all((w["x0"] + w["size"] <= wd) & (w["y0"] + w["size"] <= h))
    assert set(np.unique(w["size"])) == {40, 80}  # 8' and 16' at 12"
    b, j = w["boxes"], w["box_window"]
    assert len(b) > 0
    assert np.all(b[:, 0] >= w["x0"][j]) and np.all(b[:, 2] <= w["x0"][j] + w["size"][j])
    assert np.all(b[:, 1] >= w["y0"][j]) and np.all(b[:, 3] <= w["y0"][j] + w["size"][j])
    assert np.all((b[:, 0] >= 0) & (b[:, 1] >= 0) & (b[:, 2] <= wd) & (b[:, 3] <= h))
    assert "EDGE" in set(w["box_mwp"])
    assert w["truth"]["03000+0000"]["boxes"].shape == (len(t["mwp"]), 4)
    assert w["attrs"]["split"] == "validation"


def test_box_coordinate_round_trip():
    boxes = np.array([[10.0, 20.0, 30.0, 50.0]])
    inp = field_to_input(boxes, 5, 10, 100, 300)
    np.testing.assert_allclose(inp, [[15, 30, 75, 120]])
    np.testing.assert_allclose(input_to_field(inp, 5, 10, 100, 300), boxes)
