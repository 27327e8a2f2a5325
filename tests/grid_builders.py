"""Images moved onto other grids for tests: a lesion mask on the grid of the FLAIR, or on any 1 mm grid.

Lesion segmentation tools write their masks on the grid of the image they segmented (FLAIR or T1),
not on the QSM's. These helpers rewrite a cohort's QSM-grid mask (or FLAIR) onto such a grid, in
the same world coordinates, with nibabel's own resampling (independent of rimclf's), so that
tests can check that rimclf carries it back onto the QSM grid.

- :func:`one_mm_grid`: a 1 mm isotropic grid around an image's field of view, with a margin, and
  optionally rotated (oblique) and flipped.
- :func:`rewrite_on_grid`: rewrite a NIfTI file (in place, or to ``out``) onto a grid.
- :func:`rewrite_mask_on_flair_grid`: rewrite a scan's lesion mask onto the grid of its FLAIR.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.processing import resample_from_to

from rimclf._nifti import save_nifti


def _rotation(degrees_xyz) -> np.ndarray:
    rotation = np.eye(3)
    for axis, degrees in enumerate(degrees_xyz):
        angle = np.deg2rad(degrees)
        c, s = np.cos(angle), np.sin(angle)
        i, j = [a for a in range(3) if a != axis]
        turn = np.eye(3)
        turn[i, i], turn[i, j], turn[j, i], turn[j, j] = c, -s, s, c
        rotation = turn @ rotation
    return rotation


def one_mm_grid(reference: str | Path, *, margin_mm: float = 6.0, voxel_mm: float = 1.0,
                rotate_deg=(0.0, 0.0, 0.0), flip: tuple[bool, bool, bool] = (False, False, False),
                shift_mm=(0.3, -0.4, 0.2)) -> tuple[tuple[int, int, int], np.ndarray]:
    """A ``voxel_mm`` isotropic grid whose field of view holds the reference image's, plus a margin.

    Parameters
    ----------
    reference : path
        A NIfTI image (e.g. the QSM) whose field of view the grid must cover.
    margin_mm : float
        Extra field of view on every side (so that the grid's field of view differs).
    voxel_mm : float
        The voxel edge (1 mm, as a FLAIR's or T1's).
    rotate_deg : 3 floats
        Rotations about world x, y, z (an oblique grid).
    flip : 3 bools
        Axes of the grid that run backwards (e.g. an LPS- or LAS-stored image).
    shift_mm : 3 floats
        Moves the grid's voxel centres off the reference's voxel edges.

    Returns
    -------
    shape, affine
    """
    image = nib.load(str(reference))
    shape = np.array(image.shape[:3])
    corners = np.array([[i, j, k] for i in (-0.5, shape[0] - 0.5) for j in (-0.5, shape[1] - 0.5)
                        for k in (-0.5, shape[2] - 0.5)])
    world = corners @ image.affine[:3, :3].T + image.affine[:3, 3]
    rotation = _rotation(rotate_deg) @ np.diag([-1.0 if f else 1.0 for f in flip])
    axes = rotation * voxel_mm  # column a: the grid's axis a in world mm
    in_grid = world @ np.linalg.inv(axes).T  # the corners in (unshifted) grid voxel units
    low = np.floor(in_grid.min(axis=0) - margin_mm / voxel_mm)
    high = np.ceil(in_grid.max(axis=0) + margin_mm / voxel_mm)
    new_shape = tuple(int(n) for n in high - low + 1)
    affine = np.eye(4)
    affine[:3, :3] = axes
    affine[:3, 3] = axes @ low + np.asarray(shift_mm, float)
    return new_shape, affine


def rewrite_on_grid(path: str | Path, shape, affine, *, order: int = 0, out: str | Path | None = None) -> Path:
    """Rewrite a NIfTI image onto the grid ``(shape, affine)`` (``order=0``: nearest neighbour, for
    masks; ``1``: trilinear, for intensities), in place or to ``out``. Outside its field of view: 0."""
    image = nib.load(str(path))
    data = np.asanyarray(image.dataobj)
    moved = resample_from_to(nib.Nifti1Image(data.astype(np.float32), image.affine), (tuple(shape), affine),
                             order=order, mode="constant", cval=0.0)
    values = np.asarray(moved.dataobj)
    values = np.rint(values).astype(data.dtype) if order == 0 else values.astype(np.float32)
    out = Path(path) if out is None else Path(out)
    return save_nifti(out, values, affine, overwrite=True)


def rewrite_mask_on_flair_grid(mask: str | Path, flair: str | Path, *, out: str | Path | None = None) -> Path:
    """Rewrite a lesion mask (on the QSM grid) onto the grid of ``flair``, as a lesion segmentation
    tool run on that FLAIR would have written it; in place, or to ``out``."""
    image = nib.load(str(flair))
    return rewrite_on_grid(mask, image.shape[:3], image.affine, order=0, out=out)
