"""save_features and ``rimclf extract``: files, row order, atomic no-clobber output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rimclf.cli import build_parser, extract
from rimclf.features import LesionFeaturizer, PatchExtractor, RadiomicsExtractor, RimProfileExtractor, save_features

FEW = {"featureClass": {"firstorder": ["Mean", "Maximum"]}, "setting": {"binWidth": 25}}


def run_cli(argv: list[str]) -> int:
    return extract.run(build_parser().parse_args(argv))


@pytest.mark.slow
def test_save_features_writes_tables_patches_and_settings(cohort: Path, table: pd.DataFrame, tmp_path: Path) -> None:
    featurizer = LesionFeaturizer([
        ("rim", RimProfileExtractor()), ("radiomics", RadiomicsExtractor(params=FEW, region="lesion")),
        ("patches", PatchExtractor(size_mm=8.0, shape=4, channels=("qsm", "flair", "mask"))),
    ], progress=False)
    out = save_features(cohort, tmp_path / "features", featurizer=featurizer)
    radiomics = pd.read_csv(out / "radiomics.tsv", sep="\t", dtype={"participant_id": str})
    assert list(radiomics.columns) == [
        "participant_id",
        "session",
        "lesion_id",
        "original_firstorder_Mean",
        "original_firstorder_Maximum",
    ]
    lesions = pd.read_csv(out / "lesions.tsv", sep="\t", dtype={"participant_id": str})
    assert radiomics[["participant_id", "lesion_id"]].equals(lesions[["participant_id", "lesion_id"]])
    bids = table.assign(participant_id="sub-" + table["participant_id"])  # BIDS identifiers in every table written
    assert radiomics[["participant_id", "lesion_id"]].equals(bids[["participant_id", "lesion_id"]])
    assert radiomics["session"].isna().all() and not (out / "skipped_scans.tsv").exists()  # n/a
    expected = featurizer.transform(table)
    np.testing.assert_allclose(radiomics.iloc[:, 3:].to_numpy(), expected["radiomics"], rtol=1e-7)
    rim = pd.read_csv(out / "rim.tsv", sep="\t", dtype={"participant_id": str, "session": str})
    assert list(rim.columns[3:]) == list(RimProfileExtractor().get_feature_names_out())
    assert rim[["participant_id", "lesion_id"]].equals(lesions[["participant_id", "lesion_id"]])
    np.testing.assert_allclose(rim.iloc[:, 3:].to_numpy(dtype=float), expected["rim"], rtol=1e-6, equal_nan=True)
    patches = np.load(out / "patches.npy")
    assert patches.dtype == np.float32 and patches.shape == (20, 3, 4, 4, 4)
    np.testing.assert_array_equal(patches, expected["patches"])
    settings = json.loads((out / "features.json").read_text())
    assert (
        settings["n_lesions"] == 20
        and settings["radiomics"]["params"] == FEW
        and settings["patches"]["shape"] == [4, 4, 4]
    )


@pytest.mark.slow
def test_cli_extract_refuses_to_overwrite_without_force(
    cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    params = tmp_path / "few.json"
    params.write_text(json.dumps(FEW))
    out = tmp_path / "out"
    argv = [str(cohort), "-o", str(out), "--feature-set", "radiomics", "--radiomics-params", str(params), "--region", "both", "--no-patches",
            "--quiet"]
    assert run_cli(["extract", *argv]) == 0
    assert f"to {out}" in capsys.readouterr().out
    radiomics = pd.read_csv(out / "radiomics.tsv", sep="\t")
    assert list(radiomics.columns[3:]) == [
        "lesion_original_firstorder_Mean",
        "lesion_original_firstorder_Maximum",
        "shell_original_firstorder_Mean",
        "shell_original_firstorder_Maximum",
    ]
    assert not (out / "patches.npy").exists()
    (out / "marker").write_text("kept")
    with pytest.raises(FileExistsError, match="already exists"):
        run_cli(["extract", *argv])
    assert (out / "marker").exists()
    assert run_cli(["extract", *argv, "--force", "--jobs", "1"]) == 0
    assert not (out / "marker").exists()
    pd.testing.assert_frame_equal(pd.read_csv(out / "radiomics.tsv", sep="\t"), radiomics)
