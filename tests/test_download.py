"""skydetect.io.download.fetch against a real HTTP server on 127.0.0.1 (started here).

The handler serves in-memory files, honours ``Range: bytes=N-`` with 206 / Content-Range,
records every request's headers, and can cut the connection mid-transfer.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import logging
import re
import threading

import numpy as np
import pytest

from skydetect.io.download import (
    DownloadError,
    fetch,
    part_path,
    record_path,
    sha256_of,
    unverified_reason,
)

PAYLOAD = np.random.default_rng([7, 2]).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Server:
    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[dict] = []  # {"path": ..., "range": ...}
        self.cut_after: dict[
            str, list[int]
        ] = {}  # path -> bytes to send before cutting, per request
        self.honour_range = True
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                server.requests.append({"path": self.path, "range": self.headers.get("Range")})
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng and server.honour_range:
                    m = re.fullmatch(r"bytes=(\d+)-", rng)
                    start = int(m.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                cuts = server.cut_after.get(self.path)
                if cuts:
                    n = cuts.pop(0)
                    self.wfile.write(body[:n])
                    self.wfile.flush()
                    self.close_connection = True  # connection cut mid-transfer
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    with _Server() as srv:
        srv.files["/map.fits"] = PAYLOAD
        srv.files["/map.bin"] = PAYLOAD
        yield srv


def _fetch(url, dest, **kw):
    kw.setdefault("backoff", 0.01)
    kw.setdefault("timeout", 10)
    kw.setdefault("progress", False)
    return fetch(url, dest, **kw)


def test_good_file(server, tmp_path):
    dest = tmp_path / "sub" / "map.fits"
    out = _fetch(f"{server.url}/map.fits", dest, size=len(PAYLOAD), sha256=SHA, chunk=65536)
    assert out == dest
    assert dest.read_bytes() == PAYLOAD
    assert not part_path(dest).exists()
    assert [r["range"] for r in server.requests] == [None]
    assert sha256_of(dest) == SHA


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    dest = tmp_path / "map.fits"
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(DownloadError) as err:
        _fetch(f"{server.url}/map.fits", dest, size=len(PAYLOAD), sha256=wrong)
    msg = str(err.value)
    assert "SHA-256 mismatch" in msg and server.url in msg and str(dest) in msg
    assert wrong in msg and SHA in msg  # expected and actual
    assert not dest.exists()
    assert not part_path(dest).exists()


def test_corrupted_payload(server, tmp_path):
    """The server delivers a byte-flipped file: the checksum catches it."""
    bad = bytearray(PAYLOAD)
    bad[12345] ^= 0xFF
    server.files["/map.fits"] = bytes(bad)
    dest = tmp_path / "map.fits"
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        _fetch(f"{server.url}/map.fits", dest, size=len(PAYLOAD), sha256=SHA)
    assert list(tmp_path.iterdir()) == []


def test_size_mismatch(server, tmp_path):
    dest = tmp_path / "map.fits"
    with pytest.raises(DownloadError) as err:
        _fetch(f"{server.url}/map.fits", dest, size=len(PAYLOAD) + 10)
    msg = str(err.value)
    assert "size mismatch" in msg and f"expected {len(PAYLOAD) + 10}" in msg
    assert f"got {len(PAYLOAD)}" in msg
    assert list(tmp_path.iterdir()) == []


def test_interrupted_transfer_resumes(server, tmp_path, caplog):
    server.cut_after["/map.fits"] = [100_000, 50_000]  # two cuts, then a full answer
    dest = tmp_path / "map.fits"
    with caplog.at_level(logging.WARNING, logger="skydetect.io.download"):
        _fetch(f"{server.url}/map.fits", dest, size=len(PAYLOAD), sha256=SHA, chunk=8192)
    assert dest.read_bytes() == PAYLOAD
    ranges = [r["range"] for r in server.requests]
    assert ranges == [None, "bytes=100000-", "bytes=150000-"]
    assert "interrupted" in caplog.text


def test_resume_from_previous_run(server, tmp_path):
    """A .part left by an earlier (killed) run of the same download is resumed."""
    dest = tmp_path / "map.fits"
    server.cut_after["/map.fits"] = [200_000]
    with pytest.raises(DownloadError):
        _fetch(f"{server.url}/map.fits", dest, size=len(PAYLOAD), sha256=SHA, retries=0)
    assert record_path(dest).exists() and part_path(dest).stat().st_size == 200_000
    _fetch(f"{server.url}/map.fits", dest, size=len(PAYLOAD), sha256=SHA)
    assert dest.read_bytes() == PAYLOAD
    assert [r["range"] for r in server.requests] == [None, "bytes=200000-"]
    assert not part_path(dest).exists() and not record_path(dest).exists()


def _stale_part(dest, url, size=None, sha256=None):
    part_path(dest).write_bytes(b"stale bytes of another file" * 1000)
    record_path(dest).write_text(json.dumps({"url": url, "size": size, "sha256": sha256}))


@pytest.mark.parametrize("record", [True, False])
def test_stale_part_of_another_file_is_never_spliced(server, tmp_path, record, caplog):
    """Size and sha256 null: a .part from another URL used to be resumed and moved into place."""
    dest = tmp_path / "map.fits"
    _stale_part(dest, f"{server.url}/other.fits")
    if not record:
        record_path(dest).unlink()
    with caplog.at_level(logging.WARNING, logger="skydetect.io.download"):
        _fetch(f"{server.url}/map.fits", dest)
    assert dest.read_bytes() == PAYLOAD
    assert [r["range"] for r in server.requests] == [None]  # from zero
    assert "UNVERIFIED" in caplog.text and "discarding the partial file" in caplog.text


def test_part_of_another_version_is_discarded_even_with_checksum(server, tmp_path, caplog):
    dest = tmp_path / "map.fits"
    _stale_part(dest, f"{server.url}/map.fits", size=len(PAYLOAD) + 5, sha256="0" * 64)
    with caplog.at_level(logging.WARNING, logger="skydetect.io.download"):
        _fetch(f"{server.url}/map.fits", dest, size=len(PAYLOAD), sha256=SHA)
    assert dest.read_bytes() == PAYLOAD
    assert [r["range"] for r in server.requests] == [None]
    assert "belongs to" in caplog.text


def test_unverified_reason():
    assert unverified_reason(10, SHA) is None and unverified_reason(None, SHA) is None
    assert unverified_reason(10, None) == "no sha256 given"
    assert unverified_reason(None, None) == "no sha256 given and no size"


def test_server_without_range_support_restarts(server, tmp_path):
    server.honour_range = False
    dest = tmp_path / "map.fits"
    part_path(dest).write_bytes(b"x" * 1000)  # stale partial data must be discarded
    record_path(dest).write_text(
        json.dumps({"url": f"{server.url}/map.fits", "size": len(PAYLOAD), "sha256": SHA})
    )
    _fetch(f"{server.url}/map.fits", dest, size=len(PAYLOAD), sha256=SHA)
    assert dest.read_bytes() == PAYLOAD


def test_gives_up_after_retries(server, tmp_path):
    server.cut_after["/map.fits"] = [10_000, 10_000, 10_000]
    dest = tmp_path / "map.fits"
    with pytest.raises(DownloadError, match="after 2 attempt"):
        _fetch(f"{server.url}/map.fits", dest, size=len(PAYLOAD), sha256=SHA, retries=1)
    assert not dest.exists()
    assert part_path(dest).stat().st_size == 20_000  # kept for the next run to resume


def test_http_404_is_clear(server, tmp_path):
    with pytest.raises(DownloadError, match=r"HTTP 404.*") as err:
        _fetch(f"{server.url}/missing.fits", tmp_path / "m.fits")
    assert "/missing.fits" in str(err.value)
    assert len(server.requests) == 1  # a client error is not retried


def test_bad_checksum_argument(tmp_path):
    with pytest.raises(ValueError, match="sha256"):
        fetch("http://127.0.0.1:9/x", tmp_path / "x", sha256="abc")


def test_file_url(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(PAYLOAD[:1000])
    dest = tmp_path / "out" / "copy.bin"
    fetch(
        src.as_uri(),
        dest,
        size=1000,
        sha256=hashlib.sha256(PAYLOAD[:1000]).hexdigest(),
        progress=False,
    )
    assert dest.read_bytes() == PAYLOAD[:1000]


@pytest.mark.slow
def test_download_rule(server, tmp_path):
    """Rule download_file: a catalogue and a map fetched from the config, verified."""
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1]
    fits_map = _fits_bytes(tmp_path)
    cfg = yaml.safe_load((root / "tests/workflow/config.yaml").read_text())
    cfg["planck"]["download"] = {
        "retries": 2,
        # a URL without a usable file name: the PR3 name of the band is used
        "100": {"url": f"{server.url}/get?id=100", "size": len(fits_map)},
        "catalogs": {
            "mcxc": {"url": f"{server.url}/bad/mcxc.fits", "size": len(PAYLOAD), "sha256": SHA}
        },
    }
    server.files["/bad/mcxc.fits"] = PAYLOAD[:-1] + b"\0"
    snakemake = [str(Path(sys.executable).parent / "snakemake"), "-s", str(root / "Snakefile")]
    snakemake += ["--directory", str(tmp_path), "--configfile", str(tmp_path / "cfg.yaml")]
    snakemake += ["--cores", "1", "--keep-going"]
    mapfile = "HFI_SkyMap_100-field-IQU_2048_R3.00_full.fits"
    server.files["/get?id=100"] = fits_map
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    res = subprocess.run(
        [*snakemake, f"results/download/{mapfile}", "results/download/mcxc.fits"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode != 0  # the corrupt catalogue fails ...
    assert (tmp_path / "results/download" / mapfile).read_bytes() == fits_map  # ... the map not
    lock = yaml.safe_load((tmp_path / "config/downloads.lock").read_text())["files"]
    assert lock == {mapfile: lock[mapfile]}  # recorded in the working directory's lock file
    assert lock[mapfile]["sha256"] == hashlib.sha256(fits_map).hexdigest()
    assert not (tmp_path / "results/download/mcxc.fits").exists()
    assert not (tmp_path / "results/download/mcxc.fits.part").exists()
    log = (tmp_path / "logs/download_file/mcxc.fits.log").read_text()
    assert "SHA-256 mismatch" in log and "/bad/mcxc.fits" in log


def test_download_table_from_config():
    from skydetect.io.registry import DownloadTable, filename_from_url
    from skydetect.sky.instrument import CHANNELS

    cfg = {
        "retries": 3,
        "100": {"url": "https://irsa.example/maps/HFI_SkyMap_100.fits", "size": 1, "sha256": None},
        "143": {"url": "http://pla.example/aio/product-action?MAP.MAP_ID=x", "size": 2},
        "catalogs": {"psz2": {"url": "https://x.example/cat/psz2.fits.gz", "filename": "p.fits"}},
    }
    table = DownloadTable.from_config(cfg, {b: c.filename for b, c in CHANNELS.items()})
    assert table.map_path("100") == "results/download/HFI_SkyMap_100.fits"
    assert table.map_path(143) == f"results/download/{CHANNELS['143'].filename}"
    assert table.catalog_path("psz2") == "results/download/p.fits"
    assert table.entry("HFI_SkyMap_100.fits") == {
        "url": cfg["100"]["url"],
        "size": 1,
        "sha256": None,
        "unpack": None,
        "member": None,
    }
    with pytest.raises(ValueError, match=r"planck\.download\.217"):
        table.map_path("217")
    with pytest.raises(ValueError, match=r"planck\.download\.catalogs\.mcxc"):
        table.catalog_path("mcxc")
    with pytest.raises(ValueError, match="nothing.fits: no download is configured"):
        table.entry("nothing.fits")
    # two different URLs under one file name are refused
    with pytest.raises(ValueError, match="already used"):
        table.add({"url": "https://other.example/maps/HFI_SkyMap_100.fits"}, key="x")
    with pytest.raises(ValueError, match="file name from URL"):
        filename_from_url("https://x.example/download?id=3")
    assert filename_from_url("https://x.example/a/b.fits?x=1", "f.fits") == "f.fits"


# ------------------------------------------------------------------ lock file and FITS checksums
def _fits_bytes(tmp_path, corrupt_data=False) -> bytes:
    """A small FITS table with CHECKSUM / DATASUM keywords (optionally one data byte flipped)."""
    from astropy.io import fits

    path = tmp_path / "src.fits"
    col = fits.Column(name="I_STOKES", format="E", array=np.arange(2880, dtype=np.float32))
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns([col])]).writeto(
        path, checksum=True
    )
    data = bytearray(path.read_bytes())
    if corrupt_data:
        data[-100] ^= 0x01  # inside the table data: DATASUM no longer matches
    return bytes(data)


def _fetch_recorded(server, name, dest, lock, **kw):
    from skydetect.io.lockfile import fetch_recorded

    kw.setdefault("backoff", 0.01)
    kw.setdefault("progress", False)
    return fetch_recorded(f"{server.url}/{name}", dest, lock, **kw)


def test_lock_cycle_first_download_records_later_ones_verify(server, tmp_path, caplog):
    import yaml

    from skydetect.io.lockfile import DownloadLock

    server.files["/HFI_SkyMap_100.fits"] = _fits_bytes(tmp_path)
    lock = DownloadLock(tmp_path / "config" / "downloads.lock")
    dest = tmp_path / "dl" / "HFI_SkyMap_100.fits"
    with caplog.at_level(logging.INFO, logger="skydetect.io.lockfile"):
        _fetch_recorded(server, "HFI_SkyMap_100.fits", dest, lock)
    entry = yaml.safe_load(lock.path.read_text())["files"]["HFI_SkyMap_100.fits"]
    sha = hashlib.sha256(server.files["/HFI_SkyMap_100.fits"]).hexdigest()
    assert entry["sha256"] == sha and entry["size"] == dest.stat().st_size
    assert entry["url"] == f"{server.url}/HFI_SkyMap_100.fits" and entry["recorded"]
    assert "first download" in caplog.text and "FITS CHECKSUM/DATASUM of 2 HDU(s)" in caplog.text
    assert lock.path.read_text().startswith("# SHA-256 and size")
    # a second download (a fresh run) is verified against the entry; the lock is unchanged
    before = lock.path.read_text()
    dest.unlink()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="skydetect.io.lockfile"):
        _fetch_recorded(server, "HFI_SkyMap_100.fits", dest, lock)
    assert f"SHA-256 {sha} agrees with {lock.path}" in caplog.text
    assert lock.path.read_text() == before
    assert sorted(p.name for p in dest.parent.iterdir()) == ["HFI_SkyMap_100.fits"]


def test_lock_refuses_a_changed_file_with_both_digests(server, tmp_path):
    from skydetect.io.download import DownloadError
    from skydetect.io.lockfile import DownloadLock

    lock = DownloadLock(tmp_path / "downloads.lock")
    dest = tmp_path / "dl" / "map.bin"
    _fetch_recorded(server, "map.bin", dest, lock)
    dest.unlink()
    changed = PAYLOAD[:-1000] + b"new version" * 10  # another size, another digest
    server.files["/map.bin"] = changed
    with pytest.raises(DownloadError) as err:
        _fetch_recorded(server, "map.bin", dest, lock)
    msg = str(err.value)
    assert SHA in msg and hashlib.sha256(changed).hexdigest() in msg
    assert str(lock.path) in msg and "delete the entry 'map.bin'" in msg
    assert list(dest.parent.iterdir()) == []  # nothing kept: no file, no .part, no record
    assert lock.get("map.bin")["sha256"] == SHA  # the entry stands


def test_config_sha256_that_disagrees_with_the_lock_is_refused(server, tmp_path):
    from skydetect.io.download import DownloadError
    from skydetect.io.lockfile import DownloadLock

    lock = DownloadLock(tmp_path / "downloads.lock")
    lock.record("map.bin", {"url": "x", "size": 1, "sha256": "cd" * 32})
    dest = tmp_path / "dl" / "map.bin"
    with pytest.raises(DownloadError) as err:  # the config's digest is right, the lock's not
        _fetch_recorded(server, "map.bin", dest, lock, sha256=SHA)
    assert "cd" * 32 in str(err.value) and SHA in str(err.value)
    assert list(dest.parent.iterdir()) == []


def test_fits_with_a_wrong_datasum_is_refused(server, tmp_path):
    from skydetect.io.download import DownloadError
    from skydetect.io.lockfile import DownloadLock

    server.files["/bad.fits"] = _fits_bytes(tmp_path, corrupt_data=True)
    lock = DownloadLock(tmp_path / "downloads.lock")
    dest = tmp_path / "dl" / "bad.fits"
    with pytest.raises(DownloadError) as err:
        _fetch_recorded(server, "bad.fits", dest, lock)
    assert f"{dest}: FITS DATASUM of HDU 1" in str(err.value)
    assert list(dest.parent.iterdir()) == []
    assert not lock.path.exists()  # nothing recorded


def test_gzip_and_tar_downloads_are_unpacked_and_recorded(server, tmp_path):
    import gzip
    import io
    import tarfile

    from skydetect.io.lockfile import DownloadLock, verify_against_lock

    fits_data = _fits_bytes(tmp_path)
    server.files["/cat.fits.gz"] = gzip.compress(fits_data)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("COM_CompMap_YSZ_R2.00.fits/milca_ymaps.fits")
        info.size = len(fits_data)
        tar.addfile(info, io.BytesIO(fits_data))
    server.files["/ymaps.tgz"] = buf.getvalue()
    lock = DownloadLock(tmp_path / "downloads.lock")
    dl = tmp_path / "dl"
    _fetch_recorded(server, "cat.fits.gz", dl / "cat.fits", lock, unpack="gzip")
    member = "COM_CompMap_YSZ_R2.00.fits/milca_ymaps.fits"
    _fetch_recorded(server, "ymaps.tgz", dl / "milca_ymaps.fits", lock, unpack="tar", member=member)
    assert (dl / "cat.fits").read_bytes() == fits_data
    assert (dl / "milca_ymaps.fits").read_bytes() == fits_data
    assert sorted(p.name for p in dl.iterdir()) == ["cat.fits", "milca_ymaps.fits"]
    entry = lock.get("milca_ymaps.fits")
    assert entry["sha256"] == hashlib.sha256(buf.getvalue()).hexdigest()
    assert entry["file_sha256"] == hashlib.sha256(fits_data).hexdigest()
    assert entry["member"] == member
    assert verify_against_lock(dl / "milca_ymaps.fits", lock)["verified"] is True
    with pytest.raises(Exception, match="holds no file 'nothing.fits'"):
        _fetch_recorded(server, "ymaps.tgz", dl / "x.fits", lock, unpack="tar", member="nothing.fits")
    assert sorted(p.name for p in dl.iterdir()) == ["cat.fits", "milca_ymaps.fits"]


def test_lock_keeps_every_entry_of_concurrent_downloads(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from skydetect.io.lockfile import DownloadLock

    lock = DownloadLock(tmp_path / "downloads.lock")
    names = [f"f{i}.fits" for i in range(16)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: lock.record(n, {"url": n, "size": 1, "sha256": "0" * 64}), names))
    assert sorted(lock.entries()) == sorted(names)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["downloads.lock"]


# ------------------------------------------------------------------ failures that are not retried
def test_refused_tls_fails_at_once_and_leaves_nothing(server, tmp_path):
    """https:// to a plain-HTTP server: the TLS handshake fails; no retry, no debris."""
    import time

    url = server.url.replace("http://", "https://") + "/map.fits"
    dest = tmp_path / "dl" / "map.fits"
    start = time.monotonic()
    with pytest.raises(DownloadError) as err:
        fetch(url, dest, sha256=SHA, retries=5, backoff=2.0, progress=False)
    assert time.monotonic() - start < 2.0
    assert url in str(err.value) and "TLS refused" in str(err.value)
    assert list(dest.parent.iterdir()) == []


def test_http_404_leaves_no_record(server, tmp_path):
    dest = tmp_path / "m.fits"
    with pytest.raises(DownloadError, match="HTTP 404"):
        _fetch(f"{server.url}/missing.fits", dest, sha256=SHA)
    assert list(tmp_path.iterdir()) == []  # no .part, no .part.json


def test_missing_file_url_fails_at_once(tmp_path):
    dest = tmp_path / "dl" / "x.fits"
    with pytest.raises(DownloadError, match="No such file") as err:
        _fetch((tmp_path / "absent.fits").as_uri(), dest, retries=5, backoff=2.0)
    assert "absent.fits" in str(err.value)
    assert list(dest.parent.iterdir()) == []


def test_unreachable_server_says_nothing_was_kept(tmp_path):
    """Connection refused is retried, then the message says no data was received."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dest = tmp_path / "dl" / "x.fits"
    with pytest.raises(DownloadError) as err:
        _fetch(f"http://127.0.0.1:{port}/x.fits", dest, sha256=SHA, retries=1)
    msg = str(err.value)
    assert "after 2 attempt(s)" in msg and "nothing kept" in msg and ".part" not in msg
    assert list(dest.parent.iterdir()) == []


def test_download_mode_needs_no_other_key(tmp_path):
    """planck.source download alone: every file comes from the shipped registry (dry run)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-m", "snakemake", "-s", str(root / "Snakefile"), "-n"]
    cmd += ["--directory", str(tmp_path), "--cores", "1", "--config", "planck={source: download}"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    out = res.stdout + res.stderr
    for name in (
        "HFI_SkyMap_100_2048_R3.01_full.fits",
        "HFI_SkyMap_353-psb_2048_R3.01_full.fits",
        "HFI_SkyMap_857_2048_R3.01_full.fits",
        "HFI_PCCS_SZ-union_R2.08.fits",
        "mcxc.fits",
    ):
        assert f"output: results/download/{name}" in out
    assert not (tmp_path / "results").exists()


def test_bad_download_url_stops_the_dry_run_before_any_job(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    planck = '{source: download, download: {"353": {url: "htps://irsa.ipac.caltech.edu/m.fits"}}}'
    cmd = [sys.executable, "-m", "snakemake", "-s", str(root / "Snakefile"), "-n"]
    cmd += ["--directory", str(tmp_path), "--cores", "1", "--config", f"planck={planck}"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "'planck.download.353.url': 'htps://irsa.ipac.caltech.edu/m.fits'" in out
    assert "unknown scheme 'htps'" in out and "rule " not in out
    assert sorted(p.name for p in tmp_path.iterdir()) in ([], [".snakemake"])


def test_shipped_registry_names_published_locations():
    from pathlib import Path

    from skydetect.io.registry import fill_downloads, load_registry

    root = Path(__file__).resolve().parents[1]
    registry = load_registry(root / "config" / "downloads.yaml")
    cfg = {"planck": {"download": {"100": {"url": "https://mirror.example/m100.fits"}}}}
    taken = fill_downloads(cfg, registry)
    assert cfg["planck"]["download"]["100"] == {"url": "https://mirror.example/m100.fits"}
    assert "planck.download.100" not in taken and "planck.download.143" in taken
    for band in ("143", "217", "353", "545", "857"):
        assert cfg["planck"]["download"][band]["url"].startswith(
            "https://irsa.ipac.caltech.edu/data/Planck/release_3/all-sky-maps/maps/HFI_SkyMap_"
        )
    assert cfg["planck"]["download"]["y"]["member"].endswith("milca_ymaps.fits")
    assert set(cfg["planck"]["download"]["catalogs"]) == {"psz2", "mcxc", "redmapper", "sources"}
    assert set(cfg["planck"]["download"]["masks"]) == {"galactic", "point_sources"}
    # the published maps' resolution replaces the mock's when a band's map is published
    cfg = {"planck": {"nside": 1024, "bands": ["100", "143"], "download": {}}}
    assert "planck.nside" in fill_downloads(cfg, registry) and cfg["planck"]["nside"] == 2048
    own = {b: {"url": f"https://mirror.example/{b}.fits"} for b in ("100", "143")}
    cfg = {"planck": {"nside": 1024, "bands": ["100", "143"], "download": own}}
    assert "planck.nside" not in fill_downloads(cfg, registry) and cfg["planck"]["nside"] == 1024
