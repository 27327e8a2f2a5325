"""BIDS cohorts (issue #15): sessions, masks in derivatives pipelines, ``.nii``, manifests with sessions,
QSM units from JSON sidecars (BIDS: ppm unless a sidecar says otherwise)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rimclf import CohortError, load_cohort
from rimclf._nifti import save_nifti
from rimclf.cli import main
from rimclf.cohort import CohortOptions, cohort_scans, labelled_lesions
from rimclf.errors import DataWarning, ParameterError
from rimclf.features import PatchExtractor, RadiomicsExtractor
from rimclf.metrics import subject_folds
from tests.builders import describe_pipeline, make_affine, make_labels, make_qsm, write_scan


@pytest.fixture
def sessions(tmp_path: Path) -> Path:
    """sub-01 with two sessions (masks in derivatives/lesionseg as dseg, ses-2 uncompressed .nii),
    sub-02 without sessions (raw mask, as rimclf always read it)."""
    root = tmp_path / "bids"
    (root).mkdir()
    (root / "dataset_description.json").write_text(json.dumps({"Name": "t", "BIDSVersion": "1.9.0", "DatasetType": "raw"}))
    describe_pipeline(root, "lesionseg")
    write_scan(root, "01", "1", mask_in="lesionseg", mask_suffix="dseg")
    write_scan(root, "01", "2", ext=".nii", mask_in="lesionseg", mask_suffix="dseg")
    write_scan(root, "02")
    (root / "rims.tsv").write_text(
        "participant_id\tsession\tlesion_id\trim\nsub-01\tses-1\t1\t1\nsub-01\t2\t1\t0\nsub-01\tses-2\t2\t1\nsub-02\tn/a\t2\t0\n"
    )
    return root


@pytest.mark.slow
def test_a_session_layout_with_derivatives_masks_and_nii_files_loads(sessions: Path) -> None:
    table = load_cohort(sessions)
    assert table[["participant_id", "session", "lesion_id"]].values.tolist() == [
        ["01", "1", 1], ["01", "1", 2], ["01", "2", 1], ["01", "2", 2], ["02", "", 1], ["02", "", 2],
    ]
    assert table["rim"].tolist() == [1, pd.NA, 0, 1, pd.NA, 0]
    masks = table.groupby("session")["mask"].first()
    assert masks["1"].endswith("derivatives/lesionseg/sub-01/ses-1/anat/sub-01_ses-1_desc-lesions_dseg.nii.gz")
    assert masks["2"].endswith("derivatives/lesionseg/sub-01/ses-2/anat/sub-01_ses-2_desc-lesions_dseg.nii")
    assert masks[""].endswith("sub-02/anat/sub-02_desc-lesions_mask.nii.gz")
    assert table.loc[table["session"] == "2", "qsm"].str.endswith("sub-01_ses-2_Chimap.nii").all()
    assert (table["qsm_unit"] == "ppb").all()
    assert len(load_cohort(sessions, check_data=True)) == 6


@pytest.mark.slow
def test_sessions_of_one_subject_stay_in_one_fold(sessions: Path) -> None:
    table = load_cohort(sessions)
    table["rim"] = pd.array([1, 0, 0, 1, 1, 0], dtype="Int64")
    _, y, groups = labelled_lesions(table)
    assert groups.tolist() == ["01"] * 4 + ["02"] * 2  # participants, not sessions
    for train, test in subject_folds(y, groups, n_splits=2, random_state=0):
        assert not set(groups[train]) & set(groups[test])


@pytest.mark.slow
def test_features_are_computed_per_session(sessions: Path, tmp_path: Path) -> None:
    qsm = make_qsm(5)
    write_scan(sessions, "01", "2", qsm=qsm, ext=".nii", mask_in="lesionseg", mask_suffix="dseg")  # other values
    write_scan(tmp_path / "alone", "09", qsm=qsm)
    table = load_cohort(sessions)
    extractor = RadiomicsExtractor(params={"featureClass": {"firstorder": ["Mean", "Maximum"]}})
    values = extractor.fit(table).transform(table)
    alone = load_cohort(tmp_path / "alone")
    np.testing.assert_allclose(values[2:4], extractor.transform(alone), rtol=1e-6)
    assert not np.allclose(values[0:2], values[2:4])


@pytest.mark.slow
def test_masks_in_several_places_need_a_pipeline_choice(sessions: Path) -> None:
    describe_pipeline(sessions, "manual")
    write_scan(sessions, "01", "1", mask_in="manual")
    with pytest.raises(
        CohortError,
        match=r"sub-01_ses-1: 2 lesion mask files \(derivatives/lesionseg/sub-01/ses-1/anat/sub-01_ses-1_desc-lesions_dseg.nii.gz, "
        r"derivatives/manual/sub-01/ses-1/anat/sub-01_ses-1_desc-lesions_mask.nii.gz\); choose where to read it with "
        r"mask_pipeline='lesionseg' or 'manual' \(--mask-pipeline",
    ):
        load_cohort(sessions)
    with pytest.raises(CohortError, match=r"mask_pipeline='other' \(--mask-pipeline\) is not a pipeline of this dataset; "
                                          r"its derivatives/ holds lesionseg, manual"):
        load_cohort(sessions, mask_pipeline="other")
    with pytest.warns(DataWarning) as caught:  # manual has only ses-1; the choice leaves out raw masks too
        chosen = load_cohort(sessions, mask_pipeline="manual")
    assert [str(w.message) for w in caught] == ["sub-01_ses-2: skipped, no lesion mask", "sub-02: skipped, no lesion mask"]
    assert set(chosen["session"]) == {"1"}
    with pytest.raises(CohortError, match=r"sub-01_ses-2: no lesion mask found \(.* in .*sub-01/ses-2/anat and "
                                          r"derivatives/manual/sub-01/ses-2/anat\)"):
        load_cohort(sessions, mask_pipeline="manual", strict=True)
    write_scan(sessions, "02", mask_in="lesionseg")
    chosen = load_cohort(sessions, mask_pipeline="lesionseg")
    assert chosen["mask"].str.contains("derivatives/lesionseg/").all() and len(chosen) == 6
    with pytest.warns(DataWarning), pytest.raises(CohortError, match=r"none of its 1 selected scan\(s\) has every required "
                                                                      r"file: sub-01_ses-2: no lesion mask"):
        load_cohort(sessions, mask_pipeline="raw", session_label=["2"])  # sub-01 ses-2 has no raw mask


def test_a_pipeline_without_dataset_description_is_read_too(tmp_path: Path) -> None:
    write_scan(tmp_path, "01", mask_in="masks")  # derivatives/masks has no dataset_description.json
    table = load_cohort(tmp_path)
    assert table["mask"].str.contains("derivatives/masks/sub-01/anat/").all() and len(table) == 2


@pytest.mark.slow
def test_another_tools_unreadable_pipeline_is_skipped_unless_chosen(tmp_path: Path) -> None:
    write_scan(tmp_path, "01", mask_in="masks")
    broken = tmp_path / "derivatives" / "fmriprep"
    broken.mkdir()
    (broken / "dataset_description.json").write_text('{"Name": "fmriprep",}')  # a trailing comma: not JSON
    with pytest.warns(DataWarning, match=r"derivatives/fmriprep: pybids cannot index .* not searched for QSM"):
        table = load_cohort(tmp_path)
    assert len(table) == 2 and table["mask"].str.contains("derivatives/masks/").all()
    with pytest.raises(CohortError, match=r"derivatives/fmriprep: pybids cannot index this BIDS dataset"):
        load_cohort(tmp_path, mask_pipeline="fmriprep")


@pytest.mark.slow
def test_rims_tsv_is_found_in_the_mask_pipeline(tmp_path: Path) -> None:
    describe_pipeline(tmp_path, "phantom")
    write_scan(tmp_path, "01", mask_in="phantom", mask_suffix="dseg")
    (tmp_path / "derivatives" / "phantom" / "rims.tsv").write_text("participant_id\tlesion_id\trim\nsub-01\t1\t1\nsub-01\t2\t0\n")
    assert load_cohort(tmp_path)["rim"].tolist() == [1, 0]
    (tmp_path / "rims.tsv").write_text("participant_id\tlesion_id\trim\nsub-01\t1\t0\n")  # the root's comes first
    assert load_cohort(tmp_path)["rim"].tolist() == [0, pd.NA]


@pytest.mark.slow
def test_rims_without_a_session_column_for_a_subject_with_sessions(sessions: Path) -> None:
    (sessions / "rims.tsv").write_text("participant_id\tlesion_id\trim\nsub-01\t1\t1\n")
    with pytest.raises(CohortError, match=r"rims.tsv: sub-01 without a session is not in the cohort \(it has ses-1, ses-2\); add a 'session' column"):
        load_cohort(sessions)
    # one row per session's lesion 1, but no column to say which session
    (sessions / "rims.tsv").write_text("participant_id\tlesion_id\trim\nsub-01\t1\t1\nsub-01\t1\t0\n")
    with pytest.raises(CohortError, match=r"lesion sub-01 1 is listed more than once; it has no 'session' column: add one"):
        load_cohort(sessions)
    (sessions / "rims.tsv").write_text("participant_id\tsession\tlesion_id\trim\nsub-01\t1\t1\t1\nsub-01\tses-1\t1\t0\n")
    with pytest.raises(CohortError, match=r"rims.tsv: lesion sub-01_ses-1 1 is listed more than once"):
        load_cohort(sessions)
    (sessions / "rims.tsv").write_text("participant_id\tsession\tlesion_id\trim\nsub-01\t1\t7\t1\n")
    with pytest.raises(CohortError, match=r"lesion 7 of sub-01_ses-1 does not exist in its mask"):
        load_cohort(sessions)


def test_session_folders_must_be_bids_labels(sessions: Path) -> None:
    (sessions / "sub-01" / "ses-1_b").mkdir()
    with pytest.raises(CohortError, match=r"folder ses-1_b: session 'ses-1_b' is not a valid label"):
        load_cohort(sessions)


@pytest.mark.slow
def test_two_qsm_of_one_scan_are_an_error(sessions: Path) -> None:
    save_nifti(sessions / "sub-02" / "anat" / "sub-02_acq-fast_Chimap.nii.gz", make_qsm(), make_affine())
    with pytest.raises(CohortError, match=r"sub-02: 2 QSM \(\*_Chimap\) files \(sub-02/anat/sub-02_Chimap.nii.gz, "
                                          r"sub-02/anat/sub-02_acq-fast_Chimap.nii.gz\); choose one with "
                                          r"bids_filters=\('qsm:acquisition=fast',\) \(--bids-filter qsm:acquisition=fast"):
        load_cohort(sessions)
    assert len(load_cohort(sessions, bids_filters=["qsm:acquisition=fast"], participant_label="02")) == 2
    # the filter applies to every scan: one whose QSM has no acq-fast is skipped, and the reason says why
    with pytest.warns(DataWarning) as caught, pytest.raises(CohortError, match="none of its 2 selected scan"):
        load_cohort(sessions, bids_filters=["qsm:acquisition=fast"], participant_label="01")
    assert [str(w.message) for w in caught] == [f"sub-01_ses-{s}: skipped, no QSM (*_Chimap) matching qsm:acquisition=fast"
                                                for s in ("1", "2")]


def test_filter_entities_are_pybids_names_or_the_keys_of_file_names(sessions: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    options = CohortOptions(bids_filters=["qsm:acq=gre", ("flair", "rec", "x"), "mask:desc=lstai"]).validated()
    assert options.bids_filters == (("qsm", "acquisition", "gre"), ("flair", "reconstruction", "x"),
                                    ("mask", "desc", "lstai"))
    assert options.filters("qsm") == {"acquisition": "gre"}
    # an unknown entity is an error before anything is read, not every scan "missing" its file
    with pytest.raises(ParameterError, match=r"bids_filters='qsm:aq=gre' \(--bids-filter\) is not valid; 'aq' is not a "
                                             r"BIDS entity; .*: .*acquisition \(acq\), .*reconstruction \(rec\), .*desc"):
        load_cohort(sessions, bids_filters=["qsm:aq=gre"])
    with pytest.raises(ParameterError, match=r"'acquistion' is not a BIDS entity"):
        CohortOptions(bids_filters=[("qsm", "acquistion", "gre")]).validated()
    with pytest.raises(ParameterError, match=r"choose subjects and sessions with participant_label/session_label"):
        CohortOptions(bids_filters=["qsm:ses=1"]).validated()
    out = sessions.parent / "out"
    assert main(["extract", str(sessions), "-o", str(out), "--bids-filter", "qsm:aq=gre", "-q"]) == 2
    assert "'aq' is not a BIDS entity" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
def test_a_filter_by_the_key_of_file_names_reads_the_files(sessions: Path) -> None:
    save_nifti(sessions / "sub-02" / "anat" / "sub-02_acq-fast_Chimap.nii.gz", make_qsm(), make_affine())
    table = load_cohort(sessions, bids_filters=["qsm:acq=fast"], participant_label="02")
    assert len(table) == 2 and table["qsm"].str.endswith("sub-02_acq-fast_Chimap.nii.gz").all()


@pytest.mark.slow
def test_a_file_named_without_its_session_is_named_in_the_reason(sessions: Path) -> None:
    anat = sessions / "sub-01" / "ses-1" / "anat"
    (anat / "sub-01_ses-1_FLAIR.nii.gz").rename(anat / "sub-01_FLAIR.nii.gz")
    masks = sessions / "derivatives" / "lesionseg" / "sub-01" / "ses-2" / "anat"
    (masks / "sub-01_ses-2_desc-lesions_dseg.nii").rename(masks / "sub-01_ses-1_desc-lesions_dseg.nii")
    flair = ("no FLAIR (*_FLAIR): sub-01/ses-1/anat/sub-01_FLAIR.nii.gz is not read, its name must start with "
             "sub-01_ses-1_ as BIDS requires")
    mask = ("no lesion mask: derivatives/lesionseg/sub-01/ses-2/anat/sub-01_ses-1_desc-lesions_dseg.nii is not read, "
            "its name must start with sub-01_ses-2_ as BIDS requires")
    with pytest.warns(DataWarning) as caught:
        table = load_cohort(sessions)  # BIDS names carry the session: such files are still not read
    assert [str(w.message) for w in caught] == [f"sub-01_ses-1: skipped, {flair}", f"sub-01_ses-2: skipped, {mask}"]
    assert cohort_scans(table)["reason"].tolist() == [flair, mask, ""]
    with pytest.raises(CohortError, match=r"sub-01_ses-1: no FLAIR \(\*_FLAIR\) found \(.*/sub-01/ses-1/anat.*\): "
                                          r"sub-01/ses-1/anat/sub-01_FLAIR.nii.gz is not read, its name must start with "
                                          r"sub-01_ses-1_ as BIDS requires; without --strict"):
        load_cohort(sessions, strict=True)


@pytest.mark.slow
def test_a_manifest_with_two_sessions_of_one_subject(sessions: Path, tmp_path: Path) -> None:
    rows = ["participant_id\tsession\tqsm\tflair\tmask"]
    for session, ext in (("1", ".nii.gz"), ("ses-2", ".nii")):
        label = session.removeprefix("ses-")
        anat = sessions / "sub-01" / f"ses-{label}" / "anat"
        mask = sessions / "derivatives" / "lesionseg" / "sub-01" / f"ses-{label}" / "anat" / f"sub-01_ses-{label}_desc-lesions_dseg{ext}"
        rows.append(f"sub-01\t{session}\t{anat}/sub-01_ses-{label}_Chimap{ext}\t{anat}/sub-01_ses-{label}_FLAIR{ext}\t{mask}")
    anat = sessions / "sub-02" / "anat"
    rows.append(f"02\t\t{anat}/sub-02_Chimap.nii.gz\t{anat}/sub-02_FLAIR.nii.gz\t{anat}/sub-02_desc-lesions_mask.nii.gz")
    manifest = tmp_path / "manifest.tsv"
    manifest.write_text("\n".join(rows) + "\n")
    from_manifest = load_cohort(manifest, rims=sessions / "rims.tsv")
    pd.testing.assert_frame_equal(from_manifest, load_cohort(sessions))  # sidecars beside the files give the units
    manifest.write_text("\n".join([*rows, rows[1]]) + "\n")
    with pytest.raises(CohortError, match=r"participant sub-01 session ses-1 is listed twice"):
        load_cohort(manifest)
    manifest.write_text("\n".join(rows[:1] + [rows[-1], rows[-1]]) + "\n")
    with pytest.raises(CohortError, match=r"participant sub-02 is listed twice"):
        load_cohort(manifest)
    # selection, and a scan whose file is missing, in a manifest as in a BIDS directory
    manifest.write_text("\n".join(rows) + "\n")
    selected = load_cohort(manifest, rims=sessions / "rims.tsv", participant_label="sub-01", session_label=["ses-2"])
    assert set(zip(selected["participant_id"], selected["session"])) == {("01", "2")}
    (sessions / "sub-02" / "anat" / "sub-02_FLAIR.nii.gz").unlink()
    with pytest.warns(DataWarning, match=r"^sub-02: skipped, no FLAIR \(\*_FLAIR\)$"):
        table = load_cohort(manifest, rims=sessions / "rims.tsv")  # its rims.tsv row is ignored
    assert cohort_scans(table)["status"].tolist() == ["read", "read", "skipped"]
    with pytest.raises(CohortError, match=r"sub-02: no FLAIR \(\*_FLAIR\) found \(.*sub-02_FLAIR.nii.gz: file not found\)"):
        load_cohort(manifest, strict=True)
    with pytest.raises(CohortError, match=r"session_label 3 \(--session-label\) not found; it lists 1, 2"):
        load_cohort(manifest, session_label="3")


def test_sidecar_units_follow_bids_inheritance(tmp_path: Path) -> None:
    (tmp_path / "Chimap.json").write_text('{"Units": "ppm"}')  # the dataset's default
    write_scan(tmp_path, "01", qsm=make_qsm() / 1000, units=None)
    write_scan(tmp_path, "02", units="ppb")  # its own sidecar wins
    table = load_cohort(tmp_path, check_data=True)
    assert table.groupby("participant_id")["qsm_unit"].first().to_dict() == {"01": "ppm", "02": "ppb"}


def test_a_ppm_map_with_its_sidecar_gives_the_features_of_the_ppb_map(tmp_path: Path) -> None:
    qsm = make_qsm(3)
    write_scan(tmp_path / "ppb", "01", qsm=qsm, units="ppb")
    write_scan(tmp_path / "ppm", "01", qsm=qsm / 1000, units="ppm")
    ppb, ppm = load_cohort(tmp_path / "ppb"), load_cohort(tmp_path / "ppm")
    assert (ppm["qsm_unit"] == "ppm").all() and (ppb["qsm_unit"] == "ppb").all()
    radiomics = RadiomicsExtractor(params={"featureClass": {"firstorder": None}, "setting": {"binWidth": 25}})
    np.testing.assert_allclose(radiomics.fit(ppm).transform(ppm), radiomics.transform(ppb), rtol=1e-4, atol=1e-3)
    patches = PatchExtractor(shape=8, normalize="none")
    np.testing.assert_allclose(patches.fit(ppm).transform(ppm), patches.transform(ppb), rtol=1e-4, atol=1e-3)


def test_folders_above_the_dataset_do_not_change_its_entities(tmp_path: Path) -> None:
    """pybids searches entity patterns in absolute paths: a dataset under /…/func/ or /…/sub-x/
    must still read (rimclf takes subject, session and datatype from the path below the root)."""
    root = tmp_path / "sub-study" / "func" / "ses-old" / "bids"
    write_scan(root, "01", "2", mask_in="seg", mask_suffix="dseg")
    (root / "Chimap.json").write_text('{"Units": "ppm"}')
    write_scan(root, "02", units=None, qsm=make_qsm() / 1000)
    table = load_cohort(root, check_data=True)
    assert table[["participant_id", "session"]].drop_duplicates().values.tolist() == [["01", "2"], ["02", ""]]
    assert table.groupby("participant_id")["qsm_unit"].first().to_dict() == {"01": "ppb", "02": "ppm"}


def test_only_the_qsm_sidecars_are_read(tmp_path: Path) -> None:
    """pybids indexes file names only: a broken sidecar of a file rimclf does not read (a BOLD run's,
    the FLAIR's) is never parsed; a broken one of the QSM (its own or inherited) is an error naming it."""
    write_scan(tmp_path, "01", "1")
    func = tmp_path / "sub-01" / "ses-1" / "func"
    save_nifti(func / "sub-01_ses-1_task-rest_bold.nii.gz", make_qsm(), make_affine())
    (func / "sub-01_ses-1_task-rest_bold.json").write_text('{"RepetitionTime": 2,}')
    anat = tmp_path / "sub-01" / "ses-1" / "anat"
    (anat / "sub-01_ses-1_FLAIR.json").write_text('{"EchoTime": 0.1,}')
    (tmp_path / "FLAIR.json").write_text("[")
    assert (load_cohort(tmp_path)["qsm_unit"] == "ppb").all()
    for broken in (anat / "sub-01_ses-1_Chimap.json", tmp_path / "Chimap.json"):
        broken.write_text('{"Units": "ppb",}')
        with pytest.raises(CohortError, match=rf"^{broken}: not a readable JSON sidecar \(Expecting property name"):
            load_cohort(tmp_path)
        assert len(load_cohort(tmp_path, qsm_unit="ppb")) == 2  # an explicit unit reads no sidecar
        broken.write_text('{"Units": "ppb"}')


def test_sidecar_inheritance_in_a_qsm_pipeline(tmp_path: Path) -> None:
    """BIDS inheritance within the dataset that holds the QSM: the deeper file and the one with more
    entities override, a file with an entity the QSM lacks (or another value) does not apply, and the
    raw dataset's sidecars do not apply to a derivative's QSM."""
    describe_pipeline(tmp_path, "qsm")
    write_scan(tmp_path, "01", units=None, mask_in="seg")
    pipeline = tmp_path / "derivatives" / "qsm"
    anat = pipeline / "sub-01" / "anat"
    save_nifti(anat / "sub-01_acq-gre_Chimap.nii.gz", make_qsm(), make_affine())
    (tmp_path / "Chimap.json").write_text('{"Units": "ppb"}')  # the raw dataset's: not the pipeline's
    (pipeline / "Chimap.json").write_text('{"Units": "ppm", "EchoTime": 1}')
    (pipeline / "acq-fast_Chimap.json").write_text('{"Units": "broken",}')  # acq-fast: never read
    (pipeline / "sub-01_echo-1_Chimap.json").write_text('{"Units": "broken",}')  # no echo- in the QSM's name
    units = {"qsm_pipeline": "qsm", "participant_label": "01"}
    assert (load_cohort(tmp_path, **units)["qsm_unit"] == "ppm").all()
    (pipeline / "sub-01").joinpath("sub-01_Chimap.json").write_text('{"Units": "ppb"}')  # deeper: overrides
    assert (load_cohort(tmp_path, **units)["qsm_unit"] == "ppb").all()
    (anat / "acq-gre_Chimap.json").write_text('{"Units": "ppm"}')
    (anat / "sub-01_acq-gre_Chimap.json").write_text('{"Units": "ppb"}')  # more entities in one folder: overrides
    assert (load_cohort(tmp_path, **units)["qsm_unit"] == "ppb").all()
    assert (load_cohort(tmp_path, qsm_pipeline="raw")["qsm_unit"] == "ppb").all()  # the raw dataset's Chimap.json


@pytest.mark.parametrize("kind, stem", [("mask", "sub-02_desc-lesions_mask"), ("qsm", "sub-02_Chimap")])
def test_a_file_in_nii_and_nii_gz_names_the_extension_filter(sessions: Path, kind: str, stem: str) -> None:
    anat = sessions / "sub-02" / "anat"
    save_nifti(anat / f"{stem}.nii", make_labels() if kind == "mask" else make_qsm(), make_affine())
    with pytest.raises(CohortError, match=rf"sub-02: 2 .* files \(sub-02/anat/{stem}.nii, sub-02/anat/{stem}.nii.gz\); "
                                          rf"choose one with bids_filters=\('{kind}:extension=.nii.gz',\) "
                                          rf"\(--bids-filter {kind}:extension=.nii.gz on the command line\)$"):
        load_cohort(sessions, participant_label="02")
    chosen = load_cohort(sessions, bids_filters=[f"{kind}:extension=.nii.gz"], participant_label="02")
    assert len(chosen) == 2 and chosen[kind].str.endswith(f"{stem}.nii.gz").all()
    # like any filter, it applies to every scan: sub-01 ses-2, in .nii files only, is skipped
    with pytest.warns(DataWarning, match=rf"^sub-01_ses-2: skipped, no .* matching {kind}:extension=.nii.gz$"):
        assert set(load_cohort(sessions, bids_filters=[f"{kind}:extension=.nii.gz"])["session"]) == {"1", ""}
