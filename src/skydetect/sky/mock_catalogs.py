"""Catalogues of the mock Planck sky: truth clusters, IR/radio sources, and the "known"
PSZ2-, MCXC- and redMaPPer-like subsets a survey would already have.

Known-catalogue positions are the true ones scattered by each catalogue's position error
(PSZ2-like: its ``POS_ERR`` column, the rms radial offset; MCXC-like and redMaPPer-like: the
``mcxc_pos_err_arcmin`` / ``redmapper_pos_err_arcmin`` settings), so training masks drawn at
catalogue positions are off-centre as they would be on the real sky.
"""

from __future__ import annotations

import logging

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table

from skydetect.io.atomic import atomic_path
from skydetect.io.catalogs import PSZ2_NO_REDSHIFT, read_mcxc, read_psz2
from skydetect.io.tables import CatalogError
from skydetect.sky import physics
from skydetect.sky.foregrounds import ir_sed, power_law_draw, radio_sed, rng_stream

log = logging.getLogger(__name__)

FREQ_BANDS = ("100", "143", "217", "353", "545", "857")


def _names_from_glon_glat(prefix: str, glon, glat) -> np.ndarray:
    return unique_names(
        [f"{prefix}G{lo:06.2f}{la:+06.2f}" for lo, la in zip(glon, glat, strict=True)]
    )


def unique_names(names) -> np.ndarray:
    """Names made from rounded coordinates, a repeat suffixed ``A``, ``B``, ... in order (as
    the published catalogues disambiguate objects whose rounded positions coincide)."""
    out, seen = [], {}
    for name in names:
        k = seen.get(name, 0)
        seen[name] = k + 1
        out.append(name if k == 0 else f"{name}{chr(ord('A') + (k - 1) % 26)}{(k - 1) // 26 or ''}")
    return np.array(out)


def scatter_positions(glon, glat, sigma_arcmin, rng) -> tuple[np.ndarray, np.ndarray]:
    """Positions offset in a random direction by a Rayleigh-distributed distance whose rms
    is ``sigma_arcmin`` (per object or scalar; 0 leaves a position unchanged)."""
    glon, glat = np.asarray(glon, float), np.asarray(glat, float)
    n = glon.size
    sigma = np.broadcast_to(np.asarray(sigma_arcmin, float), (n,))
    r = sigma / np.sqrt(2.0) * np.sqrt(-2.0 * np.log(1.0 - rng.random(n)))
    c = SkyCoord(l=glon * u.deg, b=glat * u.deg, frame="galactic").directional_offset_by(
        rng.uniform(0, 360, n) * u.deg, r * u.arcmin
    )
    return c.l.deg % 360.0, c.b.deg


def _icrs(glon, glat):
    c = SkyCoord(l=np.asarray(glon) * u.deg, b=np.asarray(glat) * u.deg, frame="galactic").icrs
    return c.ra.deg, c.dec.deg


# --------------------------------------------------------------------------- populations
def draw_clusters(params, seed: int) -> Table:
    """Truth clusters: ID GLON GLAT RA DEC M500 Z THETA500 Y5R500 (SNR, KNOWN added later)."""
    rng = rng_stream(seed, 0)
    y_given = None
    if params.positions_from:
        glon, glat, m500, z, y_given = _clusters_from_file(params, rng)
    else:
        m500, z = physics.sample_clusters(
            rng, params.m500_min, params.n_clusters, z_min=params.z_min, z_max=params.z_max
        )
        n = m500.size
        glon = rng.uniform(0.0, 360.0, n)
        glat = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))
    y5r500 = physics.y5r500_arcmin2(m500, z, rng=rng if params.ym_scatter else None)
    if y_given is not None:  # the file's published Y5R500 where it has one
        ok = np.isfinite(y_given) & (y_given > 0)
        y5r500[ok] = y_given[ok]
    theta500 = physics.theta500_arcmin(m500, z)
    icrs = SkyCoord(l=glon * u.deg, b=glat * u.deg, frame="galactic").icrs
    t = Table()
    t["ID"] = np.arange(1, glon.size + 1, dtype=np.int64)
    t["GLON"] = glon * u.deg
    t["GLAT"] = glat * u.deg
    t["RA"] = icrs.ra.deg * u.deg
    t["DEC"] = icrs.dec.deg * u.deg
    t["M500"] = m500 * u.Unit("1e14 solMass")
    t["Z"] = z
    t["THETA500"] = theta500 * u.arcmin
    t["Y5R500"] = y5r500 * u.arcmin**2
    return t


def _clusters_from_file(params, rng):
    """Positions, and masses/redshifts (and PSZ2 Y5R500) where given, from a real PSZ2 or
    MCXC file; rows without mass or redshift get a draw from the mass function above
    max(m500_min, 3e14 Msun)."""
    path = params.positions_from
    try:
        t = read_psz2(path)
        m = np.asarray(t["MSZ"], float) / (1.0 - physics.YMRelation().bias)
        z = np.asarray(t["REDSHIFT"], float)
        y = np.asarray(t["Y5R500"], float) * 1e-3  # file unit: 1e-3 arcmin^2
    except CatalogError:
        t = read_mcxc(path)
        m = np.asarray(t["M500"], float)
        z = np.asarray(t["z"], float)
        y = np.full(len(t), np.nan)
    missing = ~((m > 0) & (z > 0) & np.isfinite(m) & np.isfinite(z))
    if missing.any():  # unknown mass or redshift: a draw from the mass function
        m_draw, z_draw = physics.sample_clusters(
            rng, max(params.m500_min, 3.0), int(missing.sum()), z_min=params.z_min, z_max=1.0
        )
        m[missing], z[missing] = m_draw, z_draw
    log.info(
        "clusters placed at the %d rows of %s (%d with drawn M500/z)", len(t), path, missing.sum()
    )
    return np.asarray(t["GLON"], float), np.asarray(t["GLAT"], float), m, z, y


def draw_sources(params, seed: int, truth: Table, bands) -> Table:
    """IR (dusty galaxies, cold clumps) and radio sources: ID GLON GLAT TYPE FLUX_<band> [mJy]."""
    rng = rng_stream(seed, 1)
    n_ir, n_radio = params.n_ir_sources, params.n_radio_sources
    n = n_ir + n_radio
    glon = rng.uniform(0.0, 360.0, n)
    glat = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))
    on = rng.random(n) < params.sources_on_clusters_fraction
    if len(truth) and on.any():  # within 0.5 theta500 of a random cluster
        host = rng.integers(0, len(truth), on.sum())
        sep = rng.uniform(0, 0.5, on.sum()) * np.asarray(truth["THETA500"])[host] / 60.0
        c = SkyCoord(
            l=np.asarray(truth["GLON"])[host] * u.deg,
            b=np.asarray(truth["GLAT"])[host] * u.deg,
            frame="galactic",
        ).directional_offset_by(rng.uniform(0, 360, on.sum()) * u.deg, sep * u.deg)
        glon[on], glat[on] = c.l.deg, c.b.deg
    ir = np.arange(n) < n_ir
    s_ref = np.where(
        ir,
        power_law_draw(rng, n, params.ir_flux_min_mjy, params.ir_count_slope),
        power_law_draw(rng, n, params.radio_flux_min_mjy, params.radio_count_slope),
    )
    t = Table()
    t["ID"] = np.arange(1, n + 1, dtype=np.int64)
    t["GLON"] = glon * u.deg
    t["GLAT"] = glat * u.deg
    t["TYPE"] = np.where(ir, "ir", "radio")
    t["ON_CLUSTER"] = on
    for band in FREQ_BANDS:
        t[f"FLUX_{band}"] = (
            s_ref * np.where(ir, ir_sed(params, band), radio_sed(params, band)) * u.mJy
        )
    return t


# --------------------------------------------------------------------------- catalogues
def _membership(truth: Table, p, rng) -> dict:
    """Which true clusters each known catalogue holds, with the measured S/N, X-ray
    luminosity proxy and richness drawn for them (three draws from ``rng``, in this order)."""
    n = len(truth)
    glat = np.asarray(truth["GLAT"], float)
    dec = np.asarray(truth["DEC"], float)
    m500, z = np.asarray(truth["M500"], float), np.asarray(truth["Z"], float)
    snr_meas = np.asarray(truth["SNR"], float) + rng.standard_normal(n)
    in_psz2 = (snr_meas >= p.known_snr) & (np.abs(glat) >= p.known_min_abs_glat)
    # X-ray
    dl = physics.COSMO.luminosity_distance(z).to_value(u.Mpc)
    lx = m500**1.64 * physics.ez(z) ** (7.0 / 3.0) * 10 ** (0.2 * rng.standard_normal(n))
    fx = np.where(np.abs(glat) >= 5.0, lx / dl**2, 0.0)
    order = np.argsort(-fx)
    in_mcxc = np.zeros(n, bool)
    in_mcxc[order[: min(p.mcxc_count, n)]] = True
    # optical
    lam = 40.0 * (m500 / 1.9) ** 0.75 * np.exp(0.25 * rng.standard_normal(n))
    in_rm = (
        (glat > p.redmapper_min_glat)
        & (dec > -5.0)
        & (z > 0.08)
        & (z < 0.6)
        & (lam >= p.redmapper_min_lambda)
    )
    return {
        "snr": snr_meas,
        "lx": lx,
        "lam": lam,
        "psz2": in_psz2,
        "mcxc": in_mcxc,
        "redmapper": in_rm,
    }


def _catalogue_positions(glon, glat, rows: dict, pos_err, p, pos_rng) -> dict:
    """(GLON, GLAT, RA, Dec) of each catalogue's clusters: the truth scattered by the
    catalogue's position error (PSZ2, then MCXC, then redMaPPer from ``pos_rng``)."""
    scatter = p.position_scatter
    errors = {
        "psz2": pos_err,
        "mcxc": p.mcxc_pos_err_arcmin,
        "redmapper": p.redmapper_pos_err_arcmin,
    }
    out = {}
    for name, err in errors.items():
        idx = rows[name]
        lon, lat = scatter_positions(glon[idx], glat[idx], err * scatter, pos_rng)
        out[name] = (lon, lat, *_icrs(lon, lat))
    return out


def known_catalogues(sky) -> dict:
    """PSZ2-, MCXC- and redMaPPer-like subsets of the truth; sets truth ``KNOWN``.

    - PSZ2: measured S/N (true S/N + unit Gaussian) >= ``known_snr`` outside
      ``|b| < known_min_abs_glat``; redshift known for ``known_redshift_fraction``
      (-1 otherwise, as in the real file); ``MSZ`` = (1 - b) M500 with 10 % scatter.
    - MCXC: the ``mcxc_count`` brightest in an X-ray flux proxy
      L ~ M^1.64 E(z)^(7/3) (0.2 dex scatter) / D_L^2, outside |b| < 5 deg.
    - redMaPPer: footprint b > ``redmapper_min_glat`` and dec > -5, 0.08 < z < 0.6,
      richness lambda = 40 (M500 / 1.9e14)^0.75 with 25 % log scatter, lambda >= min.
    """
    p = sky.params
    truth = sky.truth
    rng = rng_stream(sky.seed, 6)
    glon, glat = np.asarray(truth["GLON"], float), np.asarray(truth["GLAT"], float)
    ra, dec = np.asarray(truth["RA"], float), np.asarray(truth["DEC"], float)
    m500, z = np.asarray(truth["M500"], float), np.asarray(truth["Z"], float)
    member = _membership(truth, p, rng)
    snr_meas, in_mcxc, in_rm = member["snr"], member["mcxc"], member["redmapper"]
    truth["KNOWN"] = member["psz2"] | in_mcxc

    mcxc_names = unique_names([_j2000_name("J", r, d) for r, d in zip(ra, dec, strict=True)])
    rm_names = unique_names(
        [_j2000_name("RMJ", r, d, precise=True) for r, d in zip(ra, dec, strict=True)]
    )
    rows = {name: np.flatnonzero(member[name]) for name in ("psz2", "mcxc", "redmapper")}
    i, j, k = rows["psz2"], rows["mcxc"], rows["redmapper"]
    has_z = rng.random(i.size) < p.known_redshift_fraction
    bias = physics.YMRelation().bias
    msz = np.where(has_z, (1 - bias) * m500[i] * np.exp(0.1 * rng.standard_normal(i.size)), 0.0)
    y5 = np.asarray(truth["Y5R500"], float)[i] * 1e3 * np.exp(0.2 * rng.standard_normal(i.size))
    pos_err = np.clip(2.0 * 4.5 / snr_meas[i], 0.5, 5.0)
    pos = _catalogue_positions(glon, glat, rows, pos_err, p, rng_stream(sky.seed, 7))
    (pl, pb, pra, pdec), (ml, mb, mra, mdec) = pos["psz2"], pos["mcxc"]
    psz2 = {
        "NAME": _names_from_glon_glat("PSZ2 ", glon[i], glat[i]),
        "GLON": pl,
        "GLAT": pb,
        "RA": pra,
        "DEC": pdec,
        "POS_ERR": pos_err,
        "SNR": snr_meas[i],
        "PIPELINE": rng.integers(1, 4, i.size),
        "PIPE_DET": np.full(i.size, 111),
        "Y5R500": y5,
        "Y5R500_ERR": y5 / snr_meas[i],
        "REDSHIFT": np.where(has_z, z[i], PSZ2_NO_REDSHIFT),
        "MSZ": msz,
        "MCXC": np.where(in_mcxc[i], mcxc_names[i], ""),
        "REDMAPPER": np.where(in_rm[i], rm_names[i], ""),
        "COSMO": snr_meas[i] >= 6.0,
        "VALIDATION": np.where(has_z, 20, -1),
    }
    mcxc = {
        "MCXC": mcxc_names[j],
        "OName": np.array([f"MOCK{k:06d}" for k in np.asarray(truth["ID"])[j]]),
        "RAdeg": mra,
        "DEdeg": mdec,
        "GLON": ml,
        "GLAT": mb,
        "z": z[j],
        "L500": member["lx"][j],
        "M500": m500[j],
        "R500": physics.r500_mpc(m500[j], z[j]),
    }
    redmapper = {
        "NAME": rm_names[k],
        "RA": pos["redmapper"][2],
        "DEC": pos["redmapper"][3],
        "Z_LAMBDA": z[k] + 0.01 * (1 + z[k]) * rng.standard_normal(k.size),
        "LAMBDA": member["lam"][k],
    }
    log.info("known: PSZ2-like %d, MCXC-like %d, redMaPPer-like %d", i.size, j.size, k.size)
    return {"psz2": psz2, "mcxc": mcxc, "redmapper": redmapper}


def _j2000_name(prefix: str, ra: float, dec: float, precise: bool = False) -> str:
    h = ra / 15.0
    hh, mm = int(h), (h - int(h)) * 60.0
    sign = "+" if dec >= 0 else "-"
    d = abs(dec)
    dd, dm = int(d), (d - int(d)) * 60.0
    if precise:
        return f"{prefix}{hh:02d}{mm:04.1f}{sign}{dd:02d}{dm:04.1f}"
    return f"{prefix}{hh:02d}{mm:04.1f}{sign}{dd:02d}{int(dm):02d}"


TRUTH_COLUMNS = [
    "ID", "GLON", "GLAT", "RA", "DEC", "M500", "Z", "THETA500", "Y5R500", "SNR", "KNOWN",
    "SNR_A10", "C500", "GAMMA", "ALPHA", "BETA", "P0", "AXIS_RATIO", "POS_ANGLE", "T_KEV", "V_LOS",
]  # fmt: skip


def truth_table(sky) -> Table:
    """The truth catalogue with the column order of docs/dataflow.md and units."""
    t = sky.truth[TRUTH_COLUMNS]
    t["POS_ANGLE"].unit = "deg"
    t["T_KEV"].unit = "keV"
    t["V_LOS"].unit = "km/s"
    t.meta["description"] = (
        "Mock Planck sky truth. SNR: S/N of the ideal multi-frequency matched filter with the "
        "cluster's own profile (GNFW C500 GAMMA ALPHA BETA, AXIS_RATIO, POS_ANGLE east of "
        "north) at its local noise and dust/CO level; SNR_A10: the same with the Arnaud 2010 "
        "profile and the sky-mean spectra (see skydetect.sky.truth_snr, skydetect.sky.planck). "
        "P0: GNFW amplitude that gives Y5R500. T_KEV: Arnaud 2005 M-T temperature (kSZ and "
        "relativistic tSZ). V_LOS: line-of-sight velocity (kSZ; positive receding). "
        "KNOWN: in the PSZ2-like or MCXC-like catalogue."
    )
    t.meta["nside"] = sky.nside
    t.meta["seed"] = sky.seed
    return t


def write_truth(path, sky) -> None:
    """Write :func:`truth_table` as ECSV (atomically)."""
    with atomic_path(path) as tmp:
        truth_table(sky).write(tmp, format="ascii.ecsv", overwrite=True)
