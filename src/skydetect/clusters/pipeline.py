"""``tf.data`` input pipeline streaming patches from a dataset HDF5 file.

The file (``results/datasets/{split}.h5``, layout in docs/dataflow.md) holds ``inputs``
float32 (N, S, S, B) and ``masks`` uint8 (N, S, S). It is never loaded whole: each epoch
reads contiguous blocks of ``block`` patches with h5py, in a random block order, shuffles
patches within a window of ``window`` blocks, and applies a random flip and 90° rotation to
each patch (the same transform to the input and its mask) before batching.

The order and the transforms of epoch ``e`` come from ``np.random.default_rng([seed, e])``
only, so a resumed run sees exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

import skydetect  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)


@dataclass(frozen=True)
class DatasetInfo:
    path: str
    n: int
    size: int
    bands: tuple[str, ...]


def dataset_info(path: str | Path) -> DatasetInfo:
    """Check the layout of a dataset file and return its size; errors name file and dataset."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: dataset file not found")
    with h5py.File(path, "r") as f:
        for name in ("inputs", "masks"):
            if name not in f:
                raise ValueError(f"{path}: missing dataset {name!r} (have {sorted(f)})")
        x, m = f["inputs"], f["masks"]
        if x.ndim != 4 or x.shape[1] != x.shape[2]:
            raise ValueError(f"{path}: 'inputs' must be (N, S, S, B), got shape {x.shape}")
        if m.shape != x.shape[:3]:
            raise ValueError(f"{path}: 'masks' shape {m.shape} does not match 'inputs' {x.shape}")
        if x.shape[0] == 0:
            raise ValueError(f"{path}: no patches (N = 0)")
        bands = f.attrs.get("bands")
        if bands is None:
            raise ValueError(f"{path}: missing attribute 'bands'")
        bands = tuple(b.decode() if isinstance(b, bytes) else str(b) for b in np.atleast_1d(bands))
        if len(bands) != x.shape[3]:
            raise ValueError(
                f"{path}: attribute 'bands' {bands} but 'inputs' has {x.shape[3]} bands"
            )
        return DatasetInfo(str(path), int(x.shape[0]), int(x.shape[1]), bands)


def augment(x: np.ndarray, m: np.ndarray, k: int, flip: bool) -> tuple[np.ndarray, np.ndarray]:
    """Rotate ``x`` (S, S, B) and ``m`` (S, S) by ``k`` × 90° and then flip left-right."""
    x, m = np.rot90(x, k, axes=(0, 1)), np.rot90(m, k, axes=(0, 1))
    if flip:
        x, m = x[:, ::-1], m[:, ::-1]
    return np.ascontiguousarray(x), np.ascontiguousarray(m)


class BatchSource:
    """Callable generator of ``(inputs, masks)`` batches for ``tf.data.Dataset.from_generator``.

    Each call is one epoch; the epoch counter starts at ``first_epoch`` (set it to the resumed
    epoch) and advances by one per call.
    """

    def __init__(
        self,
        path: str | Path,
        batch_size: int,
        seed: int = 0,
        shuffle: bool = True,
        augment: bool = True,
        block: int = 256,
        window: int = 4,
        first_epoch: int = 0,
    ):
        self.info = dataset_info(path)
        self.path = str(path)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.shuffle, self.augment = bool(shuffle), bool(augment)
        self.block, self.window = int(block), int(window)
        self.epoch = int(first_epoch)

    def __len__(self) -> int:
        return -(-self.info.n // self.batch_size)

    def _order(self, rng) -> list[list[slice]]:
        """Groups of ``window`` contiguous blocks (slices), in random order when shuffling."""
        n = self.info.n
        starts = np.arange(0, n, self.block)
        if self.shuffle:
            starts = rng.permutation(starts)
        slices = [slice(int(s), int(min(s + self.block, n))) for s in starts]
        return [slices[i : i + self.window] for i in range(0, len(slices), self.window)]

    def __call__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        s = self.info.size
        pending_x = np.empty((0, s, s, len(self.info.bands)), np.float32)
        pending_m = np.empty((0, s, s, 1), np.float32)
        with h5py.File(self.path, "r") as f:
            xs, ms = f["inputs"], f["masks"]
            for group in self._order(rng):
                x = np.concatenate([np.asarray(xs[sl], dtype=np.float32) for sl in group])
                m = np.concatenate([np.asarray(ms[sl]) for sl in group])
                if self.shuffle:
                    perm = rng.permutation(len(x))
                    x, m = x[perm], m[perm]
                if self.augment:
                    ks = rng.integers(0, 4, len(x))
                    flips = rng.random(len(x)) < 0.5
                    for j in range(len(x)):
                        x[j], m[j] = augment(x[j], m[j], int(ks[j]), bool(flips[j]))
                pending_x = np.concatenate([pending_x, x])
                pending_m = np.concatenate([pending_m, m[..., None].astype(np.float32)])
                while len(pending_x) >= self.batch_size:
                    yield pending_x[: self.batch_size], pending_m[: self.batch_size]
                    pending_x = pending_x[self.batch_size :]
                    pending_m = pending_m[self.batch_size :]
        if len(pending_x):
            yield pending_x, pending_m


def make_dataset(source: BatchSource):
    """``tf.data.Dataset`` of ``(inputs, masks)`` batches from ``source`` (prefetched)."""
    import tensorflow as tf  # lazy: slow to import; only the TF functions need it

    s, b = source.info.size, len(source.info.bands)
    ds = tf.data.Dataset.from_generator(
        source,
        output_signature=(
            tf.TensorSpec((None, s, s, b), tf.float32),
            tf.TensorSpec((None, s, s, 1), tf.float32),
        ),
    )
    # a known number of batches: Keras then never steps past the end of an epoch (an
    # overrun in the first epoch would advance the optimizer's iteration counter)
    ds = ds.apply(tf.data.experimental.assert_cardinality(len(source)))
    return ds.prefetch(2)
