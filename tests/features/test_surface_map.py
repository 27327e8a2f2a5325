"""SurfaceMapExtractor: rims as bright rows, invariances, a reoriented copy on disk, bad settings."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from rimclf._nifti import save_nifti
from rimclf.cohort import load_cohort
from rimclf.errors import DataWarning, ParameterError
from rimclf.features import LesionFeaturizer
from rimclf.features.rim_profile import fibonacci_directions
from rimclf.features.surface_map import SurfaceMapExtractor, cell_medians
from tests.features.rim_builders import PATTERNS, lesion_at_volume_edge, render, site_offset_and_scale, write_spheres

#: rows of the default map: 1 mm bins from -3 to 4 mm; the rim shell peaks 0.3 mm outside the edge
RIM_ROWS = [2, 3]  # -1..0 mm and 0..1 mm
CORE_ROW = 1       # -2..-1 mm


def maps(folder: Path, extractor: SurfaceMapExtractor | None = None) -> dict[str, np.ndarray]:
    extractor = extractor or SurfaceMapExtractor()
    table = load_cohort(folder, qsm_unit="ppb")
    values = extractor.fit(table).transform(table)
    return {PATTERNS[i - 1]: value for i, value in zip(table["lesion_id"], values)}


@pytest.fixture(scope="module")
def spheres(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    return maps(write_spheres(tmp_path_factory.mktemp("spheres") / "cohort"))


def test_shape_and_coverage(spheres: dict[str, np.ndarray]) -> None:
    assert SurfaceMapExtractor().output_shape() == (2, 7, 32)
    for value in spheres.values():
        assert value.shape == (2, 7, 32) and value.dtype == np.float32 and np.isfinite(value).all()
        coverage = value[1]
        assert set(np.unique(coverage)) <= {0.0, 0.25, 0.5, 0.75, 1.0}
        assert coverage[2:].mean() > 0.95  # 0.8 mm voxels fill nearly every 1 mm x 1/32-sphere cell
        assert 0 < coverage[0].mean() < 0.8  # but a 4 mm lesion has few voxels 2-3 mm deep


def test_full_rim_is_a_bright_row_in_every_direction(spheres: dict[str, np.ndarray]) -> None:
    qsm = spheres["full_rim"][0]
    rim = qsm[RIM_ROWS].max(axis=0)
    assert (rim > 3.0).all()  # every direction: the rim stands out by several subject SDs
    assert (rim > qsm[CORE_ROW] + 3.0).all() and (rim > qsm[-1] + 3.0).all()  # brighter than core and beyond
    iso = spheres["iso"][0]
    assert np.abs(iso[RIM_ROWS]).max() < 1.5


def test_partial_rim_only_in_its_directions(spheres: dict[str, np.ndarray]) -> None:
    """The cap covers the directions with x-cosine > 0.2: bright there, not elsewhere."""
    rim = spheres["partial_rim"][0][RIM_ROWS].max(axis=0)
    cosine = fibonacci_directions(32)[:, 0]
    assert (rim[cosine > 0.5] > 3.0).all()
    assert (rim[cosine < -0.1] < 1.5).all()
    assert 0.25 < np.mean(rim > 2.0) < 0.6


@pytest.mark.slow
def test_invariant_to_qsm_offset_and_scale(tmp_path: Path, spheres: dict[str, np.ndarray]) -> None:
    changed = maps(write_spheres(tmp_path / "cohort", qsm_transform=site_offset_and_scale))
    for name in PATTERNS:
        np.testing.assert_allclose(changed[name], spheres[name], rtol=1e-4, atol=1e-4)


def _write_reoriented(root: Path, order: tuple[int, int, int], flips: tuple[bool, bool, bool]) -> Path:
    """The spheres with their voxel axes permuted and flipped on disk, the affine saying so."""
    qsm, flair, labels, affine = render()
    # new voxel index j_k = old index i_{order[k]} (reversed where flipped)
    shape = np.array(qsm.shape)[list(order)]
    new_affine = np.eye(4)
    new_affine[:3, 3] = affine[:3, 3]
    for k, axis in enumerate(order):
        new_affine[:3, k] = affine[:3, axis]
        if flips[k]:
            new_affine[:3, 3] += affine[:3, axis] * (shape[k] - 1)
            new_affine[:3, k] = -affine[:3, axis]

    def move(data: np.ndarray) -> np.ndarray:
        data = np.transpose(data, order)
        return np.ascontiguousarray(data[tuple(slice(None, None, -1) if f else slice(None) for f in flips)])

    anat = root / "sub-01" / "anat"
    save_nifti(anat / "sub-01_Chimap.nii.gz", move(qsm), new_affine)
    (anat / "sub-01_Chimap.json").write_text('{"Units": "ppb"}\n')
    save_nifti(anat / "sub-01_FLAIR.nii.gz", move(flair), new_affine)
    save_nifti(anat / "sub-01_desc-lesions_mask.nii.gz", move(labels), new_affine)
    return root


@pytest.mark.slow
def test_permuted_and_flipped_copy_gives_the_same_maps(tmp_path: Path, spheres: dict[str, np.ndarray]) -> None:
    """Directions are world directions: a copy stored in another voxel order reads the same."""
    extractor = SurfaceMapExtractor(channels=("qsm", "coverage", "flair"))
    reference = maps(write_spheres(tmp_path / "a"), extractor)
    moved = maps(_write_reoriented(tmp_path / "b", (2, 0, 1), (True, False, True)), extractor)
    for name in PATTERNS:
        np.testing.assert_allclose(moved[name], reference[name], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(reference["full_rim"][:2], spheres["full_rim"], atol=1e-6)


@pytest.mark.slow
def test_flair_channel_reads_the_lesion_against_its_ring(tmp_path: Path) -> None:
    values = maps(write_spheres(tmp_path / "cohort"), SurfaceMapExtractor(channels=("flair",)))["iso"][0]
    np.testing.assert_allclose(values[1:3], 0.6, atol=1e-4)  # inside: FLAIR 160 against 100 around
    np.testing.assert_allclose(values[4:], 0.0, atol=1e-4)


@pytest.mark.slow
def test_unmeasurable_lesion_gets_a_zero_map_and_a_warning(tmp_path: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        values = maps(write_spheres(tmp_path / "cohort", labels_transform=lesion_at_volume_edge))
    assert not values["iso"].any() and values["full_rim"].any()
    assert any("surface map is zero" in str(w.message) for w in caught if issubclass(w.category, DataWarning))


@pytest.mark.slow
def test_in_a_featurizer_it_is_an_image_entry(tmp_path: Path) -> None:
    table = load_cohort(write_spheres(tmp_path / "cohort"), qsm_unit="ppb")
    featurizer = LesionFeaturizer([("surface_map", SurfaceMapExtractor(n_directions=12, n_depths=4))])
    X = featurizer.fit_transform(table)
    assert featurizer.get_output_shapes() == {"surface_map": (2, 4, 12)}
    assert X["surface_map"].shape == (len(table), 2, 4, 12)
    assert featurizer.get_feature_names_out().size == 0  # an image, no columns


def test_cell_medians_match_numpy() -> None:
    rng = np.random.default_rng(0)
    cells, values = rng.integers(0, 7, 200), rng.normal(size=200)
    medians, counts = cell_medians(cells, values, 9)
    for cell in range(9):
        chosen = values[cells == cell]
        assert counts[cell] == chosen.size
        assert (np.isnan(medians[cell]) and not chosen.size) or medians[cell] == pytest.approx(np.median(chosen))


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"depth_mm": (2.0, -2.0)}, "depth_mm"),
        ({"reference_mm": (0.0, 6.0)}, "reference_mm"),
        ({"n_depths": 0}, "n_depths"),
        ({"n_directions": 3}, "n_directions"),
        ({"channels": ("qsm", "mask")}, "channels"),
        ({"channels": "qsm"}, "channels"),
        ({"channels": ("qsm", "qsm")}, "repeated"),
    ],
)
def test_bad_parameters_are_refused_by_name(params: dict, match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        SurfaceMapExtractor(**params).fit()


@pytest.mark.slow
def test_save_features_writes_the_maps(tmp_path: Path) -> None:
    from rimclf.features import save_features

    cohort = write_spheres(tmp_path / "cohort")
    table = load_cohort(cohort, qsm_unit="ppb")
    featurizer = LesionFeaturizer([("surface_map", SurfaceMapExtractor(n_directions=12))])
    out = save_features(table, tmp_path / "features", featurizer=featurizer)
    saved = np.load(out / "surface_map.npy")
    assert saved.shape == (len(table), 2, 7, 12)
    np.testing.assert_array_equal(saved, featurizer.transform(table)["surface_map"])
