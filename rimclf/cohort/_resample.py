"""Lesion masks on another grid than the QSM: put them on the QSM grid through the affines.

Lesion segmentation tools (LST-AI, SAMSEG, nnU-Net models) write their masks on the grid of the
FLAIR or T1 they segmented. When such an image is registered to the QSM (same scanner, or world,
coordinates), its mask can be carried onto the QSM grid through the two voxel-to-world affines:

- an instance-label mask (labels 1..K): each QSM voxel takes the label of the mask voxel nearest
  to its centre, so lesion ids (and ``rims.tsv``) keep their meaning;
- a binary mask (0/1): each QSM voxel takes the fraction of its volume that the mask covers
  (trilinear interpolation of the 0/1 mask at points spread evenly over the QSM voxel, as many per
  axis as mask voxels fit along that edge) and is lesion when that fraction is at least 0.5; the
  caller then splits it into lesions by connected components, as for a mask on the QSM grid.

Everything happens in world coordinates, so oblique and flipped grids work. A mask on the QSM grid
(same shape, affines equal within :data:`rimclf._nifti.AFFINE_TOLERANCE_MM`) is returned as it is.
Lesion voxels outside the QSM's field of view are lost: counted in the log line, with a
:class:`~rimclf.errors.DataWarning` above :data:`OUTSIDE_WARNING_FRACTION` of them.
"""

from __future__ import annotations

import itertools
import os
import warnings

import numpy as np
from scipy import ndimage

from rimclf._nifti import AFFINE_TOLERANCE_MM, voxel_sizes
from rimclf.errors import CohortError, DataWarning

#: A binary mask's partial-volume fraction at or above which a QSM voxel is lesion.
FRACTION_THRESHOLD = 0.5

#: Above this fraction of a mask's lesion voxels outside the QSM's field of view, resampling warns
#: (:class:`~rimclf.errors.DataWarning`) instead of only logging the loss. A QSM slab legitimately
#: cuts off part of a whole-brain mask, so this is no error; losing most of the lesions, though,
#: more often means a wrong affine (e.g. a mask saved with an identity affine) or a mask not
#: registered to the QSM.
OUTSIDE_WARNING_FRACTION = 0.5

#: At most this many sample points per axis of a QSM voxel (the fraction of a voxel much larger
#: than the mask's voxels needs no more to be accurate to a few percent).
MAX_SUBSAMPLES = 4

#: Points per batch (memory: about 100 bytes each).
_CHUNK_POINTS = 1 << 21


def same_grid(shape_a, affine_a, shape_b, affine_b) -> bool:
    """Whether two images share one voxel grid: same 3D shape, affines equal within 1e-3 mm."""
    if tuple(shape_a) != tuple(shape_b):
        return False
    return float(np.abs(np.asarray(affine_a, float) - np.asarray(affine_b, float)).max()) <= AFFINE_TOLERANCE_MM


def describe_grid(shape, affine) -> str:
    """A grid in words for tables and logs, e.g. ``"182x218x182 at 1x1x1 mm"``."""
    sizes = "x".join(f"{size:.3g}" for size in voxel_sizes(affine))
    return "x".join(str(int(n)) for n in shape) + f" at {sizes} mm"


def _corners(shape, affine) -> np.ndarray:
    """World coordinates (8, 3) of the outer corners of a grid (voxel edges, not centres)."""
    edges = [(-0.5, n - 0.5) for n in shape]
    index = np.array(list(itertools.product(*edges)))
    affine = np.asarray(affine, float)
    return index @ affine[:3, :3].T + affine[:3, 3]


def fields_of_view_overlap(shape_a, affine_a, shape_b, affine_b) -> bool:
    """Whether the volumes covered by two grids (parallelepipeds in world space) share any volume.

    Exact for oblique grids: the separating-axis test over both grids' face normals and the
    cross products of their edges. Grids that only touch do not overlap.

    Examples
    --------
    >>> import numpy as np
    >>> fields_of_view_overlap((10, 10, 10), np.eye(4), (10, 10, 10), np.eye(4))
    True
    >>> far = np.eye(4); far[0, 3] = 50.0
    >>> fields_of_view_overlap((10, 10, 10), np.eye(4), (10, 10, 10), far)
    False
    """
    corners_a, corners_b = _corners(shape_a, affine_a), _corners(shape_b, affine_b)
    edges_a, edges_b = np.asarray(affine_a, float)[:3, :3].T, np.asarray(affine_b, float)[:3, :3].T
    axes = [np.cross(e[i], e[j]) for e in (edges_a, edges_b) for i, j in ((0, 1), (1, 2), (0, 2))]
    axes += [np.cross(a, b) for a in edges_a for b in edges_b]
    for axis in axes:
        length = float(np.linalg.norm(axis))
        if length < 1e-9:  # parallel edges: no new axis
            continue
        axis = axis / length
        a, b = corners_a @ axis, corners_b @ axis
        if a.max() <= b.min() + 1e-6 or b.max() <= a.min() + 1e-6:
            return False
    return True


def _subsample_offsets(source_affine: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Offsets (m, 3), in target voxels, of points spread evenly over a target voxel: per axis as
    many as source voxels fit along that edge (at least 1, at most :data:`MAX_SUBSAMPLES`)."""
    edges_in_source = np.linalg.inv(source_affine)[:3, :3] @ affine[:3, :3]  # column a: target edge a in source voxels
    counts = np.clip(np.ceil(np.linalg.norm(edges_in_source, axis=0) - 1e-6), 1, MAX_SUBSAMPLES).astype(int)
    per_axis = [(np.arange(n) + 0.5) / n - 0.5 for n in counts]
    return np.array(list(itertools.product(*per_axis)))


def _target_box(source: np.ndarray, source_affine, shape, affine) -> tuple[np.ndarray, np.ndarray] | None:
    """Index bounds [low, high) of the target voxels that can touch a nonzero source voxel."""
    nonzero = np.argwhere(source)
    if not len(nonzero):
        return None
    low, high = nonzero.min(axis=0) - 1.0, nonzero.max(axis=0) + 1.0  # one voxel of interpolation support
    corners = np.array(list(itertools.product(*zip(low, high))))
    to_target = np.linalg.inv(affine) @ source_affine
    in_target = corners @ to_target[:3, :3].T + to_target[:3, 3]
    first = np.maximum(np.floor(in_target.min(axis=0)) - 1, 0).astype(int)
    stop = np.minimum(np.ceil(in_target.max(axis=0)) + 2, shape).astype(int)
    return (first, stop) if np.all(stop > first) else None


def resample_labels(labels: np.ndarray, source_affine, shape, affine, *, binary: bool) -> np.ndarray:
    """Put a lesion mask onto another grid of the same world space.

    Parameters
    ----------
    labels : ndarray of int, shape (X, Y, Z)
        The mask on its own grid: instance labels, or 0/1 when ``binary``.
    source_affine : ndarray of shape (4, 4)
        The mask's voxel-to-world affine.
    shape : tuple of 3 ints
        The target grid's shape (the QSM's).
    affine : ndarray of shape (4, 4)
        The target grid's voxel-to-world affine (the QSM's).
    binary : bool
        True: the result is 1 where at least :data:`FRACTION_THRESHOLD` of a target voxel's volume
        lies in the mask (``labels > 0``), else 0. False: each target voxel takes the label of the
        mask voxel nearest to its centre. Target voxels outside the mask's field of view are 0.

    Returns
    -------
    ndarray of int32, shape ``shape``

    Examples
    --------
    >>> import numpy as np
    >>> fine = np.zeros((8, 8, 8), dtype=np.int32)
    >>> fine[2:6, 2:6, 2:6] = 1                         # a 4 mm cube on a 1 mm grid
    >>> coarse = np.diag([2.0, 2.0, 2.0, 1.0])          # 2 mm voxels, centres at 0.5, 2.5, ... mm:
    >>> coarse[:3, 3] = 0.5                             # edges at -0.5, 1.5, ... mm, as the fine grid's
    >>> resample_labels(fine, np.eye(4), (4, 4, 4), coarse, binary=True)[:, 1, 1].tolist()
    [0, 1, 1, 0]
    """
    source_affine, affine = np.asarray(source_affine, float), np.asarray(affine, float)
    shape = tuple(int(n) for n in shape)
    out = np.zeros(shape, dtype=np.int32)
    source = (labels > 0).astype(np.float32) if binary else np.asarray(labels)
    box = _target_box(source, source_affine, shape, affine)
    if box is None:
        return out
    first, stop = box
    to_source = np.linalg.inv(source_affine) @ affine
    offsets = _subsample_offsets(source_affine, affine) if binary else np.zeros((1, 3))
    plane = int(np.prod(stop[1:] - first[1:]))
    step = max(1, _CHUNK_POINTS // (plane * len(offsets)))
    source_shape = np.array(source.shape)[:, None]
    for start in range(first[0], stop[0], step):
        end = min(start + step, stop[0])
        index = np.mgrid[start:end, first[1] : stop[1], first[2] : stop[2]].reshape(3, -1).astype(float)
        if binary:
            fraction = np.zeros(index.shape[1])
            for offset in offsets:
                points = to_source[:3, :3] @ (index + offset[:, None]) + to_source[:3, 3:4]
                fraction += ndimage.map_coordinates(source, points, order=1, mode="grid-constant", cval=0.0, prefilter=False)
            values = (fraction / len(offsets) >= FRACTION_THRESHOLD - 1e-6).astype(np.int32)
        else:
            nearest = np.floor(to_source[:3, :3] @ index + to_source[:3, 3:4] + 0.5).astype(np.int64)
            inside = np.all((nearest >= 0) & (nearest < source_shape), axis=0)
            values = np.zeros(index.shape[1], dtype=np.int32)
            values[inside] = source[tuple(nearest[:, inside])]
        out[start:end, first[1] : stop[1], first[2] : stop[2]] = values.reshape(end - start, *(stop[1:] - first[1:]))
    return out


def lesion_voxels_outside(labels: np.ndarray, source_affine, shape, affine) -> tuple[int, int]:
    """``(outside, total)``: how many lesion voxels of a mask have their centre outside a grid's field of view."""
    nonzero = np.argwhere(labels > 0).astype(float)
    if not len(nonzero):
        return 0, 0
    to_target = np.linalg.inv(np.asarray(affine, float)) @ np.asarray(source_affine, float)
    in_target = nonzero @ to_target[:3, :3].T + to_target[:3, 3]
    inside = np.all((in_target >= -0.5) & (in_target <= np.asarray(shape) - 0.5), axis=1)
    return int((~inside).sum()), len(nonzero)


def labels_on_qsm_grid(
    labels: np.ndarray,
    mask_affine,
    qsm_shape,
    qsm_affine,
    *,
    binary: bool,
    mask_path: str | os.PathLike,
    qsm_path: str | os.PathLike,
    warn: bool = False,
) -> tuple[np.ndarray, str | None]:
    """A lesion mask on the QSM grid: itself when it is there already, else resampled.

    Parameters
    ----------
    labels : ndarray of int, shape (X, Y, Z)
        The mask as read (binary or instance labels), on its own grid.
    mask_affine, qsm_affine : array-like of shape (4, 4)
        Voxel-to-world affines of the mask and of the QSM.
    qsm_shape : tuple of int
        The QSM's spatial shape.
    binary : bool
        Resample as a binary mask (partial-volume fraction) rather than instance labels (nearest).
    mask_path, qsm_path : str or path-like
        The two files, for messages.
    warn : bool, default=False
        Issue a :class:`~rimclf.errors.DataWarning` (see :func:`warn_if_mostly_outside`) when more
        than :data:`OUTSIDE_WARNING_FRACTION` of the lesion voxels lie outside the QSM's field of
        view. :func:`rimclf.load_cohort` asks for it; later readers of the same mask do not, so
        that it is said once per mask.

    Returns
    -------
    labels : ndarray of int, shape ``qsm_shape``
        ``labels`` itself (same grid), or :func:`resample_labels`'s result.
    message : str or None
        None on the same grid; else one line for the log saying what was done (grids, method, and
        how many lesion voxels lay outside the QSM's field of view).

    Raises
    ------
    CohortError
        When the mask's field of view does not overlap the QSM's, or none of its lesion voxels lies
        in the QSM's (naming both files).
    """
    if same_grid(labels.shape, mask_affine, qsm_shape, qsm_affine):
        return labels, None
    mask_name, qsm_name = os.path.basename(mask_path), os.path.basename(qsm_path)
    source_grid = describe_grid(labels.shape, mask_affine)
    if not fields_of_view_overlap(labels.shape, mask_affine, qsm_shape, qsm_affine):
        raise CohortError(
            f"{mask_path}: its field of view ({source_grid}) does not overlap {qsm_name} in world space; the "
            "lesion mask must be on the QSM grid or on the grid of an image registered to the QSM (same world "
            "coordinates)"
        )
    outside, total = lesion_voxels_outside(labels, mask_affine, qsm_shape, qsm_affine)
    if total and outside == total:
        raise CohortError(
            f"{mask_path}: none of its {total} lesion voxels lies in the field of view of {qsm_name}; the lesion "
            "mask must be on the grid of an image registered to the QSM (same world coordinates)"
        )
    if warn:
        warn_if_mostly_outside(outside, total, mask_path=mask_path, qsm_name=qsm_name)
    how = "partial-volume fraction >= 0.5, then connected components" if binary else "nearest neighbour"
    message = (
        f"{mask_name}: the lesion mask is on another grid ({source_grid}) than {qsm_name}; resampled onto the "
        f"QSM grid ({describe_grid(qsm_shape, qsm_affine)}) by {how}"
        + (f"; {outside} of its {total} lesion voxels lie outside the QSM's field of view" if outside else "")
    )
    return resample_labels(labels, mask_affine, qsm_shape, qsm_affine, binary=binary), message


def warn_if_mostly_outside(outside: int, total: int, *, mask_path: str | os.PathLike, qsm_name: str) -> None:
    """A :class:`~rimclf.errors.DataWarning` when more than :data:`OUTSIDE_WARNING_FRACTION` of a
    mask's ``total`` lesion voxels (``outside`` of them) lie outside the QSM's field of view.

    ``stacklevel`` points at the caller of :func:`rimclf.load_cohort` (this function, then
    :func:`labels_on_qsm_grid` and the cohort's per-scan reader, lie between).
    """
    if total and outside > OUTSIDE_WARNING_FRACTION * total:
        warnings.warn(
            f"{mask_path}: {outside} of its {total} lesion voxels ({100.0 * outside / total:.0f} %) lie outside the "
            f"field of view of {qsm_name} and are lost; the mask's affine may be wrong (e.g. saved with an identity "
            "affine) or the mask not registered to the QSM (unless the QSM is a slab that covers only part of it)",
            DataWarning, stacklevel=5,
        )
