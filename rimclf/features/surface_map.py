"""Surface maps: each lesion's surroundings unwrapped into a depth x direction image.

A paramagnetic rim is a band of raised susceptibility at a fixed depth (about 0 mm) from the lesion
boundary, over part or all of the lesion's surface. Unwrapping the lesion's neighbourhood by
*signed distance to the boundary* (rows) and *direction from the centroid* (columns) turns that
shell into a straight bright row, whatever the lesion's size and shape, so that a small network
sees it at once (issue #24: "an input that makes the rim easy to see").

Map
---
For a lesion, the QSM is referenced exactly as for the rim-profile features
(:func:`rimclf.features.rim_profile.referenced_lesions`): ``q = (QSM - m_ref) / s_subject``, with
``m_ref`` the median of the lesion's reference ring (normal-appearing tissue 3-6 mm outside) and
``s_subject`` the subject's robust QSM spread; 0 is the ring's level. Every voxel of the lesion
and every normal-appearing voxel around it (inside the QSM support, outside every lesion) with a
signed distance ``d`` in ``depth_mm = (low, high)`` (negative inside, mm) falls into

- a **depth bin**: ``n_depths`` bins of equal width between ``low`` and ``high``;
- a **direction bin**: the nearest of ``n_directions`` nearly uniform unit vectors (a Fibonacci
  sphere, :func:`~rimclf.features.rim_profile.fibonacci_directions`) to the voxel's direction from
  the lesion's centroid, both in world millimetres.

Channels of the ``(n_channels, n_depths, n_directions)`` map (``channels=``):

``"qsm"``
    median ``q`` of the cell's voxels; 0 (the ring's level) in an empty cell.
``"coverage"``
    ``min(n, MIN_CELL_VOXELS) / MIN_CELL_VOXELS`` for a cell of ``n`` voxels: 0 where nothing was
    measured (thick slices, another lesion, outside the brain), 1 where the median rests on at
    least ``MIN_CELL_VOXELS`` voxels.
``"flair"``
    median FLAIR of the cell over the median FLAIR of the reference ring, minus 1 (0 in an empty
    cell).

Geometry is in world millimetres: the same anatomy stored with its voxel axes permuted or
flipped (its affine saying so) gives the same map, and another grid nearly the same one. A QSM
offset or a positive scale leaves it unchanged. Direction columns follow the fixed world
directions, so a rotation of the head permutes them: the network branch that reads the maps
(:class:`rimclf.nn.SurfaceMapEncoder`) pools over directions, so that order does not matter to it.

A lesion that cannot be measured (touching the volume's edge, too few ring voxels, no QSM data:
the same rules as the rim-profile features) gets an all-zero map (coverage 0) and a
:class:`~rimclf.errors.DataWarning`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from rimclf._validation import Interval, is_real, validate_params
from rimclf.errors import ParameterError
from rimclf.features._base import LesionExtractor
from rimclf.features._output import DictOutputMixin
from rimclf.features._subject import BASE_COLUMNS, Note, SubjectVolumes
from rimclf.features.rim_profile import REFERENCE_MM, ReferencedLesion, fibonacci_directions, referenced_lesions
from rimclf.features._rim_directions import direction_bins

#: Channels a surface map may hold.
SURFACE_CHANNELS = ("qsm", "coverage", "flair")
#: A cell's coverage is 1 from this many voxels on.
MIN_CELL_VOXELS = 4


def cell_medians(cells: np.ndarray, values: np.ndarray, n_cells: int) -> tuple[np.ndarray, np.ndarray]:
    """Median of ``values`` per cell index (NaN for an empty cell) and the count of each cell.

    Examples
    --------
    >>> medians, counts = cell_medians(np.array([0, 0, 0, 2]), np.array([3.0, 1.0, 2.0, 5.0]), 3)
    >>> medians.tolist(), counts.tolist()
    ([2.0, nan, 5.0], [3, 0, 1])
    """
    order = np.lexsort((values, cells))
    ordered = values[order]
    counts = np.bincount(cells, minlength=n_cells)
    starts = np.cumsum(counts) - counts
    filled = counts > 0
    low = starts[filled] + (counts[filled] - 1) // 2
    high = starts[filled] + counts[filled] // 2
    medians = np.full(n_cells, np.nan)
    medians[filled] = 0.5 * (ordered[low] + ordered[high])
    return medians, counts


def surface_map(
    lesion: ReferencedLesion,
    depth_edges_mm: np.ndarray,
    directions: np.ndarray,
    channels: tuple[str, ...],
) -> np.ndarray:
    """The ``(len(channels), n_depths, n_directions)`` map of one referenced lesion (float32).

    Parameters
    ----------
    lesion : ReferencedLesion
        From :func:`~rimclf.features.rim_profile.referenced_lesions`.
    depth_edges_mm : ndarray of shape (n_depths + 1,)
        Increasing signed-distance bin edges (mm); a voxel at ``d`` falls in bin ``i`` when
        ``edges[i] <= d < edges[i + 1]``.
    directions : ndarray of shape (n_directions, 3)
        Unit vectors in world space.
    channels : tuple of str
        Among :data:`SURFACE_CHANNELS`.
    """
    n_depths, n_directions = len(depth_edges_mm) - 1, len(directions)
    d = lesion.distance_mm
    used = (lesion.lesion | lesion.normal) & (d >= depth_edges_mm[0]) & (d < depth_edges_mm[-1])
    depth_bin = np.clip(np.searchsorted(depth_edges_mm, d[used], side="right") - 1, 0, n_depths - 1)
    direction_bin = direction_bins(lesion.points_mm, lesion.lesion, used, directions)
    cells = depth_bin * n_directions + direction_bin
    n_cells = n_depths * n_directions
    out = np.zeros((len(channels), n_depths, n_directions), dtype=np.float32)
    counts = np.bincount(cells, minlength=n_cells)
    for index, channel in enumerate(channels):
        if channel == "coverage":
            values = np.minimum(counts, MIN_CELL_VOXELS) / MIN_CELL_VOXELS
        elif channel == "qsm":
            values, _ = cell_medians(cells, lesion.q[used], n_cells)
        else:
            ring_level = float(np.median(lesion.flair[lesion.ring]))
            if not ring_level > 0:
                continue  # no FLAIR level to compare with: the channel stays 0
            values, _ = cell_medians(cells, lesion.flair[used] / ring_level - 1.0, n_cells)
        out[index] = np.nan_to_num(values, nan=0.0).reshape(n_depths, n_directions)
    return out


class SurfaceMapExtractor(DictOutputMixin, LesionExtractor, auto_wrap_output_keys=None):
    """Each lesion's referenced QSM on a depth x direction grid around its boundary.

    See :mod:`rimclf.features.surface_map` for the map's definition. The image block
    ``"surface_map"`` of :mod:`rimclf.feature_registry`, read by the network's surface-map branch
    (``ModelConfig(branches="both", image="surface_map")``).

    Parameters
    ----------
    depth_mm : (float, float), default=(-3.0, 4.0)
        Signed distances (mm, negative inside the lesion) the map spans.
    n_depths : int, default=7
        Depth bins (rows) of equal width (1 mm by default).
    n_directions : int, default=32
        Direction bins (columns): nearly uniform world directions from the lesion's centroid.
    channels : tuple of {"qsm", "coverage", "flair"}, default=("qsm", "coverage")
        The map's channels, in this order.
    reference_mm : (float, float), default=(3.0, 6.0)
        The reference ring (as :class:`~rimclf.features.RimProfileExtractor`'s).

    Notes
    -----
    ``transform`` returns float32 ``(n_lesions, n_channels, n_depths, n_directions)``, rows in table
    order. Nothing is learnt: ``fit`` checks the parameters.

    Examples
    --------
    >>> from rimclf.features import SurfaceMapExtractor
    >>> SurfaceMapExtractor(n_depths=7, n_directions=32).output_shape()
    (2, 7, 32)
    >>> maps = SurfaceMapExtractor().fit_transform(table)  # doctest: +SKIP
    """

    _output_description = "surface maps of shape (n_lesions, n_channels, n_depths, n_directions), images rather than columns"
    _fill = 0.0
    _dtype = np.float32

    def __init__(
        self,
        *,
        depth_mm: tuple[float, float] = (-3.0, 4.0),
        n_depths: int = 7,
        n_directions: int = 32,
        channels: tuple[str, ...] = ("qsm", "coverage"),
        reference_mm: tuple[float, float] = REFERENCE_MM,
    ) -> None:
        self.depth_mm = depth_mm
        self.n_depths = n_depths
        self.n_directions = n_directions
        self.channels = channels
        self.reference_mm = reference_mm

    _parameter_constraints = {
        "n_depths": [Interval(int, 1, 256)],
        "n_directions": [Interval(int, 6, 4096)],
    }

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = []  # float32 maps whatever the input
        return tags

    def _validate(self) -> tuple[tuple[float, float], tuple[float, float], tuple[str, ...]]:
        validate_params(self)
        depth = _pair(self.depth_mm, "depth_mm", positive=False)
        reference = _pair(self.reference_mm, "reference_mm", positive=True)
        channels = self.channels
        if isinstance(channels, str) or not isinstance(channels, Sequence) or not channels:
            raise ParameterError(
                f"SurfaceMapExtractor: channels={channels!r} is not valid; give a non-empty tuple of {SURFACE_CHANNELS}"
            )
        unknown = [c for c in channels if c not in SURFACE_CHANNELS]
        if unknown or len(set(channels)) != len(channels):
            problem = f"{unknown} not in the choices" if unknown else "a channel is repeated; choose among"
            raise ParameterError(f"SurfaceMapExtractor: channels={tuple(channels)!r} is not valid: {problem} {SURFACE_CHANNELS}")
        return depth, reference, tuple(channels)

    def required_columns(self) -> tuple[str, ...]:
        """Lesion-table columns this extractor reads."""
        _, _, channels = self._validate()
        return BASE_COLUMNS + (("flair",) if "flair" in channels else ())

    def cache_key(self) -> dict:
        """The settings the maps depend on besides the files."""
        depth, reference, channels = self._validate()
        return {"depth_mm": list(depth), "n_depths": int(self.n_depths), "n_directions": int(self.n_directions),
                "channels": list(channels), "reference_mm": list(reference)}

    def output_shape(self) -> tuple[int, ...]:
        """``(n_channels, n_depths, n_directions)``: one lesion's map."""
        _, _, channels = self._validate()
        return (len(channels), int(self.n_depths), int(self.n_directions))

    def extract_subject(self, volumes: SubjectVolumes, notes: list[Note]) -> np.ndarray:
        """Maps of the subject's distinct lesions (``volumes.task.lesion_ids``), float32 (k, C, D, K)."""
        depth, reference, channels = self._validate()
        out = np.zeros((len(volumes.task.lesion_ids), *self.output_shape()), dtype=np.float32)
        edges = np.linspace(depth[0], depth[1], int(self.n_depths) + 1)
        directions = fibonacci_directions(int(self.n_directions))
        lesions = referenced_lesions(volumes, reference, max(abs(depth[0]), abs(depth[1])), "flair" in channels,
                                     "surface map is zero", notes)
        for row, lesion in lesions:
            out[row] = surface_map(lesion, edges, directions, channels)
        return out


def _pair(value: object, name: str, *, positive: bool) -> tuple[float, float]:
    """``(low, high)`` millimetres with ``low < high`` (both > 0 when ``positive``), or ParameterError."""
    valid = (
        not isinstance(value, str)
        and isinstance(value, Sequence)
        and len(value) == 2
        and all(is_real(v) and math.isfinite(float(v)) and (v > 0 or not positive) for v in value)
        and value[0] < value[1]
    )
    if not valid:
        rule = "0 < low < high" if positive else "low < high"
        raise ParameterError(f"SurfaceMapExtractor: {name}={value!r} is not valid; it must be (low, high) millimetres with {rule}")
    return float(value[0]), float(value[1])
