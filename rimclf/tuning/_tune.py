"""``tune``: an Optuna study over an sklearn estimator or pipeline, in one process or many."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np
import optuna
from optuna.trial import FixedTrial, TrialState
from sklearn.base import BaseEstimator, clone

from rimclf._validation import Interval, Options, check_int, check_param
from rimclf.errors import ParameterError, RimclfWarning
from rimclf.metrics import SCORERS
from rimclf.tuning._objective import (
    CV_ATTR,
    SCORING_ATTR,
    CrossValidationObjective,
    check_param_names,
    check_test_folds,
    make_scorer_from,
    make_splits,
)
from rimclf.tuning._owners import fail_stale_trials, quiet_interrupted_trials
from rimclf.tuning._search import ESTIMATOR_ATTR, INPUTS_ATTR, SPACE_ATTR, check_search, describe_estimator, describe_inputs, describe_space
from rimclf.tuning._spaces import SearchSpace, check_space, suggest_params
from rimclf.tuning._storage import default_storage_path, describe_storage, open_storage
from rimclf.tuning._table import TrialTable

logger = logging.getLogger(__name__)


class TuningResult(NamedTuple):
    """What :func:`tune` returns; unpacks as ``study, best_estimator, best_params``.

    Attributes
    ----------
    study : optuna.Study
        The whole study, including trials of earlier runs and of other workers.
    best_estimator : estimator or None
        A clone of the estimator with the best trial's parameters, fitted on all of ``X, y``
        (``None`` with ``refit=False``).
    best_params : dict
        The best trial's parameters under their ``set_params`` names.

    Examples
    --------
    >>> result = tune(estimator, X, y, groups, space=space, n_trials=20)   # doctest: +SKIP
    >>> study, best_estimator, best_params = result                         # doctest: +SKIP
    >>> result.study.best_value                                             # doctest: +SKIP
    """

    study: optuna.Study
    best_estimator: BaseEstimator | None
    best_params: dict


def _check_study_matches(study: optuna.Study, cv_text: str, scoring_text: str) -> None:
    """Record how trials are scored; refuse to resume a study that was scored differently."""
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise ParameterError(f"study {study.study_name!r} exists and minimises; rimclf studies maximise a score")
    attrs = study.user_attrs
    for key, text in ((CV_ATTR, cv_text), (SCORING_ATTR, scoring_text)):
        if key not in attrs:
            study.set_user_attr(key, text)
        elif attrs[key] != text:
            raise ParameterError(
                f"study {study.study_name!r} was scored with {key.removeprefix('rimclf_')} = {attrs[key]!r}, "
                f"not {text!r}: its trials would not be comparable. Use another study_name, or the "
                "same data, folds and scoring"
            )


def best_params_of(study: optuna.Study, space: SearchSpace) -> dict:
    """The best completed trial's parameters, rebuilt through ``space`` under ``set_params`` names.

    Examples
    --------
    >>> import optuna
    >>> from rimclf.tuning import logistic_regression_space, suggest_params
    >>> space = logistic_regression_space(sampler="none")
    >>> study = optuna.create_study(direction="maximize")
    >>> study.optimize(lambda trial: -abs(suggest_params(trial, space)["model__C"] - 1.0), n_trials=5)
    >>> from rimclf.tuning import best_params_of
    >>> best = best_params_of(study, space)
    >>> sorted(best)
    ['model__C']
    """
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not completed:
        counts = {s.name: len(study.get_trials(deepcopy=False, states=(s,))) for s in TrialState}
        raise ParameterError(
            f"study {study.study_name!r} has no completed trial (trials by state: "
            f"{ {k: v for k, v in counts.items() if v} }); run more trials or loosen the pruner"
        )
    best = study.best_trial
    try:
        return suggest_params(FixedTrial(best.params, best.number), space)
    except ValueError as exc:  # FixedTrial: a parameter of the space that the trial did not draw
        raise ParameterError(
            f"study {study.study_name!r}: its best trial #{best.number} ({sorted(best.params)}) cannot be rebuilt "
            f"through this search space ({exc}); the study holds trials of another search: start a new study"
        ) from None


def sampler_seed(random_state: int | None, n_existing_trials: int, worker: int) -> int | None:
    """Seed of the default sampler: reproducible, yet new for every resume and every worker.

    A resumed study re-seeded with ``random_state`` alone would repeat its first random
    proposals, and so would two workers seeded alike. ``None`` stays ``None`` (unseeded).
    """
    if random_state is None:
        return None
    entropy = [int(random_state) % 2**32, int(n_existing_trials), int(worker)]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def tune(
    estimator: BaseEstimator,
    X: object,
    y: object,
    groups: object = None,
    *,
    space: SearchSpace,
    n_trials: int = 20,
    storage: object = None,
    study_name: str = "rimclf",
    pruner: optuna.pruners.BasePruner | None = None,
    sampler: optuna.samplers.BaseSampler | None = None,
    cv: object = None,
    scoring: object = None,
    random_state: int = 0,
    n_workers: int = 1,
    refit: bool = True,
    timeout: float | None = None,
    callbacks: Iterable[Callable] | None = None,
    catch: tuple[type[Exception], ...] = (),
    verbose: bool = False,
    search_attrs: Mapping[str, object] | None = None,
) -> TuningResult:
    """Tune an estimator or pipeline with Optuna, scoring trials by subject-grouped CV.

    Each trial draws parameters from ``space``, sets them on a clone of ``estimator`` and
    cross-validates it fold by fold; after each fold the running mean score is reported to the
    trial, so ``pruner`` can stop a bad trial early (it is then stored as ``PRUNED``). The study
    lives in ``storage``; calling again with the same ``study_name`` resumes it, and any number of
    processes or machines running ``tune`` on the same storage share it (Optuna gives every trial
    a distinct number and runs it once).

    Features are not recomputed per trial when ``X`` is already featurised: transform the lesion
    table once with :class:`rimclf.LesionFeaturizer` and tune the classifier on its ``SliceDict``
    (what ``rimclf tune`` does), or give the featurizer a ``memory=`` cache when it is a step of
    ``estimator``.

    Parameters
    ----------
    estimator : estimator
        An sklearn/imblearn estimator or pipeline; never modified.
    X : array-like, DataFrame or SliceDict
        Inputs, indexable by rows.
    y : array-like of shape (n_samples,)
        Labels (1 = rim+).
    groups : array-like of shape (n_samples,), default=None
        Subject of every row; required by the default ``cv``.
    space : mapping or callable
        Search space: ``{parameter name: optuna distribution}`` or ``(trial) -> params``
        (module-level, to be picklable with ``n_workers > 1``). See :func:`network_space`.
    n_trials : int, default=20
        Trials this call runs (over all its workers); the study keeps earlier ones too.
    storage : str, path-like, optuna storage or None, default=None
        A journal file path (default ``<study_name>.journal`` in the current directory) or an
        Optuna RDB URL such as ``postgresql+psycopg2://user:pw@host/db``; see :func:`open_storage`.
        It is checked before the first trial (:func:`rimclf.tuning.check_storage`): a bad URL, a
        missing driver, an unreachable database or a damaged journal is an
        :class:`~rimclf.errors.OutputError` naming it (and the journal line), and a damaged
        journal is never appended to.
    study_name : str, default="rimclf"
        Created when missing, resumed when present.
    pruner : optuna.pruners.BasePruner, default=None
        ``None`` means ``MedianPruner(n_startup_trials=5, n_warmup_steps=1)``: no trial is pruned
        before 5 trials completed, nor on its first fold. ``optuna.pruners.NopPruner()`` disables
        pruning.
    sampler : optuna.samplers.BaseSampler, default=None
        ``None`` means a ``TPESampler`` seeded from ``random_state``, the number of trials the
        study already holds and the worker's index (:func:`sampler_seed`): reproducible in one
        process, and neither a resumed run nor a second worker repeats earlier proposals. Several
        independent commands started at once on one study should each pass their own seeded
        sampler.
    cv : int, splitter or list of (train, test), default=None
        ``None``: 5 subject-grouped folds, :func:`rimclf.metrics.subject_folds` with ``groups``
        and ``random_state``; an int changes the number of folds. The folds are computed once,
        so every trial (in every worker) is scored on the same folds.
    scoring : str or callable, default=None
        ``None``: partial ROC AUC up to FPR 0.1 (``rimclf.metrics.SCORERS["pauc"]``); a key of
        ``rimclf.metrics.SCORERS`` or any sklearn scoring. Greater is better.
    random_state : int or None, default=0
        Seeds the default folds and sampler (``None``: unseeded).
    n_workers : int, default=1
        Processes running trials at once (spawned, each with ``cpu_count / n_workers`` threads).
        With more than one, ``storage`` must be a path or URL and ``X`` is shared with the workers
        through a memory-mapped file; the estimator, the space, the scorer and the callbacks
        must be picklable by reference, i.e. not defined in ``__main__`` of a notebook. A worker
        that dies (killed, out of memory) does not stop the others: its running trial is marked
        ``FAIL``, a :class:`~rimclf.errors.RimclfWarning` says so, and a new worker runs its
        remaining trials. Workers end within a second when this process is killed; on Ctrl-C
        (or SIGTERM under ``rimclf``) they are stopped and their running trials stored ``FAIL``
        (``fail_reason="interrupted"``), as an interrupted trial of a single process is.
        Trials left ``RUNNING`` by a process of this host that no longer runs (``kill -9``) are
        stored ``FAIL`` when the study is opened again, with a :class:`~rimclf.errors.RimclfWarning`.
    refit : bool, default=True
        Fit a clone with the best parameters on all of ``X, y``.
    timeout : float, default=None
        Stop starting new trials after this many seconds (per worker).
    callbacks : list of callables, default=None
        Optuna callbacks ``(study, trial)``, called in the process that ran the trial.
    catch : tuple of exception types, default=()
        Exceptions that fail a trial without stopping the study.
    verbose : bool, default=False
        Print a line per finished trial (see :class:`TrialTable`).
    search_attrs : mapping, default=None
        More of what defines the search, such as how ``X`` was featurised (``rimclf_features``;
        :func:`tune_cohort` gives it and ``rimclf_model``). A new study records them with the
        estimator's classes, ``space`` and the layout of ``X``; a study resumed with any of these
        different is refused before the first trial, since its trials would not be comparable
        (one created by an older rimclf, without them, is resumed with a warning and records them).

    Returns
    -------
    TuningResult
        ``(study, best_estimator, best_params)``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.tile([1, 0, 0, 0, 0], 8)                      # 8 subjects of 5 lesions
    >>> groups = np.repeat([f"{i:02d}" for i in range(1, 9)], 5)
    >>> X = rng.normal(size=(40, 4)) + y[:, None]
    >>> import optuna
    >>> from rimclf.baselines import make_logistic_regression
    >>> from rimclf.tuning import logistic_regression_space
    >>> study, best_model, best_params = tune(
    ...     make_logistic_regression("class_weight", random_state=0), X, y, groups,
    ...     space=logistic_regression_space(sampler="class_weight"), n_trials=3, cv=4,
    ...     storage=optuna.storages.InMemoryStorage())
    >>> len(study.trials), sorted(best_params)
    (3, ['model__C'])

    The network on a cohort's features, in a journal file that other processes can share:

    >>> from rimclf.classifier import make_classifier
    >>> from rimclf.tuning import network_space
    >>> tune(make_classifier(random_state=0), X_cohort, y_cohort, groups_cohort, space=network_space(small=True),
    ...      n_trials=50, storage="qsmrimnet.journal", study_name="qsmrimnet")          # doctest: +SKIP
    """
    n_trials = check_int(n_trials, "n_trials", min=1)
    n_workers = check_int(n_workers, "n_workers", min=1)
    if not isinstance(study_name, str) or not study_name:
        raise ParameterError(f"study_name={study_name!r} is not valid; it must be a non-empty string")
    check_param(random_state, "random_state", [Options(None), Interval(int)])
    if n_workers > 1 and isinstance(storage, optuna.storages.BaseStorage):
        raise ParameterError(
            "n_workers > 1 needs a storage that other processes can open: a journal file path "
            f"or an RDB URL, not a {type(storage).__name__} object"
        )
    space = check_space(space)
    check_param_names(estimator, space)
    scorer = make_scorer_from(scoring, estimator)
    cv_text, splits = make_splits(X, y, groups, cv, random_state)
    if scoring is None or (isinstance(scoring, str) and scoring in SCORERS):  # rimclf's scores all rank
        check_test_folds(y, splits, cv)
    if storage is None:
        storage = default_storage_path(study_name)
    if isinstance(storage, Path):
        storage = str(storage)
    if pruner is None:
        pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    study = optuna.create_study(
        storage=open_storage(storage, study_name=study_name),
        study_name=study_name,
        sampler=sampler,
        pruner=pruner,
        direction="maximize",
        load_if_exists=True,
    )
    # the search first: a study without its records but with folds or trials is an older rimclf's
    search = {ESTIMATOR_ATTR: describe_estimator(estimator), SPACE_ATTR: describe_space(space), INPUTS_ATTR: describe_inputs(X)}
    check_search(study, {**(search_attrs or {}), **search}, describe_storage(storage))
    _check_study_matches(study, cv_text, repr(scorer))
    stale = fail_stale_trials(study)
    if stale:
        warnings.warn(
            f"study {study_name!r}: trial(s) {', '.join(map(str, stale))} had been left RUNNING by a process "
            "that no longer runs (killed?); marked FAIL",
            RimclfWarning, stacklevel=2,
        )
    quiet_interrupted_trials()
    n_existing = len(study.get_trials(deepcopy=False))
    if sampler is None:
        study.sampler = optuna.samplers.TPESampler(seed=sampler_seed(random_state, n_existing, 0))
    logger.info(
        "study %r in %s: %d trial(s) so far, running %d more with %d worker(s)",
        study_name, describe_storage(storage), len(study.trials), n_trials, n_workers,
    )
    objective = CrossValidationObjective(estimator, X, y, space, splits, scorer)
    table = TrialTable() if verbose else None
    if n_workers == 1:
        callback_list = list(callbacks or []) + ([table] if table is not None else [])
        study.optimize(
            objective, n_trials=n_trials, timeout=timeout, callbacks=callback_list,
            catch=catch, gc_after_trial=True,
        )
    else:
        from rimclf.tuning._workers import run_workers

        run_workers(
            study, objective, storage=storage, n_trials=n_trials, n_workers=n_workers,
            sampler=sampler, seeds=[sampler_seed(random_state, n_existing, k) for k in range(n_workers)],
            pruner=pruner, timeout=timeout,
            callbacks=list(callbacks or []), catch=catch, table=table,
        )
    best_params = best_params_of(study, space) if refit or study.best_trials else {}
    best_estimator = None
    if refit:
        logger.info("refitting the best trial (#%d) on all %d rows", study.best_trial.number, len(y))
        best_estimator = clone(estimator).set_params(**best_params).fit(X, y)
    return TuningResult(study, best_estimator, best_params)
