"""The mock's bubble catalogues: the truth of a field and the catalogue volunteers would make.

Truth (:func:`draw_bubbles`): bubbles with the statistics of the Milky Way Project DR2
(Jayasinghe et al. 2019) — surface density ``density_factor x density_per_deg2 x
exp(-|b| / glat_scale_deg)``, log-normal MajAxis, and a clear fraction that depends on |b|
and on size (``clear_fraction_by_glat`` x ``clear_fraction_by_size`` / ``clear_fraction``).
:func:`mwp_statistics` measures these numbers on the real catalogue; the schema's defaults
are that measurement. Every bubble has a ``KIND``: ``ring`` (clear: a closed 8 µm ring
enclosing 24 µm emission) or an unclear kind (``arc``: broken ring; ``faint``: a ring near
the noise; ``ring_no24``: a ring without 24 µm; ``confused``: a clumpy ring with displaced
24 µm), a ``CONTRAST`` (8 µm ring peak / local 8 µm median) and a ``STRENGTH24`` (24 µm
interior peak / local 24 µm median; 0 for none).

Catalogue (:func:`volunteer_catalog`): the truth as drawn by volunteers — positions and sizes
scattered, a fraction missing, a few spurious entries (``TRUE_MWP`` names the truth row of
each entry, '' for a spurious one). The detector trains on it and is scored on the truth.
"""

from __future__ import annotations

import numpy as np
from astropy.table import Table, vstack

from skydetect.io.spitzer import wrap_glon

UNCLEAR_KINDS = ("arc", "faint", "ring_no24", "confused")
FLOAT_COLUMNS = ["GLON", "GLAT", "MajAxis", "MinAxis", "Reff", "theta", "Ecc"]
# |b| range of the latitude fit: GLIMPSE covers |b| <= 1° (more only near the centre)
FIT_GLAT_MAX = 0.8


# ------------------------------------------------------------------ statistics of MWP DR2
def _binned_fraction(values, flags, edges) -> list[float]:
    idx = np.digitize(values, edges)
    return [
        float(flags[idx == i].mean()) if (idx == i).any() else 0.0 for i in range(len(edges) + 1)
    ]


def mwp_statistics(table: Table, glat_edges, size_edges) -> dict:
    """Density profile, clear fractions and size distribution of an MWP DR2 table (the
    catalogue layout with ``CLEAR``), as the ``bubbles.simulate`` keys they replace.

    The surface density per |b| bin of 0.1° (|b| < 0.8°) is fitted with
    ``density_per_deg2 x exp(-|b| / glat_scale_deg)``; the longitude coverage is taken as
    ``2 x (max |l| - min |l|)`` (both halves of the inner plane)."""
    glon = np.abs(np.asarray(table["GLON"], float))
    babs = np.abs(np.asarray(table["GLAT"], float))
    maj = np.asarray(table["MajAxis"], float)
    clear = np.asarray(table["CLEAR"], bool)
    span_l = 2.0 * (glon.max() - glon.min())
    edges = np.arange(0.0, FIT_GLAT_MAX + 1e-9, 0.1)
    counts, _ = np.histogram(babs, edges)
    mid = 0.5 * (edges[1:] + edges[:-1])
    dens = counts / (span_l * 2.0 * np.diff(edges))
    ok = counts > 0
    slope, icept = np.polyfit(mid[ok], np.log(dens[ok]), 1, w=np.sqrt(counts[ok]))
    return {
        "density_per_deg2": float(np.exp(icept)),
        "glat_scale_deg": float(-1.0 / slope),
        "clear_fraction": float(clear.mean()),
        "clear_fraction_by_glat": _binned_fraction(babs, clear, glat_edges),
        "clear_fraction_by_size": _binned_fraction(maj, clear, size_edges),
        "size_median_arcmin": float(np.median(maj)),
        "size_sigma_ln": float(np.log(maj).std()),
    }


def with_statistics(cfg: dict, table: Table) -> dict:
    """``cfg`` with the MWP DR2 numbers measured on ``table`` (``statistics_from``)."""
    stats = mwp_statistics(table, cfg["clear_glat_edges_deg"], cfg["clear_size_edges_arcmin"])
    return {**cfg, **stats}


def clear_probability(glat, maj, cfg: dict) -> np.ndarray:
    """P(clear | |b|, MajAxis): the two binned MWP fractions combined as independent."""
    f_b = np.asarray(cfg["clear_fraction_by_glat"], float)
    f_s = np.asarray(cfg["clear_fraction_by_size"], float)
    for key, f, edges in (
        ("clear_fraction_by_glat", f_b, cfg["clear_glat_edges_deg"]),
        ("clear_fraction_by_size", f_s, cfg["clear_size_edges_arcmin"]),
    ):
        if len(f) != len(edges) + 1:
            raise ValueError(
                f"config key 'bubbles.simulate.{key}' has {len(f)} entries; its edges need "
                f"{len(edges) + 1}"
            )
    overall = max(float(cfg["clear_fraction"]), 1e-9)
    p = (
        f_b[np.digitize(np.abs(glat), cfg["clear_glat_edges_deg"])]
        * f_s[np.digitize(maj, cfg["clear_size_edges_arcmin"])]
        / overall
    )
    return np.clip(p, 0.0, 1.0)


# ------------------------------------------------------------------ the truth of a field
def expected_count(cfg: dict, b_lo: float, b_hi: float, width_deg: float) -> float:
    """Expected number of bubbles in ``width_deg`` of longitude between b_lo and b_hi."""
    h = float(cfg["glat_scale_deg"])

    def cum(b):  # integral of exp(-|b|/h) from 0 to b (odd in b)
        return np.sign(b) * h * (1.0 - np.exp(-abs(b) / h))

    sigma0 = float(cfg["density_factor"]) * float(cfg["density_per_deg2"])
    return sigma0 * width_deg * float(cum(b_hi) - cum(b_lo))


def draw_glat(rng, n: int, b_lo: float, b_hi: float, h: float) -> np.ndarray:
    """``n`` latitudes from the profile exp(-|b|/h) on [b_lo, b_hi] (rejection)."""
    out = np.empty(0)
    while out.size < n:
        b = rng.uniform(b_lo, b_hi, 2 * n + 10)
        b = b[rng.random(b.size) < np.exp(-np.abs(b) / h)]
        out = np.concatenate([out, b])
    return out[:n]


def draw_sizes(rng, n: int, cfg: dict) -> np.ndarray:
    """MajAxis (arcmin): log-normal, truncated to [min_majaxis_arcmin, max_majaxis_arcmin]."""
    out = np.empty(0)
    while out.size < n:
        s = rng.lognormal(np.log(cfg["size_median_arcmin"]), cfg["size_sigma_ln"], 2 * n + 10)
        s = s[(s >= cfg["min_majaxis_arcmin"]) & (s <= cfg["max_majaxis_arcmin"])]
        out = np.concatenate([out, s])
    return out[:n]


def _log_uniform(rng, lo_hi, n) -> np.ndarray:
    lo, hi = (float(v) for v in lo_hi)
    return np.exp(rng.uniform(np.log(lo), np.log(hi), n))


def draw_appearance(rng, clear, cfg: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(KIND, CONTRAST, STRENGTH24) of bubbles with the given clear flags.

    Clear: ``ring``, contrast from ``contrast_clear``, 24 µm strength from
    ``strength24_clear`` (log-uniform, weak ones included). Unclear: a kind drawn with the
    weights ``unclear_kinds``; contrast from ``contrast_unclear`` (``faint``: below the clear
    range, down to the range's floor); 24 µm strength as clear ones for ``faint`` and
    ``confused``, half of the ``arc`` ones, none for ``ring_no24``."""
    clear = np.asarray(clear, bool)
    n = clear.size
    w = cfg["unclear_kinds"]
    p = np.array([float(w[k]) for k in UNCLEAR_KINDS])
    if p.sum() <= 0:
        raise ValueError("config key 'bubbles.simulate.unclear_kinds': the weights sum to 0")
    kinds = np.where(clear, "ring", rng.choice(UNCLEAR_KINDS, n, p=p / p.sum())).astype("U10")
    contrast = _log_uniform(rng, cfg["contrast_clear"], n)
    unclear = _log_uniform(rng, cfg["contrast_unclear"], n)
    faint_range = (
        cfg["contrast_unclear"][0],
        min(cfg["contrast_clear"][0], cfg["contrast_unclear"][1]),
    )
    faint = _log_uniform(rng, faint_range, n)
    contrast = np.where(clear, contrast, np.where(kinds == "faint", faint, unclear))
    strength = _log_uniform(rng, cfg["strength24_clear"], n)
    no24 = (kinds == "ring_no24") | ((kinds == "arc") & (rng.random(n) < 0.5))
    strength[no24] = 0.0
    return kinds, contrast, strength


def _name(glon, glat) -> np.ndarray:
    return np.array(
        [
            f"MK{np.mod(lo, 360) * 1e4:07.0f}{'-' if b < 0 else '+'}{abs(b) * 1e5:07.0f}"
            for lo, b in zip(glon, glat, strict=True)
        ],
        dtype="U20",
    )


def _shape_table(rng, glon, glat, maj) -> Table:
    n = len(maj)
    ecc = rng.uniform(0.3, 0.75, n)  # MWP DR2: Ecc 10-90 % 0.46-0.78
    minor = maj * np.sqrt(1.0 - ecc**2)
    t = Table()
    t["MWP"] = _name(glon, glat)
    t["GLON"], t["GLAT"] = np.asarray(glon, float), np.asarray(glat, float)
    t["MajAxis"], t["MinAxis"] = np.asarray(maj, float), minor
    t["Reff"] = np.sqrt(maj * minor)
    t["theta"] = rng.uniform(0.0, 180.0, n)
    t["Ecc"] = ecc
    return t


def draw_bubbles(rng, glon_c: float, glat_c: float, cfg: dict) -> Table:
    """The truth of a ``width_deg x height_deg`` field centred on (glon_c, glat_c)."""
    half_w, half_h = cfg["width_deg"] / 2.0, cfg["height_deg"] / 2.0
    b_lo, b_hi = glat_c - half_h, glat_c + half_h
    n = int(rng.poisson(expected_count(cfg, b_lo, b_hi, cfg["width_deg"])))
    glat = draw_glat(rng, n, b_lo, b_hi, float(cfg["glat_scale_deg"]))
    glon = wrap_glon(glon_c + rng.uniform(-half_w, half_w, n))
    maj = draw_sizes(rng, n, cfg)
    t = _shape_table(rng, glon, glat, maj)
    t["CLEAR"] = rng.random(n) < clear_probability(glat, maj, cfg)
    t["KIND"], t["CONTRAST"], t["STRENGTH24"] = draw_appearance(rng, t["CLEAR"], cfg)
    return t


def real_bubbles(rng, real: Table, glon_c: float, glat_c: float, cfg: dict) -> Table:
    """The real catalogue's bubbles in the field, with a drawn appearance; without any clear
    flag in ``real`` and without ``clear_names_from`` the flag is drawn as for mock ones."""
    dl = wrap_glon(np.asarray(real["GLON"]) - glon_c)
    db = np.asarray(real["GLAT"]) - glat_c
    t = real[(np.abs(dl) < cfg["width_deg"] / 2.0) & (np.abs(db) < cfg["height_deg"] / 2.0)]
    t = t.copy()
    clear = np.asarray(t["CLEAR"], bool)
    if not clear.any() and cfg.get("clear_names_from") is None:
        p = clear_probability(np.asarray(t["GLAT"], float), np.asarray(t["MajAxis"], float), cfg)
        clear = rng.random(len(t)) < p
    t["CLEAR"] = clear
    t["KIND"], t["CONTRAST"], t["STRENGTH24"] = draw_appearance(rng, clear, cfg)
    for col in FLOAT_COLUMNS:
        t[col] = np.asarray(t[col], float)
    return t


# ------------------------------------------------------------------ the volunteers' catalogue
def volunteer_catalog(rng, truth: Table, glon_c: float, glat_c: float, cfg: dict) -> Table:
    """The truth as a citizen-science catalogue: each bubble missed with probability
    ``catalog_missing_fraction``; centres scattered by ``catalog_position_scatter`` x MajAxis
    (Gaussian, per coordinate); both axes scaled by one log-normal factor of width
    ``catalog_size_scatter`` (MajAxis kept within [min_majaxis_arcmin, max_majaxis_arcmin]); ``catalog_spurious_fraction`` x len(truth) (Poisson) entries
    where there is no bubble, drawn from the mock's position, size and clear statistics."""
    n = len(truth)
    kept = truth[rng.random(n) >= float(cfg["catalog_missing_fraction"])]
    m = len(kept)
    maj = np.asarray(kept["MajAxis"], float)
    sig_deg = float(cfg["catalog_position_scatter"]) * maj / 60.0
    glat = np.asarray(kept["GLAT"], float) + rng.normal(0.0, 1.0, m) * sig_deg
    dl = rng.normal(0.0, 1.0, m) * sig_deg / np.cos(np.deg2rad(glat))
    glon = wrap_glon(np.asarray(kept["GLON"], float) + dl)
    scale = np.exp(rng.normal(0.0, float(cfg["catalog_size_scatter"]), m))
    # kept within the drawn range, which the sliding windows are checked to cover
    lo, hi = float(cfg["min_majaxis_arcmin"]), float(cfg["max_majaxis_arcmin"])
    scale = np.clip(maj * scale, maj.min(initial=lo), maj.max(initial=hi)) / maj
    out = Table()
    out["MWP"] = _name(glon, glat)
    out["GLON"], out["GLAT"] = glon, glat
    out["MajAxis"] = maj * scale
    out["MinAxis"] = np.asarray(kept["MinAxis"], float) * scale
    out["Reff"] = np.sqrt(out["MajAxis"] * out["MinAxis"])
    out["theta"] = np.asarray(kept["theta"], float)
    out["Ecc"] = np.asarray(kept["Ecc"], float)
    out["CLEAR"] = np.asarray(kept["CLEAR"], bool)
    out["TRUE_MWP"] = np.asarray(kept["MWP"]).astype("U20")

    n_fake = int(rng.poisson(float(cfg["catalog_spurious_fraction"]) * n))
    half_w, half_h = cfg["width_deg"] / 2.0, cfg["height_deg"] / 2.0
    f_glat = draw_glat(rng, n_fake, glat_c - half_h, glat_c + half_h, float(cfg["glat_scale_deg"]))
    f_glon = wrap_glon(glon_c + rng.uniform(-half_w, half_w, n_fake))
    f_maj = draw_sizes(rng, n_fake, cfg)
    fake = _shape_table(rng, f_glon, f_glat, f_maj)
    fake["CLEAR"] = rng.random(n_fake) < clear_probability(f_glat, f_maj, cfg)
    fake["TRUE_MWP"] = np.full(n_fake, "", dtype="U20")
    if n_fake:
        out = vstack([out, fake], metadata_conflicts="silent")
    order = np.argsort(np.asarray(out["GLON"], float), kind="stable")
    return out[order]
