"""Matched multi-frequency filter (MMF): the classical tSZ cluster detector (baseline).

Modules: :mod:`.profiles` (templates, beams), :mod:`.noise` (Fourier grid, noise spectra),
:mod:`.filter` (one patch), :mod:`.peaks`, :mod:`.sampling` (patches from a tile), :mod:`.tile`
(the tile driver), :mod:`.io` (detection table, S/N maps). The package exports the detector's
API; helpers that its modules share (noise binning, tile sampling) are imported from their
module.

Herranz et al. 2002 (ApJ 580, 610); Melin, Bartlett & Delabrouille 2006 (A&A 459, 341); the
Planck MMF1/MMF3 pipelines. On a flat patch with maps ``d_j`` (j = frequency band), a cluster of
integrated Compton parameter Y (Y5R500, arcmin^2) and size theta500 at x0 adds

    d_j(x) = Y * a_j * (b_j * t_theta)(x - x0),

with ``a_j`` the band-integrated tSZ response per unit y (map unit), ``b_j`` the beam (and pixel
window) and ``t_theta`` the projected Arnaud et al. (2010) GNFW profile truncated at 5 R500 and
normalised to unit integral (arcmin^-2). With F_theta(k) the DFT of that template and P(k) the
noise cross-power matrix (B x B per Fourier mode, estimated from the patch itself), the
filter is

    Psi_theta(k) = sigma_theta^2 P^-1(k) F_theta(k),
    sigma_theta^-2 = sum_k F_theta^T(k) P^-1(k) F_theta(k),

and the filtered map ``Y_hat(x) = sum_k Psi^T d~(k) e^{ik.x}`` is an unbiased estimate of Y with
standard deviation sigma_theta: S/N = Y_hat / sigma_theta.

Conventions: DFTs are numpy's unnormalised ``rfft2`` (the sums over k run over the full grid,
Hermitian halves counted twice); ``P(k) = E[n~(k) n~(k)^H]`` in the same convention (white noise
of variance s^2 per pixel: P = N s^2). Patches are ``patch[y, x]`` as in
:mod:`skydetect.geometry.projection`.

The tile-level driver :func:`run_tile` covers one HEALPix nside-2 tile with overlapping flat
patches centred on the pixel centres of a finer HEALPix grid (``nside_c``): each sky point
belongs to the patch of the ``nside_c`` pixel that contains it, which is far enough from the
patch edge to be free of apodisation effects. Detections are local maxima of the S/N over
position and theta500, de-duplicated across patches and kept if they lie in the tile.
"""

from skydetect.clusters.mmf.filter import PatchResult, filter_patch, filter_patches
from skydetect.clusters.mmf.io import (
    DETECTION_COLUMNS,
    detections_table,
    read_snr_map,
    write_detections,
    write_snr_map,
)
from skydetect.clusters.mmf.noise import (
    apodisation_window,
    estimate_noise_spectra,
    fourier_grid,
    white_noise_spectra,
)
from skydetect.clusters.mmf.peaks import Peak, find_peaks
from skydetect.clusters.mmf.profiles import (
    PROFILES,
    MMFError,
    beam_transfer,
    healpix_pixel_window,
    profile_transform,
    projected_profile,
)
from skydetect.clusters.mmf.tile import (
    MMFConfig,
    TileResult,
    centre_nside,
    centre_pixels,
    run_tile,
)

__all__ = [
    "PROFILES",
    "MMFError",
    "MMFConfig",
    "PatchResult",
    "Peak",
    "TileResult",
    "projected_profile",
    "profile_transform",
    "healpix_pixel_window",
    "beam_transfer",
    "fourier_grid",
    "apodisation_window",
    "estimate_noise_spectra",
    "white_noise_spectra",
    "filter_patch",
    "filter_patches",
    "find_peaks",
    "centre_nside",
    "centre_pixels",
    "run_tile",
    "DETECTION_COLUMNS",
    "detections_table",
    "write_detections",
    "write_snr_map",
    "read_snr_map",
]
