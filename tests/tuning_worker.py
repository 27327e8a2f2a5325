"""A worker process of the shared-storage tests: ``python tuning_worker.py STORAGE STUDY N_TRIALS SEED``.

Not a test module (pytest does not collect it): tests/test_tuning*.py start several copies at
once against one storage, the way several shells or machines would run ``rimclf tune``.
"""

from __future__ import annotations

import sys

import numpy as np
import optuna


def make_data(n_subjects: int = 30, n_per_subject: int = 10, n_features: int = 8, seed: int = 0):
    """Synthetic radiomics: rim+ depends on the first feature; ~15 % positives."""
    rng = np.random.default_rng(seed)
    n_samples = n_subjects * n_per_subject
    X = rng.normal(size=(n_samples, n_features)).astype(np.float32)
    y = (X[:, 0] + rng.normal(size=n_samples) > 1.6).astype(np.int64)
    groups = np.repeat([f"{i:03d}" for i in range(n_subjects)], n_per_subject)
    return X, y, groups


def killing_space(trial) -> dict:
    """A search space (over ``model__C``) whose worker process SIGKILLs itself on one trial.

    The trial number comes from ``RIMCLF_TEST_KILL_TRIAL``; the process that started the study
    (``RIMCLF_TEST_PARENT``) is never killed, only a worker, as ``kill -9 <worker pid>`` would.
    """
    import os
    import signal

    if (
        isinstance(trial, optuna.Trial)
        and trial.number == int(os.environ.get("RIMCLF_TEST_KILL_TRIAL", "-1"))
        and os.getpid() != int(os.environ.get("RIMCLF_TEST_PARENT", "-1"))
    ):
        os.kill(os.getpid(), signal.SIGKILL)
    return {"model__C": trial.suggest_float("model__C", 1e-3, 1e2, log=True)}


def slow_space(trial) -> dict:
    """A search space whose every trial takes a second: workers that are busy for a while."""
    import time

    time.sleep(1.0)
    return {"model__C": trial.suggest_float("model__C", 1e-3, 1e2, log=True)}


def main(argv: list[str]) -> int:
    from rimclf.baselines import make_logistic_regression
    from rimclf.tuning import logistic_regression_space, tune

    storage, study_name, n_trials, seed = argv[0], argv[1], int(argv[2]), int(argv[3])
    X, y, groups = make_data()
    tune(
        make_logistic_regression(sampler="class_weight", random_state=0), X, y, groups,
        space=logistic_regression_space(sampler="class_weight"), n_trials=n_trials,
        storage=storage, study_name=study_name, cv=3, refit=False,
        pruner=optuna.pruners.NopPruner(), sampler=optuna.samplers.RandomSampler(seed=seed),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
