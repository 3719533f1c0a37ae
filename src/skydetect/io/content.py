"""Content checks shared by every reader: data that is well-formed but empty, constant,
duplicated or identical to another input never becomes a result.

Each check returns a short description of the problem (or ``None``); the reader adds the file
name and either raises its own error or, where the data stay usable, warns once with
:func:`warn_once` (into the log, and into the ``warnings`` list that the rule writes into its
output or report, so the note travels with the result).
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np

log = logging.getLogger(__name__)


def image_problem(data, *, bad=None) -> str | None:
    """Why an image (map, mosaic) holds no usable sky, or ``None``: a phrase to follow the
    image's name ("has no finite data ...", "is all zero ...").

    ``bad``: pixels already known to be blank (e.g. HEALPix UNSEEN); NaN and infinities are
    always blank. Refused: no finite pixel at all, every finite pixel the same value (an all-zero
    placeholder, a constant fill).
    """
    data = np.asarray(data)
    good = np.isfinite(data)
    if bad is not None:
        good &= ~np.asarray(bad, bool)
    if not good.any():
        return "has no finite data (every pixel is NaN, infinite or blank)"
    values = data[good]
    lo, hi = values.min(), values.max()
    if lo == hi:
        what = "all zero" if lo == 0 else f"constant ({float(lo):g} in every valid pixel)"
        return f"is {what}: not a sky image (an empty or placeholder file?)"
    return None


def digest(data) -> str:
    """SHA-256 of an array's values (dtype and shape included): equal digests, equal data."""
    arr = np.ascontiguousarray(data)
    h = hashlib.sha256(f"{arr.dtype.str}{arr.shape}".encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def identical_pairs(named: dict[str, str]) -> list[tuple[str, str]]:
    """Pairs of names whose digests (``{name: digest}``) are equal, in the order given."""
    seen: dict[str, str] = {}
    pairs = []
    for name, dig in named.items():
        if dig in seen:
            pairs.append((seen[dig], name))
        else:
            seen[dig] = name
    return pairs


def duplicate_rows(keys, rows=None) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Rows that repeat a key: ``(exact, conflicts)``.

    ``keys``: one identifier per row (a name). ``rows``: a full-row signature per row (e.g. a
    tuple of all values); rows whose key and signature both repeat an earlier row are
    ``exact`` duplicates (a boolean mask, the first occurrence kept). ``conflicts`` lists
    ``(first, later)`` row indices (0-based) that share a key but differ in content.
    """
    keys = [str(k) for k in keys]
    rows = keys if rows is None else list(rows)
    first: dict[str, int] = {}
    exact = np.zeros(len(keys), bool)
    conflicts = []
    for i, key in enumerate(keys):
        if key == "":
            continue
        if key in first:
            j = first[key]
            if rows[i] == rows[j]:
                exact[i] = True
            else:
                conflicts.append((j, i))
        else:
            first[key] = i
    return exact, conflicts


def warn_once(warnings: list[str], message: str) -> None:
    """Log ``message`` as a warning and keep it for the rule's report (once per message)."""
    if message not in warnings:
        warnings.append(message)
        log.warning("%s", message)
