"""Lesion masks on their own grid (a FLAIR's or T1's): carried onto the QSM grid through the affines."""

from __future__ import annotations

import json
import logging
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from rimclf import load_cohort
from rimclf._nifti import save_nifti
from rimclf.cohort import read_lesion_labels
from rimclf.cohort._resample import (
    OUTSIDE_WARNING_FRACTION,
    fields_of_view_overlap,
    labels_on_qsm_grid,
    resample_labels,
    same_grid,
    warn_if_mostly_outside,
)
from rimclf.errors import CohortError, DataWarning
from rimclf.features._subject import SubjectVolumes, group_by_subject
from tests.builders import SHAPE, make_affine, write_subject
from tests.grid_builders import one_mm_grid, rewrite_mask_on_flair_grid, rewrite_on_grid


def ellipsoid_labels(binary: bool) -> np.ndarray:
    """Four lesions of 3-6 mm radius on the builders' 1 x 1.2 x 2 mm grid (labels 1, 2, 4, 7)."""
    centres_mm = [(6.0, 7.0, 7.0), (15.0, 15.0, 12.0), (6.0, 17.0, 16.0), (17.0, 6.0, 6.0)]
    radii_mm = [(3.0, 3.5, 4.0), (4.0, 3.0, 5.0), (3.0, 3.0, 3.0), (3.5, 4.0, 6.0)]
    index = np.indices(SHAPE).astype(float)
    spacing = np.array([1.0, 1.2, 2.0])[:, None, None, None]
    world = index * spacing
    labels = np.zeros(SHAPE, np.int16)
    for value, centre, radius in zip((1, 2, 4, 7), centres_mm, radii_mm):
        inside = sum(((world[a] - centre[a]) / radius[a]) ** 2 for a in range(3)) <= 1.0
        labels[inside] = 1 if binary else value
    return labels


def qsm_grid_cohort(root: Path, binary: bool) -> Path:
    write_subject(root, "01", mask=ellipsoid_labels(binary))
    return root


def mask_file(root: Path) -> Path:
    return root / "sub-01" / "anat" / "sub-01_desc-lesions_mask.nii.gz"


def qsm_file(root: Path) -> Path:
    return root / "sub-01" / "anat" / "sub-01_Chimap.nii.gz"


def lesion_dice(reference: np.ndarray, moved: np.ndarray) -> dict[int, float]:
    """Per lesion of ``reference``: Dice with the lesion of ``moved`` it overlaps most."""
    scores = {}
    for lesion in np.unique(reference[reference > 0]):
        here = reference == lesion
        hits = moved[here]
        match = np.bincount(hits[hits > 0]).argmax() if (hits > 0).any() else 0
        other = moved == match if match else np.zeros_like(here)
        scores[int(lesion)] = 2.0 * (here & other).sum() / (here.sum() + other.sum())
    return scores


GRIDS = {
    "1 mm, another field of view": {},
    "1 mm, oblique and flipped": {"rotate_deg": (12.0, -8.0, 25.0), "flip": (True, False, True)},
}


@pytest.mark.slow
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "labels"])
@pytest.mark.parametrize("grid", list(GRIDS), ids=["fov", "oblique"])
def test_mask_on_a_1mm_grid_comes_back_per_lesion(tmp_path: Path, grid: str, binary: bool) -> None:
    original_root = qsm_grid_cohort(tmp_path / "qsm-grid", binary)
    original = load_cohort(original_root)
    reference, _ = read_lesion_labels(mask_file(original_root), int(original["connectivity"].iloc[0]))

    root = qsm_grid_cohort(tmp_path / "own-grid", binary)
    shape, affine = one_mm_grid(qsm_file(root), **GRIDS[grid])
    rewrite_on_grid(mask_file(root), shape, affine, order=0)
    table = load_cohort(root)

    assert len(table) == len(original) == 4
    assert (table["mask_grid"] == "resampled").all() and (original["mask_grid"] == "qsm").all()
    assert table["mask_source_grid"].iloc[0] == "x".join(map(str, shape)) + " at 1x1x1 mm"
    moved, moved_affine = read_lesion_labels(mask_file(root), int(table["connectivity"].iloc[0]), qsm_file(root))
    assert moved.shape == SHAPE and np.allclose(moved_affine, make_affine())
    assert sorted(np.unique(moved[moved > 0]).tolist()) == table["lesion_id"].tolist()
    dice = lesion_dice(reference, moved)
    assert min(dice.values()) >= 0.8, dice
    if not binary:  # instance labels keep their ids
        assert table["lesion_id"].tolist() == original["lesion_id"].tolist() == [1, 2, 4, 7]
        assert all(np.bincount(moved[reference == lesion]).argmax() == lesion for lesion in (1, 2, 4, 7))
    volumes = np.abs(table["volume_mm3"].to_numpy() / original["volume_mm3"].to_numpy() - 1)
    assert volumes.max() < 0.2


def test_mask_on_the_flair_grid(tmp_path: Path) -> None:
    root = tmp_path / "cohort"
    write_subject(root, "01", mask=ellipsoid_labels(False))
    flair = root / "sub-01" / "anat" / "sub-01_FLAIR.nii.gz"
    shape, affine = one_mm_grid(qsm_file(root), rotate_deg=(0.0, 0.0, 10.0))
    rewrite_on_grid(flair, shape, affine, order=1)
    rewrite_mask_on_flair_grid(mask_file(root), flair)
    table = load_cohort(root)
    assert table["lesion_id"].tolist() == [1, 2, 4, 7] and (table["mask_grid"] == "resampled").all()


def test_resampling_is_logged_once_per_mask(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = qsm_grid_cohort(tmp_path, binary=True)
    rewrite_on_grid(mask_file(root), *one_mm_grid(qsm_file(root)), order=0)
    with caplog.at_level(logging.INFO, logger="rimclf.cohort"):
        load_cohort(root)
    lines = [record for record in caplog.records if "resampled onto the QSM grid" in record.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO
    assert "sub-01_desc-lesions_mask.nii.gz" in lines[0].getMessage() and "partial-volume" in lines[0].getMessage()


def test_features_and_outputs_read_the_resampled_labels(tmp_path: Path) -> None:
    root = qsm_grid_cohort(tmp_path, binary=True)
    rewrite_on_grid(mask_file(root), *one_mm_grid(qsm_file(root), rotate_deg=(0.0, 20.0, 0.0)), order=0)
    table = load_cohort(root)
    [(task, _, _)] = group_by_subject(table, with_flair=True, with_centroids=True)
    labels = SubjectVolumes(task, []).labels  # checks that every lesion of the table is in the mask
    assert labels.shape == SHAPE
    counts = np.bincount(labels.ravel())
    assert counts[table["lesion_id"]].tolist() == table["n_voxels"].tolist()


def test_integer_shift_is_exact(tmp_path: Path) -> None:
    """A mask on a grid one slice larger (origin 2 mm lower, data one slice up) is the same mask."""
    root = qsm_grid_cohort(tmp_path / "a", binary=False)
    before = load_cohort(root)
    labels = np.concatenate([np.zeros((*SHAPE[:2], 1), np.int16), ellipsoid_labels(False)], axis=2)
    save_nifti(mask_file(root), labels, make_affine(origin=(-12.0, -30.0, 5.0)), overwrite=True)
    after = load_cohort(root)
    assert (after["mask_grid"] == "resampled").all()
    columns = ["lesion_id", "n_voxels", "volume_mm3", "centroid_x", "centroid_y", "centroid_z"]
    assert after[columns].equals(before[columns])


def test_lesions_outside_the_qsm_are_counted_or_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = qsm_grid_cohort(tmp_path, binary=False)
    labels = np.concatenate([ellipsoid_labels(False), np.zeros((*SHAPE[:2], 4), np.int16)], axis=2)
    labels[3:6, 4:8, 13:15] = 9  # 24 voxels beyond the QSM's last slice
    save_nifti(mask_file(root), labels, make_affine(), overwrite=True)
    with caplog.at_level(logging.INFO, logger="rimclf.cohort"):
        table = load_cohort(root)
    assert table["lesion_id"].tolist() == [1, 2, 4, 7]
    assert "24 of its" in caplog.text and "outside the QSM's field of view" in caplog.text
    only_outside = np.zeros_like(labels)
    only_outside[labels == 9] = 9
    save_nifti(mask_file(root), only_outside, make_affine(), overwrite=True)
    with pytest.raises(CohortError, match=r"sub-01_desc-lesions_mask\.nii\.gz: none of its 24 lesion voxels lies in "
                                          r"the field of view of sub-01_Chimap\.nii\.gz"):
        load_cohort(root)


def test_a_mask_mostly_outside_the_qsm_warns(tmp_path: Path) -> None:
    """A mask shifted 12 mm along x (as a wrong affine would) loses 245 of its 362 lesion voxels: a
    DataWarning naming the file; shifted 6 mm it loses 65 (a slab's cut): no warning, only the log."""
    root = qsm_grid_cohort(tmp_path, binary=True)
    save_nifti(mask_file(root), ellipsoid_labels(True), make_affine(origin=(0.0, -30.0, 7.0)), overwrite=True)
    with pytest.warns(DataWarning, match=re.escape(f"{mask_file(root)}: 245 of its 362 lesion voxels (68 %) lie "
                                                   "outside the field of view of sub-01_Chimap.nii.gz")) as caught:
        load_cohort(root)
    [warning] = [w for w in caught if issubclass(w.category, DataWarning)]
    assert "affine may be wrong" in str(warning.message) and "not registered to the QSM" in str(warning.message)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        read_lesion_labels(mask_file(root), 26, qsm_file(root))  # said once, by load_cohort
        save_nifti(mask_file(root), ellipsoid_labels(True), make_affine(origin=(-6.0, -30.0, 7.0)), overwrite=True)
        assert len(load_cohort(root))


def test_the_warning_needs_more_than_the_fraction_outside() -> None:
    assert OUTSIDE_WARNING_FRACTION == 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        warn_if_mostly_outside(50, 100, mask_path="m.nii.gz", qsm_name="q.nii.gz")
        warn_if_mostly_outside(0, 0, mask_path="m.nii.gz", qsm_name="q.nii.gz")
    with pytest.warns(DataWarning, match=r"^m\.nii\.gz: 51 of its 100 lesion voxels \(51 %\)"):
        warn_if_mostly_outside(51, 100, mask_path="m.nii.gz", qsm_name="q.nii.gz")


def test_no_overlap_is_an_error(tmp_path: Path) -> None:
    root = qsm_grid_cohort(tmp_path, binary=True)
    save_nifti(mask_file(root), ellipsoid_labels(True), make_affine(origin=(500.0, 0.0, 0.0)), overwrite=True)
    with pytest.raises(CohortError, match=r"sub-01_desc-lesions_mask\.nii\.gz: its field of view .* does not overlap "
                                          r"sub-01_Chimap\.nii\.gz"):
        load_cohort(root)


def test_same_grid_is_unchanged(tmp_path: Path) -> None:
    root = qsm_grid_cohort(tmp_path, binary=False)
    labels = ellipsoid_labels(False).astype(np.int32)
    result, resampled = labels_on_qsm_grid(labels, make_affine(), SHAPE, make_affine() + 5e-4, binary=False,
                                           mask_path="m", qsm_path="q")
    assert result is labels and resampled is None
    plain, plain_affine = read_lesion_labels(mask_file(root), 0)
    on_qsm, on_qsm_affine = read_lesion_labels(mask_file(root), 0, qsm_file(root))
    assert on_qsm.dtype == plain.dtype and np.array_equal(on_qsm, plain) and np.array_equal(on_qsm_affine, plain_affine)
    table = load_cohort(root)
    assert (table["mask_grid"] == "qsm").all()
    assert table["mask_source_grid"].iloc[0] == "24x20x12 at 1x1.2x2 mm"


def test_resample_labels_averages_the_partial_volume() -> None:
    fine = np.zeros((12, 12, 12), np.int32)
    fine[2:8, 2:8, 2:8] = 1  # coarse voxels 1..3: 8 fine voxels each
    fine[2, 2, 2] = 0  # one of 8 fine voxels of a coarse voxel missing: fraction 7/8, still lesion
    fine[6:8, 6:8, 6:8] = 0
    fine[6, 6, 6] = 1  # 1 of 8: not lesion
    coarse = np.diag([2.0, 2.0, 2.0, 1.0])
    coarse[:3, 3] = 0.5
    out = resample_labels(fine, np.eye(4), (6, 6, 6), coarse, binary=True)
    expected = np.zeros((6, 6, 6), np.int32)
    expected[1:4, 1:4, 1:4] = 1
    expected[3, 3, 3] = 0
    assert np.array_equal(out, expected)
    nearest = resample_labels(fine * 5, np.eye(4), (6, 6, 6), coarse, binary=False)
    assert set(np.unique(nearest).tolist()) <= {0, 5}


def test_grids_and_overlap() -> None:
    turned = np.eye(4)
    turned[:3, :3] = [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    assert not same_grid((4, 4, 4), np.eye(4), (4, 4, 5), np.eye(4))
    assert fields_of_view_overlap((10, 10, 10), np.eye(4), (10, 10, 10), turned)  # share x -0.5..0.5
    beside = turned.copy()
    beside[1, 3] = -11.0  # its y range -11.5..-1.5 misses -0.5..9.5
    assert not fields_of_view_overlap((10, 10, 10), np.eye(4), (10, 10, 10), beside)
    # a 45-degree grid whose axis-aligned box overlaps the other, though the grids do not
    diagonal = np.eye(4)
    c = np.sqrt(0.5)
    diagonal[:3, :3] = [[c, -c, 0.0], [c, c, 0.0], [0.0, 0.0, 1.0]]
    diagonal[:3, 3] = [16.0, -7.0, 0.0]
    assert not fields_of_view_overlap((10, 10, 10), np.eye(4), (10, 2, 10), diagonal)


def test_prediction_maps_are_on_the_qsm_grid(tmp_path: Path) -> None:
    import nibabel as nib

    from rimclf.outputs import write_prediction_outputs

    root = qsm_grid_cohort(tmp_path / "cohort", binary=False)
    rewrite_on_grid(mask_file(root), *one_mm_grid(qsm_file(root), flip=(True, False, False)), order=0)
    table = load_cohort(root)
    write_prediction_outputs(tmp_path / "out", table, np.linspace(0.1, 0.9, len(table)), 0.5, montage=False)
    [dseg] = (tmp_path / "out").glob("sub-01/anat/*_dseg.nii.gz")
    image = nib.load(str(dseg))
    assert image.shape == SHAPE and np.allclose(image.affine, make_affine())
    expected, _ = read_lesion_labels(mask_file(root), 0, qsm_file(root))
    assert np.array_equal(np.asarray(image.dataobj), expected)
    sidecar = json.loads(dseg.with_name(dseg.name.replace(".nii.gz", ".json")).read_text())
    assert sidecar["MaskResampledFrom"] == table["mask_source_grid"].iloc[0]
