"""Rim-profile features: the QSM at each lesion's edge against the lesion's own surroundings.

A paramagnetic rim is a thin band of raised susceptibility at the lesion edge, on part or all of
it, brighter than both the lesion's core and the tissue around it. Its mimics are a uniformly
hyperintense lesion (bright edge, but as bright a core), an off-centre paramagnetic spot (bright,
but in few directions and not at the edge), a vein passing the edge (bright, but running on into
the surroundings) and a faint ring (at the edge all around, but weak). The features below measure
exactly these differences, in physical units that do not depend on the site or the voxel grid.

Referencing
-----------
For every lesion the QSM is *referenced* to its surroundings and expressed in units of the
subject's tissue variability::

    q(v) = (QSM(v) - m_ref) / s_subject

- ``m_ref``: median QSM of the **reference ring**, the voxels between ``reference_mm[0]`` and
  ``reference_mm[1]`` millimetres outside the lesion that are normal-appearing (inside the QSM's
  support, the brain: voxels other than its background value, outside every lesion);
- ``s_subject``: 1.4826 x the median absolute deviation of the QSM over all of the subject's
  normal-appearing tissue (support minus lesions): a robust standard deviation.

Adding a constant to the QSM inside the brain, or multiplying it by a positive factor, leaves
every feature unchanged (both are used by sites: the reference region and regularisation of the
QSM pipeline), so the features need no calibration between sites.

Geometry
--------
Distances are in millimetres on the voxel grid (the voxel sizes of the QSM header), so features
barely change when the same anatomy is sampled on another grid. The *signed distance* ``d`` of a
voxel to the lesion boundary is negative inside: the Euclidean distance between its centre and the
nearest voxel centre on the other side of the mask, minus half the mean voxel size (the boundary
lies half a voxel before that centre). Bands, with ``w = edge_mm``:

============  =========================================================================
band          voxels
============  =========================================================================
core          lesion voxels with ``d <= -w`` (for a lesion thinner than ``2w``: the deeper
              half of its voxels by ``d``)
inner edge    the other lesion voxels (``-w < d <= 0``)
outer edge    ``0 < d <= w``, normal-appearing
edge          inner edge and outer edge
near ring     ``w < d <= 2w``, normal-appearing
reference     ``reference_mm[0] < d <= reference_mm[1]``, normal-appearing
============  =========================================================================

Directions: the edge voxels are binned by their direction from the lesion's centroid into
``n_directions`` nearly uniform directions (a Fibonacci sphere); bins holding fewer than two edge
voxels are left out. For a bin ``b`` the **directional rim contrast** is
``c_b = P75(q, edge voxels of b) - max(median(q, core), median(q, near-ring voxels of b))``
(the near-ring median of the bin, or of the whole near ring when the bin has none there): how much
the edge in that direction stands out from both the lesion inside and the tissue just outside.

Features
--------
All ``q`` statistics are dimensionless (units of ``s_subject``); ``P90`` is the 90th percentile.

===============================  ==============================================================
name                             formula
===============================  ==============================================================
``rim_core_median``              median q over the core
``rim_inner_edge_median``        median q over the inner edge
``rim_outer_edge_median``        median q over the outer edge
``rim_near_ring_median``         median q over the near ring
``rim_edge_p90``                 P90 of q over the edge
``rim_near_ring_p90``            P90 of q over the near ring
``rim_edge_minus_core``          median q(edge) - median q(core)
``rim_edge_minus_ring``          median q(edge) - median q(near ring)
``rim_contrast``                 min(P75 q(edge) - median q(core), P75 q(edge) - median q(near ring))
``rim_peak_depth_mm``            median signed distance d of the brightest tenth of the voxels with
                                 ``|d| <= 2w`` (about 0 for a rim, negative for a bright core or
                                 spot, positive for a bright structure outside)
``rim_directional_contrast``     mean over bins of max(c_b, 0)
``rim_coverage``                 fraction of bins with c_b > ``bright_threshold``
``rim_coverage_strong``          fraction of bins with c_b > 2 x ``bright_threshold``
``rim_concentration``            length of the mean of the bins' unit directions weighted by
                                 max(c_b, 0): near 0 for a bright edge all around (or none), near
                                 1 when the bright edge faces one side (0 when no bin is bright)
``rim_edge_bright_fraction``     fraction of edge voxels with q > ``bright_threshold``
``rim_edge_p99``                 P99 of q over the edge (very high for a vein or a spot)
``rim_reference_p95``            P95 of q over the reference ring (bright structures around)
``rim_bright_flatness``          e3 / e2, the two smallest eigenvalues of the second moment
                                 ``sum w u u^T / sum w`` of the unit directions u (from the
                                 centroid) of the edge voxels with q > ``bright_threshold``, weights
                                 ``w = q - bright_threshold``: about 0 when the bright edge lies
                                 along one curve (a vein: its directions span a plane), about 1 for
                                 a cap or a shell (a rim); 0 when fewer than 3 edge voxels are bright
``rim_flair_ratio``              median FLAIR(lesion) / median FLAIR(reference ring)
                                 (``flair=True`` only)
``rim_log_volume_mm3``           log10 of the lesion volume in mm^3
===============================  ==============================================================

Resolution
----------
With ``resolution="weighted"`` or ``"resolved"`` (default ``"ignore"``: the features above) each
edge voxel counts by how well the grid resolves the boundary there. Its extent along the local
boundary normal ``n`` (the unit gradient of ``d``) is ``e = sqrt(sum_i (n_i s_i)^2)`` for voxel
sizes ``s`` (1 mm where a 1 x 1 x 3 mm grid cuts the boundary in-plane, 3 mm where it runs along
the slices). Its weight is ``(1 + s_min^2) / (1 + e^2)`` (mm; ``"weighted"``) or 1 where
``e <= max(1.5 mm, s_min)`` and 0 elsewhere (``"resolved"``). Every edge statistic above (edge
medians and quantiles, the bins' P75, the bright fraction, the flatness's weights) is weighted; a
direction bin counts when its edge voxels weigh at least 2 (so coverage is over resolved
directions); and ``rim_log_resolved_edge_voxels``, log10(1 + the edge voxels' total weight), is
added after ``rim_bright_flatness``. On an isotropic grid every weight is 1 and the features are
those of ``"ignore"``. Measured on the varied-acquisition phantom, neither setting helps (see
docs/benchmarks.md), so the default ignores resolution.

A lesion whose features cannot be measured gets NaN features and a
:class:`~rimclf.errors.DataWarning` naming subject and lesion: no voxel in the QSM support, a
lesion touching the edge of the volume (its edge and surroundings are cut), or fewer than
``MIN_REFERENCE_VOXELS`` normal-appearing voxels in its reference ring. The estimators impute NaN
(training medians).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from rimclf._validation import Bools, Interval, Options, is_real, validate_params
from rimclf.errors import ParameterError
from rimclf.features._base import LesionExtractor
from rimclf.features._referencing import (
    MAD_TO_SD,
    MIN_REFERENCE_VOXELS,
    REFERENCE_MM,
    ReferencedLesion,
    lesion_crop,
    reference_ring,
    referenced_lesions,
)
from rimclf.features._regions import signed_distance_mm
from rimclf.features._rim_bands import ProfileSettings, profile_features
from rimclf.features._rim_directions import fibonacci_directions
from rimclf.features._rim_weights import RESOLUTIONS
from rimclf.features._subject import BASE_COLUMNS, Note, SubjectVolumes

__all__ = [
    "FLAIR_FEATURES", "MAD_TO_SD", "MIN_REFERENCE_VOXELS", "QSM_FEATURES", "REFERENCE_MM", "RESOLUTION_FEATURES",
    "SIZE_FEATURES", "ProfileSettings", "ReferencedLesion", "RimProfileExtractor", "fibonacci_directions",
    "lesion_crop", "profile_features", "reference_ring", "referenced_lesions", "signed_distance_mm",
]

QSM_FEATURES = (
    "rim_core_median",
    "rim_inner_edge_median",
    "rim_outer_edge_median",
    "rim_near_ring_median",
    "rim_edge_p90",
    "rim_near_ring_p90",
    "rim_edge_minus_core",
    "rim_edge_minus_ring",
    "rim_contrast",
    "rim_peak_depth_mm",
    "rim_directional_contrast",
    "rim_coverage",
    "rim_coverage_strong",
    "rim_concentration",
    "rim_edge_bright_fraction",
    "rim_edge_p99",
    "rim_reference_p95",
    "rim_bright_flatness",
)
RESOLUTION_FEATURES = ("rim_log_resolved_edge_voxels",)
FLAIR_FEATURES = ("rim_flair_ratio",)
SIZE_FEATURES = ("rim_log_volume_mm3",)


class RimProfileExtractor(LesionExtractor):
    """Rim-profile features of each lesion: its QSM edge against its core and surroundings.

    The features (listed with their formulas in :mod:`rimclf.features.rim_profile`) are radial
    profile statistics in signed-distance bands measured in millimetres, edge-minus-core and
    edge-minus-ring contrasts, and the angular coverage and concentration of a bright edge, all
    on QSM referenced to the lesion's surrounding normal-appearing tissue and scaled by the
    subject's tissue spread: invariant to a QSM offset and scale.

    Parameters
    ----------
    edge_mm : float, default=1.5
        Half-width of the edge band around the lesion boundary, and width of the near ring.
    reference_mm : (float, float), default=(3.0, 6.0)
        Inner and outer distance of the reference ring beyond the lesion boundary.
    n_directions : int, default=32
        Direction bins of the angular coverage.
    bright_threshold : float, default=1.0
        Directional contrast (units of the subject's QSM spread) above which an edge direction
        counts as bright in ``rim_coverage`` (twice that for ``rim_coverage_strong``).
    flair : bool, default=True
        Add ``rim_flair_ratio`` (reads the FLAIR).
    volume : bool, default=True
        Add ``rim_log_volume_mm3``.
    resolution : {"ignore", "weighted", "resolved"}, default="ignore"
        How edge voxels count by how well the grid resolves the boundary there (see *Resolution*
        in :mod:`rimclf.features.rim_profile`): all alike; weighted; only resolved ones. Other
        than "ignore", adds ``rim_log_resolved_edge_voxels``.

    Notes
    -----
    ``transform`` returns float64 ``(n_lesions, n_features)``, rows in table order, NaN where a
    lesion cannot be measured (with a :class:`~rimclf.errors.DataWarning`). Nothing is learnt:
    ``fit`` checks the parameters.
    ``set_output(transform="pandas")`` (or ``sklearn.set_config(transform_output="pandas")``)
    makes it a DataFrame with the columns of ``get_feature_names_out()`` and the lesion table's
    index.

    Examples
    --------
    >>> from rimclf.features import RimProfileExtractor
    >>> extractor = RimProfileExtractor(edge_mm=1.5)
    >>> list(extractor.get_feature_names_out()[:3])
    ['rim_core_median', 'rim_inner_edge_median', 'rim_outer_edge_median']
    >>> features = extractor.fit_transform(table)  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        edge_mm: float = 1.5,
        reference_mm: tuple[float, float] = REFERENCE_MM,
        n_directions: int = 32,
        bright_threshold: float = 1.0,
        flair: bool = True,
        volume: bool = True,
        resolution: str = "ignore",
    ) -> None:
        self.edge_mm = edge_mm
        self.reference_mm = reference_mm
        self.n_directions = n_directions
        self.bright_threshold = bright_threshold
        self.flair = flair
        self.volume = volume
        self.resolution = resolution

    _parameter_constraints = {
        "edge_mm": [Interval(float, 0, None, closed="neither")],
        "n_directions": [Interval(int, 6)],
        "bright_threshold": [Interval(float, 0, None, closed="neither")],
        "flair": [Bools()],
        "volume": [Bools()],
        "resolution": [Options(*RESOLUTIONS)],
    }

    def _validate(self) -> ProfileSettings:
        validate_params(self)
        reference = self.reference_mm
        valid = (
            not isinstance(reference, str)
            and isinstance(reference, Sequence)
            and len(reference) == 2
            and all(is_real(r) and math.isfinite(float(r)) and r > 0 for r in reference)
            and reference[0] < reference[1]
        )
        if not valid:
            raise ParameterError(
                f"RimProfileExtractor: reference_mm={reference!r} is not valid; it must be (inner, outer) "
                "millimetres with 0 < inner < outer"
            )
        return ProfileSettings(
            float(self.edge_mm), (float(reference[0]), float(reference[1])), int(self.n_directions),
            float(self.bright_threshold), str(self.resolution),
        )

    def required_columns(self) -> tuple[str, ...]:
        """Lesion-table columns this extractor reads."""
        return BASE_COLUMNS + (("flair",) if self.flair else ())

    def cache_key(self) -> dict:
        """The settings the features depend on besides the files."""
        settings = self._validate()
        return {
            "edge_mm": settings.edge_mm,
            "reference_mm": list(settings.reference_mm),
            "n_directions": settings.n_directions,
            "bright_threshold": settings.bright_threshold,
            "flair": bool(self.flair),
            "volume": bool(self.volume),
            # keys without a resolution setting unchanged: "ignore" gives the earlier features
            **({"resolution": settings.resolution} if settings.resolution != "ignore" else {}),
        }

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """The feature names, in column order (see the module documentation)."""
        self._validate()
        resolved = RESOLUTION_FEATURES if self.resolution != "ignore" else ()
        names = [*QSM_FEATURES, *resolved, *(FLAIR_FEATURES if self.flair else ()), *(SIZE_FEATURES if self.volume else ())]
        return np.array(names, dtype=object)

    # -- per-subject work ---------------------------------------------------------------------
    def extract_subject(self, volumes: SubjectVolumes, notes: list[Note]) -> np.ndarray:
        """Features of the subject's distinct lesions (``volumes.task.lesion_ids``), float64 (k, F)."""
        settings = self._validate()
        out = np.full((len(volumes.task.lesion_ids), len(self.get_feature_names_out())), np.nan)
        voxel_mm3 = float(abs(np.linalg.det(volumes.affine[:3, :3])))
        lesions = referenced_lesions(volumes, settings.reference_mm, settings.reference_mm[1], bool(self.flair),
                                     "rim-profile features are NaN", notes)
        for row, lesion in lesions:
            values = profile_features(lesion.q, lesion.lesion, lesion.normal, lesion.distance_mm, lesion.points_mm,
                                      settings, lesion.spacing_mm)
            if self.flair:
                ring_level = float(np.median(lesion.flair[lesion.ring]))
                ratio = float(np.median(lesion.flair[lesion.lesion])) / ring_level if ring_level > 0 else math.nan
                values = np.append(values, ratio)
            if self.volume:
                values = np.append(values, math.log10(int(lesion.lesion.sum()) * voxel_mm3))
            out[row] = values
        return out
