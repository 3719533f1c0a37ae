"""Figure of the matched multi-frequency filter: the S/N map of a tile with its detections."""

from __future__ import annotations

import healpy as hp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from skydetect.geometry import projection  # noqa: E402
from skydetect.plots.detections import save_figure  # noqa: E402


def snr_image(pixels, values, nside: int, npix: int = 500):
    """Resample tile values (on RING ``pixels``) onto a gnomonic image centred on the tile:
    (image, extent in degrees of the tangent plane, centre glon, glat)."""
    lon, lat = hp.pix2ang(nside, pixels, lonlat=True)
    vec = projection.lonlat_to_vec(lon, lat).mean(axis=0)
    glon, glat = projection.vec_to_lonlat(vec)
    x, y = projection.lonlat_to_patch(lon, lat, glon, glat, 1, 1.0)  # offsets in arcmin
    half = 1.05 * np.nanmax(np.abs(np.concatenate([x, y]))) / 60.0
    pix_arcmin = 2 * half * 60.0 / npix
    ilon, ilat = projection.patch_lonlat(glon, glat, npix, pix_arcmin)
    img_pix = hp.ang2pix(nside, ilon, ilat, lonlat=True)
    idx = np.clip(np.searchsorted(pixels, img_pix), 0, len(pixels) - 1)
    img = np.where(pixels[idx] == img_pix, values[idx], np.nan)
    return img, (half, -half, -half, half), float(glon), float(glat), pix_arcmin


def plot_snr_map(snr_map: dict, detections, path, truth=None, snr_threshold: float = 4.5) -> None:
    """Max-over-theta500 S/N of a tile (gnomonic view, l increasing to the left) with the MMF
    detections (circles of radius theta500) and, on a simulated sky, the true clusters of
    S/N >= ``snr_threshold`` (crosses)."""
    attrs = snr_map["attrs"]
    nside, tile = int(attrs["nside"]), int(attrs["tile"])
    smax = np.nanmax(snr_map["snr"], axis=0)
    img, extent, glon, glat, pix = snr_image(snr_map["pixels"], smax, nside)
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    im = ax.imshow(img, origin="lower", extent=extent, cmap="viridis", vmin=-3, vmax=8)
    fig.colorbar(im, ax=ax, label=r"max$_{\theta_{500}}$ S/N", shrink=0.85)
    size = img.shape[0]

    def offsets(lon, lat):
        x, y = projection.lonlat_to_patch(lon, lat, glon, glat, size, pix)
        c = (size - 1) / 2.0
        return -(x - c) * pix / 60.0, (y - c) * pix / 60.0  # xi to the left, eta up (deg)

    if truth is not None and len(truth):
        sel = np.asarray(truth["SNR"], float) >= snr_threshold
        xi, eta = offsets(np.asarray(truth["GLON"])[sel], np.asarray(truth["GLAT"])[sel])
        ax.plot(xi, eta, "+", color="white", ms=7, mew=1.2, ls="none",
                label=f"true clusters, S/N ≥ {snr_threshold:g}")  # fmt: skip
    if len(detections):
        xi, eta = offsets(np.asarray(detections["GLON"]), np.asarray(detections["GLAT"]))
        r = np.maximum(np.asarray(detections["THETA500"], float), 8.0) / 60.0 * 3
        for x, y, rr in zip(xi, eta, r, strict=True):
            ax.add_patch(plt.Circle((x, y), rr, fill=False, color="red", lw=1.4, zorder=3))
        ax.plot([], [], "o", mfc="none", color="red", label=f"MMF detections ({len(detections)})")
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_xlabel(r"$\Delta l$ (deg, gnomonic)")
    ax.set_ylabel(r"$\Delta b$ (deg, gnomonic)")
    ax.set_title(f"MMF S/N, tile {tile} (centre l={glon:.1f}°, b={glat:.1f}°, nside {nside})")
    ax.legend(loc="lower left", fontsize=8, framealpha=0.6)
    save_figure(fig, path)
