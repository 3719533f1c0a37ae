"""Training crops around clear bubbles, regenerated every epoch (nothing written to disk).

Around each clear bubble: a square crop of half-width k·MajAxis, k uniform in ``half_width_factor``
(reference 1.7-5.9), its centre shifted at random so that the bubble's box (±box_scale·MajAxis)
stays inside, then shifted (never truncated) to lie inside the field. The crop is
preprocessed with :func:`skydetect.bubbles.preprocess.preprocess_window` (the same function
as validation windows and inference), then rotated by a multiple of 90° and flipped; the
boxes of all clear bubbles whose centre falls in the crop are clipped to it and transformed
the same way. Boxes are returned in input-pixel coordinates (see
:mod:`skydetect.bubbles.windows`).

"Don't care" boxes (:meth:`BubbleCrops.targets`): every unclear catalogue bubble overlapping
the crop, and every clear one overlapping it with its centre outside (cut by the crop edge),
clipped to the crop. Training gives the priors over them no loss (see
:func:`skydetect.bubbles.ssd.boxes.match`), so that they are taught neither as bubble nor as
background.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from skydetect.bubbles.catalog import BOX_SCALE, HALF_WIDTH_FACTOR, bubble_boxes, in_field
from skydetect.bubbles.preprocess import preprocess_window
from skydetect.bubbles.scales import crop_side
from skydetect.bubbles.windows import boxes_in_window, clip_boxes, field_to_input

CROP_STAGE = 80  # seed component of the training crops


def rotate_boxes(boxes: np.ndarray, size: float, k: int) -> np.ndarray:
    """Boxes after ``np.rot90(image, k, axes=(0, 1))`` of an (S, S, C) image of side ``size``."""
    b = np.asarray(boxes, float).reshape(-1, 4)
    for _ in range(k % 4):
        # rot90 maps the point (x, y) to (y, size - x)
        b = np.stack([b[:, 1], size - b[:, 2], b[:, 3], size - b[:, 0]], axis=1)
    return b


def flip_boxes(boxes: np.ndarray, size: float) -> np.ndarray:
    """Boxes after ``image[:, ::-1]`` (left-right flip of an (S, S, C) image)."""
    b = np.asarray(boxes, float).reshape(-1, 4)
    return np.stack([size - b[:, 2], b[:, 1], size - b[:, 0], b[:, 3]], axis=1)


def augment(image: np.ndarray, boxes: np.ndarray, k: int, flip: bool):
    """Rotate an (S, S, C) input by k·90° then optionally flip it, boxes alike."""
    s = image.shape[0]
    out = np.rot90(image, k, axes=(0, 1))
    b = rotate_boxes(boxes, s, k)
    if flip:
        out = out[:, ::-1]
        b = flip_boxes(b, s)
    return np.ascontiguousarray(out), b


def crop_geometry(
    rng: np.random.Generator,
    box: np.ndarray,
    maj_px: float,
    shape: tuple[int, int],
    half_width_factor=HALF_WIDTH_FACTOR,
    min_size: int = 8,
) -> tuple[int, int, int]:
    """(x0, y0, size) of a random crop around the bubble with box ``box`` (field coordinates)."""
    h, w = shape
    xc, yc = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half_box = (box[2] - box[0]) / 2
    half = rng.uniform(half_width_factor[0], half_width_factor[1]) * maj_px
    size = int(crop_side(half, half_box, min(h, w), min_size))
    slack = max(size / 2 - half_box, 0.0)
    cx = xc + rng.uniform(-slack, slack)
    cy = yc + rng.uniform(-slack, slack)
    x0 = int(np.clip(np.rint(cx - size / 2), 0, w - size))
    y0 = int(np.clip(np.rint(cy - size / 2), 0, h - size))
    return x0, y0, size


class BubbleCrops:
    """Crop generator over fields (:class:`skydetect.io.spitzer.SpitzerField`).

    ``BubbleCrops(fields, catalog, seed=config["seed"], **config["bubbles"]["preprocess"])``;
    ``for inputs, boxes in crops.epoch(e)`` yields one crop per clear bubble (order shuffled),
    inputs (S, S, 2) float32 and boxes (m, 4) float in input pixels (m >= 1).
    """

    def __init__(
        self,
        fields,
        catalog,
        *,
        seed: int,
        half_width_factor=HALF_WIDTH_FACTOR,
        box_scale: float = BOX_SCALE,
        augment: bool = True,
        clear_only: bool = True,
        **preprocess_kwargs,
    ):
        self.fields = list(fields)
        self.seed = int(seed)
        self.half_width_factor = tuple(half_width_factor)
        self.augment = augment
        self.preprocess_kwargs = preprocess_kwargs
        self.input_size = int(preprocess_kwargs["input_size"])
        self.items = []  # (field index, bubble row in the field's boxes)
        self.boxes, self.maj_px, self.other = [], [], []
        for t, field in enumerate(self.fields):
            inside = in_field(catalog, field.wcs, field.shape)
            sel = inside & np.asarray(catalog["CLEAR"], bool) if clear_only else inside
            sub = catalog[sel]
            self.boxes.append(bubble_boxes(sub, field.wcs, field.pixel_arcsec, box_scale))
            self.other.append(  # the field's catalogue bubbles that are no positives
                bubble_boxes(catalog[inside & ~sel], field.wcs, field.pixel_arcsec, box_scale)
            )
            self.maj_px.append(np.asarray(sub["MajAxis"], float) * 60 / field.pixel_arcsec)
            self.items += [(t, i) for i in range(len(sub))]

    def __len__(self) -> int:
        return len(self.items)

    def crop(self, rng, item) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int]]:
        x, boxes, _, geom = self._crop(rng, item)
        return x, boxes, geom

    def _crop(self, rng, item):
        t, i = item
        field = self.fields[t]
        x0, y0, size = crop_geometry(
            rng, self.boxes[t][i], self.maj_px[t][i], field.shape, self.half_width_factor
        )
        x = preprocess_window(field.data, x0, y0, size, **self.preprocess_kwargs)
        idx, clipped = boxes_in_window(self.boxes[t], x0, y0, size)
        cut = np.setdiff1d(np.arange(len(self.boxes[t])), idx)
        ign = clip_boxes(np.concatenate([self.other[t], self.boxes[t][cut]]), x0, y0, size)
        ign = ign[(ign[:, 2] > ign[:, 0]) & (ign[:, 3] > ign[:, 1])]
        return (
            x,
            field_to_input(clipped, x0, y0, size, self.input_size),
            field_to_input(ign, x0, y0, size, self.input_size),
            (x0, y0, size),
        )

    def targets(self, epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``(inputs, boxes, dont_care_boxes)`` of every clear bubble's crop (order shuffled)."""
        rng = np.random.default_rng([self.seed, CROP_STAGE, int(epoch)])
        for j in rng.permutation(len(self.items)):
            x, boxes, ign, _ = self._crop(rng, self.items[j])
            if self.augment:
                k, flip = int(rng.integers(4)), bool(rng.random() < 0.5)
                x, boxes = augment(x, boxes, k, flip)
                ign = rotate_boxes(ign, x.shape[0], k)
                if flip:
                    ign = flip_boxes(ign, x.shape[0])
            yield x, boxes.astype(np.float32), ign.astype(np.float32)

    def epoch(self, epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(inputs, boxes)`` of :meth:`targets` (the same draws)."""
        for x, boxes, _ in self.targets(epoch):
            yield x, boxes
