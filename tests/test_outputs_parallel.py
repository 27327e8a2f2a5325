"""``rimclf predict -j N``: the per-scan files written by parallel workers are those of the sequential path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rimclf.workflows import predict_cohort
from tests.model_builders import tiny_cohort, tiny_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def files(folder: Path) -> dict[str, Path]:
    return {path.relative_to(folder).as_posix(): path for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.mark.slow
def test_parallel_outputs_are_those_of_the_sequential_path(tmp_path: Path) -> None:
    from PIL import Image

    model = tiny_model()
    for n_jobs in (1, 2):
        predict_cohort(model, tiny_cohort(), tmp_path / f"j{n_jobs}", n_jobs=n_jobs)
    sequential, parallel = files(tmp_path / "j1"), files(tmp_path / "j2")
    assert list(sequential) == list(parallel)
    kinds = {name.split(".", 1)[1] for name in sequential}
    assert {"tsv", "json", "nii.gz", "png"} <= kinds
    assert sum(name.endswith("_montage.png") for name in sequential) == 6  # one per scan
    for name, path in sequential.items():
        if name.endswith(".png"):  # montages: the same picture
            assert np.array_equal(np.asarray(Image.open(path)), np.asarray(Image.open(parallel[name]))), name
        else:  # maps, label images, tables, sidecars: byte for byte
            assert path.read_bytes() == parallel[name].read_bytes(), name


@pytest.mark.slow
def test_a_failing_scan_in_a_worker_leaves_nothing_behind(tmp_path: Path) -> None:
    from rimclf import load_cohort
    from rimclf.errors import CohortError
    from rimclf.outputs import write_prediction_outputs

    table = load_cohort(tiny_cohort())
    last = table["participant_id"] == sorted(set(table["participant_id"]))[-1]
    table.loc[last, "flair"] = str(tmp_path / "missing_flair.nii.gz")  # read for its montage only
    with pytest.raises(CohortError, match="missing_flair"):
        write_prediction_outputs(tmp_path / "out", table, np.full(len(table), 0.5), 0.5, n_jobs=2)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_montage_lesions_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from rimclf.cli import main
    from tests.model_builders import tiny_model_dir

    common = ["predict", str(tiny_model_dir()), str(tiny_cohort()), "-q", "-j", "2"]
    assert main([*common, "-o", str(tmp_path / "bad"), "--montage-lesions", "-1"]) == 2
    assert "montage_lesions=-1 is not valid" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    assert main([*common, "-o", str(tmp_path / "none"), "--montage-lesions", "0"]) == 0
    assert not list((tmp_path / "none").rglob("*.png")) and len(list((tmp_path / "none").rglob("*_probseg.nii.gz"))) == 6
    assert main([*common, "-o", str(tmp_path / "one"), "--montage-lesions", "1"]) == 0
    assert len(list((tmp_path / "one").rglob("*_montage.png"))) == 6
