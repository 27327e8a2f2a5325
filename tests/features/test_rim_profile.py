"""RimProfileExtractor: a radiologist's ordering of synthetic spheres, invariances, grids, bad inputs."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rimclf.cohort import load_cohort
from rimclf.errors import DataWarning, ParameterError
from rimclf.features.rim_profile import (
    FLAIR_FEATURES,
    QSM_FEATURES,
    SIZE_FEATURES,
    RimProfileExtractor,
    fibonacci_directions,
    signed_distance_mm,
)
from tests.features.rim_builders import PATTERNS, lesion_at_volume_edge, site_offset_and_scale, write_spheres


def features(folder: Path, extractor: RimProfileExtractor | None = None) -> pd.DataFrame:
    extractor = extractor or RimProfileExtractor()
    table = load_cohort(folder, qsm_unit="ppb")
    values = extractor.fit(table).transform(table)
    return pd.DataFrame(values, columns=extractor.get_feature_names_out(), index=[PATTERNS[i - 1] for i in table["lesion_id"]])


@pytest.fixture(scope="module")
def spheres(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    return features(write_spheres(tmp_path_factory.mktemp("spheres") / "cohort"))


def test_feature_names_and_shape(spheres: pd.DataFrame) -> None:
    assert list(spheres.columns) == [*QSM_FEATURES, *FLAIR_FEATURES, *SIZE_FEATURES]
    assert list(RimProfileExtractor(flair=False, volume=False).get_feature_names_out()) == list(QSM_FEATURES)
    assert spheres.shape == (len(PATTERNS), len(spheres.columns))
    assert np.isfinite(spheres.to_numpy()).all()


def test_radiologist_ordering(spheres: pd.DataFrame) -> None:
    """A full rim beats a 40 % partial rim, which beats every mimic, on the rim measures."""
    mimics = ["spot", "uniform", "vein", "iso"]
    for name in ("rim_contrast", "rim_directional_contrast", "rim_coverage"):
        column = spheres[name]
        assert column["full_rim"] > column["partial_rim"] > column[mimics].max(), name
    assert spheres.loc["full_rim", "rim_coverage"] > 0.9
    assert 0.3 < spheres.loc["partial_rim", "rim_coverage"] < 0.6  # about 40 % of the directions
    # a uniformly bright lesion: its edge is not brighter than its core
    assert spheres.loc["uniform", "rim_edge_minus_core"] < 0 < spheres.loc["full_rim", "rim_edge_minus_core"]
    assert spheres.loc["uniform", "rim_peak_depth_mm"] < 0 < spheres.loc["full_rim", "rim_peak_depth_mm"]
    # the spot is the most concentrated bright spot; a full ring is not concentrated at all
    concentration = spheres["rim_concentration"]
    assert concentration["spot"] > concentration["partial_rim"] > concentration["full_rim"]
    assert concentration["full_rim"] < 0.1
    # the vein's bright edge lies along a line, a rim's on a sheet
    flatness = spheres["rim_bright_flatness"]
    assert flatness["vein"] < 0.4 < 0.9 < min(flatness["full_rim"], flatness["partial_rim"])
    assert spheres.loc["vein", "rim_edge_p99"] > spheres.loc["full_rim", "rim_edge_p99"]
    np.testing.assert_allclose(spheres["rim_flair_ratio"], 1.6, atol=0.01)
    np.testing.assert_allclose(10 ** spheres["rim_log_volume_mm3"], 4 / 3 * np.pi * 4.0**3, rtol=0.05)


def test_invariant_to_qsm_offset_and_scale(tmp_path: Path, spheres: pd.DataFrame) -> None:
    """A site's QSM reference (an offset inside the brain) and scale change no feature."""

    changed = features(write_spheres(tmp_path / "cohort", qsm_transform=site_offset_and_scale))
    np.testing.assert_allclose(changed.to_numpy(), spheres.to_numpy(), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("spacing_mm", [(1.0, 1.0, 1.5), (0.6, 0.9, 1.2)])
def test_another_grid_changes_features_little(tmp_path: Path, spheres: pd.DataFrame, spacing_mm) -> None:
    """The same anatomy on another voxel grid: the features move far less than rim and mimic differ.

    Not compared: the extreme quantiles and the near-ring and reference-ring statistics of the
    white matter (noise-driven, and a 0.8 mm vein's peak depends on where the voxel centres fall).
    """
    other = features(write_spheres(tmp_path / "cohort", spacing_mm=spacing_mm))
    q_units = ["rim_core_median", "rim_inner_edge_median", "rim_outer_edge_median", "rim_edge_p90",
               "rim_edge_minus_core", "rim_edge_minus_ring", "rim_contrast", "rim_directional_contrast"]
    for name in q_units:
        scale = abs(spheres.loc["full_rim", name] - spheres.loc["iso", name])
        assert (other[name] - spheres[name]).abs().max() <= max(0.5, 0.2 * scale), name
    for name in ("rim_coverage", "rim_coverage_strong", "rim_edge_bright_fraction", "rim_concentration"):
        assert (other[name] - spheres[name]).abs().max() <= 0.15, name
    assert (other["rim_peak_depth_mm"] - spheres["rim_peak_depth_mm"]).abs().max() <= 0.6
    assert (other["rim_log_volume_mm3"] - spheres["rim_log_volume_mm3"]).abs().max() <= 0.03
    bright = ["full_rim", "partial_rim", "vein"]
    assert (other.loc[bright, "rim_bright_flatness"] - spheres.loc[bright, "rim_bright_flatness"]).abs().max() <= 0.15


def _extract_with_warnings(folder: Path) -> tuple[pd.DataFrame, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        values = features(folder)
    return values, [str(w.message) for w in caught if issubclass(w.category, DataWarning)]


def test_lesion_touching_the_volume_edge_gets_nan_and_a_warning(tmp_path: Path) -> None:
    values, messages = _extract_with_warnings(write_spheres(tmp_path / "cohort", labels_transform=lesion_at_volume_edge))
    assert values.loc["iso"].isna().all()
    assert values.drop(index="iso").notna().all().all()
    assert any("lesion 6" in m and "edge of the volume" in m for m in messages)


def test_no_normal_tissue_around_gets_nan_and_a_warning(tmp_path: Path) -> None:
    def no_surroundings(qsm: np.ndarray, labels: np.ndarray) -> np.ndarray:
        from scipy import ndimage

        iso = labels == 6
        around = (ndimage.distance_transform_edt(~iso) * 0.8 <= 8.0) & ~iso  # 8 mm on the 0.8 mm grid
        return np.where(around, 0.0, qsm)  # no QSM data around the lesion

    values, messages = _extract_with_warnings(write_spheres(tmp_path / "cohort", qsm_transform=no_surroundings))
    assert values.loc["iso"].isna().all()
    assert values.loc["full_rim"].notna().all()
    assert any("lesion 6" in m and "normal-appearing voxels" in m for m in messages)


def test_lesion_without_qsm_data_gets_nan_and_a_warning(tmp_path: Path) -> None:
    values, messages = _extract_with_warnings(
        write_spheres(tmp_path / "cohort", qsm_transform=lambda qsm, labels: np.where(labels == 6, 0.0, qsm))
    )
    assert values.loc["iso"].isna().all()
    assert any("lesion 6" in m and "no voxel with QSM data" in m for m in messages)


def test_nan_features_are_imputed_by_a_baseline(tmp_path: Path) -> None:
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    values, _ = _extract_with_warnings(
        write_spheres(tmp_path / "cohort", qsm_transform=lambda qsm, labels: np.where(labels == 6, 0.0, qsm))
    )
    y = np.array([1, 1, 0, 0, 0, 0])
    model = make_pipeline(SimpleImputer(strategy="median"), LogisticRegression()).fit(values.to_numpy(), y)
    assert np.isfinite(model.predict_proba(values.to_numpy())).all()


@pytest.mark.parametrize(
    "params, match",
    [
        ({"edge_mm": 0}, "edge_mm"),
        ({"edge_mm": "wide"}, "edge_mm"),
        ({"reference_mm": (6.0, 3.0)}, "reference_mm"),
        ({"reference_mm": 5.0}, "reference_mm"),
        ({"n_directions": 4}, "n_directions"),
        ({"bright_threshold": -1.0}, "bright_threshold"),
        ({"flair": "yes"}, "flair"),
    ],
)
def test_bad_parameters_are_refused_by_name(params: dict, match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        RimProfileExtractor(**params).fit()


def test_signed_distance_is_in_millimetres() -> None:
    lesion = np.zeros((21, 21, 11), dtype=bool)
    i, j, k = np.indices(lesion.shape)
    lesion[(i - 10) ** 2 + (j - 10) ** 2 + ((k - 5) * 2) ** 2 <= 25] = True  # radius 5 mm on a 1 x 1 x 2 grid
    distance = signed_distance_mm(lesion, np.array([1.0, 1.0, 2.0]))
    assert distance[10, 10, 5] == pytest.approx(-5.0, abs=0.6)
    assert distance[10, 10, 10] == pytest.approx(10.0 - 5.0, abs=1.1)
    assert (distance[lesion] <= 0).all() and (distance[~lesion] > 0).all()


def test_fibonacci_directions_are_unit_and_spread() -> None:
    directions = fibonacci_directions(32)
    np.testing.assert_allclose(np.linalg.norm(directions, axis=1), 1.0)
    assert np.linalg.norm(directions.mean(axis=0)) < 0.05
