"""Environment and storage faults: one clear OutputError naming the place, before any work where possible."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import optuna
import pytest

import rimclf._atomic as atomic
import rimclf.tuning._storage as storage_module
from rimclf.cli import main
from rimclf.errors import OutputError, ParameterError
from rimclf.tuning import check_storage, open_storage, tune
from tests.tuning_worker import make_data

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def journal(tmp_path_factory) -> bytes:
    """The bytes of a healthy journal holding a 2-trial study."""
    path = tmp_path_factory.mktemp("journal") / "ok.journal"
    study = optuna.create_study(storage=open_storage(path), study_name="s", direction="maximize")
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    return path.read_bytes()


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    from tests.features.builders import write_cohort

    return write_cohort(tmp_path_factory.mktemp("faults") / "cohort", n_subjects=4)


def _tune_tiny(storage: object) -> None:
    from rimclf.baselines import make_logistic_regression
    from rimclf.tuning import logistic_regression_space

    X, y, groups = make_data()
    tune(make_logistic_regression(sampler="class_weight", random_state=0), X, y, groups,
         space=logistic_regression_space(sampler="class_weight"), n_trials=1, storage=storage,
         study_name="s", cv=3, refit=False)


# -- storage URLs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("foo://bar", "storage='foo://bar': SQLAlchemy has no database dialect 'foo'"),
        ("postgresql+nodriver://u@h/db", "no database dialect 'postgresql.nodriver'"),
        ("sqlite:////nonexistent/x.db", "the folder /nonexistent does not exist"),
        ("postgresql+psycopg2://alice:s3cret@127.0.0.1:1/db", "'postgresql\\+psycopg2://alice:\\*\\*\\*@127.0.0.1:1/db': cannot connect"),
    ],
)
def test_bad_storage_urls_are_named_before_any_work(url: str, message: str) -> None:
    if "psycopg2" in url:
        pytest.importorskip("psycopg2")
    with pytest.raises(OutputError, match=message) as error:
        check_storage(url)
    assert "s3cret" not in str(error.value)
    with pytest.raises(OutputError, match=message):
        open_storage(url)  # what every worker calls: the same message


def test_a_storage_whose_driver_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.dialects.postgresql.psycopg2 import PGDialect_psycopg2

    def no_driver(cls):
        raise ImportError("No module named 'psycopg2'")

    monkeypatch.setattr(PGDialect_psycopg2, "import_dbapi", classmethod(no_driver))
    with pytest.raises(OutputError, match="its database driver is not installed .*psycopg2"):
        check_storage("postgresql+psycopg2://u@localhost/db")


def test_a_file_that_is_not_an_sqlite_database(tmp_path: Path) -> None:
    (tmp_path / "x.db").write_text("not a database, just text " * 100)
    with pytest.raises(OutputError, match=r"x.db is not a usable SQLite database \(file is not a database\)"):
        check_storage(f"sqlite:///{tmp_path / 'x.db'}")
    db = tmp_path / "good.db"
    sqlite3.connect(db).close()
    check_storage(f"sqlite:///{db}")


def test_study_name_cannot_lead_the_default_journal_elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OutputError, match="refused to write"):
        check_storage(None, study_name="../../escape")


# -- journal files --------------------------------------------------------------------------------


CORRUPT_JOURNALS = {
    "json": (lambda lines: lines[:2] + [b'{"op_code": 4, "worker_id": "x", "trial_id": 0, "par'] + lines[2:], 3, "is not JSON"),
    "utf8": (lambda lines: lines[:1] + [b'{"op_code": 0, "\xff\xfe": 1}'] + lines[1:], 2, "is not UTF-8 text"),
    "opcode": (lambda lines: lines + [b'{"op_code": 99, "worker_id": "x"}'], None, "holds an operation that does not replay \\(op_code 99: AssertionError"),
    "semantics": (lambda lines: lines + [b'{"op_code": 0, "worker_id": "x"}'], None, "holds an operation that does not replay \\(op_code 0: KeyError"),
    "not an operation": (lambda lines: lines[:1] + [b"[1, 2, 3]"] + lines[1:], 2, "is not an Optuna journal operation"),
}


@pytest.mark.parametrize("kind", sorted(CORRUPT_JOURNALS))
def test_a_corrupt_journal_is_named_with_its_line_and_never_appended_to(journal: bytes, tmp_path: Path, kind: str) -> None:
    corrupt, number, message = CORRUPT_JOURNALS[kind]
    lines = journal.rstrip(b"\n").split(b"\n")
    content = b"\n".join(corrupt(lines)) + b"\n"
    number = number or len(lines) + 1
    path = tmp_path / "s.journal"
    path.write_bytes(content)
    with pytest.raises(OutputError, match=rf"s.journal: line {number} of this Optuna journal {message}"):
        check_storage(path)
    with pytest.raises(OutputError, match=f"line {number}"):
        _tune_tiny(path)
    assert path.read_bytes() == content  # nothing appended by the failed run


def test_an_incomplete_last_line_is_accepted_only_while_being_written(
    journal: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage_module, "_PARTIAL_LINE_WAIT_S", 0.01)
    path = tmp_path / "s.journal"
    path.write_bytes(journal + b'{"op_code": 4, "wor')
    n_lines = journal.count(b"\n")
    with pytest.raises(OutputError, match=rf"line {n_lines + 1} of this Optuna journal is incomplete"):
        check_storage(path)

    def finish_meanwhile(seconds: float) -> None:  # another process completes its append
        path.write_bytes(journal)

    monkeypatch.setattr(storage_module.time, "sleep", finish_meanwhile)
    path.write_bytes(journal + b'{"op_code": 4, "wor')
    check_storage(path)


def test_a_healthy_journal_passes_and_resumes(journal: bytes, tmp_path: Path) -> None:
    path = tmp_path / "s.journal"
    path.write_bytes(journal)
    check_storage(path)
    assert len(optuna.load_study(study_name="s", storage=open_storage(path)).trials) == 2


# -- commands fail before their work --------------------------------------------------------------


def _no_featurisation(monkeypatch: pytest.MonkeyPatch) -> None:
    import rimclf.features.featurizer as featurizer

    def refuse(*args, **kwargs):
        raise AssertionError("featurisation started")

    monkeypatch.setattr(featurizer.LesionFeaturizer, "transform", refuse)


def test_tune_checks_storage_and_output_before_featurising(
    cohort: Path, journal: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    _no_featurisation(monkeypatch)
    bad = tmp_path / "bad.journal"
    bad.write_bytes(journal + b"garbage\n")
    base = ["tune", str(cohort), "--model", "logistic_regression", "--trials", "1", "--quiet"]
    assert main([*base, "-o", str(tmp_path / "out"), "--storage", str(bad)]) == 1
    err = capsys.readouterr().err
    n_lines = journal.count(b"\n")
    assert f"bad.journal: line {n_lines + 1} of this Optuna journal is not JSON" in err
    assert len(err.strip().splitlines()) == 1
    assert main([*base, "-o", str(tmp_path / "out"), "--storage", "foo://bar"]) == 1
    assert "no database dialect 'foo'" in capsys.readouterr().err
    assert main([*base, "-o", str(tmp_path / "out"), "--storage", "sqlite:////nonexistent/x.db"]) == 1
    assert "/nonexistent does not exist" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.journal"]


def _read_only(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Simulate a read-only folder (tests may run as root, for whom chmod does not stop writes)."""
    real = os.access

    def access(path, mode, *args, **kwargs):
        if Path(path) == folder and mode & os.W_OK:
            return False
        return real(path, mode, *args, **kwargs)

    monkeypatch.setattr(atomic.os, "access", access)


def test_extract_into_a_read_only_folder_fails_before_extracting(cohort: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    _no_featurisation(monkeypatch)
    folder = tmp_path / "ro"
    folder.mkdir()
    _read_only(monkeypatch, folder)
    assert main(["extract", str(cohort), "-o", str(folder / "out"), "--quiet"]) == 1
    assert f"rimclf extract: error: {folder / 'out'}: cannot be created: {folder} is not writable by this user" in capsys.readouterr().err
    assert list(folder.iterdir()) == []


def test_train_into_a_read_only_folder_fails_before_training(cohort: Path, tmp_path: Path, monkeypatch) -> None:
    from rimclf import RimModel
    from rimclf.workflows import train_model

    def refuse(self, *args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(RimModel, "fit", refuse)
    folder = tmp_path / "ro"
    folder.mkdir()
    _read_only(monkeypatch, folder)
    with pytest.raises(OutputError, match="is not writable by this user"):
        train_model(cohort, out=folder / "model")


@pytest.mark.slow
def test_disk_full_while_saving_a_model_is_an_output_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    import rimclf.model_files as model_io
    from tests.model_builders import tiny_model

    real_save = torch.save

    def save_to_full_disk(obj, path, *args, **kwargs):
        os.symlink("/dev/full", path)  # writes fail with ENOSPC, as on a full disk
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(model_io.torch, "save", save_to_full_disk)
    with pytest.raises(OutputError, match=r"model: cannot be written: torch.save failed .*is the disk full\?"):
        model_io.save_model(tiny_model(), tmp_path / "model")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_command_leaves_no_claim_behind(cohort: Path, tmp_path: Path) -> None:
    from rimclf.features import save_features

    with pytest.raises(ParameterError, match="featurizer='not a featurizer' is not valid"):
        save_features(cohort, tmp_path / "out", featurizer="not a featurizer")  # fails after the claim
    assert list(tmp_path.iterdir()) == []
    assert json.dumps(atomic._RESERVED, default=str) == "{}"
