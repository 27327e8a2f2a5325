"""Ctrl-C and SIGTERM: a training stops with an error, nothing is written, the CLI exits 130/143."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
from skorch.callbacks import Callback
from skorch.helper import SliceDict

from rimclf.classifier import QSMRimNetClassifier
from rimclf.cli import main
from tests.model_builders import TRAIN_ARGS, tiny_cohort

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py

REPO = Path(__file__).resolve().parents[1]


class InterruptAt(Callback):
    """Raise KeyboardInterrupt at the end of epoch ``epoch`` (what Ctrl-C does at that moment)."""

    def __init__(self, epoch: int = 2) -> None:
        self.epoch = epoch

    def on_epoch_end(self, net, **kwargs) -> None:
        if len(net.history) >= self.epoch:
            raise KeyboardInterrupt


def _data():
    rng = np.random.default_rng(0)
    y = np.tile([1, 0, 0, 0], 10)
    X = SliceDict(radiomics=(rng.normal(size=(40, 5)) + y[:, None]).astype(np.float32))
    return X, y


def test_an_interrupted_fit_raises_instead_of_returning_a_half_trained_net() -> None:
    X, y = _data()
    net = QSMRimNetClassifier(max_epochs=30, batch_size=8, random_state=0, module__branches="tabular",
                              callbacks=[("stop", InterruptAt(2))])
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, y)
    assert len(net.history) == 2  # it stopped where it was interrupted, and said so
    with pytest.raises(KeyboardInterrupt):
        net.partial_fit(X, y)


def _interrupt_training(monkeypatch, exc: type[BaseException] = KeyboardInterrupt) -> None:
    def on_epoch_end(self, net, **kwargs):
        raise exc()

    monkeypatch.setattr(QSMRimNetClassifier, "on_epoch_end", on_epoch_end)


@pytest.mark.slow
def test_ctrl_c_during_train_exits_130_and_writes_no_model(tmp_path, monkeypatch, capsys) -> None:
    _interrupt_training(monkeypatch)
    out = tmp_path / "model"
    assert main(["train", str(tiny_cohort()), "-o", str(out), *TRAIN_ARGS]) == 130
    assert not out.exists() and not [p for p in tmp_path.iterdir()]  # no temporary folder either
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["rimclf train: interrupted (Ctrl-C); stopped; no output was written"]


@pytest.mark.slow
def test_ctrl_c_during_threshold_cv_or_final_fit_both_stop(tmp_path, monkeypatch) -> None:
    calls = []

    def on_epoch_end(self, net, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # inside the second threshold-CV fold (2 epochs per fit)
            raise KeyboardInterrupt

    monkeypatch.setattr(QSMRimNetClassifier, "on_epoch_end", on_epoch_end)
    out = tmp_path / "model"
    assert main(["train", str(tiny_cohort()), "-o", str(out), *TRAIN_ARGS]) == 130
    assert not out.exists() and len(calls) == 3


@pytest.mark.slow
def test_ctrl_c_during_predict_exits_130_without_traceback(tmp_path, monkeypatch, capsys) -> None:
    from tests.model_builders import tiny_model_dir

    model_dir = tiny_model_dir()

    def predict_proba(self, X):
        raise KeyboardInterrupt

    monkeypatch.setattr(QSMRimNetClassifier, "predict_proba", predict_proba)
    out = tmp_path / "pred"
    assert main(["predict", str(model_dir), str(tiny_cohort()), "-o", str(out), "-q"]) == 130
    assert not out.exists()
    assert capsys.readouterr().err.strip() == "rimclf predict: interrupted (Ctrl-C); stopped; no output was written"


@pytest.mark.slow
def test_sigterm_during_train_exits_143_and_writes_no_model(tmp_path) -> None:
    out = tmp_path / "model"
    script = textwrap.dedent(f"""
        import os, signal, sys
        from rimclf.classifier import QSMRimNetClassifier
        from rimclf.cli import main

        def on_epoch_end(self, net, **kwargs):
            os.kill(os.getpid(), signal.SIGTERM)

        QSMRimNetClassifier.on_epoch_end = on_epoch_end
        sys.exit(main(["train", {str(tiny_cohort())!r}, "-o", {str(out)!r}, *{TRAIN_ARGS!r}]))
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 143, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "rimclf train: terminated (SIGTERM); stopped; no output was written"
    assert "Traceback" not in result.stderr
    assert not out.exists() and not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------- tuning
class SlowLogisticRegression(__import__("sklearn.linear_model").linear_model.LogisticRegression):
    """A trial long enough to be interrupted while it runs (module level: workers import it)."""

    def fit(self, X, y, **params):
        time.sleep(3)
        return super().fit(X, y, **params)


def _interrupting_objective_study(tmp_path):
    from rimclf.baselines import make_logistic_regression
    from rimclf.tuning import logistic_regression_space, tune

    rng = np.random.default_rng(0)
    y = np.tile([1, 0, 0, 0, 0], 8)
    groups = np.repeat([f"{i:02d}" for i in range(8)], 5)
    X = rng.normal(size=(40, 3)) + y[:, None]
    return tune, make_logistic_regression("class_weight", random_state=0), X, y, groups, logistic_regression_space(sampler="class_weight")


@pytest.mark.slow
def test_an_interrupted_trial_is_failed_not_complete(tmp_path, monkeypatch) -> None:
    from rimclf.tuning import _objective

    tune, estimator, X, y, groups, space = _interrupting_objective_study(tmp_path)
    calls = []
    original = _objective.cross_validate

    def cross_validate(*args, **kwargs):
        calls.append(1)
        if len(calls) == 6:  # trial 1, fold 2
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(_objective, "cross_validate", cross_validate)
    journal = tmp_path / "study.journal"
    with pytest.raises(KeyboardInterrupt):
        tune(estimator, X, y, groups, space=space, n_trials=3, cv=4, storage=str(journal))
    study = optuna.load_study(study_name="rimclf", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))))
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL]
    assert study.trials[1].system_attrs["fail_reason"] == "interrupted"


@pytest.mark.slow
def test_resume_fails_trials_left_running_by_a_killed_process(tmp_path) -> None:
    from rimclf.errors import RimclfWarning
    from rimclf.tuning._owners import OWNER_ATTR
    from rimclf.tuning._storage import open_storage

    tune, estimator, X, y, groups, space = _interrupting_objective_study(tmp_path)
    journal = str(tmp_path / "study.journal")
    study = optuna.create_study(storage=open_storage(journal), study_name="rimclf", direction="maximize")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    from rimclf._atomic._siblings import host_key

    left = study.ask()  # what a `kill -9`ed single-process `rimclf tune` leaves: RUNNING, owner gone
    study._storage.set_trial_system_attr(left._trial_id, OWNER_ATTR, f"{host_key()}.{dead.pid}")
    elsewhere = study.ask()  # another host's trial: its process cannot be checked, left alone
    study._storage.set_trial_system_attr(elsewhere._trial_id, OWNER_ATTR, f"0badc0de.{dead.pid}")
    with pytest.warns(RimclfWarning, match=r"trial\(s\) 0 had been left RUNNING .* marked FAIL"):
        tune(estimator, X, y, groups, space=space, n_trials=1, cv=4, storage=journal, refit=False)
    study = optuna.load_study(study_name="rimclf", storage=open_storage(journal))
    assert [t.state.name for t in study.trials] == ["FAIL", "RUNNING", "COMPLETE"]


@pytest.mark.slow
def test_ctrl_c_during_cv_folds_exits_130_and_writes_nothing(tmp_path, monkeypatch, capsys) -> None:
    calls = []

    def on_epoch_end(self, net, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(QSMRimNetClassifier, "on_epoch_end", on_epoch_end)
    out = tmp_path / "cv"
    status = main(["cv", str(tiny_cohort()), "-o", str(out), "--quick", "--n-splits", "2", "--epochs", "3",
                   "--n-boot", "10", "--threshold-cv", "0", "--cache", str(tmp_path / "cache"), "-q"])
    assert status == 130 and not out.exists() and len(calls) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == "rimclf cv: interrupted (Ctrl-C); stopped; no output was written"


@pytest.mark.slow
def test_ctrl_c_during_rimclf_tune_fails_the_trial_in_one_line(tmp_path, monkeypatch, capsys, caplog) -> None:
    from rimclf.tuning import _objective

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.INFO)
    optuna.logging.enable_propagation()  # Optuna's records reach caplog (the filtered ones would not)
    monkeypatch.setattr(optuna.logging, "set_verbosity", lambda level: None)  # as `rimclf tune -v` leaves it
    from rimclf.tuning._storage import open_storage

    calls = []
    original = _objective.cross_validate

    def cross_validate(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # trial 1, fold 1
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(_objective, "cross_validate", cross_validate)
    journal, out = tmp_path / "s.journal", tmp_path / "tune"
    status = main(["tune", str(tiny_cohort()), "-o", str(out), "--storage", str(journal), "--model", "logistic_regression",
                   "--trials", "3", "--folds", "2", "--feature-set", "rim", "-q"])
    assert status == 130 and not out.exists()
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("rimclf tune: interrupted (Ctrl-C)")
    study = optuna.load_study(study_name="rimclf", storage=open_storage(str(journal)))
    assert [t.state.name for t in study.trials] == ["COMPLETE", "FAIL"]
    optuna.logging.disable_propagation()
    monkeypatch.undo()
    optuna.logging.set_verbosity(verbosity)
    assert not [r for r in caplog.records if r.name.startswith("optuna") and "Trial 1" in r.getMessage()]
    assert [r for r in caplog.records if "Trial 0 finished" in r.getMessage()]  # the others still log


@pytest.mark.slow
def test_ctrl_c_stops_tuning_workers_and_fails_their_trials(tmp_path, monkeypatch) -> None:
    from optuna.distributions import FloatDistribution

    from rimclf.tuning import _workers, tune
    from rimclf.tuning._owners import OWNER_ATTR
    from rimclf.tuning._storage import open_storage

    journal = str(tmp_path / "w.journal")

    def interrupt_once_running(study, pending, *args, **kwargs):  # Ctrl-C while the workers run trials
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
            if len(running) == 2 and all(OWNER_ATTR in t.system_attrs for t in running):
                raise KeyboardInterrupt
            time.sleep(0.2)
        raise AssertionError("the workers never ran two trials at once")

    monkeypatch.setattr(_workers, "_wait_for_workers", interrupt_once_running)
    _, _, X, y, groups, _ = _interrupting_objective_study(tmp_path)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        tune(SlowLogisticRegression(), X, y, groups, space={"C": FloatDistribution(0.1, 10, log=True)}, n_trials=4,
             cv=2, storage=journal, n_workers=2, refit=False)
    study = optuna.load_study(study_name="rimclf", storage=open_storage(journal))
    states = [t.state.name for t in study.trials]
    assert states == ["FAIL", "FAIL"], states
    assert {t.system_attrs["fail_reason"] for t in study.trials} == {"interrupted"}
    for trial in study.trials:  # the workers were stopped, not left running their trials
        pid = int(trial.system_attrs[OWNER_ATTR].rsplit(".", 1)[1])
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert time.monotonic() - started < 120



def test_early_stopping_is_not_an_interrupt() -> None:
    """skorch's EarlyStopping stops a fit by raising KeyboardInterrupt itself: the fit ends normally."""
    from skorch.callbacks import EarlyStopping

    from rimclf.classifier import GroupValidSplit

    X, y = _data()
    groups = np.repeat(np.arange(8).astype(str), 5)
    net = QSMRimNetClassifier(max_epochs=30, batch_size=8, random_state=0, module__branches="tabular", lr=1e-7,
                              train_split=GroupValidSplit(4), callbacks=[EarlyStopping(patience=1)])
    net.fit(X, y, groups=groups)
    assert len(net.history) < 30
