"""The one way this project writes a file: to a temporary name beside it, then ``os.replace``.

A job that is killed or fails never leaves a half-written file at the final path, and the
temporary file is removed on any exception::

    with atomic_path("results/x.h5") as tmp:
        write_something(tmp)          # tmp is a Path in the same directory

A job killed with SIGKILL cannot remove its temporary file; the next writer of the same target
removes every ``.<stem>.tmp<pid><suffix>`` beside it whose process is gone (a live process's
file is left alone), so a rerun leaves nothing hidden behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)


def temporary_name(path: str | os.PathLike) -> Path:
    """A hidden name beside ``path`` that keeps its suffix (so writers that look at it work)."""
    path = Path(path)
    return path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (one of another user counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files of ``path`` left by dead writers; return what was removed."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    pattern = re.compile(rf"^\.{re.escape(path.stem)}\.tmp(\d+){re.escape(path.suffix)}$")
    removed = []
    for candidate in path.parent.iterdir():
        match = pattern.match(candidate.name)
        if match and not pid_alive(int(match.group(1))):
            with contextlib.suppress(FileNotFoundError):
                candidate.unlink()
                removed.append(candidate)
                log.info("removed %s, left by a writer that no longer runs", candidate)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
