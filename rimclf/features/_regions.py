"""Voxel geometry for lesion crops: bounding boxes, filter margins, the peri-lesional shell,
signed distances to a lesion boundary.

Pure numpy/scipy (and PyWavelets for the wavelet footprint): no pyradiomics, no file I/O.

Why crops give the full-volume values
-------------------------------------
pyradiomics' wavelet images come from :func:`pywt.swtn`, a *periodic* stationary wavelet
transform of the whole image (an odd-sized axis is first padded with one wrapped voxel). A
filtered voxel depends on the input voxels within a few voxels of it (its footprint, see
:func:`wavelet_footprint`), wrapping around the volume's edges. Cropping a lesion to its bounding
box plus the footprint on each side gives a small image whose filtered values inside the box are
computed from the same inputs by the same arithmetic (PyWavelets sums the filter taps in the
same order away from an array's last few voxels), hence bit-for-bit equal. Along an axis where
the margin would leave the volume, the crop keeps the whole axis instead, so that the periodic
wrap-around (and PyWavelets' different summation order at the array's end) is the same too:
see :func:`crop_with_margin`.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage

#: Extra distance (mm) allowed when comparing distances to ``shell_mm``, against rounding error.
SHELL_TOLERANCE_MM = 1e-6


@lru_cache(maxsize=32)
def wavelet_footprint(wavelet: str = "coif1", level: int = 1, start_level: int = 0) -> tuple[int, int]:
    """Input voxels that one pyradiomics wavelet voxel depends on, along one axis.

    pyradiomics runs ``start_level + level`` single-level :func:`pywt.swtn` passes, each on the
    previous approximation. This measures the footprint of that cascade with an impulse.

    Returns
    -------
    (n_before, n_after) : tuple of int
        A filtered voxel ``i`` depends on input voxels ``i - n_before .. i + n_after``.
    """
    import pywt

    n_passes = int(start_level) + int(level)
    filter_length = pywt.Wavelet(wavelet).dec_len
    half = n_passes * filter_length + 2
    size = 4 * half + (4 * half) % 2
    impulse = np.zeros(size)
    position = size // 2
    impulse[position] = 1.0
    touched = np.zeros(size, dtype=bool)
    data = impulse
    for _ in range(n_passes):
        decomposition = pywt.swtn(data, wavelet, level=1, start_level=0, axes=(0,))[0]
        touched |= decomposition["d"] != 0
        data = decomposition["a"]
        touched |= data != 0
    nonzero = np.flatnonzero(touched)
    # output i is nonzero for an impulse at p when i depends on p: dependency offsets are p - i
    offsets = position - nonzero
    return int(max(0, -offsets.min())), int(max(0, offsets.max()))


def bounding_boxes(labels: np.ndarray, lesion_ids: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Inclusive voxel bounding box ``(low, high)`` of each lesion id (absent ids are left out)."""
    slices = ndimage.find_objects(labels, max_label=int(max(lesion_ids, default=0)))
    boxes = {}
    for lesion_id in lesion_ids:
        box = slices[int(lesion_id) - 1] if 0 < lesion_id <= len(slices) else None
        if box is not None:
            boxes[int(lesion_id)] = (
                np.array([s.start for s in box], dtype=int),
                np.array([s.stop - 1 for s in box], dtype=int),
            )
    return boxes


def crop_with_margin(
    low: np.ndarray, high: np.ndarray, shape: tuple[int, ...], before: np.ndarray, after: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The crop ``start..stop-1`` (per axis) of a box ``low..high`` grown by a filter footprint.

    Along an axis where ``low - before < 0`` or ``high + after >= size``, the crop is the whole
    axis, so that a periodic filter of the crop wraps around exactly as it does for the volume.
    """
    start = np.asarray(low) - np.asarray(before)
    stop = np.asarray(high) + np.asarray(after) + 1
    size = np.asarray(shape)
    whole = (start < 0) | (stop > size)
    return np.where(whole, 0, start), np.where(whole, size, stop)


def shell_mask(
    lesion: np.ndarray,
    any_lesion: np.ndarray,
    support: np.ndarray,
    spacing_mm: np.ndarray,
    shell_mm: float,
) -> np.ndarray:
    """The peri-lesional ring: voxels within ``shell_mm`` of the lesion, outside every lesion.

    Parameters
    ----------
    lesion : ndarray of bool
        This lesion's voxels.
    any_lesion : ndarray of bool
        Voxels of every lesion (this one included): left out of the ring.
    support : ndarray of bool
        Voxels with data (the QSM's support, the brain): the ring stays inside it.
    spacing_mm : ndarray of shape (3,)
        Voxel edge lengths, so that the ring is ``shell_mm`` wide in millimetres on anisotropic grids.
    shell_mm : float
        Width of the ring: a voxel belongs to it when the distance between its centre and the
        nearest lesion voxel's centre is at most ``shell_mm``.

    The arrays may be a crop, provided it extends at least ``shell_mm`` beyond the lesion on every
    side that is not the volume's edge.
    """
    if not lesion.any():
        return np.zeros_like(lesion, dtype=bool)
    distance_mm = ndimage.distance_transform_edt(~lesion, sampling=np.asarray(spacing_mm, dtype=float))
    return (distance_mm > 0) & (distance_mm <= shell_mm + SHELL_TOLERANCE_MM) & ~any_lesion & support


def shell_margin_voxels(spacing_mm: np.ndarray, shell_mm: float) -> np.ndarray:
    """How many voxels along each axis a ring of ``shell_mm`` can reach beyond the lesion."""
    return np.floor((shell_mm + SHELL_TOLERANCE_MM) / np.asarray(spacing_mm, dtype=float)).astype(int)


def signed_distance_mm(lesion: np.ndarray, spacing_mm: np.ndarray) -> np.ndarray:
    """Signed distance (mm) of every voxel to the boundary of ``lesion``; negative inside.

    The array is padded by one voxel of background, so a lesion reaching the array's edge is
    treated as ending there.
    """
    spacing = np.asarray(spacing_mm, dtype=float)
    padded = np.pad(lesion, 1)
    inside = ndimage.distance_transform_edt(padded, sampling=spacing)[1:-1, 1:-1, 1:-1]
    outside = ndimage.distance_transform_edt(~padded, sampling=spacing)[1:-1, 1:-1, 1:-1]
    half_voxel = 0.5 * float(spacing.mean())
    return np.where(lesion, -(inside - half_voxel), outside - half_voxel)
