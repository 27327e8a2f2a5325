"""The rim model fitted to one lesion's referenced QSM (see :mod:`rimclf.features.rim_fit`).

Pure numpy/scipy: a design matrix per voxel of the band around the boundary, a Huber M-estimate
of the whole lesion by iteratively reweighted least squares, and the same model per direction
bin, all bins solved at once (batched 3 x 3 systems).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import erf

#: Huber's tuning constant (95 % efficiency under Gaussian noise), in units of the residual scale.
HUBER_K = 1.345
#: Reweighting passes of the robust fit.
N_PASSES = 4
#: Noise correlation volume (mm^3): voxels smaller than this are not independent, so standard
#: errors grow by ``sqrt(CORRELATION_MM3 / voxel volume)`` there.
CORRELATION_MM3 = 1.0
#: The band needs this many voxels inside and outside the lesion.
MIN_SIDE_VOXELS = 4
#: A direction bin is fitted when it holds this many band voxels.
MIN_BIN_VOXELS = 6
#: Strength (in voxels) of the prior that pulls a bin's core and surround levels to the lesion's.
LEVEL_PRIOR_VOXELS = 3.0
#: Strength (in voxels) of the prior that pulls a bin's rim amplitude to 0 (no rim).
AMPLITUDE_PRIOR_VOXELS = 1.0


@dataclass(frozen=True)
class FitSettings:
    """The rim model's geometry and thresholds (see :class:`~rimclf.features.rim_fit.RimFitExtractor`)."""

    edge_mm: float
    step_sigma_mm: float
    reference_mm: tuple[float, float]
    n_directions: int
    rim_sigma_mm: float
    offsets_mm: tuple[float, ...]
    t_threshold: float


@dataclass(frozen=True)
class LesionFit:
    """The whole-lesion fit: levels, amplitude, its t-value, the fit's gain, and what the bins need."""

    core: float
    surround: float
    amplitude: float
    t: float
    standard_error: float
    gain: float
    offset_mm: float
    scale: float
    design: np.ndarray  # (n, 3) columns: inside, outside, rim
    values: np.ndarray
    weights: np.ndarray
    inflation: float


def design_matrix(distance_mm: np.ndarray, extent_mm: np.ndarray, settings: FitSettings, offset_mm: float) -> np.ndarray:
    """Columns ``(1 - S, S, R)`` of the band's voxels: the blurred step and the blurred rim.

    ``S = Phi(d / tau)``, ``tau^2 = step_sigma^2 + e^2 / 12``; ``R = (sigma / sigma_e)
    exp(-(d - offset)^2 / (2 sigma_e^2))``, ``sigma_e^2 = sigma^2 + e^2 / 12``: a rim of peak 1 and
    width ``sigma`` averaged over the voxel's extent ``e`` along the boundary normal (a box of
    variance ``e^2 / 12``; the factor keeps its area, so a thick voxel sees a lower peak).
    """
    box = extent_mm**2 / 12.0
    tau = np.sqrt(settings.step_sigma_mm**2 + box)
    step = 0.5 * (1.0 + erf(distance_mm / (math.sqrt(2.0) * tau)))
    sigma = settings.rim_sigma_mm
    spread = np.sqrt(sigma**2 + box)
    rim = (sigma / spread) * np.exp(-0.5 * ((distance_mm - offset_mm) / spread) ** 2)
    return np.stack([1.0 - step, step, rim], axis=1)


def _solve(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """``gram^-1 rhs`` with a tiny ridge against exactly singular systems (batched)."""
    ridge = 1e-9 * np.trace(gram, axis1=-2, axis2=-1)[..., None, None] * np.eye(gram.shape[-1])
    return np.linalg.solve(gram + ridge, rhs[..., None])[..., 0]


def _weighted_fit(design: np.ndarray, values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    weighted = design * weights[:, None]
    gram = design.T @ weighted
    return _solve(gram, weighted.T @ values), gram


def _huber_weights(residuals: np.ndarray, scale: float) -> np.ndarray:
    return np.minimum(1.0, HUBER_K * scale / np.maximum(np.abs(residuals), 1e-12))


def _huber_loss(residuals: np.ndarray, scale: float) -> float:
    u = np.abs(residuals) / scale
    return float(np.where(u <= HUBER_K, 0.5 * u**2, HUBER_K * u - 0.5 * HUBER_K**2).sum())


def _robust_scale(residuals: np.ndarray) -> float:
    return 1.4826 * float(np.median(np.abs(residuals - np.median(residuals))))


def _irls(design: np.ndarray, values: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Huber M-estimate with a fixed residual scale: (coefficients, final weights)."""
    weights = np.ones(values.size)
    for _ in range(N_PASSES):
        beta, _ = _weighted_fit(design, values, weights)
        weights = _huber_weights(values - design @ beta, scale)
    beta, _ = _weighted_fit(design, values, weights)
    return beta, weights


def fit_lesion(
    distance_mm: np.ndarray, extent_mm: np.ndarray, values: np.ndarray, settings: FitSettings, voxel_mm3: float
) -> LesionFit | None:
    """The robust fit of the band's voxels (None when one side of the boundary has too few).

    The residual scale is that of the step-only model (conservative when a rim is there); each
    rim offset is fitted with it and the one of least Huber loss is kept. Its standard error is
    ``scale x sqrt((X^T W X)^-1_aa) x inflation``, the scale re-estimated from the kept fit's
    residuals (1.4826 x MAD), ``inflation = sqrt(max(1, CORRELATION_MM3 / voxel_mm3))``.
    """
    inside = distance_mm <= 0
    if int(inside.sum()) < MIN_SIDE_VOXELS or int((~inside).sum()) < MIN_SIDE_VOXELS:
        return None
    step_only = design_matrix(distance_mm, extent_mm, settings, 0.0)[:, :2]
    beta0, weights0 = _irls(step_only, values, max(_robust_scale(values), 1e-6))
    scale0 = max(_robust_scale(values - step_only @ beta0), 1e-6)
    best = None
    for offset in settings.offsets_mm:
        design = design_matrix(distance_mm, extent_mm, settings, offset)
        beta, weights = _irls(design, values, scale0)
        loss = _huber_loss(values - design @ beta, scale0)
        if best is None or loss < best[0]:
            best = (loss, offset, design, beta, weights)
    _, offset, design, beta, weights = best
    residuals = values - design @ beta
    scale = max(_robust_scale(residuals), 1e-6)
    gram = design.T @ (design * weights[:, None])
    inflation = math.sqrt(max(1.0, CORRELATION_MM3 / voxel_mm3))
    variance = np.linalg.pinv(gram)[2, 2]
    standard_error = scale * math.sqrt(max(variance, 0.0)) * inflation
    # the rim term's share of the step-only model's weighted residual sum of squares (same weights)
    beta_step, _ = _weighted_fit(step_only, values, weights)
    rss_step = float((weights * (values - step_only @ beta_step) ** 2).sum())
    rss_full = float((weights * residuals**2).sum())
    gain = (1.0 - rss_full / rss_step) if rss_step > 0 else 0.0
    amplitude = float(beta[2])
    return LesionFit(
        core=float(beta[0]), surround=float(beta[1]), amplitude=amplitude,
        t=amplitude / standard_error if standard_error > 0 else 0.0, standard_error=standard_error,
        gain=math.copysign(max(gain, 0.0), amplitude), offset_mm=float(offset), scale=scale,
        design=design, values=values, weights=weights, inflation=inflation,
    )


def fit_directions(fit: LesionFit, bins: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per direction bin: the coefficients ``(n_bins, 3)``, the rim amplitude's standard error, and
    whether the bin was fitted (at least ``MIN_BIN_VOXELS`` band voxels).

    Each bin is the lesion's model on its own voxels with the lesion fit's robust weights, and a
    prior of ``LEVEL_PRIOR_VOXELS`` pseudo-voxels at the lesion's core and surround levels and
    ``AMPLITUDE_PRIOR_VOXELS`` at amplitude 0 (a bin with little evidence stays near the lesion's
    levels and no rim); the residual scale is the lesion's.
    """
    design, weights = fit.design, fit.weights
    outer = (design[:, :, None] * design[:, None, :] * weights[:, None, None]).reshape(len(weights), 9)
    gram = np.stack([np.bincount(bins, outer[:, k], minlength=n_bins) for k in range(9)], axis=1).reshape(n_bins, 3, 3)
    moment = design * (weights * fit.values)[:, None]
    rhs = np.stack([np.bincount(bins, moment[:, k], minlength=n_bins) for k in range(3)], axis=1)
    prior = np.array([LEVEL_PRIOR_VOXELS, LEVEL_PRIOR_VOXELS, AMPLITUDE_PRIOR_VOXELS])
    gram = gram + np.diag(prior)
    rhs = rhs + prior * np.array([fit.core, fit.surround, 0.0])
    beta = _solve(gram, rhs)
    variance = np.linalg.inv(gram)[:, 2, 2]
    standard_error = fit.scale * np.sqrt(np.maximum(variance, 1e-12)) * fit.inflation
    used = np.bincount(bins, minlength=n_bins) >= MIN_BIN_VOXELS
    return beta, standard_error, used
