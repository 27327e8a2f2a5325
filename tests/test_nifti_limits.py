"""NIfTI files whose header asks for more memory than any real scan: refused from the header,
before any voxel is read or unpacked."""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from rimclf import load_cohort
from rimclf._nifti import load_header, read_labels, read_volume
from rimclf.errors import CohortError
from tests.builders import SHAPE, make_affine, make_labels, write_subject


def header_only(path: Path, shape: tuple[int, ...], dtype=np.uint8, payload: bytes = b"") -> Path:
    """A .nii.gz holding a header that declares ``shape`` and only ``payload`` as voxel data."""
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    header.set_qform(make_affine(), code=1)
    header.set_sform(make_affine(), code=1)
    header["vox_offset"] = 352
    with gzip.open(path, "wb", compresslevel=1) as handle:
        handle.write(header.binaryblock + b"\0" * 4 + payload)
    return path


def test_a_mask_declaring_1000_cubed_voxels_is_refused_before_reading(tmp_path: Path) -> None:
    anat = write_subject(tmp_path / "cohort", "01")
    mask = anat / "sub-01_desc-lesions_mask.nii.gz"
    header_only(mask, (1000, 1000, 1000), payload=bytes(2**20))
    assert mask.stat().st_size < 2**20
    start = time.perf_counter()
    with pytest.raises(CohortError, match=r"sub-01_desc-lesions_mask.nii.gz: its header declares a grid of "
                                          r"1000 x 1000 x 1000 = 1,000,000,000 voxels") as caught:
        load_cohort(tmp_path / "cohort")
    assert time.perf_counter() - start < 5 and "\n" not in str(caught.value)


@pytest.mark.parametrize("reader", [read_volume, read_labels])
def test_a_gzip_stream_longer_than_its_header_declares_is_not_unpacked(tmp_path: Path, reader) -> None:
    """A 10 x 10 x 10 header followed by 64 MiB of zeros (a 0.3 MB file): refused after
    unpacking about what the header declares, not the whole stream."""
    path = header_only(tmp_path / "bomb.nii.gz", (10, 10, 10), payload=bytes(1000) + bytes(64 * 2**20))
    assert path.stat().st_size < 2**20
    with pytest.raises(CohortError, match="bomb.nii.gz: its gzip data unpacks to more than the 1,352 bytes its header declares"):
        reader(path)


def test_complex_voxels_are_refused_from_the_header(tmp_path: Path) -> None:
    path = tmp_path / "complex.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros(SHAPE, dtype=np.complex64), make_affine()), path)
    with pytest.raises(CohortError, match="complex.nii.gz: its voxels are of type complex64"):
        load_header(path)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.int32, np.float32, np.float64])
def test_masks_of_every_stored_type_give_the_same_labels(tmp_path: Path, dtype) -> None:
    path = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(make_labels().astype(dtype), make_affine()), path)
    labels, _ = read_labels(path)
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(labels, make_labels())


def test_a_label_above_the_limit_in_an_integer_mask_is_refused(tmp_path: Path) -> None:
    labels = make_labels().astype(np.int32)
    labels[0, 0, 0] = 70000
    path = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(labels, make_affine()), path)
    with pytest.raises(CohortError, match="the lesion mask has label 70000"):
        read_labels(path)
    labels[0, 0, 0] = -2
    nib.save(nib.Nifti1Image(labels, make_affine()), path)
    with pytest.raises(CohortError, match=r"negative labels \(min -2\)"):
        read_labels(path)


def test_file_names_with_control_characters_are_escaped_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "qsm\x1b[2J\rrimclf: error: forged.nii.gz"
    path.write_bytes(b"not a NIfTI")
    with pytest.raises(CohortError) as caught:
        read_volume(path)
    message = str(caught.value)
    assert "\x1b" not in message and "\r" not in message and r"qsm\x1b[2J\rrimclf" in message
