"""Directional statistics of a lesion's edge: direction bins, their rim contrasts and coverage,
and the shape of the bright edge (see :mod:`rimclf.features.rim_profile`, *Directions*)."""

from __future__ import annotations

import math

import numpy as np

from rimclf.features._rim_weights import weighted_quantile

#: A direction bin counts when its edge voxels weigh this much (two well-resolved voxels).
MIN_BIN_WEIGHT = 2.0


def fibonacci_directions(n: int) -> np.ndarray:
    """``n`` nearly uniformly spread unit vectors ``(n, 3)`` (a Fibonacci sphere)."""
    index = np.arange(n) + 0.5
    z = 1.0 - 2.0 * index / n
    radius = np.sqrt(np.clip(1.0 - z**2, 0.0, None))
    angle = np.pi * (3.0 - np.sqrt(5.0)) * index
    return np.stack([radius * np.cos(angle), radius * np.sin(angle), z], axis=1)


def direction_bins(points_mm: np.ndarray, lesion: np.ndarray, mask: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """For each voxel of ``mask``, the index of the direction (a row of ``directions``) closest to
    its offset from the centroid of the ``lesion`` voxels (``points_mm``: ``(3, *crop)`` mm)."""
    centroid = points_mm[:, lesion].mean(axis=1)
    return np.argmax(directions @ (points_mm[:, mask] - centroid[:, None]), axis=0)


def bright_flatness(q, edge, points_mm, lesion, threshold, weights=None) -> float:
    """How sheet-like (1) rather than line-like (0) the directions of the bright edge voxels are.

    The second moment ``T = sum w u u^T / sum w`` of the unit directions ``u`` (from the lesion
    centroid) of the edge voxels with ``q > threshold``, weighted by ``w = q - threshold`` (times
    the voxel's resolution weight, when given: ``weights``, an array of the crop's shape), has
    eigenvalues ``e1 >= e2 >= e3``; the flatness is ``e3 / e2``: about 0 when the bright edge lies
    along one curve (a vein passing or bending along the edge: its directions span a plane), about
    1 for a cap or a whole shell (a rim). 0 when no edge voxel is bright.
    """
    bright = edge & (q > threshold)
    if int(bright.sum()) < 3:
        return 0.0
    centroid = points_mm[:, lesion].mean(axis=1)
    offsets = points_mm[:, bright] - centroid[:, None]
    units = offsets / np.maximum(np.linalg.norm(offsets, axis=0), 1e-9)
    weight = q[bright] - threshold
    if weights is not None:
        weight = weight * weights[bright]
    if not weight.sum() > 0:
        return 0.0
    moment = (units * weight) @ units.T / weight.sum()
    e3, e2, _ = np.linalg.eigvalsh(moment)
    return float(e3 / e2) if e2 > 0 else 0.0


def directional_contrasts(q, edge, near_ring, core_median, near_ring_median, points_mm, lesion, settings, weights=None):
    """(mean positive contrast, coverage, strong coverage, concentration) over direction bins.

    ``weights`` (an array of the crop's shape, or None for 1 everywhere) are the edge voxels'
    resolution weights: a bin counts when its edge voxels weigh at least ``MIN_BIN_WEIGHT``, and
    its edge P75 is weighted.
    """
    directions = fibonacci_directions(settings.n_directions)
    edge_bins, edge_values = direction_bins(points_mm, lesion, edge, directions), q[edge]
    edge_weights = np.ones(edge_values.size) if weights is None else weights[edge]
    ring_bins, ring_values = direction_bins(points_mm, lesion, near_ring, directions), q[near_ring]
    contrasts, used = [], []
    for b in range(settings.n_directions):
        in_bin = edge_bins == b
        values, weight = edge_values[in_bin], edge_weights[in_bin]
        if values.size < 2 or weight.sum() < MIN_BIN_WEIGHT - 1e-9:
            continue
        ring = ring_values[ring_bins == b]
        surroundings = float(np.median(ring)) if ring.size else near_ring_median
        contrasts.append(weighted_quantile(values, weight, 0.75) - max(core_median, surroundings))
        used.append(b)
    if not contrasts:
        return (math.nan,) * 4
    contrast = np.asarray(contrasts)
    positive = np.clip(contrast, 0.0, None)
    total = positive.sum()
    concentration = float(np.linalg.norm(positive @ directions[used]) / total) if total > 0 else 0.0
    return (
        float(positive.mean()),
        float(np.mean(contrast > settings.bright_threshold)),
        float(np.mean(contrast > 2 * settings.bright_threshold)),
        concentration,
    )
