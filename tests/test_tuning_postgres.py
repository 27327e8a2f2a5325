"""rimclf.tuning on a real PostgreSQL server: several processes share one study, as many machines would.

The server comes from ``.ci/postgres-up`` (run by ``.ci/run``), which exports its URL as
``RIMCLF_TEST_POSTGRES_URL``; without that variable these tests are skipped.
"""

from __future__ import annotations

import os
import uuid

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from rimclf.baselines import make_logistic_regression
from rimclf.tuning import logistic_regression_space, open_storage, tune

from tests.test_tuning import run_independent_workers
from tests.tuning_worker import make_data

POSTGRES_URL = os.environ.get("RIMCLF_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(
    not POSTGRES_URL,
    reason="RIMCLF_TEST_POSTGRES_URL is not set: no PostgreSQL server (start one with .ci/postgres-up)",
)


@pytest.fixture
def study_name():
    """A fresh study name per test, deleted afterwards, so the shared database stays clean."""
    name = f"rimclf-test-{uuid.uuid4().hex[:12]}"
    yield name
    try:
        optuna.delete_study(study_name=name, storage=open_storage(POSTGRES_URL))
    except KeyError:
        pass


def test_postgres_storage_is_an_rdb_storage_with_heartbeats():
    storage = open_storage(POSTGRES_URL)
    assert isinstance(storage, optuna.storages.RDBStorage)
    assert storage.get_heartbeat_interval() is not None


def test_two_separate_processes_share_a_postgres_study(study_name):
    run_independent_workers(POSTGRES_URL, study_name, n_processes=2, n_trials=3)
    study = optuna.load_study(study_name=study_name, storage=open_storage(POSTGRES_URL))
    assert sorted(t.number for t in study.trials) == list(range(6))
    assert all(t.state == TrialState.COMPLETE for t in study.trials)


def test_worker_processes_and_resume_on_postgres(study_name):
    X, y, groups = make_data()
    options = dict(
        space=logistic_regression_space(sampler="class_weight"), storage=POSTGRES_URL,
        study_name=study_name, cv=3, pruner=optuna.pruners.NopPruner(),
    )
    estimator = make_logistic_regression(sampler="class_weight", random_state=0)
    first = tune(estimator, X, y, groups, n_trials=4, n_workers=2, refit=False, **options)
    assert sorted(t.number for t in first.study.trials) == [0, 1, 2, 3]
    second = tune(estimator, X, y, groups, n_trials=1, **options)
    assert sorted(t.number for t in second.study.trials) == [0, 1, 2, 3, 4]
    assert all(t.state == TrialState.COMPLETE for t in second.study.trials)
    assert second.best_estimator.predict_proba(X).shape == (len(y), 2)
    assert second.study.best_value == pytest.approx(max(t.value for t in second.study.trials))
    assert np.isfinite(second.study.best_value)
