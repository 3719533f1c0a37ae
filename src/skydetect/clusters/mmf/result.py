"""What the MMF gives for one flat patch: S/N and Y5R500 maps per theta500 and the noise."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PatchResult:
    """MMF output of one patch: S/N maps per theta500 and sigma; the Y5R500 (arcmin^2) maps
    are S/N x sigma (:attr:`y`, computed when asked for)."""

    theta500: np.ndarray  # (T,) arcmin
    snr: np.ndarray  # (T, S, S) float32
    sigma: np.ndarray  # (T,) arcmin^2 (1-sigma error on Y)
    # (T,) cycles^2/arcmin^2: mean |q|^2 of the filtered cluster signal (weight F^T P^-1 F);
    # the S/N peak's curvature, hence the position error (skydetect.clusters.mmf.photometry)
    q2: np.ndarray | None = None

    @property
    def y(self) -> np.ndarray:
        """(T, S, S) float32: the filtered Y5R500 maps (arcmin^2)."""
        return self.snr * self.sigma.astype(np.float32)[:, None, None]
