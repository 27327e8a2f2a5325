"""Subject-grouped cross-validation folds: the one way rimclf splits lesions for validation.

Lesions of one subject are never on both sides of a split (they are not independent), and each
fold keeps about the cohort's share of rim+ lesions. The threshold CV of
:class:`rimclf.RimModel`, tuning, the imbalance benchmark and the ablation benchmark all split
with :func:`subject_folds`. :func:`group_fit_params` says whether an estimator's ``fit`` wants the
subjects too (a network validating on held-out subjects), with scikit-learn's metadata routing on
or off.
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.utils import check_random_state
from sklearn.utils.metadata_routing import _routing_enabled, get_routing_for_object

from rimclf.defaults import MAX_SEED
from rimclf._validation import check_int
from rimclf.errors import ParameterError


Fold = tuple[np.ndarray, np.ndarray]


def subject_folds(
    y: object,
    groups: object,
    n_splits: int,
    random_state: object = None,
    *,
    n_repeats: int = 1,
    min_train_positives: int = 0,
    name: str = "n_splits",
    return_seeds: bool = False,
) -> list[Fold] | tuple[list[Fold], list[int]]:
    """Subject-grouped, rim-stratified folds, repeated over new shuffles of the subjects.

    Repeat ``r`` is ``StratifiedGroupKFold(n_splits, shuffle=True, random_state=seeds[r])``
    where ``seeds = check_random_state(random_state).randint(0, MAX_SEED, size=n_repeats)``: an
    int gives the same folds in every process, and a ``RandomState`` is advanced by
    ``n_repeats`` draws (so that a caller can draw more seeds from it afterwards).

    Parameters
    ----------
    y : array-like of shape (n_lesions,)
        Labels 0/1 (1 = rim+).
    groups : array-like of shape (n_lesions,)
        Subject of every lesion.
    n_splits : int
        Folds per repeat (at least 2, at most the number of subjects).
    random_state : int, RandomState or None, default=None
    n_repeats : int, default=1
    min_train_positives : int, default=0
        Every training part must hold at least this many rim+ lesions.
    name : str, default="n_splits"
        How error messages call ``n_splits`` (e.g. "threshold_cv").
    return_seeds : bool, default=False
        Also return the shuffle seed of each repeat.

    Returns
    -------
    folds : list of (train_index, test_index)
        ``n_repeats * n_splits`` folds, repeat after repeat.
    seeds : list of int
        With ``return_seeds``.

    Raises
    ------
    ParameterError
        ``n_splits`` below 2 or above the number of subjects, or a training part with fewer
        than ``min_train_positives`` rim+ lesions (use fewer folds).

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0])
    >>> groups = np.repeat(["01", "02", "03", "04", "05", "06"], 2)
    >>> folds = subject_folds(y, groups, n_splits=3, random_state=0)
    >>> len(folds)
    3
    >>> train, test = folds[0]
    >>> set(groups[train]) & set(groups[test])  # no subject on both sides
    set()
    >>> len(subject_folds(y, groups, n_splits=3, random_state=0, n_repeats=2))
    6
    """
    y = np.asarray(y)
    n_subjects = len(np.unique(np.asarray(groups)))
    check_int(n_splits, name, min=2)
    check_int(n_repeats, "n_repeats", min=1)
    if n_splits > n_subjects:
        raise ParameterError(f"{name}={n_splits} folds but the data hold only {n_subjects} subjects; use fewer folds")
    seeds = [int(seed) for seed in check_random_state(random_state).randint(0, MAX_SEED, size=n_repeats)]
    folds: list[Fold] = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The least populated class", UserWarning)
        for seed in seeds:
            splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
            folds.extend(splitter.split(np.zeros(len(y)), y, groups))
    for index, (train, _) in enumerate(folds):
        if int(y[train].sum()) < min_train_positives:
            raise ParameterError(
                f"{name}={n_splits}: the training part of fold {index % n_splits + 1} holds {int(y[train].sum())} "
                f"rim+ lesion(s), fewer than {min_train_positives}; use fewer folds"
            )
    return (folds, seeds) if return_seeds else folds


def group_fit_params(estimator: object, groups: object) -> dict:
    """``{"groups": groups}`` when ``estimator.fit`` uses the subjects of the lesions, else ``{}``.

    An estimator uses them when its metadata routing says that ``fit`` consumes ``groups``: a
    :class:`~rimclf.QSMRimNetClassifier` with ``train_split=GroupValidSplit(...)`` (its split
    requests them), or any estimator whose ``fit`` was asked for them with
    ``set_fit_request(groups=True)``. With scikit-learn's metadata routing on, that is all; with it
    off, a ``Pipeline`` (whose ``fit`` then takes ``<step>__groups`` only) gets nothing, and other
    estimators get ``groups`` when their ``fit`` has a ``groups`` or ``**kwargs`` parameter.
    Callers fit with ``estimator.fit(X, y, **group_fit_params(estimator, groups))``.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> group_fit_params(LogisticRegression(), ["01", "01", "02"])
    {}

    A network that validates on held-out subjects gets them:

    >>> from rimclf.classifier import GroupValidSplit, QSMRimNetClassifier
    >>> net = QSMRimNetClassifier(train_split=GroupValidSplit(5))
    >>> group_fit_params(net, ["01", "01", "02"])
    {'groups': ['01', '01', '02']}
    """
    try:
        routing = get_routing_for_object(estimator)
        consumed = "groups" in routing.consumes("fit", ["groups"])
    except Exception:  # an estimator without (valid) routing information takes no metadata
        return {}
    if not consumed:
        return {}
    if not _routing_enabled():
        from sklearn.pipeline import Pipeline

        if isinstance(estimator, Pipeline):
            return {}
        parameters = inspect.signature(estimator.fit).parameters.values()
        if not any(p.name == "groups" or p.kind is p.VAR_KEYWORD for p in parameters):
            return {}
    return {"groups": groups}
