"""The one way this project writes a file: to a temporary name beside it, then ``os.replace``.

A job that is killed or fails never leaves a half-written file at the final path, and the
temporary file is removed on any exception::

    with atomic_path("results/x.h5") as tmp:
        write_something(tmp)          # tmp is a Path in the same directory
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def temporary_name(path: str | os.PathLike) -> Path:
    """A hidden name beside ``path`` that keeps its suffix (so writers that look at it work)."""
    path = Path(path)
    return path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
