"""The referencing of the QSM around each lesion, shared by the rim-profile features and the
surface maps (see :mod:`rimclf.features.rim_profile`, *Referencing*).

``q(v) = (QSM(v) - m_ref) / s_subject``: ``m_ref`` the median QSM of the lesion's reference ring
(normal-appearing voxels ``reference_mm[0] < d <= reference_mm[1]`` mm outside it), ``s_subject``
1.4826 x the median absolute deviation of the QSM over the subject's normal-appearing tissue.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from rimclf.errors import DataWarning
from rimclf.features._regions import signed_distance_mm
from rimclf.features._subject import Note, SubjectVolumes

#: Median absolute deviation to standard deviation for normally distributed values.
MAD_TO_SD = 1.4826
#: Default inner and outer distance (mm) of the reference ring beyond the lesion boundary.
REFERENCE_MM = (3.0, 6.0)
#: A reference ring with fewer normal-appearing voxels than this gives NaN features.
MIN_REFERENCE_VOXELS = 20
#: At most this many normal-appearing voxels are used for the subject's spread.
_MAX_SUBJECT_VOXELS = 400_000


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


def reference_ring(normal: np.ndarray, distance_mm: np.ndarray, reference_mm: tuple[float, float]) -> np.ndarray:
    """The reference ring of a lesion within its crop: the normal-appearing voxels (``normal``,
    cropped) between ``reference_mm[0]`` and ``reference_mm[1]`` mm outside it, from its signed
    distance (:func:`lesion_distance_mm`). Boolean, the crop's shape."""
    return normal & (distance_mm > reference_mm[0]) & (distance_mm <= reference_mm[1])


def lesion_distance_mm(volumes: SubjectVolumes, lesion_id: int, crop: tuple[slice, ...]) -> np.ndarray:
    """Signed distance (mm, negative inside) to the boundary of lesion ``lesion_id`` within ``crop``
    (:func:`signed_distance_mm`), computed once per subject and crop for every extractor that asks
    (:meth:`~rimclf.features._subject.SubjectVolumes.shared`; read-only)."""
    key = ("referencing", "distance", int(lesion_id), tuple((s.start, s.stop) for s in crop))
    spacing = np.asarray(volumes.spacing_mm, dtype=float)
    return volumes.shared(key, lambda: signed_distance_mm(volumes.labels[crop] == lesion_id, spacing))


def normal_tissue(volumes: SubjectVolumes) -> tuple[np.ndarray, float]:
    """The subject's normal-appearing voxels (support, outside every lesion) and the robust spread
    (1.4826 x MAD, of at most ``_MAX_SUBJECT_VOXELS`` of them) of their QSM; computed once per
    subject for every extractor that asks (read-only)."""
    return volumes.shared(("referencing", "normal tissue"), lambda: _normal_tissue(volumes))


def _normal_tissue(volumes: SubjectVolumes) -> tuple[np.ndarray, float]:
    """The subject's normal-appearing voxels (support, outside every lesion) and the robust spread
    (1.4826 x MAD) of their QSM."""
    normal = volumes.support & (volumes.labels == 0)
    values = volumes.qsm[normal]
    values = values[:: max(1, values.size // _MAX_SUBJECT_VOXELS)]
    spread = MAD_TO_SD * float(np.median(np.abs(values - np.median(values)))) if values.size else 0.0
    return normal, spread


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
    spacing_mm : ndarray of shape (3,)
        The voxel sizes (mm) along the crop's axes.
    """

    q: np.ndarray
    lesion: np.ndarray
    normal: np.ndarray
    ring: np.ndarray
    distance_mm: np.ndarray
    points_mm: np.ndarray
    flair: np.ndarray | None
    spacing_mm: np.ndarray | None = None


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

    What does not depend on the arguments (the subject's normal-appearing tissue and spread, the
    lesions' bounding boxes, each lesion's signed distances within its crop) is computed once per
    subject and shared by the extractors that reference the same ``volumes``
    (:meth:`~rimclf.features._subject.SubjectVolumes.shared`): with the same crop, the same values.
    """
    task = volumes.task
    if not len(task.lesion_ids):
        return
    normal_voxels, qsm_spread = normal_tissue(volumes)
    flair_on_qsm_grid = volumes.flair_on_qsm_grid if with_flair else None
    if not qsm_spread > 0:
        notes.append((DataWarning, f"{task.name}: the QSM of normal-appearing tissue has no spread; "
                                   f"its {what}"))
        return
    labels = volumes.labels
    spacing = np.asarray(volumes.spacing_mm, dtype=float)
    max_label = int(task.lesion_ids.max())
    objects = volumes.shared(("referencing", "boxes", max_label),
                             lambda: tuple(ndimage.find_objects(labels, max_label=max_label)))
    rotation = volumes.affine[:3, :3]
    for row, lesion_id in enumerate(task.lesion_ids):
        where = f"{task.name} lesion {int(lesion_id)}"
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
        normal = normal_voxels[crop]
        distance = lesion_distance_mm(volumes, lesion_id, crop)
        ring = reference_ring(normal, distance, reference_mm)
        if int(ring.sum()) < MIN_REFERENCE_VOXELS:
            notes.append((DataWarning, f"{where}: only {int(ring.sum())} normal-appearing voxels between "
                                       f"{reference_mm[0]:g} and {reference_mm[1]:g} mm around the "
                                       f"lesion; its {what}"))
            continue
        qsm = volumes.qsm[crop]
        q = (qsm - float(np.median(qsm[ring]))) / qsm_spread
        start = np.array([s.start for s in crop], dtype=float)
        index = np.indices(lesion.shape, dtype=float) + start.reshape(3, 1, 1, 1)
        points = np.tensordot(rotation, index, axes=(1, 0))
        flair = flair_on_qsm_grid[crop] if with_flair else None
        yield row, ReferencedLesion(q, lesion, normal, ring, distance, points, flair, spacing)
