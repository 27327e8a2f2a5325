"""The input contract (DESIGN §1): load_cohort on hand-built NIfTI files, one test per bad input."""

from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from rimclf import CohortError, load_cohort
from rimclf._nifti import read_volume, save_nifti
from rimclf.cohort import TABLE_COLUMNS, labelled_lesions, read_lesion_labels, read_qsm, summarize_cohort
from rimclf.errors import DataWarning, ParameterError

from tests.builders import SHAPE, make_affine, make_labels, make_qsm, write_subject


@pytest.fixture
def cohort(tmp_path: Path) -> Path:
    root = tmp_path / "cohort"
    for label in ("01", "02"):
        write_subject(root, label)
    (root / "participants.tsv").write_text("participant_id\tsite\nsub-01\tA\nsub-02\tB\n")
    (root / "rims.tsv").write_text("participant_id\tlesion_id\trim\nsub-01\t1\t1\nsub-01\t2\t0\nsub-02\t2\t0\n")
    return root


def mask_path(root: Path, label: str) -> Path:
    return root / f"sub-{label}" / "anat" / f"sub-{label}_desc-lesions_mask.nii.gz"


def test_table_columns_values_and_labels(cohort: Path) -> None:
    table = load_cohort(cohort)
    assert list(table.columns) == TABLE_COLUMNS
    assert table[["participant_id", "lesion_id"]].values.tolist() == [["01", 1], ["01", 2], ["02", 1], ["02", 2]]
    assert (table["session"] == "").all()  # no sessions
    assert table["n_voxels"].tolist() == [36, 60, 36, 60]
    np.testing.assert_allclose(table["volume_mm3"], np.array([36, 60, 36, 60]) * 1.0 * 1.2 * 2.0)
    # lesion 1 spans voxels i 3..5, j 4..7, k 2..4: centre (4, 5.5, 3) -> world via the affine
    np.testing.assert_allclose(table.loc[0, ["centroid_x", "centroid_y", "centroid_z"]].astype(float), [4 - 12, 5.5 * 1.2 - 30, 3 * 2 + 7])
    assert str(table["rim"].dtype) == "Int64"
    assert table["rim"].iloc[0] == 1 and table["rim"].iloc[1] == 0 and table["rim"].iloc[3] == 0
    assert table["rim"].iloc[2] is pd.NA  # sub-02 lesion 1 is not in rims.tsv: unlabeled
    assert (table["connectivity"] == 0).all() and (table["qsm_unit"] == "ppb").all()
    assert all(Path(p).is_absolute() for p in table["qsm"])


@pytest.mark.slow
def test_min_voxels_drops_small_lesions(cohort: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="rimclf.cohort"):
        table = load_cohort(cohort, min_voxels=1)
    assert sorted(table.query("participant_id == '01'")["lesion_id"]) == [1, 2, 3]
    with caplog.at_level("INFO", logger="rimclf.cohort"), pytest.warns(DataWarning, match="1 rim\\+ lesion"):
        assert len(load_cohort(cohort, min_voxels=40)) == 2
    assert "left out 4 lesion(s)" in caplog.text


def test_binary_mask_is_split_into_connected_components(tmp_path: Path) -> None:
    binary = (make_labels() > 0).astype(np.uint8)
    binary[14, 12, 9] = 1  # directly above lesion 2's top slice: joins lesion 2
    write_subject(tmp_path, "01", mask=binary)
    table = load_cohort(tmp_path, min_voxels=1)
    assert len(table) == 3 and (table["connectivity"] == 26).all()
    labels, _ = read_lesion_labels(mask_path(tmp_path, "01"), 26)
    for row in table.itertuples():
        assert (labels == row.lesion_id).sum() == row.n_voxels


def test_a_binary_mask_stored_as_0_255_is_split_into_lesions(tmp_path: Path) -> None:
    write_subject(tmp_path, "01", mask=(make_labels() > 0).astype(np.uint8) * 255)  # as some tools export masks
    table = load_cohort(tmp_path, min_voxels=1)
    assert table["n_voxels"].tolist() == [36, 60, 1] and (table["connectivity"] == 26).all()
    one = np.where(make_labels() == 2, 7, 0).astype(np.uint8)  # one lesion, labelled 7: an instance label
    write_subject(tmp_path, "02", mask=one)
    table = load_cohort(tmp_path, participant_label="02")
    assert table[["lesion_id", "n_voxels", "connectivity"]].values.tolist() == [[7, 60, 0]]


def test_labels_that_each_cover_separate_regions_are_named(tmp_path: Path) -> None:
    classes = np.where(make_labels() > 0, 1, 0).astype(np.int16)
    classes[20, 2, 10] = 2  # a class map: 1 = two separate lesions, 2 = a third kind
    write_subject(tmp_path, "01", mask=classes)
    with pytest.warns(DataWarning, match=r"sub-01_desc-lesions_mask.nii.gz: label\(s\) 1 each cover several separate "
                                         r"regions \(label 1: 2\), and each label is read as one lesion; if the values "
                                         r"are classes rather than lesion ids, binarise the mask"):
        table = load_cohort(tmp_path)
    assert table["n_voxels"].tolist() == [96]  # what the warning is about: lesions 1 and 2 read as one
    write_subject(tmp_path / "instances", "01")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # instance labels, one region each: no warning
        load_cohort(tmp_path / "instances")


def test_connectivity_changes_component_split(tmp_path: Path) -> None:
    binary = np.zeros(SHAPE, dtype=np.uint8)
    binary[2:5, 2:5, 2:5] = 1
    binary[5:8, 5:8, 5:8] = 1  # touches the first block only at a corner
    write_subject(tmp_path, "01", mask=binary)
    assert len(load_cohort(tmp_path, connectivity=26)) == 1
    assert len(load_cohort(tmp_path, connectivity=6)) == 2


def test_subject_without_lesions_gives_zero_rows(tmp_path: Path) -> None:
    write_subject(tmp_path, "01")
    write_subject(tmp_path, "02", mask=np.zeros(SHAPE, dtype=np.int16))
    table = load_cohort(tmp_path)
    assert set(table["participant_id"]) == {"01"}
    assert summarize_cohort(table).iloc[-1]["n_lesions"] == 2


def test_manifest_with_relative_paths(cohort: Path, tmp_path: Path) -> None:
    rows = ["participant_id,qsm,flair,mask"]
    for label in ("01", "02"):
        anat = f"cohort/sub-{label}/anat/sub-{label}"
        rows.append(f"sub-{label},{anat}_Chimap.nii.gz,{anat}_FLAIR.nii.gz,{anat}_desc-lesions_mask.nii.gz")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    from_manifest = load_cohort(manifest, rims=cohort / "rims.tsv")
    pd.testing.assert_frame_equal(from_manifest, load_cohort(cohort))


def test_manifest_empty_cell_is_a_missing_file(cohort: Path, tmp_path: Path) -> None:
    anat = "cohort/sub-01/anat/sub-01"
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("participant_id,qsm,flair,mask\n"
                        f"sub-01,{anat}_Chimap.nii.gz,{anat}_FLAIR.nii.gz,{anat}_desc-lesions_mask.nii.gz\n"
                        f"sub-02,{anat}_Chimap.nii.gz,{anat}_FLAIR.nii.gz,\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # sub-02 is not selected: not even skipped
        table = load_cohort(manifest, participant_label="01")
    assert set(table["participant_id"]) == {"01"}
    with pytest.warns(DataWarning, match=r"^sub-02: skipped, no lesion mask$"):
        assert set(load_cohort(manifest)["participant_id"]) == {"01"}
    with pytest.raises(CohortError, match=r"sub-02: no lesion mask found \(.*manifest\.csv: empty 'mask' cell\)"):
        load_cohort(manifest, strict=True)


def test_flipped_and_permuted_orientation_give_same_world_centroids(tmp_path: Path) -> None:
    affine = make_affine()
    write_subject(tmp_path / "ras", "01", affine=affine)
    # Flip axis 0 and swap axes 1 and 2: same anatomy stored in another voxel order.
    qsm, flair, mask = make_qsm(), np.abs(make_qsm(1)), make_labels()
    permute = lambda a: np.flip(a, axis=0).transpose(0, 2, 1)  # noqa: E731
    new_affine = np.zeros((4, 4))
    new_affine[:3, 0] = -affine[:3, 0]
    new_affine[:3, 1] = affine[:3, 2]
    new_affine[:3, 2] = affine[:3, 1]
    new_affine[:3, 3] = affine[:3, 3] + affine[:3, 0] * (SHAPE[0] - 1)
    new_affine[3, 3] = 1
    write_subject(tmp_path / "lps", "01", qsm=permute(qsm), flair=permute(flair), mask=permute(mask), affine=new_affine)
    a, b = load_cohort(tmp_path / "ras"), load_cohort(tmp_path / "lps")
    columns = ["lesion_id", "n_voxels", "volume_mm3", "centroid_x", "centroid_y", "centroid_z"]
    pd.testing.assert_frame_equal(a[columns], b[columns])


def test_flair_on_another_grid_is_accepted(tmp_path: Path) -> None:
    flair_affine = make_affine(spacing=(0.5, 0.6, 1.0))
    write_subject(tmp_path, "01", flair=np.ones((48, 40, 24), np.float32), flair_affine=flair_affine)
    assert len(load_cohort(tmp_path)) == 2


# --- bad input: every case of DESIGN §1 names the file and the problem -------------------------


def test_missing_file(cohort: Path) -> None:
    (cohort / "sub-02" / "anat" / "sub-02_FLAIR.nii.gz").unlink()
    with pytest.warns(DataWarning, match=r"sub-02: skipped, no FLAIR \(\*_FLAIR\)"):
        table = load_cohort(cohort)
    assert "02" not in set(table["participant_id"])
    with pytest.raises(CohortError, match=r"sub-02: no FLAIR \(\*_FLAIR\) found \(\*_FLAIR\.nii\[\.gz\] in .*sub-02/anat"):
        load_cohort(cohort, strict=True)


def test_a_cohort_whose_every_selected_scan_is_skipped_is_an_error(cohort: Path) -> None:
    (cohort / "sub-02" / "anat" / "sub-02_FLAIR.nii.gz").unlink()
    with pytest.warns(DataWarning), pytest.raises(CohortError, match=r"none of its 1 selected scan\(s\) has every "
                                                                      r"required file: sub-02: no FLAIR"):
        load_cohort(cohort, participant_label="02")   # train, predict and extract would go on with nothing
    for flair in cohort.glob("sub-*/anat/*_FLAIR.nii.gz"):
        flair.unlink()
    with pytest.warns(DataWarning), pytest.raises(CohortError, match=r"none of its \d selected scan\(s\)"):
        load_cohort(cohort)


def test_missing_cohort_directory(tmp_path: Path) -> None:
    with pytest.raises(CohortError, match="no such cohort directory"):
        load_cohort(tmp_path / "nowhere")
    with pytest.raises(CohortError, match="no participants.tsv and no sub-"):
        load_cohort(tmp_path)


def test_corrupt_nifti(cohort: Path) -> None:
    path = cohort / "sub-01" / "anat" / "sub-01_Chimap.nii.gz"
    path.write_bytes(gzip.compress(b"this is not a nifti header" * 20))
    with pytest.raises(CohortError, match=r"sub-01_Chimap\.nii\.gz: not a readable NIfTI"):
        load_cohort(cohort)


def test_truncated_mask_data(cohort: Path) -> None:
    path = mask_path(cohort, "01")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CohortError, match=r"sub-01_desc-lesions_mask\.nii\.gz: (voxel data cannot be read|not a readable)"):
        load_cohort(cohort)


def test_4d_image(cohort: Path) -> None:
    path = cohort / "sub-01" / "anat" / "sub-01_Chimap.nii.gz"
    save_nifti(path, np.zeros((*SHAPE, 3), np.float32), make_affine(), overwrite=True)
    with pytest.raises(CohortError, match=r"sub-01_Chimap\.nii\.gz: expected a 3D volume, got 4D"):
        load_cohort(cohort)


def test_a_4th_axis_of_size_1_reads_as_3d(cohort: Path) -> None:
    before = load_cohort(cohort, check_data=True)
    anat = cohort / "sub-01" / "anat"
    for name in ("sub-01_Chimap.nii.gz", "sub-01_FLAIR.nii.gz", "sub-01_desc-lesions_mask.nii.gz"):
        image = nib.load(anat / name)  # as some tools write them: (X, Y, Z, 1)
        nib.save(nib.Nifti1Image(np.asarray(image.dataobj)[..., None], image.affine), anat / name)
        assert nib.load(anat / name).shape == (*SHAPE, 1)
    pd.testing.assert_frame_equal(load_cohort(cohort, check_data=True), before)


def test_mask_on_another_grid_is_resampled(cohort: Path) -> None:
    """A mask of another shape is carried onto the QSM grid (tests/test_cohort_resample.py has more)."""
    before = load_cohort(cohort)
    save_nifti(mask_path(cohort, "02"), make_labels()[:, :, :11], make_affine(), overwrite=True)
    after = load_cohort(cohort)
    assert after.groupby("participant_id")["mask_grid"].first().to_dict() == {"01": "qsm", "02": "resampled"}
    assert after.drop(columns=["mask_grid", "mask_source_grid"]).equals(before.drop(columns=["mask_grid", "mask_source_grid"]))


def test_flair_outside_qsm_field_of_view(cohort: Path) -> None:
    path = cohort / "sub-01" / "anat" / "sub-01_FLAIR.nii.gz"
    save_nifti(path, np.ones(SHAPE, np.float32), make_affine(origin=(500.0, 0.0, 0.0)), overwrite=True)
    with pytest.raises(CohortError, match=r"sub-01_FLAIR\.nii\.gz: its field of view does not overlap"):
        load_cohort(cohort)


def test_non_integer_labels(cohort: Path) -> None:
    save_nifti(mask_path(cohort, "01"), make_labels().astype(np.float32) * 0.5, make_affine(), overwrite=True)
    with pytest.raises(CohortError, match=r"sub-01_desc-lesions_mask\.nii\.gz: the lesion mask has non-integer values \(e\.g\. 0\.5\)"):
        load_cohort(cohort)


def test_negative_or_nan_labels(cohort: Path) -> None:
    labels = make_labels().astype(np.float32)
    labels[0, 0, 0] = -1
    save_nifti(mask_path(cohort, "01"), labels, make_affine(), overwrite=True)
    with pytest.raises(CohortError, match="negative labels"):
        load_cohort(cohort)
    labels[0, 0, 0] = np.nan
    save_nifti(mask_path(cohort, "01"), labels, make_affine(), overwrite=True)
    with pytest.raises(CohortError, match="NaN/Inf"):
        load_cohort(cohort)


def test_an_empty_qsm_is_refused_when_read(tmp_path: Path) -> None:
    write_subject(tmp_path, "01", qsm=np.zeros(SHAPE, dtype=np.float32))  # a failed reconstruction
    assert len(load_cohort(tmp_path)) == 2  # headers only
    with pytest.raises(CohortError, match=r"sub-01_Chimap.nii.gz: every voxel of the QSM is 0"):
        load_cohort(tmp_path, check_data=True)


def test_rims_label_not_in_mask(cohort: Path) -> None:
    (cohort / "rims.tsv").write_text("participant_id\tlesion_id\trim\nsub-01\t7\t1\n")
    with pytest.raises(CohortError, match=r"rims\.tsv: lesion 7 of sub-01 does not exist in its mask"):
        load_cohort(cohort)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("participant_id\tlesion\trim\n", r"missing column\(s\) \['lesion_id'\]"),
        ("participant_id\tlesion_id\trim\nsub-01\t1\tyes\n", "rim must be 0 or 1"),
        ("participant_id\tlesion_id\trim\nsub-01\t1\t1\nsub-01\t1\t0\n", "listed more than once"),
        ("participant_id\tlesion_id\trim\nsub-09\t1\t1\n", "participant sub-09 is not in the cohort"),
        ("participant_id\tlesion_id\trim\nsub-01\tone\t1\n", "lesion_id must be integers"),
    ],
)
def test_bad_rims_file(cohort: Path, content: str, message: str) -> None:
    (cohort / "rims.tsv").write_text(content)
    with pytest.raises(CohortError, match=message):
        load_cohort(cohort)


def test_rims_n_a_is_unlabeled(cohort: Path) -> None:
    # BIDS tables write a missing value as n/a (rimclf's own outputs do too)
    (cohort / "rims.tsv").write_text("participant_id\tlesion_id\trim\nsub-01\t1\tn/a\nsub-01\t2\t0\nsub-02\t2\t1 \n")
    table = load_cohort(cohort)
    assert table["rim"].tolist() == [pd.NA, 0, pd.NA, 1]


def test_rims_file_with_header_only_leaves_lesions_unlabeled(cohort: Path) -> None:
    (cohort / "rims.tsv").write_text("participant_id\tlesion_id\trim\n")
    table = load_cohort(cohort)
    assert len(table) == 4 and table["rim"].isna().all()


def test_manifest_missing_columns(tmp_path: Path) -> None:
    manifest = tmp_path / "m.tsv"
    manifest.write_text("participant_id\tqsm\tmask\nsub-01\ta\tb\n")
    with pytest.raises(CohortError, match=r"m\.tsv: missing column\(s\) \['flair'\]"):
        load_cohort(manifest)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"min_voxels": 0}, "min_voxels=0"), ({"connectivity": 4}, "connectivity=4"), ({"qsm_unit": "ppt"}, "qsm_unit='ppt'")],
)
def test_bad_parameters_are_named(cohort: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        load_cohort(cohort, **kwargs)


def test_cohort_error_is_a_value_error() -> None:
    assert issubclass(CohortError, ValueError)


# --- voxel-level checks: NaN/Inf and the ppm warning ----------------------------------------------


def test_nan_outside_brain_is_zero_filled_inside_is_an_error(cohort: Path) -> None:
    qsm = make_qsm()
    qsm[0, :, :] = np.nan  # the volume's edge: outside the brain
    path = cohort / "sub-01" / "anat" / "sub-01_Chimap.nii.gz"
    save_nifti(path, qsm, make_affine(), overwrite=True)
    with pytest.warns(DataWarning, match=r"sub-01_Chimap\.nii\.gz: 240 NaN/Inf voxels outside the brain were set to 0"):
        data, _ = read_volume(path)
    assert np.isfinite(data).all() and (data[0] == 0).all()
    qsm[12, 10, 6] = np.inf  # enclosed by tissue
    save_nifti(path, qsm, make_affine(), overwrite=True)
    with pytest.raises(CohortError, match=r"sub-01_Chimap\.nii\.gz: 1 NaN/Inf voxels inside the brain \(first at voxel \(12, 10, 6\)\)"):
        load_cohort(cohort, check_data=True)


@pytest.mark.slow
def test_a_ppm_map_declared_ppb_is_an_error_saying_how_to_declare_it(cohort: Path) -> None:
    path = cohort / "sub-01" / "anat" / "sub-01_Chimap.nii.gz"
    save_nifti(path, make_qsm() / 1000, make_affine(), overwrite=True)  # ppm values; the sidecar says ppb
    assert (load_cohort(cohort)["qsm_unit"] == "ppb").all()  # headers only: no values read
    with pytest.raises(
        CohortError,
        match=r"sub-01_Chimap\.nii\.gz: QSM values span -0\.\d+\.\.0\.\d+ \(1st-99th percentile of brain voxels\), "
        r"which is ppm, but its unit is ppb \('Units' in sub-01_Chimap\.json\); declare the unit: add \"Units\": "
        r"\"ppm\" to sub-01_Chimap\.json or pass qsm_unit='ppm' \(--qsm-unit ppm\)",
    ):
        load_cohort(cohort, check_data=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data, _ = read_qsm(path, unit="ppm")
    np.testing.assert_allclose(data, make_qsm(), rtol=1e-5, atol=1e-3)
    table = load_cohort(cohort, qsm_unit="ppm")  # overrides the sidecars: sub-02 (ppb values) now contradicts it
    assert (table["qsm_unit"] == "ppm").all()
    with pytest.raises(CohortError, match=r"sub-02_Chimap\.nii\.gz: .*which is ppb, but its unit is ppm"):
        load_cohort(cohort, qsm_unit="ppm", check_data=True)


@pytest.mark.slow
def test_without_a_sidecar_the_qsm_is_ppm_as_bids_says(cohort: Path) -> None:
    (cohort / "sub-02" / "anat" / "sub-02_Chimap.json").unlink()
    table = load_cohort(cohort)
    assert table.groupby("participant_id")["qsm_unit"].first().to_dict() == {"01": "ppb", "02": "ppm"}
    with pytest.raises(
        CohortError,
        match=r"sub-02_Chimap\.nii\.gz: QSM values span -[\d.]+\.\.[\d.]+ .*which is ppb, but its unit is ppm \(the BIDS "
        r"default for Chimap: no 'Units' in its sidecar\); declare the unit: add \"Units\": \"ppb\" to "
        r"sub-02_Chimap\.json or pass qsm_unit='ppb' \(--qsm-unit ppb\)",
    ):
        load_cohort(cohort, check_data=True)
    assert len(load_cohort(cohort, qsm_unit="ppb", check_data=True)) == 4


@pytest.mark.parametrize("units", ['"ppt"', '"mg/L"', "3"])
def test_a_sidecar_unit_rimclf_does_not_read_is_an_error(cohort: Path, units: str) -> None:
    (cohort / "sub-02" / "anat" / "sub-02_Chimap.json").write_text(f'{{"Units": {units}}}')
    with pytest.raises(CohortError, match=r"sidecar\(s\) of sub-02_Chimap\.nii\.gz: \"Units\": .* is not a QSM unit rimclf reads"):
        load_cohort(cohort)
    assert len(load_cohort(cohort, qsm_unit="ppb")) == 4  # an explicit unit overrides the sidecar


def test_nibabel_saved_file_round_trip(tmp_path: Path) -> None:
    path = save_nifti(tmp_path / "x.nii.gz", make_qsm(), make_affine())
    assert np.allclose(nib.load(str(path)).affine, make_affine())
    with pytest.raises(FileExistsError):
        save_nifti(path, make_qsm(), make_affine())


# ------------------------------------------------------------------------ labelled lesions
def _labelled_table(rim: list) -> pd.DataFrame:
    n = len(rim)
    return pd.DataFrame({"participant_id": [f"{i % 3:02d}" for i in range(n)], "lesion_id": range(1, n + 1),
                         "rim": pd.array(rim, dtype="Int64")})


def test_labelled_lesions_leave_out_unlabelled_ones(caplog: pytest.LogCaptureFixture) -> None:
    table = _labelled_table([1, 0, None, 1, 0, None, 0])
    with caplog.at_level("INFO", logger="rimclf.cohort"):
        kept, y, groups = labelled_lesions(table, purpose="the test")
    assert kept["lesion_id"].tolist() == [1, 2, 4, 5, 7] and y.tolist() == [1, 0, 1, 0, 0]
    assert groups.tolist() == ["00", "01", "00", "01", "00"] and y.dtype.kind == "i"
    assert "the test: 2 unlabelled lesion(s) left out" in caplog.text
    override = labelled_lesions(table, y=[1, 1, 0, 0, None, 0, 0], groups=list("abcdefg"))
    assert override.y.tolist() == [1, 1, 0, 0, 0, 0] and override.groups.tolist() == list("abcdfg")


@pytest.mark.parametrize(
    ("rim", "kwargs", "message"),
    [
        ([1, 0, 0, 0], {}, "needs labelled rim\\+ and rim- lesions \\(at least 2 of each\\).* 1 rim\\+ and 3 rim-"),
        ([1, 1, 0, 0], {"y": [1, 2, 0, 0]}, "rim labels must be 0 or 1; found \\[2.0\\]"),
        ([1, 1, 0, 0], {"groups": ["a"]}, "groups has shape \\(1,\\)"),
    ],
)
def test_labelled_lesions_errors(rim: list, kwargs: dict, message: str) -> None:
    with pytest.raises(CohortError, match=message):
        labelled_lesions(_labelled_table(rim), **kwargs)


# -- identifiers that name output files -----------------------------------------------------------


@pytest.mark.slow
def test_min_voxels_leaving_out_rim_positive_lesions_warns_with_their_count(cohort: Path) -> None:
    (cohort / "rims.tsv").write_text("participant_id\tlesion_id\trim\nsub-01\t1\t1\nsub-01\t3\t1\nsub-02\t3\t1\nsub-02\t2\t0\n")
    with pytest.warns(DataWarning, match=r"rims.tsv: 2 rim\+ lesion\(s\) left out because they have fewer than min_voxels=8 voxels \(sub-01 lesion 3, sub-02 lesion 3\)"):
        load_cohort(cohort)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        assert len(load_cohort(cohort, min_voxels=1)) == 6  # nothing left out: no warning


def _manifest(tmp_path: Path, cohort: Path, participant: str) -> Path:
    anat = cohort / "sub-01" / "anat"
    rows = [
        "participant_id,qsm,flair,mask",
        f"sub-02,{cohort}/sub-02/anat/sub-02_Chimap.nii.gz,{cohort}/sub-02/anat/sub-02_FLAIR.nii.gz,{cohort}/sub-02/anat/sub-02_desc-lesions_mask.nii.gz",
        f"{participant},{anat}/sub-01_Chimap.nii.gz,{anat}/sub-01_FLAIR.nii.gz,{anat}/sub-01_desc-lesions_mask.nii.gz",
    ]
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest


@pytest.mark.parametrize("participant", ["01/../../../PWN", "sub-01/..", "..", "01_a", "sub-01-a", "a b", "01\\x", "sub-", ""])
def test_participant_ids_must_be_bids_labels(cohort: Path, tmp_path: Path, participant: str) -> None:
    manifest = _manifest(tmp_path, cohort, participant)
    with pytest.raises(CohortError, match=rf"manifest.csv: line 3: participant_id .* is not a valid label: .*letters and digits only \(\[A-Za-z0-9\]\+"):
        load_cohort(manifest)


def test_subjects_left_out_of_participants_tsv_are_named(cohort: Path) -> None:
    (cohort / "participants.tsv").write_text("participant_id\nsub-01\n")  # sub-02 has files
    (cohort / "rims.tsv").write_text("participant_id\tlesion_id\trim\nsub-01\t1\t1\n")
    with pytest.warns(DataWarning, match=r"participants.tsv does not list sub-02, which the dataset has files of; "
                                         r"only the subjects it lists are read"):
        table = load_cohort(cohort)
    assert set(table["participant_id"]) == {"01"}


def test_participants_tsv_and_folder_names_are_checked_too(cohort: Path) -> None:
    (cohort / "participants.tsv").write_text("participant_id\nsub-01\nsub-0_2\n")
    with pytest.raises(CohortError, match=r"participants.tsv: line 3: participant_id 'sub-0_2' is not a valid label"):
        load_cohort(cohort)
    (cohort / "participants.tsv").unlink()
    (cohort / "sub-03_bak").mkdir()
    with pytest.raises(CohortError, match=r"cohort: folder sub-03_bak: participant_id 'sub-03_bak' is not a valid label"):
        load_cohort(cohort)


# -- damaged files and absurd labels --------------------------------------------------------------


def _flip_bit(path: Path, fraction: float, bit: int) -> None:
    data = bytearray(path.read_bytes())
    position = min(len(data) - 1, int(len(data) * fraction))
    data[position] ^= 1 << bit
    path.write_bytes(bytes(data))


# the 255-byte mask has bits that deflate ignores (flipping them changes nothing): not those
FLIPS = [("qsm", 0.3, 0), ("qsm", 0.5, 3), ("qsm", 0.7, 6), ("qsm", 0.9, 1), ("qsm", 0.999, 4), ("qsm", 1.0, 7),
         ("mask", 0.3, 0), ("mask", 0.5, 3), ("mask", 0.999, 4), ("mask", 1.0, 7)]


@pytest.mark.parametrize(("kind", "fraction", "bit"), FLIPS)
def test_one_flipped_bit_in_a_nii_gz_is_an_error_naming_the_file(cohort: Path, kind: str, fraction: float, bit: int) -> None:
    suffix = "Chimap" if kind == "qsm" else "desc-lesions_mask"
    path = cohort / "sub-01" / "anat" / f"sub-01_{suffix}.nii.gz"
    _flip_bit(path, fraction, bit)  # 0.999 and 1.0: the CRC-32 and length trailer
    with pytest.raises(CohortError, match=rf"sub-01_{suffix}.nii.gz: .*(damaged|not a readable NIfTI|cannot be read)"):
        load_cohort(cohort, check_data=True)
    with pytest.raises(CohortError, match=f"sub-01_{suffix}.nii.gz"):
        read_volume(path) if kind == "qsm" else read_lesion_labels(path, 0)


def test_an_intact_nii_gz_reads_as_before(cohort: Path) -> None:
    path = cohort / "sub-01" / "anat" / "sub-01_Chimap.nii.gz"
    data, affine = read_volume(path)
    np.testing.assert_array_equal(data, np.asarray(nib.load(str(path)).dataobj, dtype=np.float32))
    np.testing.assert_allclose(affine, make_affine(), atol=1e-6)


@pytest.mark.parametrize("label", [2**31 - 1, 1e12, 2**40, 65536])
def test_labels_beyond_65535_are_a_clear_error(cohort: Path, label: float) -> None:
    mask = make_labels().astype(np.float64 if isinstance(label, float) or label > 2**31 else np.int32)
    if label == 2**40:
        mask = mask.astype(np.int64)
    mask[3:6, 4:8, 2:5] = label
    header = nib.Nifti1Header() if mask.dtype == np.int64 else None  # nibabel asks for int64 explicitly
    save_nifti(mask_path(cohort, "01"), mask, make_affine(), header=header, overwrite=True)
    with pytest.raises(CohortError, match=rf"sub-01_desc-lesions_mask.nii.gz: the lesion mask has label {label:.15g}; rimclf reads labels 0..65535 only"):
        load_cohort(cohort)


def test_label_65535_is_accepted(cohort: Path) -> None:
    mask = make_labels().astype(np.int32)
    mask[mask == 2] = 65535
    save_nifti(mask_path(cohort, "01"), mask, make_affine(), overwrite=True)
    (cohort / "rims.tsv").unlink()
    table = load_cohort(cohort)
    assert table.query("participant_id == '01'")["lesion_id"].tolist() == [1, 65535]
