"""Truth S/N of the mock clusters: the ideal matched filter with each cluster's *own* profile
(its GNFW shape and ellipticity) at its *local* noise and foreground level.

Harmonic form (Melin et al. 2006), per cluster i with shape u_i and size theta500:
S/N_i^2 = Y_i^2 sum_ell (2 ell + 1)/(4 pi) <|u_i(ell theta500)|^2>_phi W_env(ell),
W_env = tau^T N_env^-1 tau, tau_nu = (tSZ factor)_nu b_nu(ell), N_env the model cross-spectra
of the non-tSZ components with the dust and CO power scaled to the cluster's latitude (their
cosecant / exponential laws) and the white noise to its hit count; <.>_phi averages the
elliptical transform over directions. The environment is tabulated on a grid of |b| and
noise modulation, the shapes are the library of :mod:`skydetect.sky.cluster_shapes`, and
the S/N interpolated per cluster (log-linear in theta500 and modulation, linear in |b|).

The same tables give the S/N fraction the A10 template keeps on the true profile (both
filters centred, theta500 known): rho = <u_i u_A10> / sqrt(<u_i^2><u_A10^2>) under W_env
(Cauchy-Schwarz: rho <= 1); ``profile_mismatch_snr_loss`` is 1 - rho.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import RegularGridInterpolator

from skydetect.sky import physics
from skydetect.sky.cluster_shapes import ShapeLibrary, make_library
from skydetect.sky.ymap import inverse_noise_weight

ABS_B_GRID = np.array([0, 0.25, 0.5, 1, 2, 3, 4, 6, 8, 10, 15, 20, 30, 45, 60, 90], float)
THETA_GRID = np.geomspace(0.2, 100.0, 28)  # arcmin
KAPPA = np.concatenate([[0.0], np.geomspace(1e-4, 300.0, 500)])
N_PHI = 8


def ell_bins(lmax: int, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Edges (ell >= 2, log-spaced) and mode-weighted centres of the multipole bins."""
    edges = np.unique(np.round(np.geomspace(2, lmax + 1, n + 1)).astype(int))
    ell = np.arange(lmax + 1, dtype=float)
    modes = 2 * ell + 1
    centre = np.add.reduceat(modes * ell, edges[:-1]) / np.add.reduceat(modes, edges[:-1])
    return edges, centre


def bin_weight(weight: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """sum over each bin of (2 ell + 1)/(4 pi) W(ell), along the last axis."""
    ell = np.arange(weight.shape[-1])
    w = weight * (2 * ell + 1) / (4 * np.pi)
    return np.add.reduceat(w, edges[:-1], axis=-1)


def shape_spectra(library: ShapeLibrary, theta_arcmin: np.ndarray, ell: np.ndarray):
    """Direction-averaged |u_k|^2 and u_k u_A10 (n, T, L), and |u_A10|^2 (T, L)."""
    a10 = physics.ARNAUD10
    u_lib = library.transform(KAPPA)
    u_a10 = make_library(a10.c500, a10.gamma, a10.alpha, a10.beta, 1.0).transform(KAPPA)[0]
    phi = (np.arange(N_PHI) + 0.5) * (0.5 * np.pi / N_PHI)
    q = library.axis_ratio[:, None]
    stretch = np.sqrt(np.cos(phi) ** 2 / q + q * np.sin(phi) ** 2)  # (n, N_PHI)
    base = np.outer(np.radians(np.asarray(theta_arcmin, float) / 60.0), ell)
    ua = np.interp(base, KAPPA, u_a10, right=0.0)
    auto = np.zeros((len(library), *base.shape))
    cross = np.zeros_like(auto)
    for k in range(len(library)):
        for s in stretch[k]:
            uk = np.interp(base * s, KAPPA, u_lib[k], right=0.0)
            auto[k] += uk * uk
            cross[k] += uk * ua
    return auto / N_PHI, cross / N_PHI, ua * ua


@dataclass
class SnrTables:
    """log(sum w |u|^2) and rho on the grid (shape, log theta500, |b|, log modulation)."""

    log_power: RegularGridInterpolator
    rho: RegularGridInterpolator

    def points(self, shape, theta500, abs_b, modulation):
        return np.column_stack([
            np.asarray(shape, float),
            np.log(np.clip(theta500, THETA_GRID[0], THETA_GRID[-1])),
            np.clip(np.abs(abs_b), 0.0, 90.0),
            np.log(np.asarray(modulation, float)),
        ])  # fmt: skip

    def snr(self, y5r500, shape, theta500, abs_b, modulation) -> np.ndarray:
        """S/N of the ideal own-profile matched filter at the local noise and foregrounds."""
        pts = self.points(shape, theta500, abs_b, modulation)
        power = np.exp(self.log_power(pts))
        return np.asarray(y5r500, float) * np.sqrt(power) / physics.ARCMIN_PER_RAD**2

    def a10_fraction(self, shape, theta500, abs_b, modulation) -> np.ndarray:
        """S/N fraction the A10 template keeps on the cluster's own profile (<= 1)."""
        return np.clip(self.rho(self.points(shape, theta500, abs_b, modulation)), 0.0, 1.0)


def build_tables(library: ShapeLibrary, env_weight: np.ndarray, m_grid: np.ndarray) -> SnrTables:
    """Tables from ``env_weight`` (len(ABS_B_GRID), len(m_grid), L): tau^T N^-1 tau per
    environment and multipole (L = lmax + 1)."""
    edges, ell = ell_bins(env_weight.shape[-1] - 1)
    wb = bin_weight(env_weight, edges)  # (B, M, Lb)
    auto, cross, a10 = shape_spectra(library, THETA_GRID, ell)
    p_own = np.tensordot(auto, wb, axes=([2], [2]))  # (k, t, b, m)
    p_x = np.tensordot(cross, wb, axes=([2], [2]))
    p_a10 = np.tensordot(a10, wb, axes=([1], [2]))
    tiny = 1e-300
    rho = p_x / np.sqrt(np.maximum(p_own * p_a10[None], tiny))
    grid = (np.arange(len(library), dtype=float), np.log(THETA_GRID), ABS_B_GRID, np.log(m_grid))
    return SnrTables(
        RegularGridInterpolator(grid, np.log(np.maximum(p_own, tiny))),
        RegularGridInterpolator(grid, rho),
    )


def environment_weights(
    parts: dict, noise: np.ndarray, tau: np.ndarray, factors: dict, m_grid: np.ndarray
) -> np.ndarray:
    """tau^T N^-1 tau (len(ABS_B_GRID), len(m_grid), L) with N = parts["iso"] +
    sum_c factors[c][b] parts[c] + m^2 diag(noise)."""
    nb = noise.size
    out = np.zeros((ABS_B_GRID.size, m_grid.size, tau.shape[0]))
    for i in range(ABS_B_GRID.size):
        cov = parts["iso"].copy()
        for comp, f in factors.items():
            if comp in parts:
                cov += f[i] * parts[comp]
        for j, m in enumerate(m_grid):
            c = cov.copy()
            c[:, np.arange(nb), np.arange(nb)] += m * m * noise[None, :]
            out[i, j] = inverse_noise_weight(tau, c)
    return out


def modulation_grid(modulation: np.ndarray, n: int = 6) -> np.ndarray:
    """Log-spaced grid spanning the noise modulation at the clusters (a little wider)."""
    lo, hi = float(np.min(modulation)), float(np.max(modulation))
    return np.geomspace(lo / 1.01, hi * 1.01, n)


def loss_summary(fraction: np.ndarray, snr: np.ndarray, threshold: float = 4.5) -> dict:
    """``profile_mismatch_snr_loss``: median and 16-84 % range of 1 - rho, over the clusters
    with truth S/N >= ``threshold`` (all clusters if none)."""
    loss = 1.0 - np.asarray(fraction, float)
    sel = np.asarray(snr, float) >= threshold
    over = f"SNR >= {threshold:g}"
    if not sel.any():
        sel, over = np.ones(loss.size, bool), "all clusters"
    if not sel.any():
        return {"median": None, "p16": None, "p84": None, "n_clusters": 0, "over": over}
    p16, med, p84 = np.percentile(loss[sel], [16, 50, 84])
    return {"median": float(med), "p16": float(p16), "p84": float(p84),
            "n_clusters": int(sel.sum()), "over": over,
            "all_clusters_median": float(np.median(loss))}  # fmt: skip
