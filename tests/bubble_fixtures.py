"""Shared settings and helpers of the bubble tests (test_bubbles_*.py, test_spitzer_*.py).

The mock Spitzer field they share (``field_files``, ``tile``, ``truth``) is a session fixture in
tests/conftest.py, built from :data:`SIM`.
"""

from __future__ import annotations

from pathlib import Path

from astropy.table import Table
from conftest import schema_defaults

CATALOGS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "catalogs"
PP = dict(input_size=48, clip_sigma=3.0, point_source_nsigma=5.0, point_source_filter_px=5)

SIM = dict(
    schema_defaults("bubbles", "simulate"),
    pixel_arcsec=12.0,
    width_deg=1.0,
    height_deg=0.6,
    density_factor=2.0,  # ~23 bubbles (~6 clear) on the 1° x 0.6° field
    min_majaxis_arcmin=0.6,
    max_majaxis_arcmin=4.0,
    saturated_per_field=30,  # ~3 on the 1° x 0.6° test field
)


def one_bubble(glon, glat, maj=2.0, clear=True, kind="ring"):
    """A one-row MWP-like catalogue: one round bubble of MajAxis ``maj`` arcmin."""
    t = Table()
    t["MWP"] = ["TEST1"]
    t["GLON"], t["GLAT"] = [glon], [glat]
    t["MajAxis"], t["MinAxis"], t["Reff"] = [maj], [maj], [maj]
    t["theta"], t["Ecc"] = [0.0], [0.0]
    t["CLEAR"] = [clear]
    return t
