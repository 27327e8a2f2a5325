"""Band statistics of one lesion's referenced QSM: core, edge, near ring, reference ring (see
:mod:`rimclf.features.rim_profile`, *Geometry* and *Features*)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rimclf.features._rim_directions import bright_flatness, directional_contrasts
from rimclf.features._rim_weights import resolution_weights, weighted_mean, weighted_quantile


@dataclass(frozen=True)
class ProfileSettings:
    """The geometry of the profile (see the module documentation)."""

    edge_mm: float
    reference_mm: tuple[float, float]
    n_directions: int
    bright_threshold: float
    resolution: str = "ignore"


def _median(values: np.ndarray) -> float:
    return float(np.median(values)) if values.size else math.nan


def _quantile(values: np.ndarray, q: float) -> float:
    return float(np.quantile(values, q)) if values.size else math.nan


def profile_features(
    q: np.ndarray,
    lesion: np.ndarray,
    normal: np.ndarray,
    distance_mm: np.ndarray,
    points_mm: np.ndarray,
    settings: ProfileSettings,
    spacing_mm: np.ndarray | None = None,
) -> np.ndarray:
    """The QSM features of one lesion from its referenced QSM (``QSM_FEATURES`` order, then
    ``rim_log_resolved_edge_voxels`` unless ``settings.resolution == "ignore"``).

    Parameters
    ----------
    q : ndarray
        Referenced QSM (units of the subject's spread, 0 = the reference ring's median).
    lesion, normal : ndarray of bool
        This lesion's voxels; normal-appearing voxels (support, outside every lesion).
    distance_mm : ndarray
        Signed distance to the lesion boundary (:func:`signed_distance_mm`).
    points_mm : ndarray of shape (3,) + q.shape
        Voxel centres in millimetres (world coordinates, or any isometric copy of them).
    settings : ProfileSettings
    spacing_mm : ndarray of shape (3,), optional
        Voxel sizes along the array's axes; needed unless ``settings.resolution == "ignore"``.
    """
    w = settings.edge_mm
    lesion_depth = distance_mm[lesion]
    core = lesion & (distance_mm <= -w)
    if not core.any():
        core = lesion & (distance_mm <= 0.5 * float(lesion_depth.min()))
    inner_edge = lesion & ~core
    if not inner_edge.any():  # a lesion one voxel thick: all of it is edge
        inner_edge = lesion
    outer_edge = normal & (distance_mm > 0) & (distance_mm <= w)
    edge = inner_edge | outer_edge
    near_ring = normal & (distance_mm > w) & (distance_mm <= 2 * w)
    reference = normal & (distance_mm > settings.reference_mm[0]) & (distance_mm <= settings.reference_mm[1])

    weights = None
    if settings.resolution != "ignore":
        if spacing_mm is None:
            raise ValueError("profile_features: spacing_mm is needed with a resolution setting")
        weights = resolution_weights(distance_mm, spacing_mm, settings.resolution)
        resolved_count = float(weights[edge].sum())
        if not resolved_count > 0:  # no edge voxel resolved: every one counts alike
            weights = None

    def edge_weights(mask: np.ndarray) -> np.ndarray | None:
        return None if weights is None else weights[mask]

    core_median = _median(q[core])
    near_ring_median = _median(q[near_ring])
    edge_values, edge_w = q[edge], edge_weights(edge)
    edge_median = weighted_quantile(edge_values, edge_w, 0.5)
    edge_p75 = weighted_quantile(edge_values, edge_w, 0.75)

    window = (lesion | normal) & (np.abs(distance_mm) <= 2 * w)
    window_values = q[window]
    if window_values.size:
        brightest = window_values >= np.quantile(window_values, 0.9)
        peak_depth = float(np.median(distance_mm[window][brightest]))
    else:
        peak_depth = math.nan

    directional = directional_contrasts(q, edge, near_ring, core_median, near_ring_median, points_mm, lesion, settings,
                                        weights)
    values = [
        core_median,
        weighted_quantile(q[inner_edge], edge_weights(inner_edge), 0.5),
        weighted_quantile(q[outer_edge], edge_weights(outer_edge), 0.5),
        near_ring_median,
        weighted_quantile(edge_values, edge_w, 0.9),
        _quantile(q[near_ring], 0.9),
        edge_median - core_median,
        edge_median - near_ring_median,
        min(edge_p75 - core_median, edge_p75 - near_ring_median),
        peak_depth,
        *directional,
        weighted_mean((edge_values > settings.bright_threshold).astype(float), edge_w),
        weighted_quantile(edge_values, edge_w, 0.99),
        _quantile(q[reference], 0.95),
        bright_flatness(q, edge, points_mm, lesion, settings.bright_threshold, weights),
    ]
    if settings.resolution != "ignore":
        values.append(math.log10(1.0 + resolved_count))
    return np.array(values)
