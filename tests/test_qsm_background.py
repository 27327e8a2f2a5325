"""The brain of a QSM is its voxels other than its background value (``rimclf._nifti.brain_support``),
and ``read_qsm`` returns it with that background at 0."""

from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from rimclf._nifti import BACKGROUND_MIN_FRACTION, background_value, brain_support
from rimclf.cohort import read_qsm

SHAPE = (40, 36, 30)


def brain(shape=SHAPE) -> np.ndarray:
    """An ellipsoid filling about half of the volume (as a brain fills its field of view)."""
    centre, radius = (np.asarray(shape) - 1) / 2, np.asarray(shape) / 2
    offsets = (np.indices(shape) - centre.reshape(3, 1, 1, 1)) / radius.reshape(3, 1, 1, 1)
    return (offsets**2).sum(axis=0) <= 1.0


def tissue(shape=SHAPE, seed: int = 0) -> np.ndarray:
    """Susceptibility in ppb: no value repeated, none exactly 0."""
    values = np.random.default_rng(seed).normal(0.0, 40.0, shape).astype(np.float32)
    return np.where(values == 0, np.float32(1.0), values)


@pytest.mark.parametrize("outside, expected", [(0.0, 0.0), (0.0021, 0.0021), (-1000.0, -1000.0), (np.nan, 0.0)],
                         ids=["zero", "int16-scaled zero", "negative", "NaN"])
def test_the_support_is_the_brain_whatever_the_background(outside: float, expected: float) -> None:
    inside = brain()
    qsm = np.where(inside, tissue(), np.float32(outside))
    assert background_value(qsm) == pytest.approx(expected, rel=1e-6)
    np.testing.assert_array_equal(brain_support(qsm), inside)


def test_without_background_every_nonzero_voxel_is_the_brain() -> None:
    qsm = tissue()
    qsm[:3, :3, :3] = 0.0  # a few zeros (and a few repeats) are no background
    qsm[5, :, :] = 7.5
    assert background_value(qsm) == 0.0
    np.testing.assert_array_equal(brain_support(qsm), qsm != 0)


def test_a_value_below_the_fraction_is_no_background() -> None:
    qsm = tissue()
    n_repeated = int(0.9 * BACKGROUND_MIN_FRACTION * qsm.size)
    qsm.reshape(-1)[:n_repeated] = 0.25  # an integer-coded map's most frequent level
    assert background_value(qsm) == 0.0
    qsm.reshape(-1)[: int(1.1 * BACKGROUND_MIN_FRACTION * qsm.size)] = 0.25
    assert background_value(qsm) == 0.25


def test_a_large_volume_is_subsampled_and_counted_exactly() -> None:
    shape = (96, 96, 64)  # over BACKGROUND_SAMPLE_VOXELS: the candidate comes from every 2nd voxel
    inside = brain(shape)
    qsm = np.where(inside, tissue(shape), np.float32(0.0021))
    assert background_value(qsm) == pytest.approx(0.0021)
    np.testing.assert_array_equal(brain_support(qsm), inside)
    assert background_value(np.zeros((0, 3, 3))) == 0.0


def test_read_qsm_puts_an_int16_background_at_0_and_logs_it_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    inside = brain()
    original = np.where(inside, tissue(), np.float32(0.0))
    path = tmp_path / "sub-01_Chimap.nii.gz"
    image = nib.Nifti1Image(original, np.eye(4))
    image.set_data_dtype(np.int16)  # nibabel picks a scale and an offset: 0 reads back as nearly 0
    nib.save(image, path)
    (tmp_path / "sub-01_Chimap.json").write_text('{"Units": "ppb"}\n')
    stored = np.asarray(nib.load(path).dataobj)
    assert stored[0, 0, 0] != 0
    with caplog.at_level(logging.INFO, logger="rimclf"):
        qsm, _ = read_qsm(path)
        read_qsm(path)
    np.testing.assert_allclose(qsm, original, atol=0.01)
    # a brain voxel within half an int16 step of 0 is stored as the background: left out, and rare
    differ = (qsm != 0) != inside
    assert differ.sum() <= 3 and (np.abs(original[differ]) < 0.01).all()
    logged = [record.getMessage() for record in caplog.records if "background" in record.getMessage()]
    assert len(logged) == 1 and "sub-01_Chimap.nii.gz: the QSM's background" in logged[0], logged
