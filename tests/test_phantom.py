"""The phantom cohort generator: layout, formats, determinism, geometry, rim signal, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from rimclf._nifti import read_array, read_labels, voxel_sizes
from rimclf.cli import main
from rimclf.errors import ParameterError
from rimclf.phantom import make_phantom_cohort
from rimclf.phantom._lesions import sample_rim_labels

TINY = dict(shape=(40, 48, 28), lesions_per_subject=(4, 8))
FILES = ("Chimap", "FLAIR", "desc-lesions_dseg")
#: The phantom's derivatives pipeline: lesion masks, rims.tsv, phantom_lesions.tsv, phantom.json.
DERIVED = Path("derivatives") / "phantom"


def _paths(root: Path, participant: str) -> dict[str, Path]:
    anat = root / participant / "anat"
    paths = {kind: anat / f"{participant}_{kind}.nii.gz" for kind in FILES}
    paths["desc-lesions_dseg"] = root / DERIVED / participant / "anat" / f"{participant}_desc-lesions_dseg.nii.gz"
    return paths


def _arrays(root: Path) -> dict[str, np.ndarray]:
    """Every voxel array and affine of a cohort, keyed by file name."""
    out = {}
    for path in sorted([*root.glob("sub-*/anat/*.nii.gz"), *(root / DERIVED).glob("sub-*/anat/*.nii.gz")]):
        data, affine = read_array(path, dtype=np.float64)
        out[path.name] = data
        out[path.name + ":affine"] = affine
    return out


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """Three tiny subjects (one per site) with many rim+ lesions."""
    return make_phantom_cohort(tmp_path_factory.mktemp("phantom") / "cohort", n_subjects=3, random_state=7, rim_prevalence=0.3, **TINY)


@pytest.fixture(scope="module")
def rims(cohort) -> pd.DataFrame:
    return pd.read_csv(cohort / DERIVED / "rims.tsv", sep="\t")


def test_writes_a_bids_dataset(cohort):
    participants = pd.read_csv(cohort / "participants.tsv", sep="\t")
    assert participants["participant_id"].tolist() == ["sub-001", "sub-002", "sub-003"]
    assert participants["site"].tolist() == ["A", "B", "C"]
    assert participants["age"].between(18, 70).all()
    for participant in participants["participant_id"]:
        assert all(path.is_file() for path in _paths(cohort, participant).values())
    provenance = json.loads((cohort / DERIVED / "phantom.json").read_text())
    assert provenance["parameters"]["random_state"] == 7
    assert provenance["parameters"]["shape"] == [40, 48, 28]
    assert provenance["versions"]["rimclf"]
    truth = pd.read_csv(cohort / DERIVED / "phantom_lesions.tsv", sep="\t")
    assert provenance["summary"]["n_lesions"] == len(truth) == len(pd.read_csv(cohort / DERIVED / "rims.tsv", sep="\t"))
    assert set(truth["pattern"]) <= {"rim", "iso", "hyper", "hypo", "vein_edge", "spot", "faint_ring"}
    assert (truth["rim"] == (truth["pattern"] == "rim")).all()
    raw = json.loads((cohort / "dataset_description.json").read_text())
    assert raw["BIDSVersion"] and raw["DatasetType"] == "raw"
    derived = json.loads((cohort / DERIVED / "dataset_description.json").read_text())
    assert derived["DatasetType"] == "derivative" and derived["GeneratedBy"][0]["Name"] == "rimclf"
    assert derived["GeneratedBy"][0]["Version"] == provenance["versions"]["rimclf"]
    for participant in participants["participant_id"]:
        anat = cohort / participant / "anat"
        assert json.loads((anat / f"{participant}_Chimap.json").read_text())["Units"] == "ppb"
        assert (anat / f"{participant}_FLAIR.json").is_file()
    assert set(json.loads((cohort / "participants.json").read_text())) == {"site", "age", "sex"}
    assert not list(cohort.glob("sub-*/anat/*_desc-lesions*"))  # masks are derivatives


@pytest.mark.slow
def test_pybids_indexes_every_file_of_the_phantom(cohort, tmp_path):
    """With validation on (the raw dataset checked against BIDS, derivatives indexed as such)."""
    from bids import BIDSLayout

    sessions = make_phantom_cohort(tmp_path / "sessions", n_subjects=2, random_state=3, n_sessions=2, **TINY)
    for root in (cohort, sessions):
        layout = BIDSLayout(root, validate=True, derivatives=True)
        indexed = {f.path for f in layout.get()} | {f.path for d in layout.derivatives.values() for f in d.get()}
        on_disk = {str(p) for p in root.rglob("*") if p.is_file()}
        assert on_disk == indexed and len(on_disk) > 10
    assert layout.get_sessions() == ["01", "02"]


@pytest.mark.slow
def test_a_session_layout_loads_with_its_session_column(tmp_path):
    from rimclf.cohort import load_cohort

    one = load_cohort(make_phantom_cohort(tmp_path / "one", n_subjects=2, random_state=3, **TINY))
    two = load_cohort(make_phantom_cohort(tmp_path / "two", n_subjects=2, random_state=3, n_sessions=2, **TINY))
    assert (one["session"] == "").all() and sorted(set(two["session"])) == ["01", "02"]
    assert two["rim"].notna().all() and two["mask"].str.contains("/derivatives/phantom/sub-").all()
    first = two[two["session"] == "01"].drop(columns="session").reset_index(drop=True)
    columns = ["participant_id", "lesion_id", "n_voxels", "volume_mm3", "rim"]
    pd.testing.assert_frame_equal(first[columns], one[columns])  # ses-01 is the one-session subject


def test_volumes_have_the_contract_types_and_grids(cohort, rims):
    for participant, labelled in rims.groupby("participant_id"):
        paths = _paths(cohort, participant)
        qsm, qsm_affine = read_array(paths["Chimap"], dtype=None)
        flair, _ = read_array(paths["FLAIR"], dtype=None)
        mask, mask_affine = read_array(paths["desc-lesions_dseg"], dtype=None)
        assert qsm.ndim == flair.ndim == mask.ndim == 3
        assert qsm.dtype == np.float32 and flair.dtype == np.float32 and mask.dtype == np.int16
        assert mask.shape == qsm.shape
        np.testing.assert_allclose(mask_affine, qsm_affine, atol=1e-6)
        labels = np.unique(mask[mask > 0])
        assert labels.tolist() == list(range(1, len(labels) + 1))
        assert sorted(labelled["lesion_id"]) == labels.tolist()
        assert set(labelled["rim"]) <= {0, 1}
        # every lesion is one 26-connected component, so a binary reading finds the same lesions
        _, n_components = ndimage.label(mask > 0, structure=np.ones((3, 3, 3)))
        assert n_components == len(labels)


def test_values_are_in_plausible_ranges(cohort, rims):
    for participant in rims["participant_id"].unique():
        paths = _paths(cohort, participant)
        qsm, _ = read_array(paths["Chimap"])
        flair, _ = read_array(paths["FLAIR"])
        mask, _ = read_labels(paths["desc-lesions_dseg"])
        assert np.isfinite(qsm).all() and np.isfinite(flair).all()
        assert np.abs(qsm).max() < 1000  # ppb, not ppm and not wild
        assert np.percentile(np.abs(qsm[qsm != 0]), 99) > 20  # ppb, not ppm
        assert (qsm == 0).mean() > 0.2  # zero outside the brain mask
        assert (flair >= 0).all()
        if flair.shape == qsm.shape:
            assert flair[qsm != 0].min() > 0  # positive in the brain
            assert flair[mask > 0].mean() > 1.2 * np.median(flair[qsm != 0])  # lesions are FLAIR-bright


def test_affines_are_realistic_and_sites_differ(cohort):
    affines = {}
    for participant, site in (("sub-001", "A"), ("sub-002", "B"), ("sub-003", "C")):
        _, affine = read_array(_paths(cohort, participant)["Chimap"])
        affines[site] = affine
        assert not np.allclose(affine, np.eye(4))
        assert np.abs(affine[:3, 3]).max() > 10  # a scanner origin, not the corner voxel
        sizes = voxel_sizes(affine)
        assert sizes.max() / sizes.min() > 1.3  # anisotropic voxels
    # site B stores x and y flipped (LPS), site C is oblique: rotation parts differ from site A's
    directions = {site: affine[:3, :3] / voxel_sizes(affine) for site, affine in affines.items()}
    np.testing.assert_allclose(directions["A"], np.eye(3), atol=1e-9)
    assert np.linalg.det(directions["B"]) > 0 and directions["B"][0, 0] < 0 and directions["B"][1, 1] < 0
    assert np.abs(directions["C"] - np.diag(np.diag(directions["C"]))).max() > 0.1
    # site B's FLAIR has its own (sagittal) grid
    _, flair_affine = read_array(_paths(cohort, "sub-002")["FLAIR"])
    assert not np.allclose(flair_affine, affines["B"])


def test_flair_is_world_aligned_with_the_mask(cohort):
    """Sample each subject's FLAIR at the world positions of its lesion voxels (also where the
    FLAIR has its own grid): lesions must be brighter than the tissue around them."""
    for participant in ("sub-001", "sub-002", "sub-003"):
        paths = _paths(cohort, participant)
        mask, mask_affine = read_labels(paths["desc-lesions_dseg"])
        flair, flair_affine = read_array(paths["FLAIR"])
        ring = ndimage.binary_dilation(mask > 0, iterations=3) & ~ndimage.binary_dilation(mask > 0, iterations=1)

        def sample(where: np.ndarray) -> np.ndarray:
            voxels = np.argwhere(where).T
            to_flair = np.linalg.inv(flair_affine) @ mask_affine
            return ndimage.map_coordinates(flair, to_flair[:3, :3] @ voxels + to_flair[:3, 3:], order=1)

        assert sample(mask > 0).mean() > 1.15 * sample(ring).mean()


@pytest.mark.slow
def test_same_seed_gives_identical_cohorts_whatever_n_jobs(cohort, tmp_path):
    again = make_phantom_cohort(tmp_path / "again", n_subjects=3, random_state=7, rim_prevalence=0.3, n_jobs=2, **TINY)
    first, second = _arrays(cohort), _arrays(again)
    assert first.keys() == second.keys()
    for name in first:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)
    for table in ("participants.tsv", DERIVED / "rims.tsv", DERIVED / "phantom_lesions.tsv"):
        assert (cohort / table).read_text() == (again / table).read_text()


def test_a_subject_does_not_depend_on_the_cohort_size(cohort, tmp_path):
    single = make_phantom_cohort(tmp_path / "one", n_subjects=1, random_state=7, rim_prevalence=0.3, **TINY)
    for kind in FILES:
        a, _ = read_array(_paths(cohort, "sub-001")[kind])
        b, _ = read_array(_paths(single, "sub-001")[kind])
        np.testing.assert_array_equal(a, b)


def test_another_seed_gives_another_cohort(cohort, tmp_path):
    other = make_phantom_cohort(tmp_path / "other", n_subjects=1, random_state=8, rim_prevalence=0.3, **TINY)
    a, _ = read_array(_paths(cohort, "sub-001")["Chimap"])
    b, _ = read_array(_paths(other, "sub-001")["Chimap"])
    assert a.shape != b.shape or not np.array_equal(a, b)


@pytest.mark.slow
def test_refuses_to_overwrite_without_force(cohort, tmp_path):
    out = tmp_path / "cohort"
    make_phantom_cohort(out, n_subjects=1, random_state=0, **TINY)
    before = (out / DERIVED / "rims.tsv").read_text()
    with pytest.raises(FileExistsError, match="force"):
        make_phantom_cohort(out, n_subjects=1, random_state=1, **TINY)
    assert (out / DERIVED / "rims.tsv").read_text() == before
    make_phantom_cohort(out, n_subjects=2, random_state=1, force=True, **TINY)
    assert len(pd.read_csv(out / "participants.tsv", sep="\t")) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["cohort"]  # no temporary folders left behind


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_subjects": 0}, "n_subjects"),
        ({"difficulty": "extreme"}, "difficulty"),
        ({"shape": (10, 48, 28)}, "shape"),
        ({"rim_prevalence": 1.5}, "rim_prevalence"),
        ({"lesions_per_subject": (8, 4)}, "lesions_per_subject"),
        ({"n_sites": 5}, "n_sites"),
        ({"random_state": "seed"}, "random_state"),
        ({"n_sessions": 0}, "n_sessions"),
    ],
)
def test_bad_parameters_are_named(tmp_path, kwargs, match):
    params = {"n_subjects": 1, **TINY, **kwargs}
    with pytest.raises(ParameterError, match=match):
        make_phantom_cohort(tmp_path / "bad", **params)
    assert not (tmp_path / "bad").exists()


def test_rim_prevalence_is_about_four_percent():
    rng = np.random.default_rng(0)
    draws = [sample_rim_labels(rng, 25, 0.04) for _ in range(4000)]
    prevalence = np.mean([d.mean() for d in draws])
    assert 0.03 < prevalence < 0.05
    without = np.mean([not d.any() for d in draws])
    assert 0.35 < without < 0.75  # rim+ lesions cluster in some subjects; many have none


@pytest.mark.slow
def test_a_default_cohort_has_about_four_percent_rim_lesions(tmp_path):
    out = make_phantom_cohort(tmp_path / "c", n_subjects=12, random_state=1, shape=(40, 48, 28), lesions_per_subject=(6, 10))
    rims = pd.read_csv(out / DERIVED / "rims.tsv", sep="\t")
    assert len(rims) >= 12 * 5
    assert 0.01 <= rims["rim"].mean() <= 0.09
    per_subject = rims.groupby("participant_id")["rim"].sum()
    assert (per_subject == 0).any()


def _edge_contrast(qsm: np.ndarray, labels: np.ndarray, label: int) -> float:
    """Mean QSM across the lesion edge (one voxel either side) minus the mean of the interior's
    and the surrounding tissue's medians (3-5 voxels out); other lesions are left out."""
    lesion = labels == label
    others = (labels > 0) & ~lesion
    interior = ndimage.binary_erosion(lesion)
    edge = ndimage.binary_dilation(lesion) & ~interior & ~others
    beyond = ndimage.binary_dilation(lesion, iterations=5) & ~ndimage.binary_dilation(lesion, iterations=3) & ~others
    return float(qsm[edge].mean() - 0.5 * (np.median(qsm[interior if interior.any() else lesion]) + np.median(qsm[beyond])))


@pytest.mark.slow
def test_rim_lesions_have_a_brighter_edge(tmp_path):
    out = make_phantom_cohort(tmp_path / "c", n_subjects=8, random_state=0, rim_prevalence=0.5, difficulty="easy", **TINY)
    truth = pd.read_csv(out / DERIVED / "phantom_lesions.tsv", sep="\t")
    contrast = []
    for participant, lesions in truth.groupby("participant_id", sort=False):
        paths = _paths(out, participant)
        qsm, _ = read_array(paths["Chimap"])
        labels, _ = read_labels(paths["desc-lesions_dseg"])
        contrast += [_edge_contrast(qsm, labels, label) for label in lesions["lesion_id"]]
    truth["contrast"] = contrast
    assert truth["rim"].sum() >= 5 and (truth["rim"] == 0).sum() >= 5
    by_rim = truth.groupby("rim")["contrast"].mean()
    assert by_rim[1] > by_rim[0] + 8.0  # ppb
    assert roc_auc_score(truth["rim"], truth["contrast"]) > 0.8  # a rim is there to be learnt


@pytest.mark.slow
def test_difficulty_sets_the_rim_contrast(tmp_path):
    easy = make_phantom_cohort(tmp_path / "easy", n_subjects=4, random_state=2, rim_prevalence=0.4, difficulty="easy", **TINY)
    hard = make_phantom_cohort(tmp_path / "hard", n_subjects=4, random_state=2, rim_prevalence=0.4, difficulty="hard", **TINY)
    easy_ppb = pd.read_csv(easy / DERIVED / "phantom_lesions.tsv", sep="\t").query("rim == 1")["rim_ppb"]
    hard_ppb = pd.read_csv(hard / DERIVED / "phantom_lesions.tsv", sep="\t").query("rim == 1")["rim_ppb"]
    assert easy_ppb.min() >= 30 and hard_ppb.max() <= 32 and len(easy_ppb) and len(hard_ppb)


@pytest.mark.slow
def test_load_cohort_reads_the_phantom(cohort, rims):
    from rimclf.cohort import load_cohort, read_lesion_labels

    table = load_cohort(cohort)
    expected = rims.assign(participant_id=rims["participant_id"].str.removeprefix("sub-"))
    expected = expected.sort_values(["participant_id", "lesion_id"]).reset_index(drop=True)
    assert table["participant_id"].tolist() == expected["participant_id"].tolist()
    assert table["lesion_id"].tolist() == expected["lesion_id"].tolist()
    assert table["rim"].astype(int).tolist() == expected["rim"].tolist()
    assert (table["n_voxels"] >= 15).all()
    # read as a binary mask split into connected components, the phantom gives the same lesions
    for mask_path, lesions in table.groupby("mask"):
        instances, _ = read_lesion_labels(mask_path, 0)
        components, _ = read_lesion_labels(mask_path, 26)
        assert components.max() == instances.max() == len(lesions)
        pairs = np.unique(np.stack([instances[instances > 0], components[instances > 0]]), axis=1)
        assert pairs.shape[1] == len(lesions)  # one component per instance label


@pytest.mark.slow
def test_cli_writes_a_cohort_and_reports_it(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["phantom", str(out), "--subjects", "2", "--seed", "4", "--shape", "40", "48", "28", "--lesions", "4", "8"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed
    n_lesions = len(pd.read_csv(out / DERIVED / "rims.tsv", sep="\t"))
    assert f"2 subjects, {n_lesions} lesions" in printed
    assert main(argv) == 1  # exists: refused without --force
    assert "already exists" in capsys.readouterr().err
    assert main([*argv, "--force", "--difficulty", "hard"]) == 0
    assert json.loads((out / DERIVED / "phantom.json").read_text())["parameters"]["difficulty"] == "hard"


# -- acquisition="varied" -----------------------------------------------------------------------
ACQUISITION_COLUMNS = ("orientation", "tilt_deg", "voxel_mm", "slice_mm", "noise_factor", "noise_texture",
                       "streak_ppb", "background_ppb", "qsm_scale", "qsm_offset_ppb")


@pytest.fixture(scope="module")
def varied(tmp_path_factory) -> Path:
    """Four tiny subjects, each at its own drawn acquisition protocol."""
    return make_phantom_cohort(tmp_path_factory.mktemp("varied") / "cohort", n_subjects=4, random_state=5, n_sites=4,
                               acquisition="varied", rim_prevalence=0.3, **TINY)


@pytest.mark.slow
def test_varied_acquisitions_are_recorded_per_scan(varied):
    participants = pd.read_csv(varied / "participants.tsv", sep="\t")
    assert participants.columns.tolist() == ["participant_id", "site", "age", "sex", *ACQUISITION_COLUMNS]
    assert participants["site"].tolist() == ["V1", "V2", "V3", "V4"]
    described = json.loads((varied / "participants.json").read_text())
    assert set(described) == {"site", "age", "sex", *ACQUISITION_COLUMNS}
    assert set(described["site"]["Levels"]) == {"V1", "V2", "V3", "V4"}
    provenance = json.loads((varied / DERIVED / "phantom.json").read_text())
    assert provenance["parameters"]["acquisition"] == "varied" and set(provenance["sites"]) == {"V1", "V2", "V3", "V4"}
    for row in participants.itertuples():
        qsm, affine = read_array(_paths(varied, row.participant_id)["Chimap"])
        sizes = voxel_sizes(affine)
        # the header's voxel sizes are the recorded ones, in the stored axis order, 0.5-3 mm
        np.testing.assert_allclose(sizes, [float(v) for v in row.voxel_mm.split("x")], rtol=0.01)
        assert 0.5 <= sizes.min() and sizes.max() <= 3.0 and sizes.max() == pytest.approx(row.slice_mm, abs=0.01)
        directions = affine[:3, :3] / sizes
        letters = "".join(("LR", "PA", "IS")[int(np.argmax(np.abs(c)))][int(c[np.argmax(np.abs(c))] > 0)]
                          for c in directions.T)
        assert letters == row.orientation
        np.testing.assert_allclose(directions.T @ directions, np.eye(3), atol=1e-6)  # rotation, no shear
        assert -1.0 < row.qsm_scale - 1.0 < 1.0 and np.isfinite(qsm).all()
    # protocols differ: orientations, slice thickness, noise
    assert participants["orientation"].nunique() > 1 and participants["slice_mm"].nunique() == 4
    assert provenance["parameters"]["n_sites"] == 4


@pytest.mark.slow
def test_varied_cohorts_are_reproducible_and_load(varied, tmp_path):
    again = make_phantom_cohort(tmp_path / "again", n_subjects=4, random_state=5, n_sites=4, acquisition="varied",
                                rim_prevalence=0.3, n_jobs=2, **TINY)
    first, second = _arrays(varied), _arrays(again)
    assert first.keys() == second.keys()
    for name in first:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)
    assert (varied / "participants.tsv").read_text() == (again / "participants.tsv").read_text()
    other = make_phantom_cohort(tmp_path / "other", n_subjects=1, random_state=6, acquisition="varied", **TINY)
    assert (other / "participants.tsv").read_text() != (varied / "participants.tsv").read_text()
    from rimclf.cohort import load_cohort

    table = load_cohort(varied)
    truth = pd.read_csv(varied / DERIVED / "phantom_lesions.tsv", sep="\t")
    assert len(table) == len(truth) and table["rim"].astype(int).sum() == truth["rim"].sum()
    assert (table["n_voxels"].to_numpy() == truth.sort_values(["participant_id", "lesion_id"])["n_voxels"].to_numpy()).all()


def test_the_default_acquisition_is_unchanged(cohort):
    """Without ``acquisition``, no column, key or site is added (the default cohorts stay byte for byte)."""
    participants = pd.read_csv(cohort / "participants.tsv", sep="\t")
    assert participants.columns.tolist() == ["participant_id", "site", "age", "sex"]
    provenance = json.loads((cohort / DERIVED / "phantom.json").read_text())
    assert "acquisition" not in provenance["parameters"] and set(provenance["sites"]) == {"A", "B", "C"}


def _world_centroids(labels: np.ndarray, affine: np.ndarray) -> dict[int, np.ndarray]:
    index = np.array(ndimage.center_of_mass(labels > 0, labels, range(1, int(labels.max()) + 1)))
    return {i + 1: affine[:3, :3] @ c + affine[:3, 3] for i, c in enumerate(index)}


@pytest.mark.slow
@pytest.mark.parametrize("storage, flips", [((2, 0, 1), (True, False, True)), ((1, 0, 2), (False, True, False))])
def test_voxel_order_on_disk_keeps_world_coordinates(storage, flips):
    """The same subject stored with its axes permuted and flipped: every lesion's world centroid and
    the QSM at every world position are the same."""
    from dataclasses import replace

    from rimclf.phantom._config import DIFFICULTY_PRESETS, SITES
    from rimclf.phantom._render import render_subject

    site = replace(SITES[2], slice_oversampling=2, streak_ppb=3.0, background_ppb=5.0)
    fov = np.array([40.0, 48.0, 42.0])

    def render(s):
        return render_subject(np.random.default_rng(11), s, fov, DIFFICULTY_PRESETS["default"], 6, 0.3)

    plain, stored = render(site), render(replace(site, storage=storage, storage_flips=flips))
    assert stored.qsm.shape == tuple(plain.qsm.shape[a] for a in storage)
    assert plain.lesions == stored.lesions and len(plain.lesions) >= 2
    centroids, moved = _world_centroids(plain.labels, plain.qsm_affine), _world_centroids(stored.labels, stored.qsm_affine)
    for label in centroids:
        np.testing.assert_allclose(moved[label], centroids[label], atol=1e-6)
    # voxel (i, j, k) on disk sits where the plain grid has the same world position
    to_plain = np.linalg.inv(plain.qsm_affine) @ stored.qsm_affine
    index = np.argwhere(stored.labels > 0)[:50].T
    mapped = np.rint(to_plain[:3, :3] @ index + to_plain[:3, 3:]).astype(int)
    np.testing.assert_array_equal(plain.qsm[tuple(mapped)], stored.qsm[tuple(index)])
    np.testing.assert_allclose(voxel_sizes(stored.qsm_affine), voxel_sizes(plain.qsm_affine)[list(storage)])
    np.testing.assert_array_equal(stored.flair_affine, stored.qsm_affine)


def test_thick_slices_average_sub_slices_that_cover_them():
    from rimclf.phantom._acquisition import average_slices, thick_labels
    from rimclf.phantom._geometry import make_grid

    grid = make_grid((6, 7, 5), (0.8, 0.8, 3.0), np.eye(3), np.array([1.0, 2.0, 3.0]), np.zeros(3), np.eye(3))
    fine = grid.subdivide(3)
    assert fine.shape == (6, 7, 15)
    np.testing.assert_allclose(voxel_sizes(fine.affine), [0.8, 0.8, 1.0])
    # the mean position of each run of 3 sub-slices is the thick slice's centre
    coarse, sub = grid.brain_coordinates(), fine.brain_coordinates()
    np.testing.assert_allclose(np.stack([average_slices(c, 3) for c in sub]), coarse, atol=1e-4)
    # a label filling 2 of 3 sub-slices is kept in the thick slice; 1 of 3 is not
    labels = np.zeros((6, 7, 15), dtype=np.int16)
    labels[1:5, 1:6, 3:5] = 2  # 2 of slice 1's sub-slices
    labels[1:5, 1:6, 9:10] = 1  # 1 of slice 3's sub-slices
    thick, kept = thick_labels(labels, 3, min_voxels=5)
    assert kept == {2: (1, 20)} and thick.shape == (6, 7, 5) and (thick[:, :, 1] == 1).sum() == 20


def test_acquisition_is_checked(tmp_path):
    with pytest.raises(ParameterError, match="acquisition"):
        make_phantom_cohort(tmp_path / "bad", n_subjects=1, acquisition="random", **TINY)
    with pytest.raises(ParameterError, match="n_sites"):
        make_phantom_cohort(tmp_path / "bad", n_subjects=1, n_sites=4, **TINY)
    with pytest.raises(ParameterError, match="n_sites"):
        make_phantom_cohort(tmp_path / "bad", n_subjects=1, n_sites=27, acquisition="varied", **TINY)
    assert not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_cli_writes_a_varied_cohort(tmp_path, capsys):
    from rimclf.defaults import PHANTOM_ACQUISITIONS

    out = tmp_path / "cli"
    argv = ["phantom", str(out), "--subjects", "2", "--shape", "40", "48", "28", "--lesions", "4", "6",
            "--acquisition", "varied", "--sites", "5"]
    assert main(argv) == 0
    assert json.loads((out / DERIVED / "phantom.json").read_text())["parameters"]["acquisition"] == "varied"
    assert set(pd.read_csv(out / "participants.tsv", sep="\t")["site"]) == {"V1", "V2"}
    assert main(["phantom", str(tmp_path / "x"), "--sites", "4"]) == 2  # 3 fixed sites only
    assert "n_sites" in capsys.readouterr().err
    assert PHANTOM_ACQUISITIONS == ("sites", "varied")
