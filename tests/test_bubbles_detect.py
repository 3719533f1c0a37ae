"""skydetect.bubbles.detect: window boxes to field pixels, merging windows, the detections table."""

import numpy as np
import pytest

from skydetect.bubbles import evaluate as E
from skydetect.bubbles.detect import DetectSettings, merge_detections, window_to_field


def test_merge_across_overlapping_windows_one_box_per_object():
    objects = np.array([[120, 40, 160, 80], [300, 200, 360, 260]], float)  # field pixels
    windows = [
        (x0, y0, s)
        for s in (96, 192)
        for x0 in range(0, 400, s // 3)
        for y0 in range(0, 300, s // 3)
    ]
    boxes, scores = [], []
    rng = np.random.default_rng(3)
    for x0, y0, s in windows:
        for obj in objects:
            if obj[0] >= x0 and obj[1] >= y0 and obj[2] <= x0 + s and obj[3] <= y0 + s:
                unit = (obj - [x0, y0, x0, y0]) / s + rng.normal(0, 0.01, 4)  # jittered box
                boxes.append(window_to_field(unit[None], x0, y0, s))
                scores.append(rng.uniform(0.6, 0.99))
    boxes = np.concatenate(boxes)
    assert len(boxes) > 10  # each object seen in many windows and both scales
    merged, s = merge_detections(boxes, scores, 0.3)
    assert len(merged) == 2
    assert E.count(merged, s, objects, rule="iou", iou_threshold=0.7).n_found == 2


def test_box_fusion_averages_each_overlapping_group_weighted_by_score():
    from skydetect.bubbles.ssd.boxes import iou

    true = np.array([100.0, 100.0, 140.0, 140.0])
    rng = np.random.default_rng(7)
    # 20 noisy views of one object (corners scattered by 4 px), one lone box far away
    views = true + rng.normal(0, 4.0, (20, 4))
    scores = rng.uniform(0.5, 0.9, 20)
    boxes = np.vstack([views, [[400, 400, 420, 420]]])
    scores = np.append(scores, 0.95)
    fused, s = merge_detections(boxes, scores, 0.3, "wbf")
    assert len(fused) == 2 and s.tolist() == [0.95, scores[:20].max()]  # best first, best score
    np.testing.assert_allclose(fused[0], [400, 400, 420, 420])  # alone: unchanged
    expect = (views * scores[:20, None]).sum(0) / scores[:20].sum()
    np.testing.assert_allclose(fused[1], expect)  # the score-weighted mean of its members
    # the fused box sits closer to the object than NMS's single best box
    kept, _ = merge_detections(boxes, scores, 0.3, "nms")
    assert iou(true[None], fused[1:])[0, 0] > iou(true[None], kept[1:])[0, 0]
    # boxes that overlap no more than the threshold stay apart, as under NMS
    pair = np.array([[0, 0, 10, 10], [5, 0, 15, 10]], float)  # IoU 1/3
    assert len(merge_detections(pair, [0.9, 0.8], 0.4, "wbf")[0]) == 2
    assert len(merge_detections(pair, [0.9, 0.8], 0.3, "wbf")[0]) == 1
    with pytest.raises(ValueError, match="bubbles.detect.merge"):
        merge_detections(pair, [0.9, 0.8], 0.3, "mean")


def test_window_to_field_exact_inverse():
    b = window_to_field(np.array([[0.0, 0.0, 1.0, 1.0], [0.25, 0.5, 0.75, 1.0]]), 10, 20, 200)
    np.testing.assert_allclose(b, [[10, 20, 210, 220], [60, 120, 160, 220]])


def test_detect_settings_from_config():
    s = DetectSettings.from_config({"merge_iou": 0.25, "merge": "wbf", "unknown": 1})
    assert s.merge_iou == 0.25 and s.window_nms_iou == 0.45 and s.merge == "wbf"
    assert DetectSettings().merge == "nms"  # the schema's default: the reference's NMS


class _BrightBoxSSD:
    """Stand-in network: boxes the bright pixels of channel 0 (score 0.99, or 0.73 when the
    box touches the window edge), encoded on prior 0 so that decoding is exact."""

    def __init__(self, priors, size):
        self.priors, self.size = priors, size

    def predict(self, x, batch_size=None, verbose=0):
        from skydetect.bubbles.ssd.boxes import encode, to_centre

        out = np.zeros((len(x), len(self.priors), 6), np.float32)
        out[..., 4] = 5.0
        for i, img in enumerate(x):
            ys, xs = np.nonzero(img[..., 0] > 0.5)
            if len(xs) == 0:
                continue
            box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]]) / self.size
            edge = box.min() <= 0 or box.max() >= 1
            out[i, 0, :4] = encode(to_centre(box), self.priors[:1])[0]
            out[i, 0, 4:] = [0.0, 1.0 if edge else 5.0]
        return out


def test_detect_field_maps_boxes_back_exactly():
    from functools import partial

    from skydetect.bubbles.detect import detect_field
    from skydetect.bubbles.preprocess import preprocess_window
    from skydetect.bubbles.ssd.priors import default_boxes
    from skydetect.bubbles.windows import sliding_windows

    rng = np.random.default_rng(2)
    data = rng.normal(10, 0.1, (2, 150, 260)).astype(np.float32)
    obj = np.array([97, 41, 127, 71])  # x0 y0 x1 y1, pixel edges: columns 97..126
    data[0, obj[1] : obj[3], obj[0] : obj[2]] = 100.0
    priors = default_boxes([2], [0.5, 0.7], [[]])
    S = 64
    windows = sliding_windows(data.shape[1:], [60, 90, 150], 1 / 3)
    boxes, scores = detect_field(
        _BrightBoxSSD(priors, S),
        priors,
        data,
        windows,
        partial(preprocess_window, input_size=S, antialias=False),
        DetectSettings(min_score=0.5),
        chunk=16,
    )
    assert scores[0] > 0.99
    # boxes of 60-150 px windows resampled to 64 px: within ~1 input pixel of the truth
    np.testing.assert_allclose(boxes[0], obj, atol=150 / S + 0.5)
    assert (scores > 0.9).sum() == 1  # one box per object after merging windows and scales


def test_detections_centred_outside_the_field_are_dropped():
    from skydetect.bubbles.detect import detect_windows
    from skydetect.bubbles.ssd.boxes import encode, to_centre
    from skydetect.bubbles.ssd.priors import default_boxes

    priors = default_boxes([2], [0.5, 0.7], [[]])

    class CornerBox:  # a box in every window's top-left corner
        def predict(self, x, batch_size=None, verbose=0):
            out = np.zeros((len(x), len(priors), 6), np.float32)
            out[..., 4] = 5.0
            out[:, 0, :4] = encode(to_centre(np.array([[0.0, 0.0, 0.2, 0.2]])), priors[:1])[0]
            out[:, 0, 4:] = [0.0, 5.0]
            return out

    x0, y0, size = np.array([-20, 0, 40]), np.array([0, -20, 0]), np.array([60, 60, 60])
    inputs = np.zeros((3, 8, 8, 2), np.float32)
    settings = DetectSettings(min_score=0.5, merge_iou=0.99)
    every, _ = detect_windows(CornerBox(), priors, inputs, x0, y0, size, settings)
    kept, _ = detect_windows(
        CornerBox(), priors, inputs, x0, y0, size, settings, field_shape=(100, 100)
    )
    assert len(every) == 3 and len(kept) == 1
    np.testing.assert_allclose(kept[0], [40, 0, 52, 12], atol=1e-4)


def test_detections_table_sky_positions():
    from astropy.wcs import WCS

    from skydetect.bubbles.detect import detections_table

    w = WCS(naxis=2)
    w.wcs.ctype = ["GLON-CAR", "GLAT-CAR"]
    w.wcs.crval = [15.0, 0.0]
    w.wcs.crpix = [51.0, 31.0]  # 1-based: 0-based pixel (50, 30) is (l, b) = (15, 0)
    w.wcs.cdelt = [-8 / 3600, 8 / 3600]
    boxes = np.array([[45.5, 25.5, 55.5, 35.5], [0.0, 0.0, 15.0, 30.0]])  # centre (50.5, 30.5)
    t = detections_table(boxes, [0.9, 0.6], w, 8.0, "01500+0000")
    assert t["GLON"][0] == pytest.approx(15.0) and t["GLAT"][0] == pytest.approx(0.0, abs=1e-9)
    assert t["SIZE_ARCMIN"][0] == pytest.approx(10 * 8 / 60)
    assert t["WIDTH_ARCMIN"][1] == pytest.approx(2.0) and t["HEIGHT_ARCMIN"][1] == pytest.approx(
        4.0
    )
    # box 1 lies at larger x = smaller l (CDELT1 < 0) ... of the (x=7, y=14.5) centre
    assert t["GLON"][1] == pytest.approx(15.0 + (50 - 7.0) * 8 / 3600)
    assert t["GLAT"][1] == pytest.approx((14.5 - 30) * 8 / 3600)


def test_detections_round_trip(tmp_path):
    from astropy.wcs import WCS

    from skydetect.bubbles.detect import detections_table, read_detections

    w = WCS(naxis=2)
    w.wcs.ctype = ["GLON-CAR", "GLAT-CAR"]
    w.wcs.cdelt = [-1 / 450, 1 / 450]
    boxes = np.array([[1.0, 2.0, 11.0, 12.0]])
    path = tmp_path / "d.ecsv"
    detections_table(boxes, [0.7], w, 8.0, "x").write(path, format="ascii.ecsv")
    b, s, _ = read_detections(path)
    np.testing.assert_allclose(b, boxes)
    assert s[0] == 0.7
    detections_table(np.zeros((0, 4)), [], w, 8.0, "x").write(
        path, format="ascii.ecsv", overwrite=True
    )
    assert len(read_detections(path)[0]) == 0
    path.write_text("# %ECSV 1.0\n# ---\n# datatype:\n# - {name: A, datatype: int64}\nA\n1\n")
    with pytest.raises(ValueError, match="lacks column"):
        read_detections(path)
