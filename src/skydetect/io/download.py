"""Verified, resumable downloads of large files (Planck PR3 maps, catalogues, Spitzer tiles).

:func:`fetch` streams ``url`` into ``dest + ".part"`` (beside the final file), resumes an
interrupted transfer with an HTTP ``Range`` request, retries with exponential backoff, then
checks the size and the SHA-256 and only then renames the file to ``dest`` (``os.replace``),
so a file under the final name is always complete and verified. Beside the ``.part`` a record
``dest + ".part.json"`` holds the URL, expected size and SHA-256 it belongs to: a ``.part`` is
resumed only when its record matches the current request (a stale ``.part`` of another file
or version is discarded, never spliced), and only when a SHA-256 is given — without one the
download starts from zero, since a resumed file could not be verified, and the log says the
file is unverified (:func:`unverified_reason`). A mismatch raises :class:`ChecksumMismatch`
(a :class:`DownloadError`) naming the URL, the file, the expected and the actual value, and
the corrupt temporary file is removed.

Only an interruption (connection cut or refused, timeout, HTTP 5xx / 408 / 429) is retried.
A URL that cannot work (:func:`skydetect.io.urls.url_problem`: unknown scheme such as ``htps://``, malformed
host), a host name that does not exist, an HTTP 4xx answer, a refused TLS handshake or
certificate, a missing ``file://`` path fail at once. A failed download leaves nothing beside
``dest`` except a ``.part`` (and its record) that a later run can resume.

Only the standard library is used (``urllib``); ``file://`` URLs work too (no resume needed).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import socket
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from skydetect import __version__
from skydetect.io.atomic import atomic_path
from skydetect.io.urls import url_problem

log = logging.getLogger(__name__)

MIB = 1024 * 1024
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


class DownloadError(RuntimeError):
    """A download that failed or whose size / checksum is not the expected one."""


class ChecksumMismatch(DownloadError):
    """The SHA-256 of a downloaded file differs from the expected one (both kept here)."""

    def __init__(self, message: str, expected: str, actual: str):
        super().__init__(message)
        self.expected, self.actual = expected, actual


class _Interrupted(Exception):
    """A transfer that ended early (connection cut, timeout): worth a retry with resume."""


def sha256_of(path: str | os.PathLike, chunk: int = MIB) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def part_path(dest: str | os.PathLike) -> Path:
    """The temporary name a download of ``dest`` is streamed to (same directory)."""
    dest = Path(dest)
    return dest.with_name(dest.name + ".part")


def record_path(dest: str | os.PathLike) -> Path:
    """The record (URL, size, SHA-256) of the ``.part`` of ``dest``."""
    dest = Path(dest)
    return dest.with_name(dest.name + ".part.json")


def unverified_reason(size: int | None, sha256: str | None) -> str | None:
    """Why a download with these expectations is not verified (None: it is, by SHA-256)."""
    if sha256:
        return None
    return "no sha256 given" + (" and no size" if size is None else "")


def _read_record(path: Path) -> dict | None:
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def _prepare_part(url: str, dest: Path, size, sha256) -> None:
    """Keep an existing ``.part`` only if it belongs to this request; record the request."""
    part, record = part_path(dest), record_path(dest)
    wanted = {"url": url, "size": size, "sha256": sha256}
    if part.exists():
        old = _read_record(record)
        if sha256 is None:
            log.warning(
                "%s: discarding the partial file %s and downloading from the start: without a "
                "sha256 a resumed file could not be verified",
                url,
                part,
            )
            part.unlink()
        elif old != wanted:
            log.warning(
                "%s: the partial file %s belongs to %s, not to this download (%s); discarded",
                url,
                part,
                old if old is not None else "an unknown request (no record beside it)",
                wanted,
            )
            part.unlink()
    with atomic_path(record) as tmp, open(tmp, "w") as fh:
        json.dump(wanted, fh)


def _discard(dest: Path) -> None:
    for path in (part_path(dest), record_path(dest)):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _permanent_failure(reason) -> str | None:
    """Why a urllib failure cannot be cured by retrying (None: it may be, e.g. a timeout)."""
    if isinstance(reason, ssl.SSLError):
        return f"TLS refused ({reason})"
    if isinstance(reason, socket.gaierror) and reason.errno == socket.EAI_NONAME:
        return f"host not found ({reason.strerror})"
    if isinstance(reason, FileNotFoundError | IsADirectoryError | PermissionError):
        return f"{reason.strerror}: {reason.filename}"
    if isinstance(reason, str):  # e.g. "unknown url type: htps"
        return reason
    return None


def _open(url, have: int, *, timeout, user_agent):
    """The response to a GET of ``url`` (from byte ``have`` on), or None when the partial
    file already holds the whole resource; failures raise :class:`DownloadError`
    (permanent) or :class:`_Interrupted` (worth a retry)."""
    request = urllib.request.Request(url, headers={"User-Agent": user_agent})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:
            # Range not satisfiable: the partial file already holds the whole resource.
            return None
        if 500 <= err.code < 600 or err.code in (408, 429):
            raise _Interrupted(f"HTTP {err.code} {err.reason}") from err
        raise DownloadError(f"download of {url} failed: HTTP {err.code} {err.reason}") from err
    except urllib.error.URLError as err:
        permanent = _permanent_failure(err.reason)
        if permanent:
            raise DownloadError(f"download of {url} failed: {permanent}") from err
        raise _Interrupted(f"cannot connect: {err.reason}") from err
    except ssl.SSLError as err:
        raise DownloadError(f"download of {url} failed: TLS refused ({err})") from err
    except ValueError as err:  # http.client.InvalidURL and friends
        raise DownloadError(f"download of {url} failed: malformed URL ({err})") from err
    except (TimeoutError, ConnectionError, OSError) as err:
        raise _Interrupted(f"cannot connect: {err}") from err


def _write_mode(response, url, have: int) -> tuple[str, int]:
    """("ab", have) when the server resumes at byte ``have`` (206), else ("wb", 0)."""
    status = getattr(response, "status", None) or 200
    if have and status == 206:
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
        if not match or int(match.group(1)) != have:
            raise _Interrupted(
                f"server answered the range request for bytes {have}- with "
                f"Content-Range {response.headers.get('Content-Range')!r}"
            )
        return "ab", have
    if have:
        log.info("%s: server ignored the Range request; downloading from the start", url)
    return "wb", 0


def _copy_body(response, part: Path, mode: str, start: int, total, *, size, chunk, progress):
    """Write the response body to ``part`` (``mode``), with a progress bar; returns the
    file's length after the transfer (stops early past ``size``)."""
    got = start
    with (
        open(part, mode) as out,
        tqdm(
            total=total,
            initial=start,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=Path(part).name.removesuffix(".part"),
            disable=not progress,
            mininterval=2.0,
        ) as bar,
    ):
        while True:
            try:
                block = response.read(chunk)
            except (TimeoutError, ConnectionError, OSError) as err:
                raise _Interrupted(f"transfer cut after {got} bytes: {err}") from err
            except Exception as err:  # http.client.IncompleteRead and friends
                raise _Interrupted(f"transfer cut after {got} bytes: {err!r}") from err
            if not block:
                break
            out.write(block)
            got += len(block)
            bar.update(len(block))
            if size is not None and got > size:
                break  # more than announced: verification reports it
    return got


def _transfer(url, part: Path, *, size, chunk, timeout, progress, user_agent) -> None:
    """One attempt: append the rest of ``url`` to ``part`` (Range request if it is non-empty)."""
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:
        log.warning("%s: partial file larger than expected (%d > %d); restarting", part, have, size)
        part.unlink()
        have = 0
    if size is not None and have == size:
        return  # a previous attempt got everything; verification decides
    response = _open(url, have, timeout=timeout, user_agent=user_agent)
    if response is None:
        return
    with response:
        mode, start = _write_mode(response, url, have)
        length = response.headers.get("Content-Length")
        expected_end = start + int(length) if length is not None else None
        total = size if size is not None else expected_end
        got = _copy_body(
            response, part, mode, start, total, size=size, chunk=chunk, progress=progress
        )
    if expected_end is not None and got < expected_end:
        raise _Interrupted(f"transfer cut after {got} of {expected_end} bytes")
    if expected_end is None and size is not None and got < size:
        raise _Interrupted(f"transfer ended after {got} of {size} bytes (no Content-Length)")


def _check_arguments(url, size, sha256, chunk) -> str | None:
    """Refuse a request that cannot work before anything is written; the normalised sha256."""
    problem = url_problem(url)
    if problem:
        raise DownloadError(f"cannot download {url!r}: {problem}")
    if chunk <= 0:
        raise ValueError(f"chunk must be positive, got {chunk}")
    if size is not None and size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    if sha256 is not None:
        sha256 = sha256.strip().lower()
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise ValueError(f"sha256 for {url} is not a 64-digit hex digest: {sha256!r}")
    return sha256


def _transfer_with_retries(url, dest: Path, *, retries, backoff, resumable, **kw) -> None:
    part = part_path(dest)
    for attempt in range(retries + 1):
        try:
            _transfer(url, part, **kw)
            return
        except DownloadError:  # not worth a retry: nothing is kept
            _discard(dest)
            raise
        except _Interrupted as err:
            if attempt == retries:
                have = part.stat().st_size if part.exists() else 0
                if resumable and have:
                    kept = f"{have} bytes kept in {part}; run again to resume"
                else:
                    _discard(dest)
                    kept = "nothing kept" if not have else "partial data discarded (no sha256)"
                raise DownloadError(
                    f"download of {url} to {dest} failed after {retries + 1} attempt(s): "
                    f"{err} ({kept})"
                ) from err
            wait = backoff * 2**attempt
            log.warning(
                "%s: attempt %d/%d interrupted (%s); resuming in %.1f s",
                url,
                attempt + 1,
                retries + 1,
                err,
                wait,
            )
            time.sleep(wait)


def _verify(url, dest: Path, size, sha256, chunk) -> int:
    """Size and SHA-256 of the finished ``.part``; a mismatch removes it. Returns the size."""
    part = part_path(dest)
    if not part.exists():
        part.touch()  # an empty resource
    actual_size = part.stat().st_size
    if size is not None and actual_size != size:
        _discard(dest)
        raise DownloadError(
            f"size mismatch for {url} -> {dest}: expected {size} bytes, got {actual_size}"
        )
    if sha256 is not None:
        actual = sha256_of(part, chunk)
        if actual != sha256:
            _discard(dest)
            raise ChecksumMismatch(
                f"SHA-256 mismatch for {url} -> {dest}: expected {sha256}, got {actual}",
                sha256,
                actual,
            )
    return actual_size


def fetch(
    url: str,
    dest: str | os.PathLike,
    *,
    size: int | None = None,
    sha256: str | None = None,
    retries: int = 5,
    chunk: int = MIB,
    timeout: float = 60.0,
    backoff: float = 2.0,
    progress: bool = True,
    user_agent: str = f"skydetect/{__version__}",
) -> Path:
    """Download ``url`` to ``dest``, resuming and retrying, and verify size and SHA-256.

    ``size`` (bytes) and ``sha256`` (hex digest) are checked when given. ``retries`` is the
    number of further attempts after an interrupted one (connection cut, timeout, HTTP 5xx),
    each resuming from the bytes already received, after ``backoff * 2**k`` seconds; other
    failures are not retried. Returns the final path. Raises :class:`DownloadError` on a
    mismatch or a failure; nothing is left beside ``dest`` then, except the ``.part`` of an
    interrupted transfer with a known SHA-256, which the next call resumes.
    """
    dest = Path(dest)
    sha256 = _check_arguments(url, size, sha256, chunk)
    reason = unverified_reason(size, sha256)
    if reason:
        log.warning(
            "%s -> %s: %s; the transfer is UNVERIFIED by a digest (downloaded from the "
            "start, never resumed)",
            url,
            dest,
            reason,
        )
    elif size is None:
        log.warning("%s: no expected size given (the SHA-256 still verifies the file)", url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    _prepare_part(url, dest, size, sha256)
    _transfer_with_retries(
        url,
        dest,
        retries=retries,
        backoff=backoff,
        resumable=sha256 is not None,
        size=size,
        chunk=chunk,
        timeout=timeout,
        progress=progress,
        user_agent=user_agent,
    )
    actual_size = _verify(url, dest, size, sha256, chunk)
    os.replace(part_path(dest), dest)
    _discard(dest)
    if reason:
        log.warning(
            "downloaded %s -> %s (%d bytes, UNVERIFIED: %s)", url, dest, actual_size, reason
        )
    else:
        log.info("downloaded %s -> %s (%d bytes, verified)", url, dest, actual_size)
    return dest
