"""The Compton-y map as MILCA/NILC make it, and the matched-filter sensitivity of maps.

**Harmonic internal linear combination** (Planck 2015 XXII): the six channel maps are brought
to a common 10' beam (alm_nu b_10 / b_nu), their empirical cross-spectra C_ij(ell) are averaged
in bins of ``bin_width`` multipoles, and per bin the weights w = C^-1 a / (a^T C^-1 a) with
a_nu the band-integrated tSZ factors give y_lm = sum_nu w_nu(ell) alm_nu. The map thus
carries the channels' noise and foreground residuals (CMB, dust, CIB, CO, sources), and
a^T w = 1 keeps the tSZ signal unbiased.

**Matched-filter sigma_Y** of a cluster of size theta500 (Melin et al. 2006, harmonic form),
for maps whose tSZ response is tau_nu(ell) and whose non-tSZ cross-spectra are N(ell):
sigma_Y^-2 = sum_ell (2 ell + 1)/(4 pi) |u(ell theta500)|^2 tau^T N^-1 tau (arcmin^2).
For the y-map alone tau = b_10 and N = its residual spectrum; for the six channels
tau_nu = a_nu b_nu and N their residual cross-spectra. Per multipole, the ILC output's
residual power w^T N w is at least 1 / (tau^T N^-1 tau) (Cauchy-Schwarz), so the y-map's
sigma_Y can never be below the six channels': the ratio is the test of a map that does not
give the answer away.
"""

from __future__ import annotations

import healpy as hp
import numpy as np

from skydetect.sky import physics

SUMMARY_THETA500 = (1.0, 2.0, 3.0, 5.0, 10.0)  # arcmin
YMAP_FWHM_ARCMIN = 10.0


def cross_spectra(alms: list[np.ndarray], lmax: int) -> np.ndarray:
    """Empirical cross-spectra (L, n, n) of ``alms`` (healpy layout, same lmax)."""
    n = len(alms)
    out = np.zeros((lmax + 1, n, n))
    for i in range(n):
        for j in range(i, n):
            c = hp.alm2cl(alms[i], alms[j], lmax=lmax)
            out[:, i, j] = out[:, j, i] = c
    return out


def bin_spectra(cov: np.ndarray, bin_width: int, ell_min: int = 2) -> np.ndarray:
    """Mode-weighted (2 ell + 1) average of (L, n, n) spectra in bins of ``bin_width``;
    every multipole gets its bin's average (ell < ell_min: that of the first bin)."""
    lmax = cov.shape[0] - 1
    ell = np.arange(lmax + 1)
    out = np.empty_like(cov)
    edges = list(range(ell_min, lmax + 1, bin_width)) + [lmax + 1]
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        w = 2 * ell[lo:hi] + 1.0
        out[lo:hi] = np.tensordot(w, cov[lo:hi], axes=(0, 0)) / w.sum()
    out[:ell_min] = out[ell_min]
    return out


def ilc_weights(cov: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Weights (L, n) w = C^-1 a / (a^T C^-1 a) per multipole; a^T w = 1 exactly."""
    a = np.asarray(a, dtype=float)
    scale = np.sqrt(np.abs(np.einsum("lii->li", cov)).mean(axis=0))  # per-channel units
    scale[scale == 0] = 1.0
    cs = cov / np.outer(scale, scale)[None]
    sol = np.linalg.solve(cs, np.broadcast_to(a / scale, (cov.shape[0], a.size))[..., None])
    sol = sol[..., 0] / scale
    return sol / np.einsum("li,i->l", sol, a)[:, None]


def combine(alms: list[np.ndarray], weights: np.ndarray, lmax: int) -> np.ndarray:
    """sum_nu w_nu(ell) alm_nu."""
    out = np.zeros_like(alms[0])
    for i, alm in enumerate(alms):
        out += hp.almxfl(alm, weights[:, i])
    return out


def inverse_noise_weight(tau: np.ndarray, noise: np.ndarray, ell_min: int = 2) -> np.ndarray:
    """tau^T N^-1 tau per multipole; ``tau`` (L, n), ``noise`` (L, n, n) (n = 1: a single map)."""
    out = np.zeros(tau.shape[0])
    scale = np.sqrt(np.abs(np.einsum("lii->li", noise[ell_min:])).mean(axis=0))
    scale[scale == 0] = 1.0
    ns = noise[ell_min:] / np.outer(scale, scale)[None]
    ts = tau[ell_min:] / scale
    sol = np.linalg.solve(ns, ts[:, :, None])[..., 0]
    out[ell_min:] = np.einsum("li,li->l", ts, sol)
    return out


def matched_filter_sigma(theta500_arcmin, weight: np.ndarray) -> np.ndarray:
    """sigma_Y5R500 [arcmin^2] at each theta500 from tau^T N^-1 tau per multipole."""
    ell = np.arange(weight.size)
    w = weight * (2 * ell + 1) / (4 * np.pi)
    theta = np.atleast_1d(np.asarray(theta500_arcmin, dtype=float))
    out = np.empty(theta.size)
    for i, th in enumerate(theta):
        uk = physics.profile_transform(ell * np.radians(th / 60.0))
        out[i] = 1.0 / np.sqrt(np.sum(w * uk**2)) * physics.ARCMIN_PER_RAD**2
    return out


def sensitivity_summary(
    theta500, channel_weight: np.ndarray, ymap_weight: np.ndarray, ymap: str
) -> dict:
    """The ``sky_summary.json`` content: per theta500 the sigma_Y of the y-map alone and of
    the six channels, their ratio, and ``ymap_sigma_ratio_min``."""
    s_ch = matched_filter_sigma(theta500, channel_weight)
    s_y = matched_filter_sigma(theta500, ymap_weight)
    ratio = s_y / s_ch
    return {
        "ymap": ymap,
        "description": (
            "Matched-filter sigma_Y5R500 (arcmin^2) of a theta500 cluster in the y-map alone "
            "and in the optimal combination of the six channel maps, from the mock's own "
            "full-sky residual (non-tSZ) spectra; a y-map made from the channels cannot "
            "go below a ratio of 1."
        ),
        "theta500_arcmin": {
            f"{t:g}": {
                "sigma_y_ymap": float(a),
                "sigma_y_channels": float(b),
                "ratio": float(r),
            }
            for t, a, b, r in zip(theta500, s_y, s_ch, ratio, strict=True)
        },
        "ymap_sigma_ratio_min": float(ratio.min()),
    }
