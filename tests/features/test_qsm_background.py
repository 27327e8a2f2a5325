"""A QSM whose background (outside the brain) is not exactly 0 gives the features of the same
QSM with a 0 background: the brain is the voxels other than the background value, not the nonzero
ones (a QSM stored as int16 with a scale and an offset reads its 0 back as about 0.002 ppb)."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from rimclf._nifti import read_array
from rimclf.cohort import load_cohort
from rimclf.features import LesionFeaturizer, PatchExtractor, RimFitExtractor, RimProfileExtractor, SurfaceMapExtractor
from rimclf.phantom import make_phantom_cohort

#: Relative tolerance of the features: int16 scaling changes every voxel by at most a few 1e-3 ppb.
RTOL = 1e-3


def resave_as_int16(folder: Path) -> None:
    """Rewrite every Chimap as int16, letting nibabel choose the scale and offset (as a converter would)."""
    for path in folder.glob("sub-*/anat/*_Chimap.nii.gz"):
        image = nib.load(path)
        scaled = nib.Nifti1Image(np.asarray(image.dataobj, dtype=np.float32), image.affine, image.header)
        scaled.set_data_dtype(np.int16)
        nib.save(scaled, path)


def features(folder: Path) -> dict[str, np.ndarray]:
    featurizer = LesionFeaturizer([
        ("rim", RimProfileExtractor()),
        ("rim_fit", RimFitExtractor()),
        ("surface_map", SurfaceMapExtractor()),
        ("patches", PatchExtractor(size_mm=12.0, shape=6, channels=("qsm", "mask"), normalize="ring")),
    ], progress=False)
    X = featurizer.fit_transform(load_cohort(folder))
    return {name: np.asarray(X[name], dtype=np.float64) for name in X}


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A one-subject phantom (float32 QSM, 0 outside the brain) and its copy with an int16 QSM."""
    root = tmp_path_factory.mktemp("background")
    original = make_phantom_cohort(root / "float", n_subjects=1, random_state=5, shape=(40, 48, 28),
                                   lesions_per_subject=(4, 8))
    scaled = root / "int16"
    shutil.copytree(original, scaled)
    resave_as_int16(scaled)
    return original, scaled


def test_an_int16_qsm_has_a_nonzero_background(cohorts: tuple[Path, Path]) -> None:
    """What the next test is about: the int16 copy's background is not 0, and every voxel is close."""
    original, scaled = (read_array(next(folder.glob("sub-*/anat/*_Chimap.nii.gz")))[0] for folder in cohorts)
    assert (original[0, 0, 0], scaled[0, 0, 0] != 0) == (0, True)
    assert np.abs(scaled - original).max() < 0.01  # ppb


@pytest.mark.slow
def test_features_do_not_depend_on_the_background_value(cohorts: tuple[Path, Path]) -> None:
    original, scaled = (features(folder) for folder in cohorts)
    assert original.keys() == scaled.keys()
    for name, values in original.items():
        assert np.isfinite(values).any(), name
        scale = np.nanmax(np.abs(values))
        assert np.allclose(scaled[name], values, rtol=RTOL, atol=RTOL * scale, equal_nan=True), name
