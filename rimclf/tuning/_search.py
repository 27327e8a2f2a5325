"""What defines a study's search, recorded in the study so that a resume cannot mix other trials in.

A study's trials are comparable only while the estimator, the search space and the features stay
the same: a study of the logistic regression resumed with the random forest would rank trials of
both, and its best trial could no longer be rebuilt through either space. :func:`tune` records
the estimator's layout, the space and the layout of ``X`` in the study's user attributes when it
creates the study (:func:`tune_cohort` adds the ``--model`` and the featurizer's settings), and
:func:`check_search` refuses a resume with different ones before any trial runs.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Mapping

import numpy as np
import optuna
from optuna.distributions import distribution_to_json, json_to_distribution

from rimclf.errors import ParameterError, RimclfWarning
from rimclf.tuning._objective import CV_ATTR, jsonable

#: Study user attributes describing the search, in the order a mismatch is reported.
MODEL_ATTR = "rimclf_model"
ESTIMATOR_ATTR = "rimclf_estimator"
SPACE_ATTR = "rimclf_space"
FEATURES_ATTR = "rimclf_features"
INPUTS_ATTR = "rimclf_inputs"
SEARCH_ATTRS = (MODEL_ATTR, ESTIMATOR_ATTR, SPACE_ATTR, FEATURES_ATTR, INPUTS_ATTR)


def describe_estimator(estimator: object) -> str:
    """The estimator's classes, step by step for a pipeline: ``Pipeline(sampler=SafeSMOTE, model=LogisticRegression)``."""
    steps = getattr(estimator, "steps", None)
    if isinstance(steps, list):
        inner = ", ".join(f"{name}={describe_estimator(step)}" for name, step in steps)
        return f"{type(estimator).__name__}({inner})"
    return estimator if isinstance(estimator, str) else type(estimator).__name__


def describe_space(space: Mapping | Callable) -> dict | str:
    """``{name: distribution as Optuna's JSON}`` for a mapping; ``"function module.name"`` for a callable space."""
    if callable(space) and not isinstance(space, Mapping):
        return f"function {getattr(space, '__module__', '?')}.{getattr(space, '__qualname__', repr(space))}"
    return {name: distribution_to_json(distribution) for name, distribution in sorted(space.items())}


def describe_inputs(X: object) -> str:
    """The layout of ``X``: its entries and their shapes past the rows, or a table's columns (as a digest)."""
    if isinstance(X, Mapping):  # a dict or skorch's SliceDict
        return ", ".join(f"{key} {tuple(np.shape(value)[1:])}" for key, value in sorted(X.items()))
    columns = getattr(X, "columns", None)
    if columns is not None:
        digest = hashlib.sha1(json.dumps([str(c) for c in columns]).encode()).hexdigest()[:16]
        return f"{type(X).__name__} of {len(columns)} columns, names sha1 {digest}"
    return f"{type(X).__name__} of shape (*{''.join(f', {n}' for n in np.shape(X)[1:])})"


def describe_featurizer(featurizer: object) -> dict:
    """A featurizer's settings that change the features (not ``n_jobs``, ``memory``, ``progress``)."""
    runtime = ("features", "n_jobs", "memory", "progress")
    return {
        name: jsonable(value) for name, value in sorted(featurizer.get_params(deep=True).items())
        if name.rsplit("__", 1)[-1] not in runtime
    }


def _difference(key: str, recorded: object, requested: object) -> str:
    """What differs, shortly: for a mapping (space, features) only the entries that differ; empty if nothing."""
    if not (isinstance(recorded, dict) and isinstance(requested, dict)):
        same = json.loads(json.dumps(recorded)) == json.loads(json.dumps(requested))
        return "" if same else f"recorded {_short(recorded)}, requested {_short(requested)}"
    value = json_to_distribution if key == SPACE_ATTR else (lambda v: v)
    parts = []
    for label, names in (("recorded only", set(recorded) - set(requested)), ("requested only", set(requested) - set(recorded))):
        names = {n for n in names if n.split("__")[0] == n or n.split("__")[0] not in names}  # not an extractor's settings
        if names:
            parts.append(f"{label} {', '.join(sorted(names))}")
    for name in sorted(set(recorded) & set(requested)):
        old, new = value(recorded[name]), value(requested[name])
        if old != new:
            parts.append(f"{name} recorded {_short(old)}, requested {_short(new)}")
    return "; ".join(parts)


def _short(value: object) -> str:
    text = value if isinstance(value, str) else str(value) if not isinstance(value, (dict, list)) else json.dumps(value)
    return repr(text if len(text) <= 160 else text[:157] + "...")


def check_search(study: optuna.Study, requested: Mapping[str, object], storage: str, *, record: bool = True) -> None:
    """Refuse to resume ``study`` with another search; record what it does not hold yet (``record``).

    Parameters
    ----------
    study : optuna.Study
    requested : mapping
        ``{attribute: description}`` of this run, keys among :data:`SEARCH_ATTRS`.
    storage : str
        The storage as printed in the message.
    record : bool, default=True
        Record the descriptions the study lacks. A study created by rimclf before these records
        existed (trials or folds recorded, no search) gets them now, with a
        :class:`~rimclf.errors.RimclfWarning` that its earlier trials could not be checked.

    Raises
    ------
    ParameterError
        Naming the storage, the study, and every description that differs (recorded, requested).
    """
    attrs = study.user_attrs
    differences = []
    for key in SEARCH_ATTRS:
        difference = _difference(key, attrs[key], jsonable(requested[key])) if key in requested and key in attrs else ""
        if difference:
            differences.append(f"{key.removeprefix('rimclf_')}: {difference}")
    if differences:
        raise ParameterError(
            f"study {study.study_name!r} in {storage} was created for another search, and its trials would not "
            f"be comparable with this run's: {' | '.join(differences)}. Resume it with the same model, features "
            "and search space, or start a new study (another --study-name / study_name)"
        )
    if not record:
        return
    missing = [key for key in requested if key not in attrs]
    if missing and not any(key in attrs for key in SEARCH_ATTRS) and (CV_ATTR in attrs or study.get_trials(deepcopy=False)):
        warnings.warn(
            f"study {study.study_name!r} in {storage} was created by an older rimclf that did not record its model, "
            "features and search space: its earlier trials cannot be checked against this run's; recording this "
            "run's now, so that later resumes are checked",
            RimclfWarning, stacklevel=3,
        )
    for key in missing:
        study.set_user_attr(key, jsonable(requested[key]))
