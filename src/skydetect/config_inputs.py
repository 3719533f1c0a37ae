"""Checks of what the configuration names outside itself, before any job: every local file
(exists, readable, not empty, no file standing for two inputs, the NSIDE in a local map's
header) and every download URL (a known scheme, a well-formed host; nothing is looked up).
Each problem is one message naming the dotted key; :func:`skydetect.config.cross_check`
reports them with the rules between keys.
"""

from __future__ import annotations

import os
from pathlib import Path

from skydetect.io.urls import url_problem


def _map_nside(path: Path) -> int | None:
    # lazy: skydetect.config imports this module and stays free of astropy
    from astropy.io import fits  # header only; the data are read by check_map

    with fits.open(path, memmap=True, lazy_load_hdus=True) as hdul:
        for hdu in hdul[:2]:
            if "NSIDE" in hdu.header:
                return int(hdu.header["NSIDE"])
    return None


def _planck_rules(cfg: dict) -> list[str]:
    """Every band has a local map whose header NSIDE is planck.nside (run only once
    :func:`_file_rules` found every configured file present and readable)."""
    out = []
    planck = cfg.get("planck", {})
    if planck.get("source") != "local" or "clusters" not in cfg.get("detectors", []):
        return out
    nside = planck.get("nside")
    for band in [str(b) for b in planck.get("bands", [])]:
        path = planck.get("local", {}).get(band)
        if not path:
            out.append(f"'planck.local.{band}' is missing: planck.source is local")
            continue
        try:
            found = _map_nside(Path(path))
        except Exception as exc:  # noqa: BLE001 - reported with the file and key
            out.append(f"'planck.local.{band}': {path} is not a readable FITS file ({exc})")
            continue
        if found is not None and found != nside:
            out.append(
                f"'planck.local.{band}': {path} has NSIDE = {found} in its header but "
                f"'planck.nside' is {nside} (the tiling and the patches assume planck.nside)"
            )
    return out


def _configured_files(cfg: dict) -> list[tuple[str, str, str]]:
    """(dotted key, path, 'file' or 'dir') of every input the configuration names on disk."""
    out = []
    planck, bub = cfg.get("planck", {}), cfg.get("bubbles", {})
    detectors = cfg.get("detectors", [])
    if planck.get("source") == "local" and "clusters" in detectors:
        local = planck.get("local", {})
        out += [(f"planck.local.{b}", local[b], "file") for b in local
                if b not in ("catalogs", "masks")]  # fmt: skip
        out += [(f"planck.local.masks.{name}", path, "file")
                for name, path in local.get("masks", {}).items()]  # fmt: skip
        for name, paths in local.get("catalogs", {}).items():
            listed = paths if isinstance(paths, list) else [paths]
            key = f"planck.local.catalogs.{name}"
            out += [(f"{key}[{i}]" if isinstance(paths, list) else key, p, "file")
                    for i, p in enumerate(listed)]
    if "bubbles" in detectors:
        if bub.get("source") == "local":
            local = bub.get("local", {})
            if local.get("mosaic_dir"):
                out.append(("bubbles.local.mosaic_dir", local["mosaic_dir"], "dir"))
            out += [(f"bubbles.local.{k}", local[k], "file")
                    for k in ("catalog", "clear_names") if local.get(k)]
        if bub.get("source") == "simulate":
            sim = bub.get("simulate", {})
            keys = ("positions_from", "statistics_from", "clear_names_from")
            out += [(f"bubbles.simulate.{k}", sim[k], "file") for k in keys if sim.get(k)]
        for name, pair in (bub.get("mosaics") or {}).items():
            key = f"bubbles.mosaics.{name}"
            out += [(f"{key}.i8", pair["i8"], "file")] if pair.get("i8") else []
            m24 = pair.get("m24")
            listed = m24 if isinstance(m24, list) else [m24] if m24 else []
            out += [(f"{key}.m24[{i}]" if isinstance(m24, list) else f"{key}.m24", p, "file")
                    for i, p in enumerate(listed)]
    return [(k, str(p), kind) for k, p, kind in out]


def _file_rules(cfg: dict) -> list[str]:
    """Every file the configuration names exists, is readable and not empty, and no file
    stands for two inputs that must differ (two bands, two catalogues, 8 and 24 µm)."""
    out = []
    seen: dict[str, str] = {}
    for key, path, kind in _configured_files(cfg):
        p = Path(path).expanduser()
        if kind == "dir":
            if not p.is_dir():
                out.append(f"'{key}': {path} is not a directory")
            continue
        if not p.exists():
            out.append(f"'{key}': {path} not found")
            continue
        if not p.is_file() or not os.access(p, os.R_OK):
            out.append(f"'{key}': {path} is not a readable file")
            continue
        if p.stat().st_size == 0:
            out.append(f"'{key}': {path} is empty (0 bytes)")
            continue
        real = str(p.resolve())
        if real in seen:
            out.append(
                f"'{seen[real]}' and '{key}' name the same file {path}: they must be "
                "different inputs"
            )
        seen.setdefault(real, key)
    return out


def _download_urls(cfg: dict):
    """(dotted key, URL) of every download URL in the config (templates filled in)."""
    download = cfg.get("planck", {}).get("download", {})
    for key, entry in download.items():
        groups = entry.items() if key in ("catalogs", "masks") else [(None, entry)]
        for name, item in groups:
            if isinstance(item, dict) and "url" in item:
                dotted = f"planck.download.{key}" + (f".{name}" if name else "")
                yield f"{dotted}.url", item["url"]
    bub = cfg.get("bubbles", {}).get("download", {})
    for key in ("catalog", "clear_names"):
        url = (bub.get(key) or {}).get("url")
        if url is not None:
            yield f"bubbles.download.{key}.url", url
    for key in ("glimpse_url", "mipsgal_url"):
        if bub.get(key):
            yield f"bubbles.download.{key}", bub[key].replace("{file}", "file.fits")


def _download_rules(cfg: dict) -> list[str]:
    """Every download URL has a known scheme and a well-formed host (nothing is looked up)."""
    out = []
    for key, url in _download_urls(cfg):
        problem = url_problem(url)
        if problem:
            out.append(f"'{key}': {url!r}: {problem}")
    return out


def input_rules(cfg: dict) -> list[str]:
    """Problems of the configured files and download URLs, one message each."""
    files = _file_rules(cfg)
    # the header rules would only repeat a missing or unreadable file
    return files + _download_rules(cfg) if files else _planck_rules(cfg) + _download_rules(cfg)
