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
  nonzero support, outside every lesion);
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

A lesion whose features cannot be measured gets NaN features and a
:class:`~rimclf.errors.DataWarning` naming subject and lesion: no voxel in the QSM support, a
lesion touching the edge of the volume (its edge and surroundings are cut), or fewer than
``MIN_REFERENCE_VOXELS`` normal-appearing voxels in its reference ring. The estimators impute NaN
(training medians).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from rimclf._validation import Bools, Interval, is_real, validate_params
from rimclf.errors import DataWarning, ParameterError
from rimclf.features._base import LesionExtractor
from rimclf.features._regions import signed_distance_mm
from rimclf.features._subject import (
    BASE_COLUMNS,
    Note,
    SubjectVolumes,
)

#: Median absolute deviation to standard deviation for normally distributed values.
MAD_TO_SD = 1.4826
#: Default inner and outer distance (mm) of the reference ring beyond the lesion boundary.
REFERENCE_MM = (3.0, 6.0)
#: A reference ring with fewer normal-appearing voxels than this gives NaN features.
MIN_REFERENCE_VOXELS = 20
#: At most this many normal-appearing voxels are used for the subject's spread and FLAIR level.
_MAX_SUBJECT_VOXELS = 400_000

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
FLAIR_FEATURES = ("rim_flair_ratio",)
SIZE_FEATURES = ("rim_log_volume_mm3",)


def fibonacci_directions(n: int) -> np.ndarray:
    """``n`` nearly uniformly spread unit vectors ``(n, 3)`` (a Fibonacci sphere)."""
    index = np.arange(n) + 0.5
    z = 1.0 - 2.0 * index / n
    radius = np.sqrt(np.clip(1.0 - z**2, 0.0, None))
    angle = np.pi * (3.0 - np.sqrt(5.0)) * index
    return np.stack([radius * np.cos(angle), radius * np.sin(angle), z], axis=1)


@dataclass(frozen=True)
class ProfileSettings:
    """The geometry of the profile (see the module documentation)."""

    edge_mm: float
    reference_mm: tuple[float, float]
    n_directions: int
    bright_threshold: float


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
) -> np.ndarray:
    """The QSM features of one lesion from its referenced QSM (``QSM_FEATURES`` order).

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

    core_median = _median(q[core])
    near_ring_median = _median(q[near_ring])
    edge_values = q[edge]
    edge_median = _median(edge_values)
    edge_p75 = _quantile(edge_values, 0.75)

    window = (lesion | normal) & (np.abs(distance_mm) <= 2 * w)
    window_values = q[window]
    if window_values.size:
        brightest = window_values >= np.quantile(window_values, 0.9)
        peak_depth = float(np.median(distance_mm[window][brightest]))
    else:
        peak_depth = math.nan

    directional = _directional_contrasts(q, edge, near_ring, core_median, near_ring_median, points_mm, lesion, settings)
    return np.array(
        [
            core_median,
            _median(q[inner_edge]),
            _median(q[outer_edge]),
            near_ring_median,
            _quantile(edge_values, 0.9),
            _quantile(q[near_ring], 0.9),
            edge_median - core_median,
            edge_median - near_ring_median,
            min(edge_p75 - core_median, edge_p75 - near_ring_median),
            peak_depth,
            *directional,
            float(np.mean(edge_values > settings.bright_threshold)) if edge_values.size else math.nan,
            _quantile(edge_values, 0.99),
            _quantile(q[reference], 0.95),
            _bright_flatness(q, edge, points_mm, lesion, settings.bright_threshold),
        ]
    )


def _bright_flatness(q, edge, points_mm, lesion, threshold) -> float:
    """How sheet-like (1) rather than line-like (0) the directions of the bright edge voxels are.

    The second moment ``T = sum w u u^T / sum w`` of the unit directions ``u`` (from the lesion
    centroid) of the edge voxels with ``q > threshold``, weighted by ``w = q - threshold``, has
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
    weights = q[bright] - threshold
    moment = (units * weights) @ units.T / weights.sum()
    e3, e2, _ = np.linalg.eigvalsh(moment)
    return float(e3 / e2) if e2 > 0 else 0.0


def _directional_contrasts(q, edge, near_ring, core_median, near_ring_median, points_mm, lesion, settings):
    """(mean positive contrast, coverage, strong coverage, concentration) over direction bins."""
    directions = fibonacci_directions(settings.n_directions)
    centroid = points_mm[:, lesion].mean(axis=1)

    def bins_of(mask: np.ndarray) -> np.ndarray:
        offsets = points_mm[:, mask] - centroid[:, None]
        return np.argmax(directions @ offsets, axis=0)

    edge_bins, edge_values = bins_of(edge), q[edge]
    ring_bins, ring_values = bins_of(near_ring), q[near_ring]
    contrasts, used = [], []
    for b in range(settings.n_directions):
        values = edge_values[edge_bins == b]
        if values.size < 2:
            continue
        ring = ring_values[ring_bins == b]
        surroundings = float(np.median(ring)) if ring.size else near_ring_median
        contrasts.append(float(np.quantile(values, 0.75)) - max(core_median, surroundings))
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


def lesion_crop(
    box: tuple[slice, ...] | None, shape: tuple[int, ...], spacing_mm: np.ndarray, reach_mm: float
) -> tuple[slice, ...] | None:
    """A lesion's bounding box (from :func:`scipy.ndimage.find_objects`) grown by ``reach_mm``
    and clipped to the volume; None when the lesion has no voxel or touches the volume's edge."""
    if box is None:
        return None
    start = np.array([s.start for s in box])
    stop = np.array([s.stop for s in box])
    if (start == 0).any() or (stop == np.asarray(shape)).any():
        return None
    reach = np.ceil(reach_mm / np.asarray(spacing_mm, dtype=float)).astype(int) + 1
    low, high = np.maximum(start - reach, 0), np.minimum(stop + reach, shape)
    return tuple(slice(a, b) for a, b in zip(low, high))


def reference_ring(
    labels: np.ndarray, normal: np.ndarray, lesion_id: int, spacing_mm: np.ndarray, reference_mm: tuple[float, float],
    crop: tuple[slice, ...],
) -> np.ndarray:
    """The reference ring of a lesion within ``crop``: normal-appearing voxels between
    ``reference_mm[0]`` and ``reference_mm[1]`` mm outside it (boolean, the crop's shape)."""
    distance = signed_distance_mm(labels[crop] == lesion_id, spacing_mm)
    return normal[crop] & (distance > reference_mm[0]) & (distance <= reference_mm[1])


class _SubjectReference:
    """The subject-level quantities of the referencing: QSM spread and FLAIR level of normal tissue."""

    def __init__(self, volumes: SubjectVolumes, with_flair: bool) -> None:
        self.normal = volumes.support & (volumes.labels == 0)
        values = volumes.qsm[self.normal]
        values = values[:: max(1, values.size // _MAX_SUBJECT_VOXELS)]
        self.qsm_spread = MAD_TO_SD * float(np.median(np.abs(values - np.median(values)))) if values.size else 0.0
        self.flair = volumes.flair_on_qsm_grid if with_flair else None


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
    ) -> None:
        self.edge_mm = edge_mm
        self.reference_mm = reference_mm
        self.n_directions = n_directions
        self.bright_threshold = bright_threshold
        self.flair = flair
        self.volume = volume

    _parameter_constraints = {
        "edge_mm": [Interval(float, 0, None, closed="neither")],
        "n_directions": [Interval(int, 6)],
        "bright_threshold": [Interval(float, 0, None, closed="neither")],
        "flair": [Bools()],
        "volume": [Bools()],
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
            float(self.bright_threshold),
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
        }

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """The feature names, in column order (see the module documentation)."""
        self._validate()
        names = [*QSM_FEATURES, *(FLAIR_FEATURES if self.flair else ()), *(SIZE_FEATURES if self.volume else ())]
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
                                      settings)
            if self.flair:
                ring_level = float(np.median(lesion.flair[lesion.ring]))
                ratio = float(np.median(lesion.flair[lesion.lesion])) / ring_level if ring_level > 0 else math.nan
                values = np.append(values, ratio)
            if self.volume:
                values = np.append(values, math.log10(int(lesion.lesion.sum()) * voxel_mm3))
            out[row] = values
        return out


@dataclass(frozen=True)
class ReferencedLesion:
    """One lesion's crop with its QSM referenced to its ring (see the module documentation).

    Attributes
    ----------
    q : ndarray
        ``(QSM - median QSM of the reference ring) / the subject's robust QSM spread``.
    lesion, normal, ring : ndarray of bool
        This lesion's voxels; normal-appearing voxels (support, outside every lesion); its
        reference ring.
    distance_mm : ndarray
        Signed distance to the lesion boundary (mm, negative inside).
    points_mm : ndarray of shape (3,) + q.shape
        Voxel centres in world millimetres, up to a translation (offsets between them are exact).
    flair : ndarray or None
        The FLAIR on the QSM grid, when asked for.
    """

    q: np.ndarray
    lesion: np.ndarray
    normal: np.ndarray
    ring: np.ndarray
    distance_mm: np.ndarray
    points_mm: np.ndarray
    flair: np.ndarray | None


def referenced_lesions(
    volumes: SubjectVolumes,
    reference_mm: tuple[float, float],
    reach_mm: float,
    with_flair: bool,
    what: str,
    notes: list[Note],
) -> Iterator[tuple[int, ReferencedLesion]]:
    """``(row, referenced lesion)`` of each of the subject's lesions that can be measured.

    The one referencing of the QSM around a lesion, shared by the rim-profile features and the
    surface maps. Each lesion's crop reaches ``reach_mm`` beyond its bounding box. A lesion that
    cannot be measured (no voxel with QSM data, touching the volume's edge, fewer than
    ``MIN_REFERENCE_VOXELS`` ring voxels; or a subject whose normal-appearing QSM has no spread)
    is skipped with a :class:`~rimclf.errors.DataWarning` note ending "its {what}" (e.g.
    ``what="rim-profile features are NaN"``).
    """
    task = volumes.task
    if not len(task.lesion_ids):
        return
    reference = _SubjectReference(volumes, with_flair=with_flair)
    if not reference.qsm_spread > 0:
        notes.append((DataWarning, f"sub-{task.participant_id}: the QSM of normal-appearing tissue has no spread; "
                                   f"its {what}"))
        return
    labels = volumes.labels
    spacing = np.asarray(volumes.spacing_mm, dtype=float)
    objects = ndimage.find_objects(labels, max_label=int(task.lesion_ids.max()))
    rotation = volumes.affine[:3, :3]
    for row, lesion_id in enumerate(task.lesion_ids):
        where = f"sub-{task.participant_id} lesion {int(lesion_id)}"
        box = objects[int(lesion_id) - 1] if 0 < lesion_id <= len(objects) else None
        crop = lesion_crop(box, labels.shape, spacing, max(reach_mm, reference_mm[1]))
        if crop is None:
            problem = "has no voxel" if box is None else "touches the edge of the volume, so its edge and surroundings are cut"
            notes.append((DataWarning, f"{where}: the lesion {problem}; its {what}"))
            continue
        lesion = labels[crop] == lesion_id
        if not (lesion & volumes.support[crop]).any():
            notes.append((DataWarning, f"{where}: the lesion has no voxel with QSM data; its {what}"))
            continue
        normal = reference.normal[crop]
        distance = signed_distance_mm(lesion, spacing)
        ring = normal & (distance > reference_mm[0]) & (distance <= reference_mm[1])
        if int(ring.sum()) < MIN_REFERENCE_VOXELS:
            notes.append((DataWarning, f"{where}: only {int(ring.sum())} normal-appearing voxels between "
                                       f"{reference_mm[0]:g} and {reference_mm[1]:g} mm around the "
                                       f"lesion; its {what}"))
            continue
        qsm = volumes.qsm[crop]
        q = (qsm - float(np.median(qsm[ring]))) / reference.qsm_spread
        start = np.array([s.start for s in crop], dtype=float)
        index = np.indices(lesion.shape, dtype=float) + start.reshape(3, 1, 1, 1)
        points = np.tensordot(rotation, index, axes=(1, 0))
        flair = reference.flair[crop] if with_flair else None
        yield row, ReferencedLesion(q, lesion, normal, ring, distance, points, flair)
