"""Tiny hand-built subjects for the feature tests: odd-sized anisotropic grids, lesions at the borders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from rimclf._nifti import save_nifti

SHAPE = (25, 22, 13)
SPACING = (0.9, 1.1, 2.0)


def make_affine(spacing=SPACING, origin=(-11.0, -12.0, -13.0)) -> np.ndarray:
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = origin
    return affine


def make_labels(shape=SHAPE) -> np.ndarray:
    """Five lesions: two interior, one on the low-x border, one tiny (8 voxels), one in the far corner."""
    labels = np.zeros(shape, dtype=np.int16)
    i, j, k = np.indices(shape)
    labels[((i - 8) / 2.5) ** 2 + ((j - 7) / 2.2) ** 2 + ((k - 5) / 1.4) ** 2 <= 1] = 1
    labels[((i - 15) / 3.4) ** 2 + ((j - 13) / 3.0) ** 2 + ((k - 7) / 1.8) ** 2 <= 1] = 2
    labels[0:3, 10:14, 3:6] = 3
    labels[11:13, 3:5, 9:11] = 4
    labels[-4:, -4:, -3:] = 5
    return labels


def make_qsm(seed: int = 0, shape=SHAPE) -> np.ndarray:
    """Smooth tissue contrast plus noise, in ppb, with a paramagnetic ring around lesion 2."""
    rng = np.random.default_rng(seed)
    qsm = ndimage.gaussian_filter(rng.normal(0.0, 1.0, shape), 1.2) * 120 + rng.normal(0.0, 8.0, shape)
    lesion2 = make_labels(shape) == 2
    ring = ndimage.binary_dilation(lesion2, iterations=1) & ~lesion2
    qsm[ring] += 40
    return qsm.astype(np.float32)


def make_flair(seed: int = 1, shape=SHAPE) -> np.ndarray:
    rng = np.random.default_rng(seed)
    flair = 400 + ndimage.gaussian_filter(rng.normal(0.0, 1.0, shape), 2.0) * 60 + rng.normal(0.0, 5.0, shape)
    flair[make_labels(shape) > 0] += 250
    return flair.astype(np.float32)


def write_subject(
    root: Path, label: str, *, seed: int = 0, qsm=None, flair=None, labels=None, affine=None, flair_affine=None
) -> Path:
    """Write sub-<label>'s QSM, FLAIR and lesion mask (float32 / int16 NIfTI) under ``root``."""
    affine = make_affine() if affine is None else affine
    anat = root / f"sub-{label}" / "anat"
    save_nifti(anat / f"sub-{label}_Chimap.nii.gz", make_qsm(seed) if qsm is None else qsm, affine)
    (anat / f"sub-{label}_Chimap.json").write_text('{"Units": "ppb"}\n')  # BIDS' default is ppm
    save_nifti(
        anat / f"sub-{label}_FLAIR.nii.gz",
        make_flair(seed + 100) if flair is None else flair,
        affine if flair_affine is None else flair_affine,
    )
    save_nifti(anat / f"sub-{label}_desc-lesions_mask.nii.gz", make_labels() if labels is None else labels, affine)
    return anat


def write_cohort(root: Path, n_subjects: int = 4) -> Path:
    """A cohort of ``n_subjects`` subjects, 5 lesions each, lesions 2 and 4 rim+ (both classes per subject)."""
    rims = ["participant_id\tlesion_id\trim"]
    for index in range(n_subjects):
        label = f"{index + 1:02d}"
        write_subject(root, label, seed=index)
        rims += [f"sub-{label}\t{lesion}\t{int(lesion in (2, 4))}" for lesion in range(1, 6)]
    (root / "rims.tsv").write_text("\n".join(rims) + "\n")
    return root
