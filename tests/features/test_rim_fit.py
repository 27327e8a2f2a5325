"""RimFitExtractor: the fitted rim on synthetic spheres, pure noise, thick slices, invariances, bad inputs."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rimclf._nifti import save_nifti
from rimclf.cohort import load_cohort
from rimclf.errors import DataWarning, ParameterError
from rimclf.features import rim_fit
from rimclf.features._profile_fit import FitSettings, design_matrix, fit_lesion
from rimclf.features.rim_fit import FIT_FEATURES, RimFitExtractor
from tests.features.rim_builders import PATTERNS, lesion_at_volume_edge, render, site_offset_and_scale, write_spheres

MIMICS = ["spot", "uniform", "vein", "iso"]


def features(folder: Path, extractor: RimFitExtractor | None = None) -> pd.DataFrame:
    extractor = extractor or RimFitExtractor()
    table = load_cohort(folder, qsm_unit="ppb")
    values = extractor.fit(table).transform(table)
    return pd.DataFrame(values, columns=extractor.get_feature_names_out(), index=[PATTERNS[i - 1] for i in table["lesion_id"]])


def write_thick_slices(root: Path, label: str = "01", factor: int = 3, fine_mm: float = 0.8, noise_ppb: float = 2.0) -> Path:
    """The spheres rendered on a fine isotropic grid and averaged over ``factor`` slices (partial
    volume, as a thick-slice acquisition sees them), noise added after (so the subject's spread is
    the same on both grids); labels from each thick slice's middle."""
    qsm, flair, labels, affine = render((fine_mm,) * 3, noise_ppb=0.0)
    n = qsm.shape[2] // factor * factor

    def thick(volume: np.ndarray) -> np.ndarray:
        return volume[:, :, :n].reshape(*volume.shape[:2], n // factor, factor).mean(axis=3)

    support = thick((qsm != 0).astype(float)) == 1.0
    qsm = thick(qsm) + np.random.default_rng(0).normal(0.0, noise_ppb, support.shape)
    qsm = np.where(support, qsm, 0.0)
    labels = labels[:, :, factor // 2 : n : factor]
    affine = affine.copy()
    affine[2, 2] = fine_mm * factor
    affine[2, 3] += fine_mm * (factor // 2)
    anat = root / f"sub-{label}" / "anat"
    save_nifti(anat / f"sub-{label}_Chimap.nii.gz", qsm.astype(np.float32), affine)
    (anat / f"sub-{label}_Chimap.json").write_text('{"Units": "ppb"}\n')
    save_nifti(anat / f"sub-{label}_FLAIR.nii.gz", thick(flair).astype(np.float32), affine)
    save_nifti(anat / f"sub-{label}_desc-lesions_mask.nii.gz", labels.astype(np.int16), affine)
    return root


@pytest.fixture(scope="module")
def spheres(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    return features(write_spheres(tmp_path_factory.mktemp("spheres") / "cohort"))


def test_feature_names_and_shape(spheres: pd.DataFrame) -> None:
    assert list(spheres.columns) == list(FIT_FEATURES)
    assert spheres.shape == (len(PATTERNS), len(FIT_FEATURES))
    assert np.isfinite(spheres.to_numpy()).all()


def test_a_rim_is_large_and_significant_and_its_mimics_are_not(spheres: pd.DataFrame) -> None:
    for name in ("rimfit_t", "rimfit_prominence", "rimfit_gain", "rimfit_dir_t_fraction", "rimfit_dir_amplitude_mean"):
        column = spheres[name]
        assert column["full_rim"] > column["partial_rim"] > column[MIMICS].max(), name
    assert spheres.loc["full_rim", "rimfit_t"] > 20 and spheres.loc["full_rim", "rimfit_dir_t_fraction"] > 0.9
    assert 0.25 < spheres.loc["partial_rim", "rimfit_dir_t_fraction"] < 0.6  # a cap over 40 % of the sphere
    # a uniformly bright lesion: no rim on top of its bright core, so its edge is below the core
    assert spheres.loc["uniform", "rimfit_prominence"] < -2 and spheres.loc["uniform", "rimfit_dir_amplitude_mean"] < 0.1
    assert spheres.loc["vein", "rimfit_dir_t_fraction"] < 0.2


@pytest.mark.parametrize("noise_ppb", [2.0, 6.0])
def test_pure_noise_lesions_stay_quiet(tmp_path: Path, noise_ppb: float) -> None:
    """An iso-intense lesion in noise: no significant rim, in any direction to speak of."""
    for seed in range(3):
        iso = features(write_spheres(tmp_path / f"c{seed}", noise_ppb=noise_ppb, seed=seed)).loc["iso"]
        assert abs(iso["rimfit_t"]) < 3.5 and abs(iso["rimfit_prominence"]) < 0.5, (seed, iso["rimfit_t"])
        assert iso["rimfit_dir_t_fraction"] <= 0.15 and iso["rimfit_dir_amplitude_mean"] < 0.1


def test_invariant_to_qsm_offset_and_scale(tmp_path: Path, spheres: pd.DataFrame) -> None:
    changed = features(write_spheres(tmp_path / "cohort", qsm_transform=site_offset_and_scale))
    np.testing.assert_allclose(changed.to_numpy(), spheres.to_numpy(), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("spacing_mm", [(1.0, 1.0, 1.5), (0.6, 0.9, 1.2)])
def test_another_grid_changes_features_little(tmp_path: Path, spheres: pd.DataFrame, spacing_mm) -> None:
    other = features(write_spheres(tmp_path / "cohort", spacing_mm=spacing_mm))
    for name in ("rimfit_prominence", "rimfit_dir_amplitude_mean", "rimfit_noise"):
        scale = abs(spheres.loc["full_rim", name] - spheres.loc["iso", name])
        assert (other[name] - spheres[name]).abs().max() <= max(0.5, 0.15 * scale), name
    for name in ("rimfit_dir_t_fraction", "rimfit_gain"):
        assert (other[name] - spheres[name]).abs().max() <= 0.15, name
    # the t-value counts evidence: the same anatomy gives the same order of magnitude
    ratio = other.loc["full_rim", "rimfit_t"] / spheres.loc["full_rim", "rimfit_t"]
    assert 0.5 < ratio < 2.0


def test_thick_slices_keep_the_rim_height(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Averaged over 2.4 mm slices a 0.7 mm rim is diluted where the slices cut it; the fitted
    amplitude deconvolves that and stays near its fine-grid value, and the order of the patterns holds."""
    fine = features(write_thick_slices(tmp_path / "fine", factor=1))
    thick = features(write_thick_slices(tmp_path / "thick", factor=3))
    for pattern in ("full_rim", "partial_rim"):
        assert thick.loc[pattern, "rimfit_prominence"] == pytest.approx(fine.loc[pattern, "rimfit_prominence"], rel=0.2)
    # without the voxel's extent in the model (every voxel as thin as the finest), the rim comes out lower
    monkeypatch.setattr(rim_fit, "boundary_extent_mm", lambda distance, spacing: np.full(distance.shape, min(spacing)))
    naive = features(write_thick_slices(tmp_path / "naive", factor=3))
    assert naive.loc["full_rim", "rimfit_prominence"] < thick.loc["full_rim", "rimfit_prominence"] - 0.5
    for name in ("rimfit_prominence", "rimfit_t", "rimfit_dir_t_fraction"):
        assert thick.loc["full_rim", name] > thick.loc["partial_rim", name] > thick.loc[MIMICS, name].max(), name


def test_the_fit_recovers_known_levels() -> None:
    """Data drawn from the model itself (thick and thin voxels mixed) give back its coefficients."""
    rng = np.random.default_rng(0)
    settings = FitSettings(1.5, 1.0, (3.0, 6.0), 16, 0.8, (0.0, 0.5), 2.0)
    distance = rng.uniform(-3.0, 3.0, 4000)
    extent = rng.choice([0.8, 2.5], 4000)
    truth = np.array([-0.5, 0.3, 2.0])
    values = design_matrix(distance, extent, settings, 0.5) @ truth + rng.normal(0.0, 0.5, 4000)
    values[:40] += 30.0  # a few outliers (a vein): the robust fit shrugs them off
    fit = fit_lesion(distance, extent, values, settings, voxel_mm3=2.0)
    assert fit.offset_mm == 0.5
    np.testing.assert_allclose([fit.core, fit.surround, fit.amplitude], truth, atol=0.1)
    assert fit.scale == pytest.approx(0.5, rel=0.15)
    assert fit.t > 20
    assert fit_lesion(distance[:3], extent[:3], values[:3], settings, voxel_mm3=1.0) is None


def test_lesion_touching_the_volume_edge_gets_nan_and_a_warning(tmp_path: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        values = features(write_spheres(tmp_path / "cohort", labels_transform=lesion_at_volume_edge))
    messages = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert values.loc["iso"].isna().all()
    assert values.drop(index="iso").notna().all().all()
    assert any("lesion 6" in m and "edge of the volume" in m and "rim-fit" in m for m in messages)


def test_featurizer_joins_it_after_the_rim_features(tmp_path: Path) -> None:
    from dataclasses import replace

    from rimclf.defaults import DEFAULT_MODEL
    from rimclf.features import make_featurizer

    table = load_cohort(write_spheres(tmp_path / "cohort"), qsm_unit="ppb")
    X = make_featurizer(replace(DEFAULT_MODEL, feature_set=("rim", "rim_fit")), progress=False).fit_transform(table)
    assert list(X.feature_names["rim_fit"]) == list(FIT_FEATURES)
    assert X["rim_fit"].shape == (len(table), len(FIT_FEATURES))


@pytest.mark.parametrize(
    "params, match",
    [
        ({"edge_mm": 0}, "edge_mm"),
        ({"reference_mm": (6.0, 3.0)}, "reference_mm"),
        ({"n_directions": 4}, "n_directions"),
        ({"rim_sigma_mm": -1.0}, "rim_sigma_mm"),
        ({"step_sigma_mm": 0.0}, "step_sigma_mm"),
        ({"offsets_mm": ()}, "offsets_mm"),
        ({"offsets_mm": (0.0, 9.0)}, "offsets_mm"),
        ({"offsets_mm": "0.5"}, "offsets_mm"),
        ({"t_threshold": 0}, "t_threshold"),
    ],
)
def test_bad_parameters_are_refused_by_name(params: dict, match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        RimFitExtractor(**params).fit()


def test_cache_key_follows_the_settings() -> None:
    assert RimFitExtractor().cache_key() != RimFitExtractor(rim_sigma_mm=0.6).cache_key()
    assert RimFitExtractor().cache_key() == RimFitExtractor().cache_key()
