"""Grouping of the negative windows (k-means groups, ``negatives/groups.ecsv``).

Features per window, computed on the preprocessed inputs (S, S, 2) reduced to 32 × 32: radial
profile (mean in 8 annuli about the centre, per channel), moments (mean, standard
deviation, skewness per channel) and a PCA embedding (``pca_components``) of 16 × 16
block-averaged thumbnails; standardised, then k-means (scikit-learn, seeded). Group 0 is
the largest. The reference used the trained detector's 256-d backbone features instead; these
fixed features need no trained model, so the clustering can run before training.
"""

from __future__ import annotations

import numpy as np
from astropy.table import Table
from scipy import ndimage

from skydetect.io.atomic import atomic_path

GROUP_STAGE = 74  # seed component of the grouping


def _radial_profiles(inputs: np.ndarray, n_bins: int = 8) -> np.ndarray:
    n, s = inputs.shape[0], inputs.shape[1]
    yy, xx = np.mgrid[:s, :s]
    r = np.hypot(xx - (s - 1) / 2, yy - (s - 1) / 2) / (s / 2)
    bins = np.minimum((r * n_bins).astype(int), n_bins - 1)
    counts = np.bincount(bins.ravel(), minlength=n_bins)
    out = np.empty((n, n_bins * inputs.shape[3]))
    for c in range(inputs.shape[3]):
        flat = inputs[..., c].reshape(n, -1)
        sums = np.stack([np.bincount(bins.ravel(), weights=f, minlength=n_bins) for f in flat])
        out[:, c * n_bins : (c + 1) * n_bins] = sums / counts
    return out


def _thumbnails(inputs: np.ndarray, t: int = 16) -> np.ndarray:
    n, s = inputs.shape[0], inputs.shape[1]
    z = t / s
    return np.stack(
        [
            ndimage.zoom(inputs[i], (z, z, 1), order=1, grid_mode=True, mode="nearest")
            for i in range(n)
        ]
    ).reshape(n, -1)


def window_features(inputs: np.ndarray, pca_components: int = 16, seed: int = 0) -> np.ndarray:
    """Feature vectors (N, F) of preprocessed windows (N, S, S, C), as documented above."""
    from sklearn.decomposition import PCA  # lazy: scikit-learn (~1.5 s) only for grouping

    n, c = len(inputs), np.shape(inputs)[3]
    if n == 0:
        return np.zeros((0, 1))
    small = (
        np.concatenate(  # read and reduce a chunk at a time (inputs may be lazy)
            [_thumbnails(np.asarray(inputs[i : i + 256], np.float32), 32) for i in range(0, n, 256)]
        )
        .reshape(n, 32, 32, c)
        .astype(np.float64)
    )
    flat = small.reshape(n, -1, c)
    mean = flat.mean(axis=1)
    std = flat.std(axis=1)
    skew = ((flat - mean[:, None]) ** 3).mean(axis=1) / np.maximum(std, 1e-6) ** 3
    thumbs = _thumbnails(small, 16)
    ncomp = int(min(pca_components, n, thumbs.shape[1]))
    emb = PCA(n_components=ncomp, random_state=seed).fit_transform(thumbs)
    return np.hstack([_radial_profiles(small), mean, std, skew, emb])


def group_windows(features: np.ndarray, n_groups: int, seed: int) -> np.ndarray:
    """k-means labels of standardised features; group 0 is the most populated."""
    # lazy: scikit-learn (~1.5 s to import) is needed only by the grouping step
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import StandardScaler

    k = int(min(n_groups, len(features)))
    if k == 0:
        return np.zeros(0, int)
    x = StandardScaler().fit_transform(features)
    labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)
    order = np.argsort(-np.bincount(labels, minlength=k), kind="stable")
    remap = np.empty(k, int)
    remap[order] = np.arange(k)
    return remap[labels]


def group_table(fields, indices, labels, n_groups, drop_groups=(), group_weights=None) -> Table:
    """The per-window table of ``groups.ecsv``: FIELD INDEX GROUP KEEP WEIGHT."""
    if group_weights is not None and len(group_weights) != n_groups:
        raise ValueError(
            f"bubbles.negatives.group_weights has {len(group_weights)} entries, "
            f"n_groups is {n_groups}"
        )
    bad = [g for g in drop_groups if not 0 <= g < n_groups]
    if bad:
        raise ValueError(f"bubbles.negatives.drop_groups {bad} outside 0..{n_groups - 1}")
    weights = np.ones(n_groups) if group_weights is None else np.asarray(group_weights, float)
    labels = np.asarray(labels, int)
    keep = ~np.isin(labels, list(drop_groups))
    t = Table()
    t["FIELD"] = np.asarray(fields).astype(str)
    t["INDEX"] = np.asarray(indices, np.int64)
    t["GROUP"] = labels
    t["KEEP"] = keep
    t["WEIGHT"] = np.where(keep, weights[labels], 0.0)
    return t


def write_group_table(path, table: Table) -> None:
    """Write ``groups.ecsv`` atomically."""
    with atomic_path(path) as tmp:
        table.write(tmp, format="ascii.ecsv", overwrite=True)
