"""Inputs are sacred, every option is checked before the first slow step, API errors name the argument."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from rimclf._atomic import check_output_location, cohort_inputs
from rimclf.cli import main
from rimclf.errors import OutputError, ParameterError
from tests.model_builders import TRAIN_ARGS, tiny_cohort, tiny_model_dir

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """``data/`` holding a copy of the tiny cohort and a file of the user's."""
    folder = tmp_path / "data"
    shutil.copytree(tiny_cohort(), folder / "cohort")
    (folder / "notes.txt").write_text("mine")
    return folder


@pytest.fixture
def no_featurising(monkeypatch):
    """Fail the test if a command gets as far as extracting features."""
    from rimclf.features.featurizer import LesionFeaturizer

    tiny_model_dir()  # the shared tiny model is trained first

    def transform(self, *args, **kwargs):
        raise AssertionError("features were extracted before the bad option was refused")

    monkeypatch.setattr(LesionFeaturizer, "transform", transform)


# ------------------------------------------------------------------------------- the check
def test_an_output_may_not_be_contain_or_lie_inside_an_input(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    cohort = tmp_path / "data" / "cohort"
    cohort.mkdir(parents=True)
    inputs = {"the cohort": [cohort]}
    (cohort / "derivatives" / "qsmxt").mkdir(parents=True)  # an input pipeline
    for out, relation in ((cohort, "is"), (tmp_path / "data", "contains"), (cohort / "sub-01", "lies inside"),
                          (cohort / "derivatives", "lies inside"), (cohort / "derivatives" / "qsmxt", "lies inside"),
                          (cohort / "derivatives" / "qsmxt" / "rimclf", "lies inside")):
        with pytest.raises(OutputError, match=f"{relation} the cohort"):
            check_output_location(out, inputs)
    check_output_location(tmp_path / "data" / "predictions", inputs)  # beside the input: fine
    # where BIDS puts a pipeline's outputs (issue #22): a new folder under derivatives/, or rimclf's own
    check_output_location(cohort / "derivatives" / "rimclf", inputs)
    check_output_location(cohort / "derivatives" / "rimclf-v2", inputs)
    # a model rimclf wrote there may be replaced (--force) too; another folder of that name may not
    model = cohort / "derivatives" / "model"
    model.mkdir()
    (model / "settings.json").write_text('{"format": "something-else"}')
    with pytest.raises(OutputError, match="lies inside the cohort"):
        check_output_location(model, inputs)
    (model / "settings.json").write_text('{"format": "rimclf-model", "format_version": 8}')
    check_output_location(model, inputs)
    (tmp_path / "link").symlink_to(cohort)
    with pytest.raises(OutputError, match="is the cohort"):  # a symbolic link to an input is that input
        check_output_location(tmp_path / "link", inputs)


def test_the_current_folder_and_empty_paths_are_refused(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    with pytest.raises(OutputError, match="is the current folder"):
        check_output_location(".")
    with pytest.raises(OutputError, match="above the current folder"):
        check_output_location("..")
    for empty in ("", "  ", None):
        with pytest.raises(ParameterError, match="is not valid; it must be the path"):
            check_output_location(empty)


def test_a_manifest_protects_the_files_it_lists(tmp_path: Path) -> None:
    scans = tmp_path / "scans"
    scans.mkdir()
    manifest = tmp_path / "study" / "manifest.tsv"
    manifest.parent.mkdir()
    manifest.write_text("participant_id\tqsm\tflair\tmask\n01\t../scans/q.nii.gz\t../scans/f.nii.gz\t../scans/m.nii.gz\n")
    found = cohort_inputs(manifest)
    assert found[0] == manifest and {p.name for p in found[1:]} == {"q.nii.gz", "f.nii.gz", "m.nii.gz"}
    with pytest.raises(OutputError, match="contains the cohort .*q.nii.gz"):
        check_output_location(scans, {"the cohort": found})
    with pytest.raises(OutputError, match="contains the cohort .*manifest.tsv"):
        check_output_location(manifest.parent, {"the cohort": found})
    check_output_location(tmp_path / "study" / "predictions", {"the cohort": found})


# ------------------------------------------------------------------------- commands (defect 1)
@pytest.mark.parametrize("target", ["data", "cohort", "inside", "pipeline"])
def test_predict_never_replaces_its_inputs_even_with_force(data: Path, target: str, capsys, no_featurising) -> None:
    before = _tree(data)
    out = {"data": data, "cohort": data / "cohort", "inside": data / "cohort" / "sub-001",
           "pipeline": data / "cohort" / "derivatives" / "phantom"}[target]
    status = main(["predict", str(tiny_model_dir()), str(data / "cohort"), "-o", str(out), "--force", "-q"])
    assert status != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the cohort" in err[0] and "outputs may never be, contain or lie inside an input" in err[0]
    assert _tree(data) == before


def test_predict_never_replaces_the_model(tmp_path: Path, capsys, no_featurising) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir(), model)
    before = _tree(model)
    assert main(["predict", str(model), str(tiny_cohort()), "-o", str(model), "--force", "-q"]) != 0
    assert "is the model" in capsys.readouterr().err and _tree(model) == before


def test_train_never_replaces_the_cohort(data: Path, capsys, no_featurising) -> None:
    before = _tree(data)
    assert main(["train", str(data / "cohort"), "-o", str(data / "cohort"), "--force", *TRAIN_ARGS]) != 0
    assert "is the cohort" in capsys.readouterr().err and _tree(data) == before


def test_tune_never_replaces_its_journal(tmp_path: Path, monkeypatch, capsys, no_featurising) -> None:
    monkeypatch.chdir(tmp_path)
    journal = tmp_path / "studies" / "s.journal"
    journal.parent.mkdir()
    journal.write_text("")
    assert main(["tune", str(tiny_cohort()), "-o", "studies", "--storage", str(journal), "--force", "-q"]) != 0
    assert "contains the study journal" in capsys.readouterr().err and journal.exists()


@pytest.mark.parametrize("url", ["sqlite:///studies/s.db", "sqlite:///{tmp}/studies/s.db"])
def test_tune_never_replaces_its_sqlite_database(tmp_path: Path, monkeypatch, capsys, no_featurising, url) -> None:
    import sqlite3

    from rimclf.tuning import tune_cohort

    monkeypatch.chdir(tmp_path)
    database = tmp_path / "studies" / "s.db"
    database.parent.mkdir()
    sqlite3.connect(database).close()
    url = url.format(tmp=tmp_path)
    assert main(["tune", str(tiny_cohort()), "-o", "studies", "--storage", url, "--force", "-q"]) != 0
    assert "contains the study database" in capsys.readouterr().err and database.exists()
    with pytest.raises(OutputError, match="is the study database"):
        tune_cohort(tiny_cohort(), database, storage=url, force=True)
    assert database.exists()


def test_only_sqlite_files_are_study_inputs() -> None:
    from rimclf.tuning._storage import storage_inputs

    assert storage_inputs("sqlite:///a/s.db")["the study database"] == Path("a/s.db")
    assert storage_inputs("sqlite+pysqlite:////abs/s.db")["the study database"] == Path("/abs/s.db")
    for url in ("sqlite://", "sqlite:///:memory:", "postgresql+psycopg2://u:pw@host/db", "not a url://"):
        assert storage_inputs(url) == {"the study journal": None, "the study database": None}
    assert storage_inputs("s.journal") == {"the study journal": Path("s.journal"), "the study database": None}


def test_the_python_api_refuses_too(data: Path) -> None:
    from rimclf.workflows import predict_cohort, train_model

    with pytest.raises(OutputError, match="contains the cohort"):
        train_model(data / "cohort", out=data, force=True)
    with pytest.raises(OutputError, match="lies inside the model"):
        predict_cohort(str(tiny_model_dir()), data / "cohort", tiny_model_dir() / "predictions")
    assert (data / "notes.txt").read_text() == "mine"


# ------------------------------------------------------------------- options (defects 8, 9, 10)
@pytest.mark.parametrize(("options", "message"), [
    (["--threshold", "2"], "--threshold: threshold=2.0 is not valid; it must be None or a number in [0, 1]"),
    (["--threshold", "-0.5"], "--threshold: threshold=-0.5 is not valid"),
    (["--epochs", "-1"], "--epochs: max_epochs=-1 is not valid; it must be an integer in [1, 100000]"),
    (["--batch-size", "0"], "--batch-size: batch_size=0 is not valid"),
    (["--lr", "nan"], "--lr: lr=nan is not valid; it must be a number in (0, 10]"),
    (["--lr", "-1"], "--lr: lr=-1.0 is not valid"),
    (["--lr", "inf"], "--lr: lr=inf is not valid"),
    (["--device", "bogus"], "--device: device='bogus' is not a torch device"),
    (["--threshold-cv", "50"], "--threshold-cv: threshold_cv=50 is not valid; it must be 0 or an integer in [2, 6]"),
    (["--width", "0"], "--width: width=0 is not valid; it must be an integer in [1, 256]"),
    (["--branches", "both", "--patch-shape", "100000"], "--patch-shape: patch_shape=100000 is not valid; it must be an integer in [1, 96]"),
    (["--patch-shape", "0"], "--patch-shape: patch_shape=0 is not valid"),
    (["--shell-mm", "-1"], "--shell-mm: shell_mm=-1.0 is not valid; it must be a number in (0, 20]"),
    (["--patch-size-mm", "1e9"], "--patch-size-mm: patch_size_mm=1000000000.0 is not valid; it must be a number in (0, 200]"),
    (["-j", "0"], "-j/--jobs: n_jobs=0 is not valid"),
])
def test_train_refuses_each_bad_option_before_featurising(tmp_path: Path, options, message, capsys, no_featurising) -> None:
    out = tmp_path / "model"
    assert main(["train", str(tiny_cohort()), "-o", str(out), *TRAIN_ARGS, *options]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the message for a machine without CUDA; this one has a CUDA device")
def test_a_missing_cuda_device_is_named(tmp_path: Path, capsys, no_featurising) -> None:
    assert main(["train", str(tiny_cohort()), "-o", str(tmp_path / "m"), *TRAIN_ARGS, "--device", "cuda"]) == 2
    assert "--device: device='cuda' asks for CUDA but no CUDA device is available" in capsys.readouterr().err
    from rimclf import load_model

    with pytest.raises(ParameterError, match="no CUDA device is available"):
        load_model(tiny_model_dir(), device="cuda")


@pytest.mark.parametrize(("options", "message"), [
    (["--trials", "0"], "--trials: n_trials=0 is not valid"),
    (["--workers", "0"], "--workers: n_workers=0 is not valid"),
    (["--folds", "1"], "--folds: n_folds=1 is not valid; it must be an integer >= 2"),
])
def test_tune_refuses_bad_counts_before_featurising(tmp_path: Path, options, message, capsys, no_featurising) -> None:
    assert main(["tune", str(tiny_cohort()), "-o", str(tmp_path / "t"), "--storage", str(tmp_path / "j"), *options]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("out", [".", ""])
def test_dot_and_empty_outputs_are_refused_before_work(tmp_path: Path, monkeypatch, out: str, capsys, no_featurising) -> None:
    monkeypatch.chdir(tmp_path)
    model = tiny_model_dir()
    status = main(["predict", str(model), str(tiny_cohort()), "-o", out, "--force", "-q"])
    assert status == (2 if out == "" else 1)  # a usage error (ParameterError), an unusable output (OutputError)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ("is the current folder" in err[0] or "-o='' is not valid" in err[0])


def test_the_api_checks_the_same_settings_before_reading_the_cohort() -> None:
    from rimclf.classifier import make_classifier
    from rimclf.workflows import train_model

    with pytest.raises(ParameterError, match="threshold=2 is not valid"):
        train_model("no/such/cohort", threshold=2)
    with pytest.raises(ParameterError, match="max_epochs=-1"):
        train_model("no/such/cohort", classifier=make_classifier(max_epochs=-1))
    with pytest.raises(ParameterError, match="module__width=100000000 is not valid"):
        train_model("no/such/cohort", classifier=make_classifier(module__width=10**8))


# ------------------------------------------------------------------------ Python API (defect 14)
def test_api_errors_name_the_argument(tmp_path: Path) -> None:
    import rimclf
    from rimclf.workflows import predict_cohort, train_model

    cases = [
        (lambda: rimclf.load_cohort(123), "load_cohort: path=123 is not valid; it must be the path"),
        (lambda: rimclf.load_cohort(np.array([1, 2])), r"path=<numpy.ndarray of shape \(2,\)> is not valid"),
        (lambda: rimclf.load_model(None), "load_model: path=None is not valid; it must be the path .* of a model folder"),
        (lambda: predict_cohort(rimclf.load_model(tiny_model_dir()), tiny_cohort(), None), "out=None is not valid"),
        (lambda: predict_cohort(42, tiny_cohort(), tmp_path / "p"), "model=42 .* must be a fitted RimModel"),
        (lambda: train_model(np.zeros((3, 3))), r"cohort=<numpy.ndarray of shape \(3, 3\)> is not valid"),
    ]
    for call, message in cases:
        with pytest.raises(ParameterError, match=message):
            call()


@pytest.mark.slow
def test_predict_cohort_takes_a_model_folder(tmp_path: Path) -> None:
    from rimclf.workflows import predict_cohort

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        paths = predict_cohort(str(tiny_model_dir()), tiny_cohort(), tmp_path / "p", montage=False)
    assert paths["lesions"].is_file()


# ------------------------------------------------------------------------------- the worries
def test_two_demos_into_one_folder_do_not_mix(tmp_path: Path) -> None:
    from rimclf._atomic._siblings import _sibling_path
    from rimclf.demo import run_demo

    out = tmp_path / "demo"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:  # a demo of another live process has claimed ``out``
        claim = _sibling_path(out, "tmp")
        claim = claim.with_name(claim.name.replace(f".{os.getpid()}.", f".{other.pid}.", 1))
        claim.mkdir()
        started = time.perf_counter()
        with pytest.raises(OutputError, match="already being written by another rimclf process"):
            run_demo(out, train_subjects=2, test_subjects=2, report=None)
        assert time.perf_counter() - started < 5 and not out.exists()
    finally:
        other.kill()
        other.wait()


def test_the_host_key_tells_pid_namespaces_apart() -> None:
    from rimclf._atomic import _siblings

    identity = _siblings._machine_identity()
    if os.path.exists("/proc/self/ns/pid"):
        assert os.readlink("/proc/self/ns/pid") in identity  # another container: another key
