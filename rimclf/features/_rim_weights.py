"""How well the voxel grid resolves a lesion's boundary at each voxel, and weighted statistics
(see :mod:`rimclf.features.rim_profile`, *Resolution*).

A thin rim is smeared over a voxel's extent across the boundary. That extent along the unit
boundary normal ``n`` (the direction of the signed distance's gradient) of a voxel of sizes
``s`` is ``e = sqrt(sum_i (n_i s_i)^2)`` (the spread of a box blur projected on ``n``): on a
1 x 1 x 3 mm grid, 1 mm where the boundary runs through the slice, 3 mm where it runs along it.
"""

from __future__ import annotations

import math

import numpy as np

#: Width (mm) of the rim a voxel must resolve: the scale of the soft resolution weight.
RIM_WIDTH_MM = 1.0
#: Extent along the boundary normal (mm) up to which ``resolution="resolved"`` keeps an edge voxel.
RESOLVED_MM = 1.5
#: The ``resolution`` settings: every edge voxel counts alike; soft weights; resolved voxels only.
RESOLUTIONS = ("ignore", "weighted", "resolved")


def boundary_extent_mm(distance_mm: np.ndarray, spacing_mm: np.ndarray) -> np.ndarray:
    """Each voxel's extent (mm) along the local boundary normal, ``sqrt(sum_i (n_i s_i)^2)``.

    ``n`` is the unit gradient of the signed distance (central differences in mm); where the
    gradient vanishes the extent is the root mean square of the voxel sizes.
    """
    spacing = np.asarray(spacing_mm, dtype=float)
    gradient = np.stack(np.gradient(distance_mm, *spacing))
    norm = np.sqrt((gradient**2).sum(axis=0))
    flat = norm < 1e-9
    normal = gradient / np.where(flat, 1.0, norm)
    extent = np.sqrt(((normal * spacing.reshape(3, 1, 1, 1)) ** 2).sum(axis=0))
    extent[flat] = math.sqrt(float(np.mean(spacing**2)))
    return np.clip(extent, spacing.min(), spacing.max())  # rounding aside, it lies between them


def resolution_weights(distance_mm: np.ndarray, spacing_mm: np.ndarray, resolution: str) -> np.ndarray | None:
    """The edge voxels' weights in (0, 1] (None for ``resolution="ignore"``: every voxel 1).

    ``"weighted"``: ``(1 + (s_min / r)^2) / (1 + (e / r)^2)`` with ``r = RIM_WIDTH_MM`` and
    ``s_min`` the smallest voxel size (1 for a voxel resolving the boundary as well as the grid
    can); ``"resolved"``: 1 where ``e <= max(RESOLVED_MM, s_min)``, else 0. Both are 1
    everywhere on an isotropic grid, so the features are then those of ``"ignore"``.
    """
    if resolution == "ignore":
        return None
    spacing = np.asarray(spacing_mm, dtype=float)
    extent = boundary_extent_mm(distance_mm, spacing)
    finest = float(spacing.min())
    if resolution == "weighted":
        return np.minimum((1.0 + (finest / RIM_WIDTH_MM) ** 2) / (1.0 + (extent / RIM_WIDTH_MM) ** 2), 1.0)
    return (extent <= max(RESOLVED_MM, finest) + 1e-6).astype(float)


def weighted_quantile(values: np.ndarray, weights: np.ndarray | None, q: float) -> float:
    """The ``q`` quantile of ``values`` with nonnegative ``weights`` (NaN when nothing weighs).

    Sorted values sit at the cumulative weight before them over the total weight but the last
    one's, interpolated linearly: with equal weights this is :func:`numpy.quantile` (its linear
    method), which it then returns.
    """
    if weights is None or (weights.size and np.all(weights == weights[0]) and weights[0] > 0):
        return float(np.quantile(values, q)) if values.size else math.nan
    keep = weights > 0
    values, weights = values[keep], weights[keep]
    if not values.size:
        return math.nan
    if values.size == 1:
        return float(values[0])
    order = np.argsort(values, kind="stable")
    values, weights = values[order], weights[order]
    before = np.cumsum(weights) - weights
    return float(np.interp(q, before / before[-1], values))


def weighted_mean(values: np.ndarray, weights: np.ndarray | None) -> float:
    """Mean of ``values`` with ``weights`` (None: plain mean; NaN when nothing weighs)."""
    if weights is None:
        return float(np.mean(values)) if values.size else math.nan
    total = float(weights.sum())
    return float((values * weights).sum() / total) if total > 0 else math.nan
