"""PatchExtractor: world-axis geometry, FLAIR on another grid, normalisation, validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rimclf import CohortError, load_cohort
from rimclf.errors import ParameterError
from rimclf.features import PatchExtractor
from tests.features.builders import SHAPE, SPACING, make_affine, make_flair, make_labels, make_qsm, write_subject


def centred_on_volume(table: pd.DataFrame, affine: np.ndarray, shape=SHAPE) -> pd.DataFrame:
    centre = affine[:3, :3] @ ((np.array(shape) - 1) / 2) + affine[:3, 3]
    return table.assign(centroid_x=centre[0], centroid_y=centre[1], centroid_z=centre[2])


def test_patch_on_the_voxel_grid_reproduces_the_volume(table: pd.DataFrame) -> None:
    subject = centred_on_volume(table[table["participant_id"] == "01"], make_affine())
    extractor = PatchExtractor(size_mm=tuple(np.array(SHAPE) * SPACING), shape=SHAPE, normalize="none",
                               channels=("qsm", "flair", "mask"))
    patches = extractor.fit(subject).transform(subject)
    assert patches.shape == (5, 3, *SHAPE) and patches.dtype == np.float32
    np.testing.assert_allclose(patches[0, 0], make_qsm(0), atol=1e-3)
    np.testing.assert_allclose(patches[0, 1], make_flair(100), rtol=1e-5)
    for row, lesion_id in enumerate(subject["lesion_id"]):
        np.testing.assert_array_equal(patches[row, 2], make_labels() == lesion_id)  # this lesion only


def test_patch_axes_are_world_axes_and_sampling_is_trilinear(tmp_path: Path) -> None:
    affine = make_affine()
    world_x = (np.indices(SHAPE)[0] * SPACING[0] + affine[0, 3]).astype(np.float32)
    write_subject(tmp_path, "01", qsm=world_x)
    table = load_cohort(tmp_path).iloc[[1]]
    patch = PatchExtractor(size_mm=(6.0, 4.0, 2.0), shape=(3, 2, 1), channels=("qsm",), normalize="none").transform(
        table
    )
    expected_x = table["centroid_x"].iloc[0] + np.array([-2.0, 0.0, 2.0])
    np.testing.assert_allclose(patch[0, 0], np.broadcast_to(expected_x[:, None, None], (3, 2, 1)), atol=1e-4)


def test_differently_oriented_scan_gives_the_same_patches(tmp_path: Path) -> None:
    write_subject(tmp_path / "a", "01")
    flip = np.eye(4)
    flip[0, 0], flip[0, 3] = -1, SHAPE[0] - 1
    affine = make_affine() @ flip  # x axis stored reversed ...
    affine = affine[:, [2, 0, 1, 3]]  # ... and array axes in z, x, y order
    reorient = lambda a: np.ascontiguousarray(a[::-1].transpose(2, 0, 1))  # noqa: E731
    write_subject(
        tmp_path / "b",
        "01",
        qsm=reorient(make_qsm()),
        flair=reorient(make_flair(100)),
        labels=reorient(make_labels()),
        affine=affine,
    )
    table_a, table_b = load_cohort(tmp_path / "a"), load_cohort(tmp_path / "b")
    np.testing.assert_allclose(
        table_a[["centroid_x", "centroid_y", "centroid_z"]],
        table_b[["centroid_x", "centroid_y", "centroid_z"]],
        atol=1e-5,
    )
    extractor = PatchExtractor(size_mm=(13.3, 11.1, 9.7), shape=(9, 7, 5))
    np.testing.assert_allclose(extractor.transform(table_a), extractor.transform(table_b), atol=1e-4)


def analytic_flair(points: np.ndarray) -> np.ndarray:
    x, y, z = points.T
    return (500 + 100 * np.sin(x / 7) * np.cos(y / 9) + 3 * z).astype(np.float32)


def voxel_centres(shape, affine) -> np.ndarray:
    index = np.indices(shape).reshape(3, -1).T
    return index @ affine[:3, :3].T + affine[:3, 3]


@pytest.mark.slow
@pytest.mark.parametrize("normalize", ["none", "nawm"])
def test_flair_on_another_grid_equals_flair_resampled_to_the_qsm_grid(tmp_path: Path, normalize: str) -> None:
    qsm_affine = make_affine()
    fine_spacing = np.array(SPACING) / 2
    flair_affine = make_affine(tuple(fine_spacing), tuple(qsm_affine[:3, 3] - fine_spacing / 2))  # same field of view
    fine_shape = tuple(2 * s for s in SHAPE)
    native = analytic_flair(voxel_centres(fine_shape, flair_affine)).reshape(fine_shape)
    on_qsm_grid = analytic_flair(voxel_centres(SHAPE, qsm_affine)).reshape(SHAPE)
    write_subject(tmp_path / "native", "01", flair=native, flair_affine=flair_affine)
    write_subject(tmp_path / "resampled", "01", flair=on_qsm_grid)
    extractor = PatchExtractor(size_mm=10.0, shape=(6, 6, 4), channels=("flair",), normalize=normalize)
    a = extractor.transform(load_cohort(tmp_path / "native"))
    b = extractor.transform(load_cohort(tmp_path / "resampled"))
    scale = 1.0 if normalize == "none" else 1 / 500
    np.testing.assert_allclose(a, b, atol=2.0 * scale)  # trilinear error of a 100-unit sine at 0.9-2 mm voxels
    assert np.abs(a - b).mean() < 0.5 * scale


def test_outside_the_volume_is_zero(table: pd.DataFrame) -> None:
    corner = make_affine()[:3, 3] - np.array(SPACING) / 2  # the volume's outer corner
    subject = table.iloc[[0]].assign(centroid_x=corner[0], centroid_y=corner[1], centroid_z=corner[2])
    for normalize in ("none", "nawm", "ring"):
        patch = PatchExtractor(size_mm=8.0, shape=4, normalize=normalize, channels=("qsm", "flair", "mask")).transform(subject)[0]
        assert (patch[:, :2] == 0).all() and (patch[:, 2:, 2:, 2:] != 0).any()  # low octants outside, high inside


@pytest.mark.slow
@pytest.mark.parametrize("normalize", ["nawm", "ring"])
def test_referencing_removes_site_offset_and_scale(tmp_path: Path, normalize: str) -> None:
    i, j, k = np.indices(SHAPE)
    brain = ((i - 12) / 14) ** 2 + ((j - 11) / 13) ** 2 + ((k - 6) / 8) ** 2 <= 1
    qsm = np.where(brain, make_qsm(), 0).astype(np.float32)
    flair = np.where(brain, make_flair(100), 0).astype(np.float32)
    write_subject(tmp_path / "site_a", "01", qsm=qsm, flair=flair)
    write_subject(tmp_path / "site_b", "01", qsm=np.where(brain, 1.7 * qsm - 15, 0).astype(np.float32), flair=3 * flair)
    extractor = PatchExtractor(size_mm=8.0, shape=4, normalize=normalize, channels=("qsm", "flair", "mask"))
    a = extractor.transform(load_cohort(tmp_path / "site_a").iloc[[1]])
    b = extractor.transform(load_cohort(tmp_path / "site_b").iloc[[1]])
    raw = PatchExtractor(size_mm=8.0, shape=4, normalize="none")
    assert not np.allclose(
        raw.transform(load_cohort(tmp_path / "site_a").iloc[[1]]),
        raw.transform(load_cohort(tmp_path / "site_b").iloc[[1]]),
    )
    np.testing.assert_allclose(a, b, atol=1e-4)
    assert abs(float(np.median(a[0, 1]))) > 0.5  # FLAIR in units of the normal-appearing median


def test_distance_channel_is_the_signed_distance_to_this_lesion_in_mm(table: pd.DataFrame) -> None:
    from rimclf.features.patches import MAX_DISTANCE_MM

    extractor = PatchExtractor(size_mm=16.0, shape=16, channels=("mask", "distance"), normalize="none")
    patches = extractor.transform(table.iloc[:2])
    mask, distance = patches[:, 0] > 0.5, patches[:, 1]
    assert (distance[mask] < 0).all() and (distance[~mask] > 0).all()  # negative inside, positive outside
    assert np.abs(distance).max() <= MAX_DISTANCE_MM
    # neighbours across the boundary are about one patch voxel (1 mm) apart in distance
    across = mask[:, :-1] != mask[:, 1:]
    assert np.abs(distance[:, :-1] - distance[:, 1:])[across].max() <= 1.0 + 1e-6


def test_zscore_standardises_each_image_channel(table: pd.DataFrame) -> None:
    patches = PatchExtractor(size_mm=12.0, shape=6, normalize="zscore", channels=("qsm", "flair", "mask")).transform(table.iloc[:2])
    np.testing.assert_allclose(patches[:, :2].mean(axis=(2, 3, 4)), 0, atol=1e-5)
    np.testing.assert_allclose(patches[:, :2].std(axis=(2, 3, 4)), 1, atol=1e-4)
    assert set(np.unique(patches[:, 2])) <= {0.0, 1.0}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"channels": ("qsm", "t2")},
            r"channels=\('qsm', 't2'\) is not valid: \['t2'\] not in the choices \('qsm', 'flair', 'mask', 'distance'\)",
        ),
        ({"channels": "qsm"}, r"channels='qsm' is not valid; give a non-empty tuple"),
        ({"channels": ("qsm", "qsm")}, "a channel is repeated"),
        ({"normalize": "robust"}, r"normalize='robust' is not valid; it must be one of \('nawm', 'ring', 'zscore', 'none'\)"),
        ({"size_mm": -4}, "size_mm=-4 is not valid; it must be a positive number or three of them"),
        ({"shape": (8, 8)}, r"shape=\(8, 8\) is not valid; it must be a positive integer"),
        ({"shape": 2.5}, "shape=2.5 is not valid"),
    ],
)
def test_bad_parameters_name_value_and_choices(table: pd.DataFrame, params: dict, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        PatchExtractor(**params).transform(table)


def test_table_without_centroids_is_refused(table: pd.DataFrame) -> None:
    with pytest.raises(CohortError, match=r"lacks column\(s\) \['centroid_x'\]"):
        PatchExtractor().fit(table.drop(columns="centroid_x"))
