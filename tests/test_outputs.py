"""Prediction outputs: lesion table, NIfTI probability maps on the QSM grid, montages; atomic writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from rimclf import load_cohort
from rimclf.cohort import read_lesion_labels
from rimclf.errors import CohortError, PredictionError
from rimclf.outputs import LESION_COLUMNS, check_probabilities, output_paths, read_lesions, write_prediction_outputs
from tests.builders import make_labels, write_scan, write_subject


@pytest.fixture
def table(tmp_path: Path) -> pd.DataFrame:
    root = tmp_path / "cohort"
    write_subject(root, "01")
    write_subject(root, "02")
    (root / "rims.tsv").write_text("participant_id\tlesion_id\trim\nsub-01\t1\t1\nsub-01\t2\t0\nsub-02\t1\t0\nsub-02\t2\t0\n")
    return load_cohort(root)


@pytest.mark.slow
def test_outputs_are_consistent(table: pd.DataFrame, tmp_path: Path) -> None:
    probability = np.array([0.9, 0.2, 0.05, 0.6])
    paths = write_prediction_outputs(tmp_path / "out", table, probability, threshold=0.5)
    lesions = read_lesions(tmp_path / "out")
    assert list(lesions.columns) == [*LESION_COLUMNS, "rim", "mask_grid", "mask_source_grid"]
    assert lesions["participant_id"].tolist() == ["sub-01", "sub-01", "sub-02", "sub-02"]
    assert lesions["session"].isna().all() and "n/a" in (tmp_path / "out" / "lesions.tsv").read_text()
    np.testing.assert_allclose(lesions["probability"], probability, rtol=1e-6)
    assert lesions["decision"].tolist() == [1, 0, 0, 1]
    subjects = pd.read_csv(paths["subjects"], sep="\t", dtype=str, keep_default_na=False)
    assert subjects["participant_id"].tolist() == ["sub-01", "sub-02"] and subjects["session"].tolist() == ["n/a", "n/a"]
    assert subjects["n_rim_pos_predicted"].tolist() == ["1", "1"]
    assert subjects["n_rim_pos_true"].tolist() == ["1", "0"]
    for participant, rows in lesions.groupby("participant_id"):
        label = participant.removeprefix("sub-")
        files = output_paths(tmp_path / "out", label)
        assert files["probseg"] == tmp_path / "out" / participant / "anat" / f"{participant}_desc-rimprob_probseg.nii.gz"
        image = nib.load(str(files["probseg"]))
        qsm = nib.load(table.loc[table["participant_id"] == label, "qsm"].iloc[0])
        np.testing.assert_allclose(image.affine, qsm.affine)
        values = np.asarray(image.dataobj)
        labels, _ = read_lesion_labels(table.loc[table["participant_id"] == label, "mask"].iloc[0], 0)
        kept = np.isin(labels, rows["lesion_id"])
        assert np.array_equal(values != 0, kept)  # nonzero voxels are exactly the lesions' voxels
        for row in rows.itertuples():
            np.testing.assert_allclose(values[labels == row.lesion_id], row.probability, rtol=1e-6)
        assert files["montage"] == tmp_path / "out" / participant / "figures" / f"{participant}_desc-rimprob_montage.png"
        assert files["montage"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_output_is_a_bids_derivative_with_sidecars_and_data_dictionaries(table: pd.DataFrame, tmp_path: Path) -> None:
    from rimclf._version import __version__

    cohort = Path(table["qsm"].iloc[0]).parents[2]
    write_prediction_outputs(tmp_path / "out", table, np.full(len(table), 0.3), 0.5, montage=False,
                             model_info={"threshold_choice": {"value": 0.5, "method": "fixed"}}, source=cohort)
    description = json.loads((tmp_path / "out" / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative" and description["BIDSVersion"]
    assert description["GeneratedBy"] == [{"Name": "rimclf", "Version": __version__, "Description": ANY_TEXT,
                                           "CodeURL": f"pkg:pypi/rimclf@{__version__}"}]
    relative = Path(os.path.relpath(cohort, tmp_path / "out")).as_posix() + "/"
    assert description["SourceDatasets"] == [{"URL": relative}]  # relative: no file:// path of this machine
    assert description["DatasetLinks"] == {"raw": relative}
    for name in ("lesions", "subjects"):
        columns = pd.read_csv(tmp_path / "out" / f"{name}.tsv", sep="\t").columns
        dictionary = json.loads((tmp_path / "out" / f"{name}.json").read_text())
        assert set(dictionary) == set(columns) and all(entry["Description"] for entry in dictionary.values())
    assert json.loads((tmp_path / "out" / "lesions.json").read_text())["volume_mm3"]["Units"] == "mm^3"
    files = output_paths(tmp_path / "out", "01")
    sidecar = json.loads(files["probseg"].with_name("sub-01_desc-rimprob_probseg.json").read_text())
    assert sidecar["Units"] == "probability (0-1)" and sidecar["Threshold"] == 0.5
    assert sidecar["Model"]["threshold_choice"]["method"] == "fixed"
    assert sidecar["Sources"] == ["bids:raw:sub-01/anat/sub-01_Chimap.nii.gz", "bids:raw:sub-01/anat/sub-01_desc-lesions_mask.nii.gz"]
    assert json.loads(files["dseg"].with_name("sub-01_desc-lesions_dseg.json").read_text())["Description"]
    assert not files["montage"].exists()  # montage=False


class _AnyText:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and len(other) > 0


ANY_TEXT = _AnyText()


def test_the_map_header_is_its_own_on_the_qsm_grid(tmp_path: Path) -> None:
    """cal_min/cal_max 0..1, its own descrip and float32; the QSM's qform and sform with their codes."""
    root = tmp_path / "cohort"
    write_subject(root, "01")
    qsm_path = root / "sub-01" / "anat" / "sub-01_Chimap.nii.gz"
    qsm = nib.load(str(qsm_path))
    image = nib.Nifti1Image(np.asarray(qsm.dataobj), None, header=qsm.header.copy())
    image.set_qform(qsm.affine, code=1)  # scanner
    image.set_sform(qsm.affine, code=4)  # MNI: another code than the qform's, as after a registration
    image.header["cal_min"], image.header["cal_max"] = -150, 150
    image.header["descrip"] = b"QSM (ppb) from a test"
    nib.save(image, str(qsm_path))
    table = load_cohort(root)
    write_prediction_outputs(tmp_path / "out", table, np.array([0.99, 0.1]), 0.5, montage=False)
    files = output_paths(tmp_path / "out", "01")
    probseg, dseg, source = nib.load(str(files["probseg"])), nib.load(str(files["dseg"])), nib.load(str(qsm_path))
    header = probseg.header
    assert (float(header["cal_min"]), float(header["cal_max"])) == (0.0, 1.0)
    assert header["descrip"].tobytes().rstrip(b"\0") == b"rimclf rim+ probability (0-1)"
    assert probseg.get_data_dtype() == np.float32
    assert header.get_slope_inter() == (None, None)
    for image in (probseg, dseg):
        for get in ("get_qform", "get_sform"):
            matrix, code = getattr(image.header, get)(coded=True)
            expected, expected_code = getattr(source.header, get)(coded=True)
            assert int(code) == int(expected_code) and np.allclose(matrix, expected)
        np.testing.assert_allclose(image.affine, source.affine)
        assert image.header.get_zooms() == source.header.get_zooms()
    assert int(dseg.header["sform_code"]) == 4 and int(dseg.header["qform_code"]) == 1
    assert dseg.header.get_intent()[0] == "label" and float(dseg.header["cal_max"]) == 2.0
    assert dseg.header["descrip"].tobytes().rstrip(b"\0") == b"rimclf lesion ids (lesion_id of lesions.tsv)"


def test_the_lesion_label_image_ids_are_the_lesion_ids_of_lesions_tsv(tmp_path: Path) -> None:
    """A binary mask split into components: the label image gives each component's lesion_id;
    the 1-voxel lesion load_cohort left out (min_voxels) is 0."""
    root = tmp_path / "cohort"
    write_subject(root, "01", mask=(make_labels() > 0).astype(np.uint8))
    table = load_cohort(root)
    assert (table["connectivity"] == 26).all()
    write_prediction_outputs(tmp_path / "out", table, np.array([0.7, 0.2]), 0.5, montage=False)
    lesions = read_lesions(tmp_path / "out")
    files = output_paths(tmp_path / "out", "01")
    ids = np.asarray(nib.load(str(files["dseg"])).dataobj)
    assert ids.dtype == np.int16 and sorted(np.unique(ids[ids > 0]).tolist()) == sorted(lesions["lesion_id"].tolist())
    voxel_mm3 = float(np.prod(nib.load(str(files["dseg"])).header.get_zooms()))
    for row in lesions.itertuples():
        assert (ids == row.lesion_id).sum() * voxel_mm3 == pytest.approx(row.volume_mm3)
    probability = np.asarray(nib.load(str(files["probseg"])).dataobj)
    for row in lesions.itertuples():
        np.testing.assert_allclose(probability[ids == row.lesion_id], row.probability, rtol=1e-6)
    assert (make_labels() > 0).sum() - (ids > 0).sum() == 1  # the 1-voxel lesion
    lookup = pd.read_csv(files["dseg"].with_name("sub-01_desc-lesions_dseg.tsv"), sep="\t")
    assert lookup["index"].tolist() == lesions["lesion_id"].tolist() and lookup["name"].iloc[0] == "lesion 1"


@pytest.mark.slow
def test_sessions_get_their_own_folders_and_rows(tmp_path: Path) -> None:
    root = tmp_path / "cohort"
    for session in ("1", "2"):
        write_scan(root, "01", session, mask_in="seg", mask_suffix="dseg")
    write_scan(root, "02")
    table = load_cohort(root)
    probability = np.linspace(0.1, 0.9, len(table))
    write_prediction_outputs(tmp_path / "out", table, probability, 0.5)
    lesions = read_lesions(tmp_path / "out")
    assert lesions[["participant_id", "session"]].fillna("n/a").drop_duplicates().values.tolist() == [
        ["sub-01", "ses-1"], ["sub-01", "ses-2"], ["sub-02", "n/a"],
    ]
    subjects = pd.read_csv(tmp_path / "out" / "subjects.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert subjects[["participant_id", "session", "n_lesions"]].values.tolist() == [
        ["sub-01", "ses-1", "2"], ["sub-01", "ses-2", "2"], ["sub-02", "n/a", "2"],
    ]
    for session in ("1", "2"):
        files = output_paths(tmp_path / "out", "01", session)
        assert files["probseg"] == tmp_path / "out" / "sub-01" / f"ses-{session}" / "anat" / f"sub-01_ses-{session}_desc-rimprob_probseg.nii.gz"
        assert files["probseg"].is_file() and files["dseg"].is_file() and files["montage"].is_file()
        rows = lesions[lesions["session"] == f"ses-{session}"]
        ids = np.asarray(nib.load(str(files["dseg"])).dataobj)
        assert sorted(np.unique(ids[ids > 0]).tolist()) == rows["lesion_id"].tolist()
    assert output_paths(tmp_path / "out", "02")["montage"].is_file()


def test_no_overwrite_without_force(table: pd.DataFrame, tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_prediction_outputs(out, table, np.zeros(len(table)), 0.5, montage=False)
    before = (out / "lesions.tsv").read_text()
    with pytest.raises(FileExistsError, match="--force"):
        write_prediction_outputs(out, table, np.ones(len(table)), 0.5, montage=False)
    assert (out / "lesions.tsv").read_text() == before
    write_prediction_outputs(out, table, np.ones(len(table)), 0.5, montage=False, force=True)
    assert pd.read_csv(out / "lesions.tsv", sep="\t")["decision"].eq(1).all()


def test_failure_leaves_nothing_behind(table: pd.DataFrame, tmp_path: Path) -> None:
    broken = table.copy()
    broken.loc[broken["participant_id"] == "02", "mask"] = str(tmp_path / "missing_mask.nii.gz")
    with pytest.raises(CohortError, match="missing_mask"):
        write_prediction_outputs(tmp_path / "out", broken, np.zeros(len(broken)), 0.5)
    assert list(tmp_path.iterdir()) == [tmp_path / "cohort"]


def test_outputs_are_readable_by_others_under_the_usual_umask(table: pd.DataFrame, tmp_path: Path) -> None:
    import os
    import stat

    previous = os.umask(0o022)
    try:
        write_prediction_outputs(tmp_path / "out", table, np.zeros(len(table)), 0.5, montage=False)
    finally:
        os.umask(previous)
    out = tmp_path / "out"
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert stat.S_IMODE((out / "lesions.tsv").stat().st_mode) == 0o644
    assert stat.S_IMODE(next(out.glob("sub-*/anat/*_probseg.nii.gz")).stat().st_mode) == 0o644


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("participant", ["01/../../../PWN", "..", "01_a"])
def test_a_participant_id_leading_outside_out_writes_nothing(table: pd.DataFrame, tmp_path: Path, participant: str) -> None:
    out = tmp_path / "a" / "b" / "out"
    attack = table.copy()
    attack.loc[attack["participant_id"] == "01", "participant_id"] = participant
    before = tree(tmp_path)
    with pytest.raises(CohortError, match=r"the lesion table: participant_id .* is not a valid label"):
        write_prediction_outputs(out, attack, np.full(len(attack), 0.5), 0.5, montage=False)
    assert tree(tmp_path) == before  # not OUT, not PWN, not a temporary folder: nothing anywhere


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1.5, -0.1])
def test_unusable_probabilities_are_an_error_and_nothing_is_written(table: pd.DataFrame, tmp_path: Path, bad: float) -> None:
    probability = np.array([0.9, bad, 0.05, bad])
    with pytest.raises(PredictionError, match=rf"2 of 4 lesion\(s\) a NaN, infinite or out-of-range rim\+ probability: sub-01 lesion 2 \({bad:g}\), sub-02 lesion 2"):
        write_prediction_outputs(tmp_path / "out", table, probability, 0.5, montage=False)
    assert list(tmp_path.iterdir()) == [tmp_path / "cohort"]
    with pytest.raises(PredictionError, match="row 1"):
        check_probabilities(probability)
    assert check_probabilities([0.0, 1.0]).tolist() == [0.0, 1.0]


def test_the_qsm_window_makes_a_rim_stand_out() -> None:
    """White matter at +5 ppb with noise, grey matter and a vein: the window centres on the tissue
    and a +25 ppb rim spans a third of it or more (a tenth of the old +-100 ppb window)."""
    from rimclf.outputs._montage import qsm_window

    rng = np.random.default_rng(0)
    plane = 5 + rng.normal(0, 6, (81, 81))
    plane[:10] += 25  # cortex
    plane[40, :] += 250  # a vein
    plane[:, :5] = 0  # outside the brain
    lesion = np.zeros_like(plane)
    lesion[30:50, 30:50] = 1
    low, high = qsm_window([plane], [lesion])
    assert low < 5 < high and 40 <= high - low <= 100
    assert 25 / (high - low) >= 1 / 3 > 25 / 200
    assert qsm_window([np.zeros((5, 5))], [np.zeros((5, 5))]) == (-100.0, 100.0)  # nothing to go by


def test_the_montage_has_a_ppb_colourbar_and_orientation_marks(table: pd.DataFrame) -> None:
    from rimclf._nifti import read_volume
    from rimclf.outputs import lesion_predictions
    from rimclf.outputs._montage import MARK_COLOUR, montage_image

    subject = lesion_predictions(table, np.array([0.9, 0.2, 0.05, 0.6]), 0.5).iloc[:2]
    first = table.iloc[0]
    qsm, affine = read_volume(first["qsm"])
    flair, flair_affine = read_volume(first["flair"])
    labels, _ = read_lesion_labels(first["mask"], 0)
    montage = montage_image(subject, qsm=qsm, qsm_affine=affine, flair=flair, flair_affine=flair_affine, labels=labels,
                            title="sub-01")
    texts = [text for _, _, text in montage.texts]
    assert texts.count("QSM (ppb)") == 1
    titles = [text for text in texts if text.startswith(("QSM  ", "FLAIR  "))]
    assert len(titles) == 4 and titles[0].startswith("QSM  lesion 1\np=0.90 rim+ (ref rim+)")
    assert sorted(texts.count(letter) for letter in "ALPR") == [4, 4, 4, 4]  # on every panel
    low, high = montage.window
    assert high - low < 200 and "QSM window" in texts[-1] and "patient's right on the right" in texts[-1]
    pixels = montage.pixels
    assert pixels.dtype == np.uint8 and pixels.shape[2] == 3
    assert (pixels == MARK_COLOUR).all(axis=2).sum() > 20  # letters
    assert ((pixels == (255, 255, 0)).all(axis=2)).sum() > 20  # lesion outlines


def test_a_montage_shows_the_k_most_probable_lesions_and_every_rim_pos_call() -> None:
    from rimclf.outputs._montage import montage_lesions

    subject = pd.DataFrame({"lesion_id": range(1, 51), "probability": np.linspace(0.01, 0.99, 50)[::-1],
                            "decision": [0] * 50})
    subject.loc[[30, 45], "decision"] = 1  # called rim+ below the K most probable (a low threshold)
    shown = montage_lesions(subject, 24)
    assert len(shown) == 26 and shown["lesion_id"].tolist()[:24] == list(range(1, 25))
    assert set(shown["lesion_id"]) >= {31, 46} and shown["probability"].is_monotonic_decreasing
    assert len(montage_lesions(subject, 0)) == 2 and len(montage_lesions(subject.iloc[:5], 24)) == 5


def test_montage_lesions_zero_draws_no_montage_and_a_negative_count_is_refused(table: pd.DataFrame, tmp_path: Path) -> None:
    from rimclf.errors import ParameterError

    write_prediction_outputs(tmp_path / "out", table, np.full(len(table), 0.9), 0.5, max_montage_lesions=0)
    assert not list((tmp_path / "out").rglob("*.png")) and list((tmp_path / "out").rglob("*_probseg.nii.gz"))
    with pytest.raises(ParameterError, match="max_montage_lesions=-1"):
        write_prediction_outputs(tmp_path / "out2", table, np.full(len(table), 0.9), 0.5, max_montage_lesions=-1)
    assert not (tmp_path / "out2").exists()


def test_a_manifest_source_and_the_model_identity_are_recorded(table: pd.DataFrame, tmp_path: Path) -> None:
    manifest = tmp_path / "lists" / "manifest.tsv"
    manifest.parent.mkdir()
    manifest.write_text("participant_id\tqsm\tflair\tmask\n")
    identity = {"format_version": 3, "weights_sha256": "ab" * 32}
    write_prediction_outputs(tmp_path / "runs" / "out", table, np.full(len(table), 0.3), 0.5, montage=False,
                             source=manifest, model_identity=identity)
    description = json.loads((tmp_path / "runs" / "out" / "dataset_description.json").read_text())
    assert description["SourceDatasets"] == [{"URL": "../../lists/manifest.tsv"}] and "DatasetLinks" not in description
    assert description["GeneratedBy"][0]["Model"] == identity


def test_subjects_tsv_lists_empty_and_skipped_scans(table: pd.DataFrame, tmp_path: Path) -> None:
    scans = [{"participant_id": p, "session": "", "status": "read", "reason": ""} for p in ("01", "02", "03")]
    scans.append({"participant_id": "04", "session": "", "status": "skipped", "reason": "no lesion mask"})
    paths = write_prediction_outputs(tmp_path / "out", table, np.full(len(table), 0.7), 0.5, montage=False, scans=scans)
    subjects = pd.read_csv(paths["subjects"], sep="\t", dtype=str, keep_default_na=False)
    assert subjects[["participant_id", "n_lesions", "n_rim_pos_predicted", "status", "reason"]].values.tolist() == [
        ["sub-01", "2", "2", "predicted", "n/a"], ["sub-02", "2", "2", "predicted", "n/a"],
        ["sub-03", "0", "0", "predicted", "n/a"], ["sub-04", "n/a", "n/a", "skipped", "no lesion mask"],
    ]
    assert set(json.loads(paths["subjects"].with_suffix(".json").read_text())) == set(subjects.columns)


@pytest.mark.parametrize("mask", ["empty", "below_min_voxels"])
def test_a_scan_without_lesions_gets_true_counts_and_the_files_of_any_scan(tmp_path: Path, mask: str) -> None:
    """Its rim+ count is 0 for certain: interval 0-0 at probability 1 (once 0, as every missing value); and it
    gets an all-0 map and label image on its QSM grid and a "no lesions" montage (once no folder at all)."""
    root = tmp_path / "cohort"
    write_subject(root, "01")
    labels = np.zeros_like(make_labels())
    if mask == "below_min_voxels":
        labels[20, 2, 10] = 1  # one lesion of 1 voxel, left out by load_cohort
    write_subject(root, "02", mask=labels)
    (root / "rims.tsv").write_text("participant_id\tlesion_id\trim\nsub-01\t1\t1\nsub-01\t2\t0\n")
    table = load_cohort(root)
    assert set(table["participant_id"]) == {"01"}
    paths = write_prediction_outputs(tmp_path / "out", table, np.array([0.9, 0.2]), 0.5, scans=table.attrs["scans"])
    subjects = pd.read_csv(paths["subjects"], sep="\t", dtype=str, keep_default_na=False).set_index("participant_id")
    assert subjects.loc["sub-02"].to_dict() == {
        "session": "n/a", "n_lesions": "0", "n_rim_pos_predicted": "0", "expected_rim_pos": "0", "rim_pos_low_90": "0",
        "rim_pos_high_90": "0", "p_rim_pos_in_interval": "1", "p_any_rim_pos": "0", "p_rim_pos_4plus": "0",
        "n_rim_pos_true": "0", "status": "predicted", "reason": "n/a",
    }
    full, empty = output_paths(tmp_path / "out", "01"), output_paths(tmp_path / "out", "02")
    named = sorted(p.name.replace("sub-01", "sub-02") for p in (tmp_path / "out" / "sub-01").rglob("*"))
    assert sorted(p.name for p in (tmp_path / "out" / "sub-02").rglob("*")) == named  # the same files
    qsm = nib.load(str(root / "sub-02" / "anat" / "sub-02_Chimap.nii.gz"))
    for kind, dtype in (("probseg", np.float32), ("dseg", np.int16)):
        image, other = nib.load(str(empty[kind])), nib.load(str(full[kind]))
        assert image.shape == qsm.shape and np.allclose(image.affine, qsm.affine)
        assert image.get_data_dtype() == dtype and not np.asarray(image.dataobj).any()
        assert image.header["descrip"] == other.header["descrip"]
    assert nib.load(str(empty["probseg"])).header["cal_max"] == 1.0
    assert nib.load(str(empty["dseg"])).header.get_intent()[0] == "label"
    sidecar = json.loads(empty["probseg"].with_name("sub-02_desc-rimprob_probseg.json").read_text())
    assert sidecar["Threshold"] == 0.5 and sidecar["Units"] == "probability (0-1)"
    lookup = pd.read_csv(empty["dseg"].with_name("sub-02_desc-lesions_dseg.tsv"), sep="\t")
    assert lookup.empty and lookup.columns.tolist() == ["index", "name", "probability", "decision"]
    assert empty["montage"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / "out" / "subjects.png").is_file()


def test_the_montage_of_a_scan_without_lesions_says_so() -> None:
    from rimclf.outputs._montage import no_lesion_montage

    montage = no_lesion_montage("sub-02_ses-1")
    assert montage.texts[0][2] == "sub-02_ses-1: no lesions" and "below min_voxels" in montage.texts[1][2]
    assert (montage.pixels < 128).all(axis=2).sum() > 100  # the text is drawn
