"""The objective of a tuning study: subject-grouped cross-validation, reported fold by fold."""

from __future__ import annotations

import hashlib
import math
import numbers
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import optuna
from sklearn.base import BaseEstimator, clone
from sklearn.metrics import check_scoring
from sklearn.model_selection import BaseCrossValidator, cross_validate

from rimclf._validation import check_int, is_int
from rimclf.errors import CohortError, ParameterError
from rimclf.metrics import subject_folds
from rimclf.tuning._owners import mark_interrupted, tag_owner
from rimclf.tuning._spaces import SearchSpace, suggest_params

Split = tuple[np.ndarray, np.ndarray]

#: Study user attributes recording how its trials were scored: a study may only be resumed with
#: the same cross-validation folds and scorer, or its trials would not be comparable.
CV_ATTR = "rimclf_cv"
SCORING_ATTR = "rimclf_scoring"


def make_scorer_from(scoring: object, estimator: BaseEstimator) -> Callable:
    """``None`` -> partial ROC AUC (FPR <= 0.1); a key of ``rimclf.metrics.SCORERS``; any sklearn scoring."""
    from rimclf.metrics import SCORERS

    if scoring is None:
        return SCORERS["pauc"]
    if isinstance(scoring, str) and scoring in SCORERS:
        return SCORERS[scoring]
    try:
        return check_scoring(estimator, scoring=scoring)
    except (ValueError, TypeError) as exc:
        raise ParameterError(
            f"scoring={scoring!r} is neither one of {sorted(SCORERS)} nor an sklearn scoring: {exc}"
        ) from exc


def make_splits(
    X: object, y: object, groups: object, cv: object, random_state: object
) -> tuple[str, list[Split]]:
    """The folds every trial is scored on, computed once so that all trials share them.

    ``cv=None`` means 5 subject-grouped folds, ``rimclf.metrics.subject_folds(y, groups, 5,
    random_state)``; an int sets the number of folds.

    Returns
    -------
    description : str
        The splitter and a hash of the folds' test rows (see :func:`describe_cv`).
    splits : list of (train, test) index arrays
    """
    if cv is None or is_int(cv):
        n_splits = check_int(5 if cv is None else cv, "cv", min=2)
        if groups is None:
            raise CohortError(
                "groups is required: pass the participant_id of every lesion so that folds keep "
                "each subject's lesions together"
            )
        splits = subject_folds(y, groups, n_splits, random_state, name="cv")
        return describe_cv(f"subject_folds(n_splits={n_splits}, random_state={random_state!r})", splits), splits
    if hasattr(cv, "split"):
        splits = list(cv.split(X, y, groups))
    elif isinstance(cv, Sequence) or hasattr(cv, "__iter__"):
        splits = list(cv)
    else:
        raise ParameterError(f"cv={cv!r} is not valid; it must be None, an int, a splitter or a list of (train, test) folds")
    if not splits:
        raise ParameterError(f"cv={cv!r} produced no folds")
    splits = [(np.asarray(train), np.asarray(test)) for train, test in splits]
    return describe_cv(cv, splits), splits


def check_test_folds(y: object, splits: list[Split], cv: object) -> None:
    """Refuse folds whose test part holds a single class (a ranking score is undefined there), before any trial."""
    labels = np.asarray(y)
    for index, (_, test) in enumerate(splits, start=1):
        present = set(np.unique(labels[test]).tolist())
        if len(present) < 2:
            only = "rim+" if present == {1} else "rim-"
            raise ParameterError(
                f"cv={cv!r}: the test part of fold {index} holds only {only} lesions, and the score ranks rim+ "
                "against rim- lesions in every test fold; use fewer folds (cv=2, 3, ...) or a labelled cohort "
                "with rim+ lesions in more subjects"
            )


def describe_cv(cv: object, splits: list[Split]) -> str:
    """A fingerprint of the folds: the splitter's repr (or ``cv`` itself when it is a string)
    and a hash of every fold's test rows."""
    digest = hashlib.sha1()
    for _, test in splits:
        digest.update(np.ascontiguousarray(np.sort(test), dtype=np.int64).tobytes())
        digest.update(b"|")
    name = cv if isinstance(cv, str) else repr(cv) if isinstance(cv, BaseCrossValidator) else f"{len(splits)} folds"
    return f"{name}; folds sha1 {digest.hexdigest()[:16]}"


def jsonable(value: object) -> object:
    """A JSON-serialisable version of a parameter value (numpy scalars, tuples, others as repr)."""
    if isinstance(value, (bool, str)) or value is None:
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return repr(value)


class CrossValidationObjective:
    """Score a trial's parameters by cross-validation, reporting each fold's running mean.

    After fold ``i`` the mean score so far is reported at step ``i``; when the study's pruner
    says so the trial stops with :class:`optuna.TrialPruned`. The fold scores are kept in the
    trial's user attribute ``"fold_scores"``, the parameters given to ``set_params`` in
    ``"pipeline_params"``. Picklable when its parts are, so worker processes can run it.

    Parameters
    ----------
    estimator : estimator
        Cloned for every fold, then given the trial's parameters with ``set_params``.
    X, y : array-like
        Data (any input the estimator takes and sklearn can index: arrays, DataFrames, SliceDict).
    space : mapping or callable
        The search space (see :mod:`rimclf.tuning`).
    splits : list of (train, test) index arrays
        The folds, the same for every trial.
    scorer : callable
        An sklearn scorer ``(estimator, X, y) -> float``, greater is better.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.tile([1, 0, 0, 0, 0], 8)                      # 8 subjects of 5 lesions
    >>> groups = np.repeat([f"{i:02d}" for i in range(1, 9)], 5)
    >>> X = rng.normal(size=(40, 4)) + y[:, None]
    >>> import optuna
    >>> from rimclf.baselines import make_logistic_regression
    >>> from rimclf.metrics import SCORERS, subject_folds
    >>> from rimclf.tuning import logistic_regression_space
    >>> objective = CrossValidationObjective(
    ...     make_logistic_regression("none"), X, y, logistic_regression_space(sampler="none"),
    ...     subject_folds(y, groups, 4, random_state=0), SCORERS["pauc"])
    >>> study = optuna.create_study(direction="maximize")
    >>> study.optimize(objective, n_trials=2)
    >>> len(study.trials[0].user_attrs["fold_scores"])                  # one score per fold
    4
    """

    def __init__(
        self, estimator: BaseEstimator, X: object, y: object, space: SearchSpace,
        splits: list[Split], scorer: Callable,
    ) -> None:
        self.estimator = estimator
        self.X = X
        self.y = y
        self.space = space
        self.splits = splits
        self.scorer = scorer

    def __call__(self, trial: optuna.Trial) -> float:
        tag_owner(trial)  # a trial its process leaves RUNNING (killed) is failed on resume
        try:
            return self._score(trial)
        except KeyboardInterrupt:  # Ctrl-C, SIGTERM: Optuna stores the trial FAIL and re-raises
            mark_interrupted(trial)
            raise

    def _score(self, trial: optuna.Trial) -> float:
        params = suggest_params(trial, self.space)
        trial.set_user_attr("pipeline_params", jsonable(params))
        candidate = clone(self.estimator).set_params(**params)
        scores: list[float] = []
        for fold, split in enumerate(self.splits):
            result = cross_validate(
                candidate, self.X, self.y, cv=[split], scoring=self.scorer, error_score="raise"
            )
            scores.append(float(result["test_score"][0]))
            trial.set_user_attr("fold_scores", scores)
            running_mean = float(np.mean(scores))
            if math.isnan(running_mean):
                raise CohortError(f"trial {trial.number}: fold {fold} scored NaN with params {params}")
            trial.report(running_mean, step=fold)
            if fold + 1 < len(self.splits) and trial.should_prune():
                raise optuna.TrialPruned(
                    f"trial {trial.number} pruned after fold {fold}: mean score {running_mean:.4f}"
                )
        return float(np.mean(scores))


def _first_value(distribution: object) -> object:
    choices = getattr(distribution, "choices", None)
    return choices[0] if choices is not None else distribution.low


def check_param_names(estimator: BaseEstimator, space: SearchSpace) -> None:
    """Fail before any trial when a mapping space names a parameter the estimator rejects.

    A clone of the estimator is given every parameter (at its lowest value or first choice)
    with ``set_params``, so names are judged by the estimator itself: skorch nets, for instance,
    accept any ``module__*`` or ``optimizer__*`` name.
    """
    if not isinstance(space, Mapping):
        return
    sample = {name: _first_value(distribution) for name, distribution in space.items()}
    try:
        clone(estimator).set_params(**sample)
    except (ValueError, TypeError, AttributeError) as exc:
        raise ParameterError(
            f"space does not fit {type(estimator).__name__}: set_params rejected its parameters "
            f"{sorted(space)}: {exc}"
        ) from exc
