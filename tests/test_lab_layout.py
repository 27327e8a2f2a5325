"""A lab's own BIDS data goes in (issue #22): the QSM in a QSM pipeline's derivatives, lesion masks in a
segmentation pipeline's, sessions, an incomplete scan, predictions written into ``derivatives/rimclf``
and the cohort read again; BIDS-App selection and ``--strict``."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rimclf._nifti import read_labels, read_volume, save_nifti
from rimclf.cli import main
from rimclf.cohort import CohortOptions, cohort_scans, load_cohort
from rimclf.errors import CohortError, DataWarning, ParameterError
from tests.grid_builders import one_mm_grid, rewrite_mask_on_flair_grid, rewrite_on_grid
from tests.test_cohort_resample import lesion_dice

pytestmark = pytest.mark.usefixtures("one_torch_thread")

QSM_PIPELINE = "qsmxt"
MASK_PIPELINE = "lesionseg"
#: The scan left without FLAIR.
INCOMPLETE = ("002", "02")
#: The session whose lesion masks are written on the FLAIR's 1 mm grid (half of the masks).
ON_FLAIR_GRID = "02"
#: The default model's features, in a size that trains in seconds.
TRAIN_ARGS = ["--patch-shape", "8", "--patch-size-mm", "16", "--width", "4", "--epochs", "2", "--batch-size", "16",
              "--threshold-cv", "2", "--seed", "0", "--quiet"]


def _describe(folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    description = {"Name": name, "BIDSVersion": "1.9.0", "DatasetType": "derivative", "GeneratedBy": [{"Name": name}]}
    (folder / "dataset_description.json").write_text(json.dumps(description))


def write_lesion_mask(path: Path, labels: np.ndarray, affine: np.ndarray, flair: Path | None = None) -> None:
    """Write a lesion mask on the QSM grid, or with ``flair`` on the grid of that FLAIR (as a lesion
    segmentation tool run on the FLAIR writes it; rimclf resamples it onto the QSM grid)."""
    save_nifti(path, labels, affine)
    if flair is not None:
        rewrite_mask_on_flair_grid(path, flair)


def make_lab_layout(phantom: Path, lab: Path) -> Path:
    """Rearrange a phantom cohort with sessions into the layout a lab has.

    - raw: ``sub-*/ses-*/anat/*_FLAIR.nii.gz`` (one scan without FLAIR), participants.tsv, rims.tsv;
    - ``derivatives/qsmxt/``: the QSM as ``*_acq-gre_run-1_Chimap.nii.gz`` in ppm with JSON sidecars
      and the pipeline's ``*_acq-gre_desc-brain_mask.nii.gz`` beside it;
    - ``derivatives/lesionseg/``: instance-label masks ``*_space-orig_label-lesion_desc-lstai_dseg.nii.gz``,
      those of the second sessions (:data:`ON_FLAIR_GRID`) on the FLAIR's grid;
    - every FLAIR on its own 1 mm grid (another field of view than the QSM's).
    """
    shutil.copytree(phantom, lab)
    shutil.rmtree(lab / "derivatives")
    shutil.copy(phantom / "derivatives" / "phantom" / "rims.tsv", lab / "rims.tsv")
    _describe(lab / "derivatives" / QSM_PIPELINE, "QSMxT")
    _describe(lab / "derivatives" / MASK_PIPELINE, "LST-AI")
    for qsm in sorted(lab.glob("sub-*/ses-*/anat/*_Chimap.nii.gz")):
        anat = qsm.parent.relative_to(lab)
        name = qsm.name[: -len("_Chimap.nii.gz")]
        units = json.loads(qsm.with_name(f"{name}_Chimap.json").read_text()).get("Units", "ppm")
        values, affine = read_volume(qsm)
        ppm = values / 1000.0 if units == "ppb" else values
        out = lab / "derivatives" / QSM_PIPELINE / anat
        save_nifti(out / f"{name}_acq-gre_run-1_Chimap.nii.gz", ppm.astype(np.float32), affine)
        (out / f"{name}_acq-gre_run-1_Chimap.json").write_text(json.dumps({"Units": "ppm", "EchoTime": [0.004, 0.012]}))
        save_nifti(out / f"{name}_acq-gre_desc-brain_mask.nii.gz", (values != 0).astype(np.uint8), affine)
        for old in qsm.parent.glob(f"{name}_Chimap.*"):
            old.unlink()
        flair = qsm.with_name(f"{name}_FLAIR.nii.gz")
        rewrite_on_grid(flair, *one_mm_grid(flair), order=1)
        mask = next((phantom / "derivatives" / "phantom" / anat).glob("*_desc-lesions_dseg.nii.gz"))
        labels, mask_affine = read_labels(mask)
        on_flair = anat.parent.name == f"ses-{ON_FLAIR_GRID}" and f"sub-{INCOMPLETE[0]}" != anat.parts[0]
        write_lesion_mask(lab / "derivatives" / MASK_PIPELINE / anat / f"{name}_space-orig_label-lesion_desc-lstai_dseg.nii.gz",
                          labels, mask_affine, flair if on_flair else None)
    participant, session = INCOMPLETE
    (lab / f"sub-{participant}" / f"ses-{session}" / "anat" / f"sub-{participant}_ses-{session}_FLAIR.nii.gz").unlink()
    return lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rimclf.phantom import make_phantom_cohort

    folder = tmp_path_factory.mktemp("lab")
    phantom = make_phantom_cohort(folder / "phantom", n_subjects=4, random_state=3, n_sessions=2, shape=(40, 48, 28),
                                  lesions_per_subject=(4, 8), rim_prevalence=0.3)
    return make_lab_layout(Path(phantom), folder / "lab")


def _scans(table: pd.DataFrame) -> set[tuple[str, str]]:
    return set(zip(table["participant_id"], table["session"]))


@pytest.mark.slow
def test_the_lab_layout_is_found_without_options(lab: Path) -> None:
    with pytest.warns(DataWarning, match=r"^sub-002_ses-02: skipped, no FLAIR \(\*_FLAIR\)$"):
        table = load_cohort(lab)
    assert len(_scans(table)) == 7 and INCOMPLETE not in _scans(table)
    assert table["qsm"].str.contains(f"derivatives/{QSM_PIPELINE}/").all()
    assert table["qsm"].str.endswith("_acq-gre_run-1_Chimap.nii.gz").all()
    assert table["mask"].str.endswith("_desc-lstai_dseg.nii.gz").all()  # never the QSM pipeline's brain mask
    assert set(table.loc[table["session"] == ON_FLAIR_GRID, "mask_grid"]) == {"resampled"}
    assert set(table.loc[table["session"] != ON_FLAIR_GRID, "mask_grid"]) == {"qsm"}
    assert (table["qsm_unit"] == "ppm").all() and table["rim"].notna().all()
    scans = cohort_scans(table)
    assert scans.loc[scans["status"] == "skipped", ["participant_id", "session", "reason"]].values.tolist() == [
        ["002", "02", "no FLAIR (*_FLAIR)"]]
    with pytest.raises(CohortError, match=r"sub-002_ses-02: no FLAIR \(\*_FLAIR\) found \(.*sub-002/ses-02/anat"):
        load_cohort(lab, strict=True)


@pytest.mark.slow
def test_masks_on_the_flair_grid_match_their_qsm_grid_originals(lab: Path) -> None:
    from rimclf.cohort import read_lesion_labels

    phantom = lab.parent / "phantom" / "derivatives" / "phantom"
    table = load_cohort(lab, session_label=ON_FLAIR_GRID, participant_label=["001", "003", "004"])
    assert len(_scans(table)) == 3
    for (participant, session), rows in table.groupby(["participant_id", "session"]):
        moved, _ = read_lesion_labels(rows["mask"].iloc[0], 0, rows["qsm"].iloc[0])
        original, _ = read_labels(next(phantom.glob(f"sub-{participant}/ses-{session}/anat/*_dseg.nii.gz")))
        assert len(np.unique(moved[moved > 0])) == len(np.unique(original[original > 0]))
        dice = lesion_dice(original, moved)
        assert min(dice.values()) >= 0.8, (participant, session, dice)


@pytest.mark.slow
def test_selection_by_participant_and_session(lab: Path) -> None:
    options = CohortOptions(participant_label=("sub-001", "003"), session_label=("ses-01",))
    table = load_cohort(lab, options)  # rims.tsv rows of other scans are ignored
    assert _scans(table) == {("001", "01"), ("003", "01")}
    assert [s["status"] for s in table.attrs["scans"]] == ["read", "read"]
    with pytest.raises(CohortError, match=r"participant_label 009 \(--participant-label\) not found in this dataset; "
                                          r"it has 001, 002, 003, 004"):
        load_cohort(lab, participant_label=["009"])
    with pytest.raises(ParameterError, match=r"participant_label='sub-0_1' is not valid"):
        load_cohort(lab, participant_label="sub-0_1")


@pytest.mark.slow
def test_an_empty_mask_keeps_its_scan(lab: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(lab, tmp_path / "lab")
    mask = next((copy / "derivatives" / MASK_PIPELINE).glob("sub-001/ses-01/anat/*_dseg.nii.gz"))
    labels, affine = read_labels(mask)
    save_nifti(mask, np.zeros_like(labels), affine, overwrite=True)
    (copy / "rims.tsv").write_text("participant_id\tsession\tlesion_id\trim\n")
    table = load_cohort(copy, participant_label="001", session_label="01")
    assert table.empty and cohort_scans(table)[["participant_id", "status"]].values.tolist() == [["001", "read"]]


@pytest.mark.slow
def test_several_candidates_name_the_option(lab: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(lab, tmp_path / "lab")
    anat = "sub-001/ses-01/anat"
    _describe(copy / "derivatives" / "manual", "manual")
    shutil.copytree(copy / "derivatives" / MASK_PIPELINE / anat, copy / "derivatives" / "manual" / anat)
    with pytest.raises(CohortError, match=r"sub-001_ses-01: 2 lesion mask files \(.*\); choose where to read it with "
                                          r"mask_pipeline='lesionseg' or 'manual' \(--mask-pipeline lesionseg"):
        load_cohort(copy, participant_label="001")
    table = load_cohort(copy, participant_label="001", mask_pipeline="manual", session_label="01")
    assert table["mask"].str.contains("derivatives/manual/").all()
    # a mask named without "lesion" is found only by its desc
    for path in (copy / "derivatives" / MASK_PIPELINE).rglob("*_dseg.nii.gz"):
        path.rename(path.with_name(path.name.replace("label-lesion_", "")))
    shutil.rmtree(copy / "derivatives" / "manual")
    with pytest.warns(DataWarning, match="no lesion mask"), pytest.raises(CohortError, match="no lesion mask.*--mask-desc DESC"):
        load_cohort(copy, participant_label="001")
    assert len(load_cohort(copy, participant_label="001", mask_desc="lstai")) > 0
    # named by another tool's label only (label-WMH, no desc): a filter on the label chooses it
    for path in (copy / "derivatives" / MASK_PIPELINE).rglob("*_dseg.nii.gz"):
        path.rename(path.with_name(path.name.replace("desc-lstai", "label-WMH")))
    with pytest.warns(DataWarning, match="no lesion mask"), pytest.raises(CohortError, match="no lesion mask"):
        load_cohort(copy, participant_label="001", mask_desc="lstai")
    wmh = load_cohort(copy, participant_label="001", bids_filters=["mask:label=WMH"])
    assert len(wmh) > 0 and wmh["mask"].str.contains("_label-WMH_dseg").all()


def _run(*args: str) -> int:
    with warnings.catch_warnings():  # the skipped scan (checked once below), a threshold of a 2-epoch network
        warnings.simplefilter("ignore", DataWarning)
        return main(list(args))


@pytest.mark.slow
def test_train_predict_into_derivatives_and_again(lab: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model = tmp_path / "model"
    with pytest.warns(DataWarning, match=r"sub-002_ses-02: skipped, no FLAIR \(\*_FLAIR\)"):
        assert main(["train", str(lab), "-o", str(model), *TRAIN_ARGS]) == 0
    skipped_in_model = json.loads((model / "settings.json").read_text())["training"]["skipped_scans"]
    assert skipped_in_model == ["sub-002_ses-02: no FLAIR (*_FLAIR)"]  # the model says what it was not trained on
    inside = lab / "derivatives" / "rimclf"
    try:
        assert _run("predict", str(model), str(lab), "-o", str(inside), "--no-montage", "-q") == 0
        subjects = pd.read_csv(inside / "subjects.tsv", sep="\t", dtype=str, keep_default_na=False)
        assert len(subjects) == 8 and subjects["participant_id"].str.startswith("sub-").all()
        skipped = subjects[subjects["status"] == "skipped"]
        assert skipped[["participant_id", "session", "reason"]].values.tolist() == [["sub-002", "ses-02", "no FLAIR (*_FLAIR)"]]
        assert (subjects.loc[subjects["status"] == "predicted", "n_lesions"].astype(int) > 0).all()
        description = json.loads((inside / "dataset_description.json").read_text())
        assert description["SourceDatasets"] == [{"URL": "../../"}]
        generated = description["GeneratedBy"][0]
        assert generated["CodeURL"].startswith("pkg:pypi/rimclf@")
        assert generated["Model"]["weights_sha256"] == json.loads((model / "settings.json").read_text())["weights"]["sha256"]
        assert "file://" not in json.dumps(description)
        # the outputs are not read back: the cohort reads as before, predicts and trains again
        elsewhere = tmp_path / "again"
        assert _run("predict", str(model), str(lab), "-o", str(elsewhere), "--no-montage", "-q") == 0
        assert (elsewhere / "lesions.tsv").read_text() == (inside / "lesions.tsv").read_text()
        assert _run("train", str(lab), "-o", str(tmp_path / "model2"), "--participant-label", "001", "002", "003",
                    *TRAIN_ARGS) == 0
        assert _run("predict", str(model), str(lab), "-o", str(tmp_path / "one"), "--no-montage", "-q",
                    "--participant-label", "sub-004", "--session-label", "02") == 0
        one = pd.read_csv(tmp_path / "one" / "subjects.tsv", sep="\t", dtype=str)
        assert one[["participant_id", "session"]].values.tolist() == [["sub-004", "ses-02"]]
        assert _run("predict", str(model), str(lab), "-o", str(tmp_path / "strict"), "--strict", "-q") == 1  # a data error
        assert "sub-002_ses-02: no FLAIR" in capsys.readouterr().err
        # derivatives/rimclf may be written; the cohort, its derivatives/ and an input pipeline may not
        for out in (lab, lab / "derivatives", lab / "derivatives" / QSM_PIPELINE, lab / "sub-001" / "x"):
            assert _run("predict", str(model), str(lab), "-o", str(out), "--force", "-q") != 0
            assert "outputs may never be, contain or lie inside an input" in capsys.readouterr().err
        assert (lab / "derivatives" / QSM_PIPELINE / "dataset_description.json").is_file()
    finally:
        shutil.rmtree(inside, ignore_errors=True)  # the lab fixture is shared


@pytest.mark.slow
def test_a_model_without_flair_features_predicts_scans_without_flair(lab: Path, tmp_path: Path) -> None:
    from dataclasses import replace

    from rimclf.classifier import make_classifier
    from rimclf.defaults import DEFAULT_MODEL
    from rimclf.features import LesionFeaturizer, RimProfileExtractor
    from rimclf.workflows import predict_cohort, train_model

    featurizer = LesionFeaturizer([("rim", RimProfileExtractor(flair=False))], progress=False)
    config = replace(DEFAULT_MODEL, max_epochs=2, batch_size=16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        model = train_model(lab, featurizer=featurizer, classifier=make_classifier(config, random_state=0),
                            threshold=0.5, random_state=0)
    assert model.training_["n_lesions"] > 0
    paths = predict_cohort(model, lab, tmp_path / "out", montage=True, cohort_options=CohortOptions(participant_label=("002",)))
    subjects = pd.read_csv(paths["subjects"], sep="\t", dtype=str)
    assert subjects["session"].tolist() == ["ses-01", "ses-02"] and (subjects["status"] == "predicted").all()
    assert (tmp_path / "out" / "sub-002" / "figures" / "sub-002_ses-02_desc-rimprob_montage.png").is_file()


@pytest.mark.slow
def test_rimclf_label_images_are_never_lesion_masks(lab: Path, tmp_path: Path) -> None:
    """Outputs copied into a folder without rimclf's dataset_description.json are still recognised."""
    from rimclf.outputs import write_prediction_outputs

    copy = shutil.copytree(lab, tmp_path / "lab")
    table = load_cohort(copy, participant_label="001")
    write_prediction_outputs(tmp_path / "out", table, np.full(len(table), 0.5), 0.5, montage=False)
    shutil.copytree(tmp_path / "out" / "sub-001", copy / "derivatives" / "copied" / "sub-001")  # no description
    again = load_cohort(copy, participant_label="001")
    pd.testing.assert_frame_equal(again, table)


@pytest.mark.slow
def test_extract_lists_the_skipped_scan(lab: Path, tmp_path: Path) -> None:
    out = tmp_path / "features"
    with pytest.warns(DataWarning, match="sub-002_ses-02: skipped"):
        assert main(["extract", str(lab), "-o", str(out), "--no-patches", "--participant-label", "002", "-q"]) == 0
    skipped = pd.read_csv(out / "skipped_scans.tsv", sep="\t", dtype=str)
    assert skipped.values.tolist() == [["sub-002", "ses-02", "no FLAIR (*_FLAIR)"]]
    rim = pd.read_csv(out / "rim.tsv", sep="\t", dtype=str)
    assert set(zip(rim["participant_id"], rim["session"])) == {("sub-002", "ses-01")}
