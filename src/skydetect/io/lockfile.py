"""Integrity of downloads without a hash known in advance: the lock file and FITS checksums.

The first download of a file records its URL, size and SHA-256 in the lock file
(``config/downloads.lock`` by default, key ``download_lock``; kept under version control).
Every later download of that file is verified against the entry (and may resume, since the
digest is known), and so is the file rule check_map reads; a file whose digest disagrees with
its entry stops the job with both digests. For an unpacked download (``unpack: gzip / tar``)
the entry holds the digest of what the server sent (``sha256``) and of the file written
(``file_sha256``).

Before anything is recorded, the size is the one the server announced (the transfer is
complete), and a FITS file's ``CHECKSUM`` / ``DATASUM`` keywords, where it carries them, are
verified by astropy (:func:`verify_fits_checksums`).

The lock file is rewritten atomically under an exclusive ``flock`` of its directory, so
download jobs running side by side each add their entry.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import gzip
import logging
import os
import shutil
import tarfile
from pathlib import Path

import yaml
from astropy.io import fits

from skydetect.io.atomic import atomic_path
from skydetect.io.download import ChecksumMismatch, DownloadError, fetch, sha256_of

log = logging.getLogger(__name__)

HEADER = """\
# SHA-256 and size of every file the workflow downloaded, recorded at its first download
# (config/downloads.yaml says where each file comes from). Later downloads and rule check_map
# verify the files against these entries: commit this file with the results it produced.
# A file whose server copy changed stops the workflow with both digests; to accept the new
# version, delete its entry here and run again.
"""
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz")


class DownloadLock:
    """The lock file: file name -> ``{url, size, sha256[, file_sha256, member], recorded}``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def entries(self) -> dict[str, dict]:
        if not self.path.exists():
            return {}
        try:
            data = yaml.safe_load(self.path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise DownloadError(f"{self.path}: not a readable lock file ({exc})") from None
        files = data.get("files") if isinstance(data, dict) else None
        if files is None:
            files = {}
        if not isinstance(files, dict):
            raise DownloadError(f"{self.path}: `files` must map file names to entries")
        return files

    def get(self, name: str) -> dict | None:
        return self.entries().get(name)

    @contextlib.contextmanager
    def _locked(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def record(self, name: str, entry: dict) -> None:
        """Add (or replace) the entry of ``name``, keeping every other entry."""
        with self._locked():
            files = self.entries()
            files[name] = {
                **entry,
                "recorded": datetime.datetime.now(datetime.timezone.utc).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                ),
            }
            text = HEADER + yaml.safe_dump({"files": files}, sort_keys=True)
            with atomic_path(self.path) as tmp:
                tmp.write_text(text)


def verify_fits_checksums(path: str | os.PathLike) -> int:
    """Verify the ``CHECKSUM`` / ``DATASUM`` keywords of every HDU that carries them.

    Returns the number of HDUs verified; raises :class:`DownloadError` naming the file, the
    HDU and the keyword on a mismatch, or when the file is not readable FITS.
    """
    checked = 0
    try:
        with fits.open(path, memmap=True) as hdul:
            for i, hdu in enumerate(hdul):
                for key, verify in (
                    ("DATASUM", hdu.verify_datasum),
                    ("CHECKSUM", hdu.verify_checksum),
                ):
                    if key in hdu.header:
                        if verify() == 0:
                            raise DownloadError(
                                f"{path}: FITS {key} of HDU {i} "
                                f"({hdu.name or 'PRIMARY'}) does not match its data "
                                f"({key} = {hdu.header[key]!r}): the file is corrupt"
                            )
                checked += any(key in hdu.header for key in ("DATASUM", "CHECKSUM"))
    except (OSError, ValueError, TypeError) as exc:
        raise DownloadError(f"{path}: not a readable FITS file ({exc})") from None
    return checked


def _is_fits(path: Path) -> bool:
    return path.name.lower().endswith(FITS_SUFFIXES)


def _unpack(archive: Path, dest: Path, unpack: str | None, member: str | None) -> None:
    """Write the file ``dest`` from the downloaded ``archive`` (atomically)."""
    with atomic_path(dest) as tmp:
        try:
            if unpack == "gzip":
                with gzip.open(archive, "rb") as src, open(tmp, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
            else:
                with tarfile.open(archive) as tar:
                    src = tar.extractfile(member)
                    if src is None:
                        raise KeyError(member)
                    with src, open(tmp, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
        except KeyError:
            raise DownloadError(f"{archive}: the archive holds no file {member!r}") from None
        except (OSError, EOFError, tarfile.TarError) as exc:
            raise DownloadError(f"{archive}: cannot unpack ({unpack}): {exc}") from None


def _lock_mismatch(lock: DownloadLock, name, url, recorded: dict, key: str, actual: str):
    return DownloadError(
        f"{name} ({url}): SHA-256 {actual} differs from the one recorded in {lock.path} "
        f"({key} {recorded[key]}, from {recorded.get('url')} on {recorded.get('recorded')}): "
        "the published file changed or the transfer is corrupt; nothing was kept. To accept "
        f"a new version, delete the entry {name!r} from {lock.path} and run again"
    )


def fetch_recorded(
    url: str,
    dest: str | os.PathLike,
    lock: DownloadLock,
    *,
    size: int | None = None,
    sha256: str | None = None,
    unpack: str | None = None,
    member: str | None = None,
    **kw,
) -> Path:
    """:func:`~skydetect.io.download.fetch` ``url`` to ``dest``, verified against the lock.

    ``size`` / ``sha256`` given in the config are checked as well; without them the lock
    entry of ``dest``'s name supplies them. On a first download the entry is recorded.
    """
    dest, name = Path(dest), Path(dest).name
    recorded = lock.get(name)
    if recorded:  # its digest verifies the transfer (and lets it resume); a changed size too
        sha256 = sha256 or recorded.get("sha256")
    download = dest.with_name(f"{name}.download") if unpack else dest
    try:
        fetch(url, download, size=size, sha256=sha256, **kw)
    except ChecksumMismatch as err:
        if recorded and recorded.get("sha256") == err.expected:
            raise _lock_mismatch(lock, name, url, recorded, "sha256", err.actual) from err
        raise
    try:
        sent_size, sent_sha = download.stat().st_size, sha256_of(download)
        if recorded and recorded.get("sha256") not in (None, sent_sha):
            raise _lock_mismatch(lock, name, url, recorded, "sha256", sent_sha)
        if unpack:
            _unpack(download, dest, unpack, member)
        file_sha = sha256_of(dest) if unpack else sent_sha
        if recorded and recorded.get("file_sha256") not in (None, file_sha):
            raise _lock_mismatch(lock, name, url, recorded, "file_sha256", file_sha)
        if _is_fits(dest):
            n = verify_fits_checksums(dest)
            log.info("%s: FITS CHECKSUM/DATASUM of %d HDU(s) verified", dest, n)
    except DownloadError:
        for path in {download, dest}:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        raise
    finally:
        if unpack:
            with contextlib.suppress(FileNotFoundError):
                download.unlink()
    if recorded:
        log.info("%s: SHA-256 %s agrees with %s", dest, file_sha, lock.path)
    else:
        entry = {"url": url, "size": sent_size, "sha256": sent_sha}
        if unpack:
            entry.update(member=member, file_size=dest.stat().st_size, file_sha256=file_sha)
        lock.record(name, entry)
        log.info(
            "%s: first download; size %d and SHA-256 %s recorded in %s",
            dest,
            sent_size,
            sent_sha,
            lock.path,
        )
    return dest


def verify_against_lock(path: str | os.PathLike, lock: DownloadLock) -> dict:
    """Check a downloaded file against its lock entry (rule check_map).

    Returns ``{"verified": bool, "sha256": ..., "note": ...}``; a digest that disagrees with
    the entry raises :class:`DownloadError` with both digests. A file without an entry is
    reported unverified (``note`` says why).
    """
    path = Path(path)
    recorded = lock.get(path.name)
    actual = sha256_of(path)
    if not recorded:
        return {
            "verified": False,
            "sha256": actual,
            "note": f"{path}: UNVERIFIED download (no entry {path.name!r} in {lock.path})",
        }
    key = "file_sha256" if recorded.get("file_sha256") else "sha256"
    if recorded[key] != actual:
        raise DownloadError(
            f"{path}: SHA-256 {actual} differs from the one recorded in {lock.path} "
            f"({key} {recorded[key]}, from {recorded.get('url')} on {recorded.get('recorded')}): "
            "the file changed after its download"
        )
    return {"verified": True, "sha256": actual, "note": f"{path}: SHA-256 agrees with {lock.path}"}
