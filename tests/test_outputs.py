"""Prediction outputs: lesion table, NIfTI probability maps on the QSM grid, montages; atomic writes."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from rimclf import load_cohort
from rimclf.cohort import read_lesion_labels
from rimclf.errors import CohortError, PredictionError
from rimclf.outputs import LESION_COLUMNS, check_probabilities, write_prediction_outputs
from tests.builders import write_subject


@pytest.fixture
def table(tmp_path: Path) -> pd.DataFrame:
    root = tmp_path / "cohort"
    write_subject(root, "01")
    write_subject(root, "02")
    (root / "rims.tsv").write_text("participant_id\tlesion_id\trim\nsub-01\t1\t1\nsub-01\t2\t0\nsub-02\t1\t0\nsub-02\t2\t0\n")
    return load_cohort(root)


def test_outputs_are_consistent(table: pd.DataFrame, tmp_path: Path) -> None:
    probability = np.array([0.9, 0.2, 0.05, 0.6])
    paths = write_prediction_outputs(tmp_path / "out", table, probability, threshold=0.5)
    lesions = pd.read_csv(paths["lesions"], sep="\t", dtype={"participant_id": str})
    assert list(lesions.columns) == [*LESION_COLUMNS, "rim"]
    np.testing.assert_allclose(lesions["probability"], probability, rtol=1e-6)
    assert lesions["decision"].tolist() == [1, 0, 0, 1]
    subjects = pd.read_csv(paths["subjects"], sep="\t", dtype={"participant_id": str})
    assert subjects["n_rim_pos_predicted"].tolist() == [1, 1]
    assert subjects["n_rim_pos_true"].tolist() == [1, 0]
    for participant, rows in lesions.groupby("participant_id"):
        map_path = tmp_path / "out" / f"sub-{participant}" / f"sub-{participant}_desc-rimprob_map.nii.gz"
        image = nib.load(str(map_path))
        qsm = nib.load(table.loc[table["participant_id"] == participant, "qsm"].iloc[0])
        np.testing.assert_allclose(image.affine, qsm.affine)
        values = np.asarray(image.dataobj)
        labels, _ = read_lesion_labels(table.loc[table["participant_id"] == participant, "mask"].iloc[0], 0)
        kept = np.isin(labels, rows["lesion_id"])
        assert np.array_equal(values != 0, kept)  # nonzero voxels are exactly the lesions' voxels
        for row in rows.itertuples():
            np.testing.assert_allclose(values[labels == row.lesion_id], row.probability, rtol=1e-6)
        png = map_path.with_name(f"sub-{participant}_desc-rimprob_montage.png")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


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
    with pytest.raises(Exception, match="missing_mask"):
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
    assert stat.S_IMODE(next(out.glob("sub-*/*_map.nii.gz")).stat().st_mode) == 0o644


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
