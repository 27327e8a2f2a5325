"""Synthetic spheres for the rim-profile tests: one continuous phantom, sampled on any grid.

A subject holds six lesions of radius 4 mm on a 0.8-1.5 mm grid, each with one QSM pattern: a full
paramagnetic rim, a 40 % partial rim (a cap), an off-centre bright spot inside the lesion, a
uniformly hyperintense lesion, a vein passing tangent to the edge, and an iso-intense lesion. The
white matter around them is at -10 ppb with Gaussian noise; the brain support (nonzero QSM) is a
large ellipsoid. Everything is a function of world millimetres, so the same anatomy can be
written on another voxel grid.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rimclf._nifti import save_nifti

RADIUS_MM = 4.0
PATTERNS = ("full_rim", "partial_rim", "spot", "uniform", "vein", "iso")
#: lesion centres (world mm), far enough apart that their 6 mm reference rings do not meet
CENTRES_MM = {
    "full_rim": (-13.0, -13.0, 0.0),
    "partial_rim": (0.0, -13.0, 0.0),
    "spot": (13.0, -13.0, 0.0),
    "uniform": (-13.0, 6.0, 0.0),
    "vein": (0.0, 6.0, 0.0),
    "iso": (13.0, 6.0, 0.0),
}
FIELD_OF_VIEW_MM = (56.0, 48.0, 26.0)
WHITE_MATTER_PPB = -10.0


def grid_affine(spacing_mm=(0.8, 0.8, 0.8)) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Affine and shape of a grid covering the field of view, centred on the origin."""
    spacing = np.asarray(spacing_mm, dtype=float)
    shape = tuple(int(np.ceil(f / s)) for f, s in zip(FIELD_OF_VIEW_MM, spacing))
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -spacing * (np.asarray(shape) - 1) / 2
    return affine, shape


def _world(affine: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    index = np.indices(shape, dtype=float)
    return np.tensordot(affine[:3, :3], index, axes=(1, 0)) + affine[:3, 3].reshape(3, 1, 1, 1)


def render(spacing_mm=(0.8, 0.8, 0.8), *, noise_ppb: float = 2.0, seed: int = 0):
    """QSM (ppb), FLAIR and instance labels (1..6 in ``PATTERNS`` order) on a grid; and its affine."""
    affine, shape = grid_affine(spacing_mm)
    p = _world(affine, shape)
    rng = np.random.default_rng(seed)
    qsm = np.full(shape, WHITE_MATTER_PPB) + rng.normal(0.0, noise_ppb, shape)
    flair = np.full(shape, 100.0)
    labels = np.zeros(shape, dtype=np.int16)
    for lesion_id, pattern in enumerate(PATTERNS, start=1):
        offset = p - np.asarray(CENTRES_MM[pattern]).reshape(3, 1, 1, 1)
        r = np.sqrt((offset**2).sum(axis=0))
        inside = r <= RADIUS_MM
        labels[inside] = lesion_id
        flair[inside] = 160.0
        shell = np.exp(-0.5 * ((r - RADIUS_MM - 0.3) / 0.7) ** 2)
        cosine = offset[0] / np.maximum(r, 1e-9)
        if pattern == "full_rim":
            qsm += 30.0 * shell
        elif pattern == "partial_rim":
            qsm += 30.0 * shell * (cosine > 0.2)  # a cap over 40 % of the sphere
        elif pattern == "spot":
            spot = np.asarray(CENTRES_MM[pattern]) + np.array([0.0, 2.0, 0.0])
            d2 = ((p - spot.reshape(3, 1, 1, 1)) ** 2).sum(axis=0)
            qsm += 50.0 * np.exp(-0.5 * d2 / 1.0**2)
        elif pattern == "uniform":
            qsm += 25.0 / (1.0 + np.exp((r - RADIUS_MM) / 0.3))
        elif pattern == "vein":
            # a straight vein along z, touching the lesion edge at +x and running past it
            distance = np.sqrt((offset[0] - RADIUS_MM - 0.8) ** 2 + offset[1] ** 2)
            qsm += 100.0 * np.exp(-0.5 * (distance / 0.8) ** 2)
    x, y, z = p / (0.48 * np.asarray(FIELD_OF_VIEW_MM)).reshape(3, 1, 1, 1)
    support = x**2 + y**2 + z**2 <= 1.0
    qsm = np.where(support, qsm, 0.0)
    return qsm.astype(np.float32), flair.astype(np.float32), labels, affine


def write_spheres(
    root: Path, label: str = "01", spacing_mm=(0.8, 0.8, 0.8), *, qsm_transform=None, labels_transform=None, **kwargs
) -> Path:
    """Write one synthetic-sphere subject under ``root`` (BIDS-like); returns the cohort folder.

    ``qsm_transform(qsm, labels)`` and ``labels_transform(labels)`` may change the volumes first.
    """
    qsm, flair, labels, affine = render(spacing_mm, **kwargs)
    if labels_transform is not None:
        labels = labels_transform(labels).astype(np.int16)
    if qsm_transform is not None:
        qsm = qsm_transform(qsm, labels).astype(np.float32)
    anat = root / f"sub-{label}" / "anat"
    save_nifti(anat / f"sub-{label}_Chimap.nii.gz", qsm, affine)
    (anat / f"sub-{label}_Chimap.json").write_text('{"Units": "ppb"}\n')  # BIDS' default is ppm
    save_nifti(anat / f"sub-{label}_FLAIR.nii.gz", flair, affine)
    save_nifti(anat / f"sub-{label}_desc-lesions_mask.nii.gz", labels, affine)
    return root


def site_offset_and_scale(qsm: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """A ``qsm_transform`` of :func:`write_spheres`: another site's QSM reference (an offset inside
    the brain) and scale."""
    return np.where(qsm != 0, 1.7 * qsm + 37.0, 0.0)


def lesion_at_volume_edge(labels: np.ndarray) -> np.ndarray:
    """A ``labels_transform`` of :func:`write_spheres`: lesion 6 (``"iso"``) moved to touch the
    volume's edge, where its surroundings are cut."""
    labels = labels.copy()
    labels[labels == 6] = 0
    labels[0:4, 20:25, 10:14] = 6
    return labels
