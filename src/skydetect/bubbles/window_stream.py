"""Preprocessed windows of a field served on demand (:class:`WindowStream`), with an optional
memory or on-disk cache; the preprocessing itself is :mod:`skydetect.bubbles.preprocess`."""

from __future__ import annotations

import os
import tempfile
import weakref

import numpy as np

from skydetect.io.spitzer import read_field

from .preprocess import DEFAULTS, FieldPreprocessor
from .windows import overhang


class WindowStream:
    """Preprocessed windows of a field on demand, an array-like ``(N, S, S, C)``.

    ``stream[i:j]`` or ``stream[index_array]`` preprocesses those windows only, so a consumer
    that walks the windows in chunks (detection, validation) holds one chunk at a time.
    Windows may reach past the field (edge windows): the field is then prepared with the
    ``pad`` they need (a given :class:`FieldPreprocessor` must have it).
    ``field`` is the (C, H, W) array, a :class:`FieldPreprocessor`, or the path of an
    aligned field (read when first needed and released after the last window was served,
    so a list of streams over several fields holds one field at a time). When all windows
    fit in ``cache_mb`` they are kept after the first pass (small fields, many epochs).
    Otherwise, when they fit in ``disk_cache_mb``, the first access preprocesses them
    ``chunk`` at a time into a ``.npy`` file in ``cache_dir`` (the system's temporary
    directory when None), later passes read slices of it (memory-mapped; the file is
    removed with the stream), so repeated validation passes cost a read, not a
    preprocessing, and memory still holds one chunk.
    """

    def __init__(
        self,
        field,
        x0,
        y0,
        size,
        *,
        cache_mb: float = 0.0,
        disk_cache_mb: float = 0.0,
        cache_dir=None,
        chunk: int = 256,
        threads: int = 1,
        **kw,
    ):
        self.x0, self.y0, self.size = (np.asarray(a, np.int64).reshape(-1) for a in (x0, y0, size))
        self._source, self._threads, self._kw = field, threads, kw
        self._fp = field if isinstance(field, FieldPreprocessor) else None
        s = int({**DEFAULTS, **kw}["input_size"]) if self._fp is None else self._fp.input_size
        c = 2 if self._fp is None else self._fp.n_channels
        if self._fp is None and not isinstance(field, str | os.PathLike):
            c = int(np.shape(field)[0])
        self.shape = (len(self.x0), s, s, c)
        self.dtype = np.dtype(np.float32)
        self._cache = None
        nbytes = np.prod(self.shape) * 4
        self._cacheable = nbytes <= cache_mb * 2**20
        self._on_disk = not self._cacheable and len(self) > 0 and nbytes <= disk_cache_mb * 2**20
        self._cache_dir, self._chunk, self._disk = cache_dir, max(int(chunk), 1), None

    def _from_disk(self, idx) -> np.ndarray:
        """Windows ``idx`` from the ``.npy`` of every window (written on the first call); the
        file is mapped for this read only, so resident memory holds the rows read."""
        if self._disk is None:
            fd, path = tempfile.mkstemp(suffix=".npy", prefix="windows_", dir=self._cache_dir)
            os.close(fd)
            self._finalizer = weakref.finalize(self, _remove_file, path)
            out = np.lib.format.open_memmap(path, mode="w+", dtype=self.dtype, shape=self.shape)
            fp = self._prepared()
            for a in range(0, len(self), self._chunk):
                b = min(a + self._chunk, len(self))
                out[a:b] = fp.windows(self.x0[a:b], self.y0[a:b], self.size[a:b])
            out.flush()
            del out
            self._release()
            self._disk = path
        mm = np.load(self._disk, mmap_mode="r")
        try:
            return np.array(mm[idx])
        finally:
            del mm

    def _prepared(self) -> FieldPreprocessor:
        if self._fp is None:
            data = self._source
            if isinstance(data, str | os.PathLike):
                data = read_field(data).data
            pad = overhang(np.shape(data)[1:], self.x0, self.y0, self.size)
            self._fp = FieldPreprocessor(data, threads=self._threads, pad=pad, **self._kw)
        return self._fp

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        idx = np.arange(len(self))[key]
        if self._cacheable:
            if self._cache is None:
                self._cache = self._prepared().windows(self.x0, self.y0, self.size)
                self._release()
            return self._cache[idx]
        if self._on_disk:
            return self._from_disk(idx)
        scalar = np.ndim(idx) == 0
        idx = np.atleast_1d(idx)
        out = self._prepared().windows(self.x0[idx], self.y0[idx], self.size[idx])
        if len(idx) and idx.max() == len(self) - 1:
            self._release()  # the last window: a sequential pass is over
        return out[0] if scalar else out

    def _release(self) -> None:
        if not isinstance(self._source, FieldPreprocessor):
            self._fp = None

    def __array__(self, dtype=None, copy=None):
        a = self[:]
        return a if dtype is None else a.astype(dtype)


def _remove_file(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
