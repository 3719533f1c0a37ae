"""Where the real data come from: the shipped registry and the table of files to download.

``config/downloads.yaml`` lists the published location of every real file the workflow can
download (Planck PR3 maps, the MILCA y-map archive, PSZ2, MCXC, redMaPPer, PCCS2, the Planck
masks, MWP DR2, GLIMPSE / MIPSGAL tiles by longitude). :func:`fill_downloads` copies its
entries into the config wherever the user gave none, so ``planck.source: download`` needs no
other key; an entry in the user config replaces the registry's entry of the same key whole.

No checksum is shipped: the first download of a file records its size and SHA-256 in the
lock file (:mod:`skydetect.io.lockfile`), which later downloads and rule check_map verify.

A :class:`DownloadTable` maps a file name under the download directory to its entry
``{url, size, sha256, unpack, member}``. ``unpack: gzip`` stores the decompressed file under
the URL's name without ``.gz``; ``unpack: tar`` stores the archive member ``member`` under its
base name.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import yaml

from skydetect.io.spitzer import MIPSGAL_TILE_RE
from skydetect.io.urls import url_problem

ENTRY_KEYS = ("url", "size", "sha256", "filename", "unpack", "member")
UNPACK = (None, "gzip", "tar")


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


def stored_name(entry: dict, fallback: str | None = None, key: str = "?") -> str:
    """The name a download entry is stored under (after unpacking)."""
    unpack = entry.get("unpack")
    if unpack not in UNPACK:
        raise ValueError(f"'{key}.unpack': {unpack!r} is not one of gzip, tar (or null)")
    if unpack == "tar" and not entry.get("member"):
        raise ValueError(f"'{key}': unpack tar needs `member` (the file to take from the archive)")
    if entry.get("filename"):
        return entry["filename"]
    if unpack == "tar":
        return PurePosixPath(entry["member"]).name
    name = filename_from_url(entry["url"], fallback)
    return name.removesuffix(".gz") if unpack == "gzip" else name


# --------------------------------------------------------------------------- the registry
def load_registry(path: str | os.PathLike) -> dict:
    """The registry file, every URL checked (:func:`url_problem`) and every entry's keys."""
    path = Path(path)
    with open(path) as fh:
        registry = yaml.safe_load(fh) or {}
    bubbles = registry.get("bubbles", {})
    entries = [*_entries(registry.get("planck", {}), "planck.")]
    entries += [("bubbles.catalog", bubbles["catalog"])] if "catalog" in bubbles else []
    for key, entry in entries:
        unknown = sorted(set(entry) - set(ENTRY_KEYS))
        if unknown:
            raise ValueError(f"{path}: '{key}' has unknown key(s) {unknown}")
        stored_name(entry, key=key)
    templates = [(f"bubbles.{k}", bubbles[k]) for k in ("glimpse", "mipsgal") if k in bubbles]
    for key, entry in entries + templates:
        url = entry.get("url")
        problem = url_problem(re.sub(r"\{[^}]*\}", "x", url) if isinstance(url, str) else url)
        if problem:
            raise ValueError(f"{path}: '{key}.url' {url!r}: {problem}")
    return registry


def _entries(section: dict, prefix: str = ""):
    """(dotted key, entry) of every download entry (a mapping with a ``url``) in ``section``."""
    for key, value in section.items():
        if not isinstance(value, dict):
            continue
        dotted = f"{prefix}{key}"
        if "url" in value:
            yield dotted, value
        else:
            yield from _entries(value, f"{dotted}.")


def fill_downloads(config: dict, registry: dict) -> list[str]:
    """Copy the registry's Planck entries into ``config['planck']['download']`` where absent.

    Returns the dotted keys taken from the registry. An entry the user gave is kept whole
    (its url, size, sha256 and unpacking), never mixed with the registry's. When a band of
    ``planck.bands`` takes its map from the registry, ``planck.nside`` becomes the published
    maps' resolution (the registry's ``planck.nside``; the configured one is the mock's).
    """
    taken = []
    planck = config.setdefault("planck", {})
    download = planck.setdefault("download", {})
    for key, entry in _entries(registry.get("planck", {})):
        *groups, name = key.split(".")
        target = download
        for group in groups:
            target = target.setdefault(group, {})
        if name not in target:
            target[name] = {k: entry.get(k) for k in ENTRY_KEYS if k in entry}
            taken.append(f"planck.download.{key}")
    published = {f"planck.download.{b}" for b in planck.get("bands", [])} & set(taken)
    if published and "nside" in registry.get("planck", {}):
        planck["nside"] = int(registry["planck"]["nside"])
        taken.append("planck.nside")
    return taken


# --------------------------------------------------------------------------- Spitzer tiles
def glimpse_url(registry: dict, filename: str, glon: float) -> str:
    """Published URL of GLIMPSE mosaic ``filename`` centred at longitude ``glon``.

    The archive keeps the mosaics in one directory per longitude range
    (``bubbles.glimpse.directories`` of the registry: ``[lon_min, lon_max, directory]``,
    longitudes in [0, 360), lon_min <= glon < lon_max).
    """
    glimpse = registry["bubbles"]["glimpse"]
    lon = float(glon) % 360.0
    for lo, hi, directory in glimpse["directories"]:
        if lo <= lon < hi:
            return glimpse["url"].format(directory=directory, file=filename)
    raise ValueError(
        f"{filename}: no GLIMPSE directory covers l = {lon:g} deg (registry "
        "bubbles.glimpse.directories): GLIMPSE I/II cover |l| <= 65 deg"
    )


def mipsgal_url(registry: dict, filename: str) -> str:
    """Published URL of MIPSGAL tile ``filename`` (``MG<llll><p|n>005_024.fits``, llll = 10 x l)
    from the registry's template ``bubbles.mipsgal.url``."""
    m = MIPSGAL_TILE_RE.match(filename)
    if not m:
        raise ValueError(f"{filename}: not a MIPSGAL tile name like MG0150p005_024.fits")
    template = registry["bubbles"]["mipsgal"]["url"]
    return template.format(lon10=int(m.group(1)), hemisphere=m.group(2))


# --------------------------------------------------------------------------- the table
@dataclass
class DownloadTable:
    """File name (under the download directory) -> ``{url, size, sha256, unpack, member}``.

    Built from the ``planck.download`` config section by :meth:`from_config`; other stages may
    :meth:`add` their own files (e.g. Spitzer tiles). ``maps``, ``catalogs`` and ``masks`` map
    bands, catalogue names and mask names (galactic, point_sources) to file names.
    """

    directory: str = "results/download"
    files: dict[str, dict] = field(default_factory=dict)
    maps: dict[str, str] = field(default_factory=dict)
    catalogs: dict[str, str] = field(default_factory=dict)
    masks: dict[str, str] = field(default_factory=dict)
    config_key: str = "planck.download"

    @classmethod
    def from_config(
        cls, cfg: dict, map_filenames: dict[str, str], directory: str = "results/download"
    ) -> DownloadTable:
        """``cfg``: ``{band: entry, ..., "catalogs": {name: entry}, "masks": {...}}`` (other
        keys ignored); ``map_filenames``: band -> PR3 file name, for map URLs that name no file.
        """
        table = cls(directory=directory)
        for key, entry in cfg.items():
            if key == "catalogs":
                for name, centry in entry.items():
                    table.catalogs[name] = table.add(centry, key=f"catalogs.{name}")
            elif key == "masks":
                for name, mentry in entry.items():
                    table.masks[name] = table.add(mentry, key=f"masks.{name}")
            elif key in map_filenames and isinstance(entry, dict):
                table.maps[key] = table.add(entry, fallback=map_filenames[key], key=key)
        return table

    def add(self, entry: dict, fallback: str | None = None, key: str = "?") -> str:
        """Register one ``{url, size, sha256[, filename, unpack, member]}`` entry; returns its
        file name."""
        if not entry.get("url"):
            raise ValueError(f"config key '{self.config_key}.{key}': no url given")
        name = stored_name(entry, fallback, key=f"{self.config_key}.{key}")
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
            "unpack": entry.get("unpack"),
            "member": entry.get("member"),
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

    def mask_path(self, name: str) -> str:
        """Path of the downloaded Planck mask file ``name`` (galactic, point_sources)."""
        if name not in self.masks:
            raise ValueError(
                f"config key '{self.config_key}.masks.{name}' (url, size, sha256) is missing: "
                "needed to download that mask"
            )
        return f"{self.directory}/{self.masks[name]}"
