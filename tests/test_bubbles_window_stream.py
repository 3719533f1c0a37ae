"""Windows preprocessed on demand (skydetect.bubbles.window_stream): equal to the stack,
bounded memory, the disk cache."""

from __future__ import annotations

import numpy as np
from bubble_fixtures import PP

from skydetect.bubbles.preprocess import preprocess_windows
from skydetect.bubbles.windows import sliding_windows


def test_window_stream_equals_the_stack_and_bounds_memory(spitzer_field):
    from skydetect.bubbles.window_stream import WindowStream

    x0, y0, size = sliding_windows(spitzer_field.shape, [40, 80], 1 / 3)
    full = preprocess_windows(spitzer_field.data, x0, y0, size, **PP)
    stream = WindowStream(spitzer_field.data, x0, y0, size, **PP)  # no cache
    assert len(stream) == len(full) and stream.shape == full.shape
    # a chunk sums the window statistics in another order than one call over all windows
    # (float32 rounding, which depends on the CPU's vector width): equal to 1e-6
    same = dict(rtol=0, atol=1e-6)
    np.testing.assert_allclose(stream[7:30], full[7:30], **same)
    np.testing.assert_allclose(stream[np.array([3, 100, 4])], full[[3, 100, 4]], **same)
    np.testing.assert_array_equal(stream[np.array([3, 100, 4])][1], stream[100:101][0])
    assert stream._cache is None  # nothing kept between chunks
    cached = WindowStream(spitzer_field.data, x0, y0, size, cache_mb=100, **PP)
    np.testing.assert_allclose(cached[:5], full[:5], **same)
    np.testing.assert_array_equal(cached[:5], cached[np.arange(5)])
    assert cached._cache is not None


def test_window_stream_disk_cache_serves_the_stack_and_cleans_up(spitzer_field, tmp_path):
    """Windows too large for memory go to a temporary .npy once (in chunks); every later read
    equals the preprocessed stack, nothing is kept in memory, the file goes with the stream."""
    from skydetect.bubbles.window_stream import WindowStream

    x0, y0, size = sliding_windows(spitzer_field.shape, [40, 80], 1 / 3)
    full = preprocess_windows(spitzer_field.data, x0, y0, size, **PP)
    disk = WindowStream(
        spitzer_field.data,
        x0,
        y0,
        size,
        cache_mb=0.01,
        disk_cache_mb=100,
        cache_dir=tmp_path,
        chunk=7,
        **PP,
    )
    np.testing.assert_allclose(disk[2:9], full[2:9], rtol=0, atol=1e-6)
    (path,) = tmp_path.glob("windows_*.npy")
    assert np.load(path).shape == full.shape
    disk._fp = "must not be used again"  # later passes read the file, never preprocess
    first = disk[:]
    # chunks of 7 sum the window statistics in another order than one call: float32 rounding
    np.testing.assert_allclose(first, full, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(disk[:], first)
    np.testing.assert_array_equal(disk[np.array([5, 0, 5])], first[[5, 0, 5]])
    assert disk._cache is None
    del disk
    import gc

    gc.collect()
    assert not list(tmp_path.glob("windows_*.npy"))
    small = WindowStream(
        spitzer_field.data, x0, y0, size, disk_cache_mb=0.01, cache_dir=tmp_path, **PP
    )  # too large for the disk cache as well: preprocessed on every pass
    np.testing.assert_allclose(small[3:4], full[3:4], rtol=0, atol=1e-6)
    assert not list(tmp_path.glob("windows_*.npy"))
