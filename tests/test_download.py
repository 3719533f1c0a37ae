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
    cfg = yaml.safe_load((root / "tests/workflow/config.yaml").read_text())
    cfg["planck"]["download"] = {
        "retries": 2,
        # a URL without a usable file name: the PR3 name of the band is used
        "100": {"url": f"{server.url}/get?id=100", "size": len(PAYLOAD), "sha256": SHA},
        "catalogs": {
            "mcxc": {"url": f"{server.url}/bad/mcxc.fits", "size": len(PAYLOAD), "sha256": SHA}
        },
    }
    server.files["/bad/mcxc.fits"] = PAYLOAD[:-1] + b"\0"
    snakemake = [str(Path(sys.executable).parent / "snakemake"), "-s", str(root / "Snakefile")]
    snakemake += ["--directory", str(tmp_path), "--configfile", str(tmp_path / "cfg.yaml")]
    snakemake += ["--cores", "1", "--keep-going"]
    mapfile = "HFI_SkyMap_100-field-IQU_2048_R3.00_full.fits"
    server.files["/get?id=100"] = PAYLOAD
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    res = subprocess.run(
        [*snakemake, f"results/download/{mapfile}", "results/download/mcxc.fits"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode != 0  # the corrupt catalogue fails ...
    assert (tmp_path / "results/download" / mapfile).read_bytes() == PAYLOAD  # ... the map not
    assert not (tmp_path / "results/download/mcxc.fits").exists()
    assert not (tmp_path / "results/download/mcxc.fits.part").exists()
    log = (tmp_path / "logs/download_file/mcxc.fits.log").read_text()
    assert "SHA-256 mismatch" in log and "/bad/mcxc.fits" in log


def test_download_table_from_config():
    from skydetect.io.download import DownloadTable, filename_from_url
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
