"""Rim-fit features: a small physical model of the rim fitted to each lesion's edge.

The band statistics of :mod:`rimclf.features.rim_profile` (medians and percentiles in
signed-distance bands) smear a ~1 mm rim over thick voxels and do not say how much evidence they
rest on. Here the rim's height is *estimated*: a model of the QSM across the lesion boundary,
with the voxel's own extent in it, is fitted by robust least squares, so that its amplitude
estimates the rim's height on any grid, and comes with a standard error.

Data
----
The QSM referenced as for the rim-profile features, ``q = (QSM - m_ref) / s_subject``
(:mod:`rimclf.features._referencing`: the median of the lesion's reference ring, the subject's
robust spread), so every feature is invariant to a QSM offset and scale. The **band** holds the
lesion's voxels and the normal-appearing voxels around it with signed distance ``|d| <= 2w`` mm
(``w = edge_mm``; ``d < 0`` inside). Each voxel's **extent along the boundary normal** ``e``
(mm) is that of :mod:`rimclf.features._rim_weights`: ``sqrt(sum_i (n_i s_i)^2)`` for the unit
gradient ``n`` of ``d`` and voxel sizes ``s`` (3 mm where a 1 x 1 x 3 mm grid cuts the boundary
along its slices).

Model
-----
For a band voxel with signed distance ``d`` and extent ``e``::

    E[q] = c (1 - S) + s S + a R
    S = Phi(d / tau),           tau^2     = 0.5^2 + e^2 / 12
    R = (sigma / sigma_e) exp(-(d - delta)^2 / (2 sigma_e^2)),   sigma_e^2 = sigma^2 + e^2 / 12

``c`` is the core level, ``s`` the surround level, ``S`` the lesion's blurred step (0.5 mm point
spread and the voxel's box along the normal, variance ``e^2 / 12``), ``R`` a rim of unit peak and
width ``sigma = rim_sigma_mm`` centred ``delta`` mm outside the boundary, averaged over the voxel's
extent (a thick voxel cutting the rim sees a diluted rim: the factor keeps the rim's area). ``a``
is then the rim's height as a fine grid sees it, whatever the grid (deconvolved).

Fit: a Huber M-estimate (``k = 1.345``) by iteratively reweighted least squares, the residual
scale fixed at that of the step-only model (1.4826 x MAD); ``delta`` is the one of
``offsets_mm`` of least Huber loss. Standard error of ``a``: ``se = sigma_r sqrt((X^T W X)^-1_aa)
x sqrt(max(1, 1 mm^3 / voxel volume))``, ``sigma_r`` the kept fit's residual scale (1.4826 x MAD),
``W`` its robust weights; the last factor counts voxels smaller than 1 mm^3 as correlated, so that
a fine grid does not buy evidence by its voxel count. ``t = a / se``.

Directions: band voxels are binned by their direction from the lesion's centroid into
``n_directions`` Fibonacci directions, as for the rim-profile features. Each bin with at least 6
band voxels is fitted with the same model, the lesion fit's offset and robust weights and scale,
and a prior of 3 pseudo-voxels at the lesion's levels ``(c, s)`` and 1 at ``a = 0``: ``c_b, s_b,
a_b`` and ``t_b``.

Features
--------
All levels and amplitudes in units of ``s_subject``.

=============================  ==================================================================
name                           formula
=============================  ==================================================================
``rimfit_t``                   ``t = a / se``: the evidence for a rim over the whole edge
``rimfit_prominence``          ``a - |c - s| / 2``: the rim's height above the brighter side
                               (negative for a uniformly bright or dark lesion)
``rimfit_gain``                ``sign(a) (1 - RSS_full / RSS_step)``, weighted residual sums of
                               squares with and without the rim term (same robust weights)
``rimfit_noise``               ``sigma_r``: the residual scale (how noisy the evidence is)
``rimfit_dir_t_fraction``      fraction of fitted bins with ``t_b > t_threshold``
``rimfit_dir_amplitude_mean``  mean of ``max(a_b - t_threshold x se_b, 0)`` over the fitted bins:
                               the rim height the evidence supports (0 on noise)
=============================  ==================================================================

When every bin is too thin, the lesion's own fit stands for one direction. Fewer outputs were
measured worse (the MLP does better with these six than with ``a``, ``c``, ``s``, ``delta``
and more directional fractions besides; see ``docs/features.md``).

A lesion that cannot be measured gets NaN features and a :class:`~rimclf.errors.DataWarning`
naming subject and lesion: those of the rim-profile features (no voxel with QSM data, touching the
volume's edge, too small a reference ring), and fewer than 4 band voxels on either side of its
boundary. The estimators impute NaN (training medians).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from rimclf._validation import Interval, is_real, validate_params
from rimclf.errors import DataWarning, ParameterError
from rimclf.features._base import LesionExtractor
from rimclf.features._profile_fit import FitSettings, fit_directions, fit_lesion
from rimclf.features._referencing import REFERENCE_MM, ReferencedLesion, referenced_lesions
from rimclf.features._rim_directions import direction_bins, fibonacci_directions
from rimclf.features._rim_weights import boundary_extent_mm
from rimclf.features._subject import BASE_COLUMNS, Note, SubjectVolumes

__all__ = ["FIT_FEATURES", "RimFitExtractor"]

FIT_FEATURES = (
    "rimfit_t",
    "rimfit_prominence",
    "rimfit_gain",
    "rimfit_noise",
    "rimfit_dir_t_fraction",
    "rimfit_dir_amplitude_mean",
)
_WHAT = "rim-fit features are NaN"


def _positive_reals(value: object, *, count: int | None = None, positive: bool = True) -> bool:
    if isinstance(value, str) or not isinstance(value, Sequence) or not len(value):
        return False
    if count is not None and len(value) != count:
        return False
    return all(is_real(v) and math.isfinite(float(v)) and (float(v) > 0 or not positive) for v in value)


class RimFitExtractor(LesionExtractor):
    """Rim-fit features of each lesion: a rim model fitted to the QSM across its boundary.

    Core level, surround level and rim amplitude are fitted by robust least squares to the
    referenced QSM of the band around the lesion boundary, the rim blurred by each voxel's extent
    along the boundary normal, so that the amplitude estimates the rim's height on any grid; the
    fit gives the amplitude's t-value, and the same model per direction bin gives how much of the
    edge carries a significant rim. Formulas in :mod:`rimclf.features.rim_fit`.

    Parameters
    ----------
    edge_mm : float, default=1.5
        The band reaches ``2 x edge_mm`` on either side of the boundary.
    reference_mm : (float, float), default=(3.0, 6.0)
        Inner and outer distance of the reference ring beyond the lesion boundary.
    n_directions : int, default=16
        Direction bins (16 measured better than 32: more voxels, steadier t-values per bin).
    rim_sigma_mm : float, default=0.8
        Width (Gaussian sigma, mm) of the rim on a fine grid.
    step_sigma_mm : float, default=1.0
        Spread (mm) of the step from core to surroundings on a fine grid (the point spread and
        the uncertainty of a lesion outline drawn on FLAIR).
    offsets_mm : sequence of float, default=(-0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0)
        Candidate rim centres (mm outside the boundary); the best fitting is kept.
    t_threshold : float, default=2.0
        t-value above which a direction's rim counts as significant.

    Notes
    -----
    ``transform`` returns float64 ``(n_lesions, n_features)``, rows in table order, NaN where a
    lesion cannot be measured (with a :class:`~rimclf.errors.DataWarning`). Nothing is learnt:
    ``fit`` checks the parameters.

    Examples
    --------
    >>> from rimclf.features import RimFitExtractor
    >>> extractor = RimFitExtractor()
    >>> list(extractor.get_feature_names_out()[:3])
    ['rimfit_t', 'rimfit_prominence', 'rimfit_gain']
    >>> features = extractor.fit_transform(table)  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        edge_mm: float = 1.5,
        reference_mm: tuple[float, float] = REFERENCE_MM,
        n_directions: int = 16,
        rim_sigma_mm: float = 0.8,
        step_sigma_mm: float = 1.0,
        offsets_mm: tuple[float, ...] = (-0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0),
        t_threshold: float = 2.0,
    ) -> None:
        self.edge_mm = edge_mm
        self.reference_mm = reference_mm
        self.n_directions = n_directions
        self.rim_sigma_mm = rim_sigma_mm
        self.step_sigma_mm = step_sigma_mm
        self.offsets_mm = offsets_mm
        self.t_threshold = t_threshold

    _parameter_constraints = {
        "edge_mm": [Interval(float, 0, None, closed="neither")],
        "n_directions": [Interval(int, 6)],
        "rim_sigma_mm": [Interval(float, 0, None, closed="neither")],
        "step_sigma_mm": [Interval(float, 0, None, closed="neither")],
        "t_threshold": [Interval(float, 0, None, closed="neither")],
    }

    def _validate(self) -> FitSettings:
        validate_params(self)
        reference = self.reference_mm
        if not (_positive_reals(reference, count=2) and reference[0] < reference[1]):
            raise ParameterError(
                f"RimFitExtractor: reference_mm={reference!r} is not valid; it must be (inner, outer) "
                "millimetres with 0 < inner < outer"
            )
        if not _positive_reals(self.offsets_mm, positive=False) or max(abs(float(v)) for v in self.offsets_mm) > 2 * self.edge_mm:
            raise ParameterError(
                f"RimFitExtractor: offsets_mm={self.offsets_mm!r} is not valid; it must be a non-empty sequence of "
                f"millimetres within +-2 x edge_mm"
            )
        return FitSettings(
            float(self.edge_mm), float(self.step_sigma_mm), (float(reference[0]), float(reference[1])), int(self.n_directions),
            float(self.rim_sigma_mm), tuple(float(v) for v in self.offsets_mm), float(self.t_threshold),
        )

    def required_columns(self) -> tuple[str, ...]:
        """Lesion-table columns this extractor reads."""
        return BASE_COLUMNS

    def cache_key(self) -> dict:
        """The settings the features depend on besides the files."""
        settings = self._validate()
        return {
            "edge_mm": settings.edge_mm, "reference_mm": list(settings.reference_mm),
            "n_directions": settings.n_directions, "rim_sigma_mm": settings.rim_sigma_mm,
            "step_sigma_mm": settings.step_sigma_mm,
            "offsets_mm": list(settings.offsets_mm), "t_threshold": settings.t_threshold,
        }

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """The feature names, in column order (see the module documentation)."""
        self._validate()
        return np.array(FIT_FEATURES, dtype=object)

    # -- per-subject work ---------------------------------------------------------------------
    def extract_subject(self, volumes: SubjectVolumes, notes: list[Note]) -> np.ndarray:
        """Features of the subject's distinct lesions (``volumes.task.lesion_ids``), float64 (k, F)."""
        settings = self._validate()
        task = volumes.task
        out = np.full((len(task.lesion_ids), len(FIT_FEATURES)), np.nan)
        directions = fibonacci_directions(settings.n_directions)
        for row, lesion in referenced_lesions(volumes, settings.reference_mm, 2 * settings.edge_mm, False, _WHAT, notes):
            values = lesion_features(lesion, settings, directions)
            if values is None:
                notes.append((DataWarning, f"{task.name} lesion {int(task.lesion_ids[row])}: fewer than "
                                           f"4 voxels on one side of its boundary within {2 * settings.edge_mm:g} mm; "
                                           f"its {_WHAT}"))
                continue
            out[row] = values
        return out


def lesion_features(lesion: ReferencedLesion, settings: FitSettings, directions: np.ndarray) -> np.ndarray | None:
    """The ``FIT_FEATURES`` of one referenced lesion (None when the band is too thin to fit)."""
    spacing = np.asarray(lesion.spacing_mm, dtype=float)
    distance = lesion.distance_mm
    band = (lesion.lesion | lesion.normal) & (np.abs(distance) <= 2 * settings.edge_mm)
    extent = boundary_extent_mm(distance, spacing)[band]
    fit = fit_lesion(distance[band], extent, lesion.q[band], settings, float(np.prod(spacing)))
    if fit is None:
        return None
    bins = direction_bins(lesion.points_mm, lesion.lesion, band, directions)
    beta, standard_error, used = fit_directions(fit, bins, len(directions))
    if used.any():
        amplitude, error = beta[used, -1], standard_error[used]
    else:  # every bin too thin: the lesion's fit stands for its one direction
        amplitude, error = np.array([fit.amplitude]), np.array([fit.standard_error])
    return np.array([
        fit.t, fit.amplitude - 0.5 * abs(fit.core - fit.surround), fit.gain, fit.scale,
        float(np.mean(amplitude > settings.t_threshold * error)),
        float(np.mean(np.maximum(amplitude - settings.t_threshold * error, 0.0))),
    ])
