"""Hand-built tiny NIfTI subjects for tests: a 24x20x12 grid, anisotropic voxels, two lesions and a 1-voxel one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rimclf._nifti import save_nifti

SHAPE = (24, 20, 12)


def make_affine(spacing=(1.0, 1.2, 2.0), origin=(-12.0, -30.0, 7.0)) -> np.ndarray:
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = origin
    return affine


def make_labels() -> np.ndarray:
    mask = np.zeros(SHAPE, dtype=np.int16)
    mask[3:6, 4:8, 2:5] = 1  # 36 voxels
    mask[12:17, 10:14, 6:9] = 2  # 60 voxels
    mask[20, 2, 10] = 3  # 1 voxel: below min_voxels
    return mask


def make_qsm(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 30, SHAPE) + 10).astype(np.float32)


def write_subject(root: Path, label: str, *, qsm=None, flair=None, mask=None, affine=None, mask_affine=None, flair_affine=None):
    affine = make_affine() if affine is None else affine
    anat = root / f"sub-{label}" / "anat"
    save_nifti(anat / f"sub-{label}_Chimap.nii.gz", make_qsm() if qsm is None else qsm, affine)
    (anat / f"sub-{label}_Chimap.json").write_text('{"Units": "ppb"}\n')  # BIDS' default is ppm
    save_nifti(anat / f"sub-{label}_FLAIR.nii.gz", np.abs(make_qsm(1)) if flair is None else flair, affine if flair_affine is None else flair_affine)
    save_nifti(anat / f"sub-{label}_desc-lesions_mask.nii.gz", make_labels() if mask is None else mask, affine if mask_affine is None else mask_affine)
    return anat


def write_scan(root: Path, label: str, session: str = "", *, qsm=None, units: str | None = "ppb", ext=".nii.gz",
               mask_in: str | None = None, mask_suffix: str = "mask") -> None:
    """One scan: Chimap (+ sidecar), FLAIR, lesion mask raw (``mask_in=None``) or in ``derivatives/<mask_in>``."""
    name = f"sub-{label}" + (f"_ses-{session}" if session else "")
    relative = Path(f"sub-{label}") / (f"ses-{session}" if session else "") / "anat"
    anat = root / relative
    save_nifti(anat / f"{name}_Chimap{ext}", make_qsm() if qsm is None else qsm, make_affine(), overwrite=True)
    if units is not None:
        (anat / f"{name}_Chimap.json").write_text(json.dumps({"Units": units}))
    save_nifti(anat / f"{name}_FLAIR{ext}", np.abs(make_qsm(1)), make_affine(), overwrite=True)
    folder = anat if mask_in is None else root / "derivatives" / mask_in / relative
    save_nifti(folder / f"{name}_desc-lesions_{mask_suffix}{ext}", make_labels(), make_affine(), overwrite=True)


def describe_pipeline(root: Path, name: str) -> None:
    description = {"Name": name, "BIDSVersion": "1.9.0", "DatasetType": "derivative", "GeneratedBy": [{"Name": name}]}
    (root / "derivatives" / name).mkdir(parents=True, exist_ok=True)
    (root / "derivatives" / name / "dataset_description.json").write_text(json.dumps(description))
