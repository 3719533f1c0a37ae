"""Segmentation masks: disks around the catalogue clusters inside each patch.

A disk is defined on the sky (angular distance from the cluster to each pixel centre), so it
is round whatever the patch orientation. The radius is, per (patch, cluster):

- ``disk_radius`` arcmin (reference default 2.5');
- ``disk_radius: null``: drawn uniformly in [pixel size, ``random_max_arcmin``] (the
  reference's 0–15' distribution, without empty zero-radius disks);
- ``theta500: true``: ``theta500_scale`` x the cluster's θ500 where known, otherwise the
  rule above.
"""

from __future__ import annotations

import numpy as np

from skydetect.geometry import projection

__all__ = ["mask_radii", "clusters_near", "draw_masks"]


def mask_radii(
    n: int,
    theta500=None,
    *,
    disk_radius=2.5,
    theta500_mode=False,
    theta500_scale=1.0,
    random_max_arcmin=15.0,
    pixel_arcmin=1.7,
    rng=None,
):
    """Radii (arcmin) of ``n`` disks."""
    if disk_radius is None:
        rng = np.random.default_rng() if rng is None else rng
        r = rng.uniform(min(pixel_arcmin, random_max_arcmin), random_max_arcmin, n)
    else:
        if disk_radius <= 0:
            raise ValueError(f"clusters.mask.disk_radius must be > 0 or null, got {disk_radius}")
        r = np.full(n, float(disk_radius))
    if theta500_mode and theta500 is not None:
        t = np.asarray(theta500, float) * theta500_scale
        r = np.where(np.isfinite(t) & (t > 0), t, r)
    return r


def clusters_near(centre_vec, cluster_vec, radius_rad):
    """Pairs (patch index, cluster index) with angular separation < ``radius_rad``."""
    from scipy.spatial import cKDTree  # lazy: ~0.25 s to import, needed only here

    if len(cluster_vec) == 0 or len(centre_vec) == 0:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    chord = 2 * np.sin(min(radius_rad, np.pi) / 2)
    tree = cKDTree(cluster_vec)
    hits = tree.query_ball_point(centre_vec, chord)
    p = np.repeat(np.arange(len(hits)), [len(h) for h in hits])
    c = np.concatenate([np.asarray(h, dtype=np.intp) for h in hits]) if len(p) else p
    return p.astype(np.intp), c.astype(np.intp)


def draw_masks(
    pix_vec,
    glon,
    glat,
    angle,
    flip,
    size,
    pixel_arcmin,
    cl_glon,
    cl_glat,
    radii_fn,
    max_ids: int = 8,
):
    """Masks uint8 (N, S, S) and cluster ids (N, max_ids) padded with -1.

    ``pix_vec`` (N, S, S, 3): pixel-centre vectors of the patches centred on (glon, glat)
    with orientation (angle, flip).
    ``radii_fn(cluster_index_array) -> radii (arcmin)`` gives the disk radius of each
    (patch, cluster) pair. A cluster is "inside" a patch (its id recorded) if its position
    falls within the pixel grid; every disk overlapping the patch is drawn.
    """
    n = len(pix_vec)
    masks = np.zeros((n, size, size), np.uint8)
    ids = np.full((n, max_ids), -1, np.int64)
    if n == 0 or len(cl_glon) == 0:
        return masks, ids
    cvec = projection.lonlat_to_vec(glon, glat)
    kvec = projection.lonlat_to_vec(cl_glon, cl_glat)
    half_diag = np.radians(np.sqrt(2) * size / 2 * pixel_arcmin / 60)
    p, c = clusters_near(cvec, kvec, half_diag + np.radians(0.5))
    if len(p) == 0:
        return masks, ids
    radii = np.radians(radii_fn(c) / 60.0)
    x, y = projection.lonlat_to_patch(
        cl_glon[c], cl_glat[c], glon[p], glat[p], size, pixel_arcmin, angle[p], flip[p]
    )
    inside = (x >= -0.5) & (x < size - 0.5) & (y >= -0.5) & (y < size - 0.5)
    count = np.zeros(n, int)
    for pi, ci, ri in zip(p, c, radii, strict=True):
        cosd = pix_vec[pi] @ kvec[ci]
        masks[pi] |= (cosd >= np.cos(ri)).astype(np.uint8)
    for pi, ci in zip(p[inside], c[inside], strict=True):
        if count[pi] < max_ids:
            ids[pi, count[pi]] = ci
        count[pi] += 1
    return masks, ids
