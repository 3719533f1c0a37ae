"""MMF files: the detection table (the U-Net's columns plus SNR, THETA500, Y5R500) and the
per-tile S/N maps."""

from __future__ import annotations

import h5py
import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table

from skydetect.clusters import detect
from skydetect.clusters.mmf.profiles import MMFError
from skydetect.io.atomic import atomic_path

# The U-Net's detection columns (skydetect.clusters.detect.DETECTION_COLUMNS, one contract for
# both detectors), then SNR THETA500 Y5R500. PEAK_PROB / MEAN_PROB are NaN for the MMF (it gives
# a S/N, not a probability); AREA_ARCMIN2 and NPIX describe the connected region of
# max-over-theta S/N >= threshold around the peak (patch pixels), RADIUS_ARCMIN =
# sqrt(AREA_ARCMIN2 / pi).
MMF_COLUMNS = [("SNR", None), ("THETA500", "arcmin"), ("Y5R500", "arcmin2")]
DETECTION_COLUMNS = list(detect.DETECTION_COLUMNS) + [c for c, _ in MMF_COLUMNS]
_INTEGER = {"NPIX", "TILE"}


def detections_table(dets: list[dict], meta: dict | None = None):
    """The MMF detections as a table of :data:`DETECTION_COLUMNS`, by decreasing S/N."""
    dets = sorted(dets, key=lambda d: -d["SNR"])
    glon = np.array([d["GLON"] for d in dets], dtype=float)
    glat = np.array([d["GLAT"] for d in dets], dtype=float)
    icrs = SkyCoord(l=glon * u.deg, b=glat * u.deg, frame="galactic").icrs
    given = {"GLON": glon, "GLAT": glat, "RA": icrs.ra.deg, "DEC": icrs.dec.deg}
    cols = {}
    for name in DETECTION_COLUMNS:
        if name in given:
            cols[name] = given[name]
        elif name in ("PEAK_PROB", "MEAN_PROB"):
            cols[name] = np.full(len(dets), np.nan)
        else:
            dtype = np.int64 if name in _INTEGER else float
            cols[name] = np.array([d[name] for d in dets], dtype=dtype)
    t = Table(cols, meta=dict(meta or {}))
    detect.set_units(t)
    for name, unit in MMF_COLUMNS:
        if unit:
            t[name].unit = unit
    return t


def write_detections(path, dets: list[dict], meta: dict | None = None) -> None:
    """Write the detection catalogue (ECSV) atomically."""
    detect.write_table_atomic(detections_table(dets, meta), path, format="ascii.ecsv")


def write_snr_map(path, res, nside: int, tile: int, attrs: dict | None = None) -> None:
    """Write the per-tile S/N and Y maps (HDF5) atomically.

    Layout: ``pixels`` int64 (P,) RING pixels of the tile at ``nside``; ``snr`` float32 (T, P)
    and ``y5r500`` float32 (T, P) [arcmin^2] per theta500 bin; ``theta500`` (T,) arcmin;
    ``centres`` (C, 2) patch centres (glon, glat); ``sigma`` (C, T) Y noise per patch and bin;
    attrs nside, tile, nside_centres, bands, ... (NaN where no patch covered a pixel).
    """
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["nside"] = int(nside)
        f.attrs["tile"] = int(tile)
        f.attrs["nside_centres"] = int(res.nside_centres)
        f.attrs["invalid_fraction"] = float(res.invalid_fraction)
        for k, v in (attrs or {}).items():
            f.attrs[k] = v
        f.create_dataset("pixels", data=res.pixels.astype(np.int64))
        f.create_dataset("snr", data=res.snr, compression="gzip", shuffle=True)
        f.create_dataset("y5r500", data=res.y, compression="gzip", shuffle=True)
        f.create_dataset("theta500", data=res.theta500)
        f.create_dataset("centres", data=res.centres)
        f.create_dataset("sigma", data=res.sigma)


def read_snr_map(path) -> dict:
    """Read a file written by :func:`write_snr_map` into a dict of arrays and attrs."""
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise MMFError(f"cannot read MMF map {path}: {exc}") from exc
    with f:
        for key in ("pixels", "snr", "y5r500", "theta500"):
            if key not in f:
                raise MMFError(f"MMF map {path} has no '{key}' dataset")
        out = {k: f[k][...] for k in f}
        out["attrs"] = dict(f.attrs)
    return out
