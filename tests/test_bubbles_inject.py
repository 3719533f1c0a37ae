"""Recall by injection: painting, placement, recovery on a toy detector, the per-cell recall
with Clopper-Pearson intervals, the catalogue's recall in the same cells, the ECSV file."""

import numpy as np
import pytest
from astropy.table import Table
from scipy import ndimage
from scipy.stats import binomtest

from skydetect.bubbles.catalog import bubble_boxes
from skydetect.bubbles.inject import (
    BOX_COLUMNS,
    check_inject_config,
    grid_cells,
    inject_field,
    injection_boxes,
    paint_bubble,
    place_boxes,
    windows_near,
)
from skydetect.bubbles.injection_table import (
    TRUTH_COLUMNS,
    add_truth,
    cell_edges,
    read_injection_table,
    recall_cells,
    truth_found,
    write_injection_table,
)
from skydetect.bubbles.ssd.boxes import intersection
from skydetect.io.spitzer import field_wcs

PIX = 3.0  # arcsec


def _flat_field(deg=0.5):
    wcs, shape = field_wcs(30.0, 0.0, deg, deg, PIX)
    base = np.stack([np.full(shape, 5.0, np.float32), np.full(shape, 10.0, np.float32)])
    return wcs, base


def _toy_detector(base, min_contrast):
    """Finds every painted bubble whose 8 µm peak over the flat background exceeds
    ``min_contrast``: a square of +-1.3 x its ring's half-extent around each blob."""

    def detect(img, windows):
        excess = (img[1] - base[1]) / base[1]
        lab, _ = ndimage.label(excess > 0.01 * max(excess.max(), 1e-9))
        boxes, scores = [], []
        for i, sl in enumerate(ndimage.find_objects(lab)):
            peak = excess[sl][lab[sl] == i + 1].max()
            if peak < min_contrast:
                continue
            cy, cx = ((s.start + s.stop) / 2 for s in sl)
            h = 1.3 * max(s.stop - s.start for s in sl) / 2 / 1.1  # ring FWHM past R
            boxes.append([cx - h, cy - h, cx + h, cy + h])
            scores.append(peak)
        return np.reshape(boxes, (-1, 4)), np.asarray(scores)

    return detect


def test_paint_bubble_peaks_at_the_asked_contrast():
    img8, img24 = np.full((200, 200), 10.0), np.full((200, 200), 4.0)
    med = paint_bubble(img8, img24, 99.3, 100.6, 20.0, 1.5, 2.0, True, np.random.default_rng(0))
    assert med == (10.0, 4.0)
    # the mock's shell: 1.5 x the local median, up to 1.5 x brighter on one side
    assert 15.0 * 0.95 <= (img8 - 10.0).max() <= 15.0 * 1.5
    assert (img24 - 4.0).max() >= 8.0 * 0.95  # the 24 µm interior, 2 x its local median
    # a ring: the centre stays dark at 8 µm, bright at 24 µm (a clear bubble)
    assert img8[100, 99] - 10.0 < 0.1 * 15.0
    assert img24[100, 99] - 4.0 > 0.3 * 8.0
    # an unclear bubble: the ring, with the mock's faint 24 µm ring (0.15 of it) only
    img8, img24 = np.full((200, 200), 10.0), np.full((200, 200), 4.0)
    paint_bubble(img8, img24, 100, 100, 20.0, 1.0, 2.0, False, np.random.default_rng(0))
    assert 10.0 * 0.95 <= (img8 - 10).max() <= 10.0 * 1.5
    assert 0.15 * 4.0 * 0.95 <= (img24 - 4).max() <= 0.15 * 4.0 * 1.5
    # no positive 8 µm level (e.g. no coverage): nothing painted
    img8 = np.full((200, 200), np.nan)
    rng = np.random.default_rng(0)
    assert np.isnan(paint_bubble(img8, img24, 100, 100, 20.0, 1.0, 2.0, True, rng)[0])


def test_injected_bubbles_recovered_at_the_toy_detectors_rate():
    wcs, base = _flat_field()
    cells = grid_cells([0.5, 1.0, 2.0], [0.2, 0.4, 1.0, 2.0])
    windows = (np.array([0]), np.array([0]), np.array([600]))  # the whole field
    t = inject_field(
        base, wcs, PIX, _toy_detector(base, 0.7), windows, cells, per_pass=12, passes=3,
        avoid=np.zeros((0, 4)), rng=np.random.default_rng(5), iou_threshold=0.5,
    )  # fmt: skip
    assert len(t) == 36 and set(t["PASS"]) == {0, 1, 2}
    assert np.all(np.asarray(t["FOUND"]) == (np.asarray(t["CONTRAST"]) > 0.7))
    cells_t = recall_cells(t, [0.5, 1.0, 2.0], [0.2, 0.4, 1.0, 2.0])
    assert list(cells_t["N"]) == [3] * 12  # the grid walked evenly
    assert list(cells_t["RECALL"]) == [0, 0, 1, 1] * 3
    # the boxes follow the catalogue's convention through the WCS
    ref = bubble_boxes(t, wcs, PIX, 1.3)
    assert np.allclose(injection_boxes(t), ref, atol=1e-6)
    # a detector missing everything recovers nothing
    t0 = inject_field(
        base, wcs, PIX, lambda img, w: (np.zeros((0, 4)), np.zeros(0)), windows, cells,
        per_pass=12, passes=1, avoid=np.zeros((0, 4)), rng=np.random.default_rng(5),
    )  # fmt: skip
    assert len(t0) == 12 and not np.any(t0["FOUND"])


def test_a_field_with_no_room_gives_an_empty_table_that_round_trips(tmp_path):
    wcs, base = _flat_field()
    blank = np.full_like(base, np.nan)  # no 8 um coverage: nothing can be placed
    cells = grid_cells([0.5, 1.0], [0.5, 1.0])
    windows = (np.array([0]), np.array([0]), np.array([600]))
    t = inject_field(
        blank, wcs, PIX, _toy_detector(base, 0.7), windows, cells, per_pass=4, passes=1,
        avoid=np.zeros((0, 4)), rng=np.random.default_rng(5),
    )  # fmt: skip
    assert len(t) == 0 and injection_boxes(t).shape == (0, 4)
    t.write(tmp_path / "inj.ecsv", format="ascii.ecsv")
    back = Table.read(tmp_path / "inj.ecsv", format="ascii.ecsv")
    assert len(back) == 0 and set(BOX_COLUMNS) <= set(back.colnames)


def test_positions_keep_away_from_catalogue_bubbles_and_each_other():
    rng = np.random.default_rng(2)
    shape = (400, 500)
    valid = np.ones(shape, bool)
    valid[:, 450:] = False  # no coverage there
    avoid = np.array([[100, 100, 180, 180], [300, 50, 340, 90], [200, 250, 260, 310]], float)
    half = np.array([30.0, 20.0, 20.0, 10.0, 10.0, 10.0, 5.0, 5.0])
    sep = 0.5
    xy = place_boxes(half, shape, valid, avoid, rng, separation=sep)
    assert np.isfinite(xy).all()
    c = xy + 0.5
    boxes = np.column_stack([c - half[:, None], c + half[:, None]])
    grown = boxes + np.array([-1, -1, 1, 1]) * (2 * half * sep)[:, None]
    assert not (intersection(grown, avoid) > 0).any()
    inter = intersection(boxes, boxes)
    np.fill_diagonal(inter, 0)
    assert not (inter > 0).any()
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
    assert (boxes[:, 3] <= shape[0]).all() and (boxes[:, 2] <= shape[1]).all()
    for b in np.rint(boxes).astype(int):  # >= 95 % of each box has coverage
        assert valid[b[1] : b[3], b[0] : b[2]].mean() >= 0.95
    assert (boxes[:, 2] > 450).sum() <= 2  # none deep in the uncovered strip
    # a box too large for the free space is left out (NaN), not forced in
    xy = place_boxes(np.array([150.0]), (300, 300), np.ones((300, 300), bool),
                     np.array([[100, 100, 200, 200]], float), rng)  # fmt: skip
    assert np.isnan(xy).all()


def test_windows_near_keeps_only_windows_meeting_the_grown_boxes():
    x0, y0 = np.meshgrid(np.arange(0, 1000, 100), np.arange(0, 1000, 100))
    windows = (x0.ravel(), y0.ravel(), np.full(x0.size, 100))
    x, y, s = windows_near(windows, np.array([[450, 450, 470, 470]]), margin=1.0)
    assert list(zip(x, y, strict=True)) == [(400, 400)]  # grown to 430-490: one window
    x, y, s = windows_near(windows, np.array([[480, 480, 495, 495]]), margin=1.0)
    assert sorted(zip(x, y, strict=True)) == [(400, 400), (400, 500), (500, 400), (500, 500)]
    assert len(windows_near(windows, np.zeros((0, 4)))[0]) == 0


def test_clopper_pearson_counts_and_intervals():
    t = Table()
    t["MajAxis"] = [1.0] * 10 + [2.0] * 4 + [9.0]  # 9' lies outside the grid's cells
    t["CONTRAST"] = [0.5] * 10 + [1.0] * 4 + [1.0]
    t["FOUND"] = [True] * 7 + [False] * 3 + [True] * 4 + [True]
    cells = recall_cells(t, [1.0, 2.0], [0.5, 1.0], level=0.95)
    got = {(r["MAJAXIS_ARCMIN"], r["CONTRAST"]): r for r in cells}
    r = got[(1.0, 0.5)]
    assert (r["K"], r["N"]) == (7, 10) and r["RECALL"] == pytest.approx(0.7)
    ci = binomtest(7, 10).proportion_ci(0.95, method="exact")
    assert (r["RECALL_LO"], r["RECALL_HI"]) == pytest.approx((ci.low, ci.high))
    r = got[(2.0, 1.0)]
    assert (r["K"], r["N"], r["RECALL_HI"]) == (4, 4, 1.0)
    assert r["RECALL_LO"] == pytest.approx(0.025 ** (1 / 4))
    r = got[(1.0, 1.0)]
    assert r["N"] == 0 and np.isnan(r["RECALL"]) and np.isnan(r["RECALL_LO"])
    assert cells["N"].sum() == 14


def test_cell_edges_are_geometric_midpoints():
    assert np.allclose(cell_edges([1.0, 4.0]), [0.5, 2.0, 8.0])
    assert np.allclose(cell_edges([2.0]), [2 / np.sqrt(2), 2 * np.sqrt(2)])
    with pytest.raises(ValueError, match="ascending"):
        cell_edges([2.0, 1.0])
    with pytest.raises(ValueError, match="bubbles.inject.contrast"):
        check_inject_config({"majaxis_arcmin": [0.5, 1.0], "contrast": [1.0, 0.5]})


def test_truth_recall_in_the_same_cells_beside_injections():
    # a small field: four clear bubbles and one unclear, two of the clear ones detected
    boxes = np.array([[10, 10, 30, 30], [50, 50, 90, 90], [100, 10, 120, 30],
                      [150, 150, 190, 190], [200, 200, 220, 220]], float)  # fmt: skip
    truth = {"boxes": boxes, "clear": np.array([True, True, True, True, False]),
             "maj_arcmin": np.array([1.0, 2.0, 1.0, 2.0, 1.0])}  # fmt: skip
    contrast = np.array([0.5, 1.0, 0.5, 1.0, 0.5])
    pred = np.array([[11, 11, 31, 31], [150, 150, 190, 190], [200, 200, 220, 220]], float)
    found = truth_found(truth, contrast, pred, np.array([0.9, 0.8, 0.7]), iou_threshold=0.5)
    assert len(found) == 4 and list(found["FOUND"]) == [True, False, False, True]
    inj = Table({"MajAxis": [1.0, 2.0], "CONTRAST": [0.5, 1.0], "FOUND": [True, True]})
    cells = recall_cells(inj, [1.0, 2.0], [0.5, 1.0])
    add_truth(cells, found, [1.0, 2.0], [0.5, 1.0])
    got = {(r["MAJAXIS_ARCMIN"], r["CONTRAST"]): (r["K_TRUTH"], r["N_TRUTH"]) for r in cells}
    assert got == {(1.0, 0.5): (1, 2), (1.0, 1.0): (0, 0), (2.0, 0.5): (0, 0), (2.0, 1.0): (1, 2)}
    assert all(c in cells.colnames for c in TRUTH_COLUMNS)


def test_injection_table_round_trip_and_missing_column(tmp_path):
    inj = Table({"MajAxis": [0.5, 0.5, 2.0], "CONTRAST": [1.0, 1.0, 2.0],
                 "FOUND": [True, False, True]})  # fmt: skip
    cells = recall_cells(inj, [0.5, 2.0], [1.0, 2.0])
    cells.meta["run"] = "default"
    path = tmp_path / "injection.ecsv"
    write_injection_table(path, cells)
    back = read_injection_table(path)
    assert back.colnames == cells.colnames and back.meta["run"] == "default"
    for c in cells.colnames:
        assert np.allclose(back[c], cells[c], equal_nan=True)
    assert str(back["MAJAXIS_ARCMIN"].unit) == "arcmin"
    del back["RECALL_LO"]
    back.write(tmp_path / "bad.ecsv", format="ascii.ecsv")
    with pytest.raises(ValueError, match="bad.ecsv: injection table lacks column.*RECALL_LO"):
        read_injection_table(tmp_path / "bad.ecsv")


def test_injected_and_truth_recall_agree_cell_by_cell_on_a_small_mock_field():
    # a small field holding "mock truth" bubbles of known contrast painted by the same
    # model; a toy detector that sees contrast > 0.7: both recalls are 0 / 1 by the cell
    wcs, base = _flat_field(0.6)
    img = base.copy()
    rng = np.random.default_rng(11)
    maj = np.array([0.5, 1.0, 0.5, 1.0, 0.5, 1.0, 0.5, 1.0])
    con = np.array([0.3, 0.3, 1.5, 1.5, 0.3, 0.3, 1.5, 1.5])
    xs = np.array([60.0, 180.0, 300.0, 420.0, 60.0, 180.0, 300.0, 420.0]) + 100
    ys = np.array([100.0, 100.0, 100.0, 100.0, 500.0, 500.0, 500.0, 500.0])
    for x, y, m, c in zip(xs, ys, maj, con, strict=True):
        paint_bubble(img[1], img[0], x, y, m * 60 / PIX, c, 2.0, True, rng)
    sky = wcs.pixel_to_world(xs, ys).galactic
    cat = Table({"GLON": sky.l.deg, "GLAT": sky.b.deg, "MajAxis": maj})
    truth = {"boxes": bubble_boxes(cat, wcs, PIX, 1.3), "clear": np.ones(8, bool),
             "maj_arcmin": maj}  # fmt: skip
    detect = _toy_detector(base, 0.7)
    pred, scores = detect(img, None)
    found = truth_found(truth, con, pred, scores, iou_threshold=0.5)
    assert list(found["FOUND"]) == list(con > 0.7)
    grid = ([0.5, 1.0], [0.3, 1.5])
    inj = inject_field(
        img, wcs, PIX, detect, (np.array([0]), np.array([0]), np.array([720])),
        grid_cells(*grid), per_pass=8, passes=1, avoid=truth["boxes"],
        rng=np.random.default_rng(3), separation=0.5,  # apart for the toy's blob finding
    )  # fmt: skip
    assert len(inj) == 8
    cells = recall_cells(inj, *grid)
    add_truth(cells, found, *grid)
    assert list(cells["N"]) == [2, 2, 2, 2] and list(cells["N_TRUTH"]) == [2, 2, 2, 2]
    assert list(cells["RECALL"]) == list(cells["RECALL_TRUTH"]) == [0, 1, 0, 1]
