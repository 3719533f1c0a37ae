"""Verified, resumable downloads of large files (Planck PR3 maps, catalogues, Spitzer tiles).

:func:`fetch` streams ``url`` into ``dest + ".part"`` (beside the final file), resumes an
interrupted transfer with an HTTP ``Range`` request, retries with exponential backoff, then
checks the size and the SHA-256 and only then renames the file to ``dest`` (``os.replace``),
so a file under the final name is always complete and verified. Beside the ``.part`` a record
``dest + ".part.json"`` holds the URL, expected size and SHA-256 it belongs to: a ``.part`` is
resumed only when its record matches the current request (a stale ``.part`` of another file
or version is discarded, never spliced), and only when a SHA-256 is given — without one the
download starts from zero, since a resumed file could not be verified, and the log says the
file is unverified (:func:`unverified_reason`; rule check_map repeats it in its report). A mismatch raises
:class:`DownloadError` naming the URL, the file, the expected and the actual value, and the
corrupt temporary file is removed.

Only the standard library is used (``urllib``); ``file://`` URLs work too (no resume needed).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from tqdm import tqdm

from skydetect.io.atomic import atomic_path

log = logging.getLogger(__name__)

MIB = 1024 * 1024
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


class DownloadError(RuntimeError):
    """A download that failed or whose size / checksum is not the expected one."""


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


def _transfer(url, part: Path, *, size, chunk, timeout, progress, user_agent) -> None:
    """One attempt: append the rest of ``url`` to ``part`` (Range request if it is non-empty)."""
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:
        log.warning("%s: partial file larger than expected (%d > %d); restarting", part, have, size)
        part.unlink()
        have = 0
    if size is not None and have == size:
        return  # a previous attempt got everything; verification decides
    request = urllib.request.Request(url, headers={"User-Agent": user_agent})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:
            # Range not satisfiable: the partial file already holds the whole resource.
            return
        if 500 <= err.code < 600 or err.code in (408, 429):
            raise _Interrupted(f"HTTP {err.code} {err.reason}") from err
        raise DownloadError(f"download of {url} failed: HTTP {err.code} {err.reason}") from err
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
        raise _Interrupted(f"cannot connect: {err}") from err

    with response:
        status = getattr(response, "status", None) or 200
        mode = "wb"
        start = 0
        if have and status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != have:
                raise _Interrupted(
                    f"server answered the range request for bytes {have}- with "
                    f"Content-Range {response.headers.get('Content-Range')!r}"
                )
            mode, start = "ab", have
        elif have:
            log.info("%s: server ignored the Range request; downloading from the start", url)
        length = response.headers.get("Content-Length")
        expected_end = start + int(length) if length is not None else None
        total = size if size is not None else expected_end
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
    if expected_end is not None and got < expected_end:
        raise _Interrupted(f"transfer cut after {got} of {expected_end} bytes")
    if expected_end is None and size is not None and got < size:
        raise _Interrupted(f"transfer ended after {got} of {size} bytes (no Content-Length)")


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
    user_agent: str = "skydetect-download/0.1",
) -> Path:
    """Download ``url`` to ``dest``, resuming and retrying, and verify size and SHA-256.

    ``size`` (bytes) and ``sha256`` (hex digest) are checked when given. ``retries`` is the
    number of further attempts after an interrupted one (connection cut, timeout, HTTP 5xx),
    each resuming from the bytes already received, after ``backoff * 2**k`` seconds.
    Returns the final path. Raises :class:`DownloadError` on a mismatch or when all attempts
    failed; nothing is left under ``dest`` then (a verified-corrupt temporary file is
    removed; an interrupted one is kept so that the next call resumes it).
    """
    dest = Path(dest)
    if chunk <= 0:
        raise ValueError(f"chunk must be positive, got {chunk}")
    if size is not None and size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    if sha256 is not None:
        sha256 = sha256.strip().lower()
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise ValueError(f"sha256 for {url} is not a 64-digit hex digest: {sha256!r}")
    reason = unverified_reason(size, sha256)
    if reason:
        log.warning(
            "%s -> %s: %s; the file will be UNVERIFIED (downloaded from the start, never "
            "resumed); give its sha256 in the config",
            url,
            dest,
            reason,
        )
    elif size is None:
        log.warning("%s: no expected size given (the SHA-256 still verifies the file)", url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    _prepare_part(url, dest, size, sha256)

    for attempt in range(retries + 1):
        try:
            _transfer(
                url,
                part,
                size=size,
                chunk=chunk,
                timeout=timeout,
                progress=progress,
                user_agent=user_agent,
            )
            break
        except _Interrupted as err:
            if attempt == retries:
                raise DownloadError(
                    f"download of {url} to {dest} failed after {retries + 1} attempt(s): {err} "
                    f"(partial data kept in {part}; run again to resume)"
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
            raise DownloadError(
                f"SHA-256 mismatch for {url} -> {dest}: expected {sha256}, got {actual}"
            )
    os.replace(part, dest)
    _discard(dest)
    if reason:
        log.warning("downloaded %s -> %s (%d bytes, UNVERIFIED: %s)", url, dest, actual_size, reason)
    else:
        log.info("downloaded %s -> %s (%d bytes, verified)", url, dest, actual_size)
    return dest


def filename_from_url(url: str, fallback: str | None = None) -> str:
    """The file name a download is stored under: the URL's last path segment.

    A URL without one (a query such as ``product-action?MAP.MAP_ID=...``, a trailing ``/``, no
    extension) gives ``fallback``; without a fallback that is a :class:`ValueError`.
    """
    parts = urlsplit(url)
    name = PurePosixPath(parts.path).name
    if not name or parts.query or "." not in name:
        if fallback is None:
            raise ValueError(f"cannot take a file name from URL {url!r}: give `filename`")
        name = fallback
    return name


@dataclass
class DownloadTable:
    """File name (under the download directory) -> ``{url, size, sha256}``.

    Built from the ``planck.download`` config section by :meth:`from_config`; other stages may
    :meth:`add` their own files (e.g. Spitzer tiles). ``maps`` and ``catalogs`` map bands and
    catalogue names to file names.
    """

    directory: str = "results/download"
    files: dict[str, dict] = field(default_factory=dict)
    maps: dict[str, str] = field(default_factory=dict)
    catalogs: dict[str, str] = field(default_factory=dict)
    config_key: str = "planck.download"

    @classmethod
    def from_config(
        cls, cfg: dict, map_filenames: dict[str, str], directory: str = "results/download"
    ) -> DownloadTable:
        """``cfg``: ``{band: entry, ..., "catalogs": {name: entry}}`` (other keys ignored);
        ``map_filenames``: band -> PR3 file name, used when a map URL names no file."""
        table = cls(directory=directory)
        for key, entry in cfg.items():
            if key == "catalogs":
                for name, centry in entry.items():
                    table.catalogs[name] = table.add(centry, key=f"catalogs.{name}")
            elif key in map_filenames and isinstance(entry, dict):
                table.maps[key] = table.add(entry, fallback=map_filenames[key], key=key)
        return table

    def add(self, entry: dict, fallback: str | None = None, key: str = "?") -> str:
        """Register one ``{url, size, sha256[, filename]}`` entry; returns its file name."""
        if not entry.get("url"):
            raise ValueError(f"config key '{self.config_key}.{key}': no url given")
        name = entry.get("filename") or filename_from_url(entry["url"], fallback)
        old = self.files.get(name)
        if old is not None and old["url"] != entry["url"]:
            raise ValueError(
                f"config key '{self.config_key}.{key}': file name {name!r} is already used by "
                f"{old['url']}; set a distinct `filename`"
            )
        self.files[name] = {
            "url": entry["url"],
            "size": entry.get("size"),
            "sha256": entry.get("sha256"),
        }
        return name

    def entry(self, filename: str) -> dict:
        try:
            return self.files[filename]
        except KeyError:
            raise ValueError(
                f"{self.directory}/{filename}: no download is configured under that name "
                f"(known: {', '.join(sorted(self.files)) or 'none'}; see {self.config_key})"
            ) from None

    def map_path(self, band) -> str:
        """Path of the downloaded map of ``band``."""
        band = str(band)
        if band not in self.maps:
            raise ValueError(
                f"config key '{self.config_key}.{band}' (url, size, sha256) is missing: "
                "needed to download that band's map"
            )
        return f"{self.directory}/{self.maps[band]}"

    def catalog_path(self, name: str) -> str:
        """Path of the downloaded catalogue ``name`` (psz2, mcxc, redmapper, sources)."""
        if name not in self.catalogs:
            raise ValueError(
                f"config key '{self.config_key}.catalogs.{name}' (url, size, sha256) is "
                "missing: needed to download that catalogue"
            )
        return f"{self.directory}/{self.catalogs[name]}"
