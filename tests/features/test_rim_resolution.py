"""Resolution-aware rim features: boundary extents, weights, weighted quantiles, isotropic grids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rimclf.errors import ParameterError
from rimclf.features._regions import signed_distance_mm
from rimclf.features._rim_weights import boundary_extent_mm, resolution_weights, weighted_quantile
from rimclf.features.rim_profile import QSM_FEATURES, RESOLUTION_FEATURES, RimProfileExtractor
from tests.features.rim_builders import write_spheres
from tests.features.test_rim_profile import features


def _sphere(spacing: tuple[float, float, float], radius_mm: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    spacing_mm = np.asarray(spacing)
    shape = tuple(int(np.ceil(24.0 / s)) | 1 for s in spacing_mm)
    index = np.indices(shape, dtype=float)
    centre = (np.asarray(shape, dtype=float) - 1) / 2
    mm = (index - centre.reshape(3, 1, 1, 1)) * spacing_mm.reshape(3, 1, 1, 1)
    return np.sqrt((mm**2).sum(axis=0)) <= radius_mm, spacing_mm


def test_boundary_extent_follows_the_thick_axis() -> None:
    """On a 1 x 1 x 3 mm grid a sphere's boundary is resolved at its equator, smeared at its poles."""
    lesion, spacing = _sphere((1.0, 1.0, 3.0))
    extent = boundary_extent_mm(signed_distance_mm(lesion, spacing), spacing)
    c = [n // 2 for n in lesion.shape]
    top = int(np.flatnonzero(lesion[c[0], c[1]]).max())
    assert extent[c[0], c[1], top] == pytest.approx(3.0, abs=0.3)  # pole: normal along the thick axis
    side = int(np.flatnonzero(lesion[:, c[1], c[2]]).max())
    assert extent[side, c[1], c[2]] == pytest.approx(1.0, abs=0.2)  # equator: normal in-plane


@pytest.mark.parametrize("resolution", ["weighted", "resolved"])
def test_weights_are_one_on_an_isotropic_grid_and_lower_through_thick_slices(resolution: str) -> None:
    lesion, spacing = _sphere((1.2, 1.2, 1.2))
    assert np.all(resolution_weights(signed_distance_mm(lesion, spacing), spacing, resolution) == 1.0)
    assert resolution_weights(signed_distance_mm(lesion, spacing), spacing, "ignore") is None
    lesion, spacing = _sphere((1.0, 1.0, 3.0))
    weights = resolution_weights(signed_distance_mm(lesion, spacing), spacing, resolution)
    c = [n // 2 for n in lesion.shape]
    top = int(np.flatnonzero(lesion[c[0], c[1]]).max())
    side = int(np.flatnonzero(lesion[:, c[1], c[2]]).max())
    assert weights[side, c[1], c[2]] == pytest.approx(1.0, abs=0.05)
    assert weights[c[0], c[1], top] < 0.3
    assert ((weights >= 0) & (weights <= 1)).all()


def test_weighted_quantile() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=37)
    for q in (0.0, 0.25, 0.5, 0.9, 1.0):
        assert weighted_quantile(values, np.full(37, 0.3), q) == np.quantile(values, q)
        assert weighted_quantile(values, None, q) == np.quantile(values, q)
    # a zero weight leaves a value out; a larger weight pulls the quantile toward its value
    assert weighted_quantile(np.array([0.0, 1.0, 100.0]), np.array([1.0, 1.0, 0.0]), 1.0) == 1.0
    assert weighted_quantile(np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 1.0]), 0.5) == 1.0
    assert weighted_quantile(np.array([0.0, 1.0, 2.0]), np.array([4.0, 1.0, 1.0]), 0.5) < 1.0
    assert np.isnan(weighted_quantile(np.array([1.0]), np.array([0.0]), 0.5))
    assert np.isnan(weighted_quantile(np.array([]), None, 0.5))


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_spheres(tmp_path_factory.mktemp("iso") / "cohort", spacing_mm=(1.0, 1.0, 1.0))


@pytest.mark.parametrize("resolution", ["weighted", "resolved"])
def test_isotropic_grid_gives_the_unweighted_features(cohort: Path, resolution: str) -> None:
    plain = features(cohort)
    aware = features(cohort, RimProfileExtractor(resolution=resolution))
    assert list(aware.columns) == [*plain.columns[: len(QSM_FEATURES)], *RESOLUTION_FEATURES,
                                   *plain.columns[len(QSM_FEATURES):]]
    pd.testing.assert_frame_equal(aware.drop(columns=list(RESOLUTION_FEATURES)), plain)
    # a 4 mm sphere's edge band on a 1 mm grid: a few hundred voxels, all resolved
    assert (aware["rim_log_resolved_edge_voxels"].between(2.0, 3.0)).all()


def test_thick_slices_keep_the_rim_ordering(tmp_path: Path) -> None:
    """On 0.8 x 0.8 x 2.4 mm voxels the resolved edge still tells a rim from its mimics."""
    aware = features(write_spheres(tmp_path / "cohort", spacing_mm=(0.8, 0.8, 2.4)),
                     RimProfileExtractor(resolution="weighted"))
    for name in ("rim_contrast", "rim_directional_contrast", "rim_coverage"):
        assert aware.loc["full_rim", name] > aware.loc[["spot", "uniform", "vein", "iso"], name].max(), name


def test_cache_key_and_bad_setting() -> None:
    assert "resolution" not in RimProfileExtractor().cache_key()
    assert RimProfileExtractor(resolution="weighted").cache_key()["resolution"] == "weighted"
    with pytest.raises(ParameterError, match="resolution"):
        RimProfileExtractor(resolution="sharp").fit()
