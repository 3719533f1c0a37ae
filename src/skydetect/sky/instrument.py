"""Planck HFI channels: file names, units, beams, noise and tSZ factors.

The one home of the instrument numbers (``../shared/docs/sky-model.md`` §1). Bands are
strings: ``"100" ... "857"`` for the frequency channels, ``"y"`` for the MILCA-like
Compton-y map.
"""

from __future__ import annotations

from dataclasses import dataclass

import healpy as hp

from skydetect.io.map_units import PR3_UNITS

T_CMB = 2.7255  # K


@dataclass(frozen=True)
class Channel:
    band: str
    freq_ghz: float | None
    filename: str  # real Planck PR3 (or MILCA) file name
    unit: str  # TUNIT of the I_STOKES column (skydetect.io.fits_maps.PR3_UNITS)
    fwhm_arcmin: float  # PSZ2 beam set
    noise_per_1p718_arcmin: float  # white noise per 1.718' pixel, in `unit`
    tsz_per_y: float  # band-integrated tSZ response per unit Compton y, in `unit`
    kcmb_to_mjysr: float | None  # K_CMB -> MJy/sr (Planck 2013 IX, Table 6)


CHANNELS: dict[str, Channel] = {
    "100": Channel(
        "100",
        100.0,
        "HFI_SkyMap_100-field-IQU_2048_R3.00_full.fits",
        PR3_UNITS["100"],
        9.66,
        45e-6,
        -4.031,
        244.1,
    ),
    "143": Channel(
        "143",
        143.0,
        "HFI_SkyMap_143-field-IQU_2048_R3.00_full.fits",
        PR3_UNITS["143"],
        7.27,
        19e-6,
        -2.785,
        371.74,
    ),
    "217": Channel(
        "217",
        217.0,
        "HFI_SkyMap_217-field-IQU_2048_R3.00_full.fits",
        PR3_UNITS["217"],
        5.01,
        27e-6,
        0.187,
        483.69,
    ),
    "353": Channel(
        "353",
        353.0,
        "HFI_SkyMap_353-psb-field-IQU_2048_R3.00_full.fits",
        PR3_UNITS["353"],
        4.86,
        89e-6,
        6.205,
        287.45,
    ),
    # 545/857 maps are in MJy/sr: tSZ per unit y = K_CMB factor x unit conversion.
    "545": Channel(
        "545",
        545.0,
        "HFI_SkyMap_545-field-Int_2048_R3.00_full.fits",
        PR3_UNITS["545"],
        4.84,
        0.027,
        14.455 * 58.04,
        58.04,
    ),
    "857": Channel(
        "857",
        857.0,
        "HFI_SkyMap_857-field-Int_2048_R3.00_full.fits",
        PR3_UNITS["857"],
        4.63,
        0.025,
        26.335 * 2.27,
        2.27,
    ),
    # MILCA-like y-map: 10' resolution; noise of ~1e-6 rms in y after the 10' smoothing,
    # i.e. ~8.8e-6 per 1.718' pixel before it (the mock adds it before the beam).
    "y": Channel("y", None, "milca_ymaps.fits", PR3_UNITS["y"], 10.0, 8.8e-6, 1.0, None),
}

REFERENCE_PIXEL_ARCMIN = 1.718  # nside 2048 pixel size the noise levels refer to


def channel(band: str) -> Channel:
    try:
        return CHANNELS[str(band)]
    except KeyError:
        raise KeyError(f"unknown band {band!r}: expected one of {', '.join(CHANNELS)}") from None


def noise_per_pixel(band: str, nside: int) -> float:
    """White-noise sigma per pixel at ``nside`` (scales as 1 / pixel size)."""
    pix_arcmin = hp.nside2resol(nside, arcmin=True)
    return channel(band).noise_per_1p718_arcmin * REFERENCE_PIXEL_ARCMIN / pix_arcmin
