"""Confidence intervals and paired comparisons by bootstrapping subjects, not lesions."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from sklearn.utils import check_random_state

from rimclf._validation import check_choice, check_int, check_real
from rimclf.errors import CohortError, DataWarning
from rimclf._data_checks import check_groups, check_labels, check_scores
from rimclf.metrics._ranking import (
    Metric,
    partial_roc_auc,
    pr_auc,
    roc_auc,
    sensitivity_at_specificity,
)


def subject_bootstrap_indices(
    groups: object, n_boot: int = 1000, random_state: object = None
) -> Iterator[np.ndarray]:
    """Yield lesion indices of bootstrap resamples that draw whole subjects with replacement.

    Each resample draws as many subjects as there are, with replacement, and takes all lesions of
    every drawn subject (a subject drawn twice contributes its lesions twice).

    Parameters
    ----------
    groups : array-like of shape (n_lesions,)
        Subject of every lesion.
    n_boot : int, default=1000
        Number of resamples.
    random_state : int, RandomState instance or None, default=None
        Seeds the draws.

    Yields
    ------
    numpy.ndarray of int
        Row indices into the original arrays.

    Raises
    ------
    CohortError
        Fewer than 2 subjects.

    Examples
    --------
    >>> for index in subject_bootstrap_indices(["a", "a", "b", "c"], n_boot=2, random_state=0):
    ...     print(index)
    [0 1 2 0 1]
    [2 2 3]
    """
    check_int(n_boot, "n_boot", min=1)
    group_array = np.asarray(groups)
    subjects, codes = np.unique(group_array, return_inverse=True)
    if subjects.size < 2:
        raise CohortError(f"groups holds {subjects.size} subject(s); a subject bootstrap needs at least 2 "
                          "(one subject's resamples are all the same: no interval)")
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rng = check_random_state(random_state)
    for _ in range(int(n_boot)):
        drawn = rng.randint(0, sizes.size, size=sizes.size)
        counts = sizes[drawn]
        # positions of all lesions of the drawn subjects, built without a Python loop
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        yield order[np.repeat(starts[drawn], counts) + offsets]


_NAMED_METRICS: dict[str, Metric] = {
    "pauc": partial_roc_auc,
    "pr_auc": pr_auc,
    "roc_auc": roc_auc,
    "sens_at_spec90": sensitivity_at_specificity,
}


def _resolve_metric(metric: str | Metric) -> Metric:
    if callable(metric):
        return metric
    return _NAMED_METRICS[check_choice(metric, "metric", tuple(_NAMED_METRICS), hint="or a callable(y_true, y_score)")]


def _percentile_interval(values: np.ndarray, alpha: float) -> tuple[float, float]:
    low, high = np.quantile(values, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def _check_alpha(alpha: float) -> float:
    return check_real(alpha, "alpha", min=0.0, max=1.0, closed="neither")


def subject_bootstrap(
    statistic, labels: np.ndarray, groups: object, n_boot: int = 1000, random_state: object = None,
    *, stacklevel: int = 2,
) -> tuple[np.ndarray, int]:
    """``statistic(index)`` on every subject resample that holds both classes, and the number skipped.

    The resamples are those of :func:`subject_bootstrap_indices`; one holding a single class
    (where ranking metrics are undefined) is skipped, with a :class:`~rimclf.errors.DataWarning`
    when more than 5 % are.

    Parameters
    ----------
    statistic : callable
        ``statistic(index)`` -> a number or an array, for the lesions ``index`` of a resample.
    labels : numpy.ndarray of shape (n_lesions,)
        0/1 labels (1 = rim+).
    groups, n_boot, random_state
        As in :func:`subject_bootstrap_indices`.
    stacklevel : int, default=2
        Of the warning, counted from the caller.

    Returns
    -------
    values : numpy.ndarray of shape (n_valid, ...)
        The statistic of each valid resample, stacked.
    n_skipped : int

    Raises
    ------
    CohortError
        Every resample held a single class.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.tile([0, 1], 6)
    >>> score = np.array([.2, .7, .1, .4, .3, .9, .5, .6, .2, .8, .6, .5])
    >>> groups = np.repeat(["01", "02", "03", "04", "05", "06"], 2)
    >>> values, n_skipped = subject_bootstrap(lambda i: roc_auc(y[i], score[i]), y, groups, 100, random_state=0)
    >>> values.shape, n_skipped
    ((100,), 0)
    """
    values, n_skipped = [], 0
    for index in subject_bootstrap_indices(groups, n_boot, random_state):
        resampled_labels = labels[index]
        if resampled_labels.min() == resampled_labels.max():
            n_skipped += 1
            continue
        values.append(statistic(index))
    if not values:
        raise CohortError(
            f"all {n_boot} subject resamples held a single class; "
            "too few subjects with rim+ lesions"
        )
    if n_skipped > 0.05 * n_boot:
        warnings.warn(
            f"{n_skipped} of {n_boot} subject resamples held a single class and were skipped; "
            "the intervals are conditional on resamples holding both classes",
            DataWarning,
            stacklevel=stacklevel + 1,
        )
    return np.asarray(values, dtype=np.float64), n_skipped


def bootstrap_p_value(differences: np.ndarray) -> float:
    """Two-sided bootstrap p-value for "no difference" from replicate differences:
    ``min(1, 2 * (1 + min(#{d* <= 0}, #{d* >= 0})) / (n + 1))``.

    Examples
    --------
    >>> bootstrap_p_value(np.array([0.1, 0.2, 0.3, -0.1]))
    0.8
    """
    differences = np.asarray(differences)
    n_tail = min(int((differences <= 0).sum()), int((differences >= 0).sum()))
    return min(1.0, 2.0 * (1 + n_tail) / (differences.size + 1))


def _replicates(
    metric: Metric, labels: np.ndarray, score_sets: list[np.ndarray], groups: np.ndarray,
    n_boot: int, random_state: object,
) -> tuple[np.ndarray, int]:
    """Metric of each score set on every subject resample, single-class resamples dropped."""
    values, n_skipped = subject_bootstrap(
        lambda index: [metric(labels[index], scores[index]) for scores in score_sets],
        labels, groups, n_boot, random_state, stacklevel=3,
    )
    return values.reshape(len(values), len(score_sets)), n_skipped


@dataclass(frozen=True)
class BootstrapResult:
    """A metric with a subject-level bootstrap percentile confidence interval.

    Attributes
    ----------
    estimate : float
        The metric on all lesions.
    ci_low, ci_high : float
        Percentile interval ``[alpha/2, 1 - alpha/2]`` of the valid replicates.
    alpha : float
        1 - confidence level.
    n_boot : int
        Resamples drawn.
    n_skipped : int
        Resamples skipped because they held a single class (metric undefined).
    n_subjects : int
        Distinct subjects.
    values : numpy.ndarray
        The ``n_boot - n_skipped`` replicate values.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.tile([0, 1], 6)                        # six subjects, one rim- and one rim+ lesion each
    >>> score = np.array([.2, .7, .1, .4, .3, .9, .5, .6, .2, .8, .6, .5])
    >>> groups = np.repeat(["01", "02", "03", "04", "05", "06"], 2)
    >>> result = bootstrap_ci("pauc", y, score, groups, n_boot=200, random_state=0)
    >>> print(f"{result.estimate:.3f} [{result.ci_low:.3f}, {result.ci_high:.3f}]")
    0.763 [0.552, 1.000]
    >>> result.n_subjects, result.n_skipped, result.values.shape
    (6, 0, (200,))
    """

    estimate: float
    ci_low: float
    ci_high: float
    alpha: float
    n_boot: int
    n_skipped: int
    n_subjects: int
    values: np.ndarray


@dataclass(frozen=True)
class PairedBootstrapResult:
    """Difference ``metric(score_a) - metric(score_b)`` with a paired subject bootstrap.

    Attributes
    ----------
    estimate_a, estimate_b : float
        The metric of each method on all lesions.
    difference : float
        ``estimate_a - estimate_b``.
    ci_low, ci_high : float
        Percentile interval of the replicate differences.
    p_value : float
        Two-sided bootstrap p-value for "no difference":
        ``min(1, 2 * (1 + min(#{d* <= 0}, #{d* >= 0})) / (n_valid + 1))``, the smallest level at
        which the percentile interval would exclude 0 (never below ``2 / (n_valid + 1)``).
    alpha, n_boot, n_skipped, n_subjects
        As in :class:`BootstrapResult`.
    differences : numpy.ndarray
        The valid replicate differences.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.tile([0, 1], 6)                        # six subjects, one rim- and one rim+ lesion each
    >>> score = np.array([.2, .7, .1, .4, .3, .9, .5, .6, .2, .8, .6, .5])
    >>> groups = np.repeat(["01", "02", "03", "04", "05", "06"], 2)
    >>> weaker = np.array([.3, .4, .2, .3, .4, .6, .5, .4, .3, .5, .6, .4])
    >>> result = paired_bootstrap("roc_auc", y, score, weaker, groups, n_boot=200, random_state=0)
    >>> print(f"{result.estimate_a:.3f} - {result.estimate_b:.3f} = {result.difference:+.3f}")
    0.889 - 0.625 = +0.264
    >>> result.differences.shape
    (200,)
    """

    estimate_a: float
    estimate_b: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    alpha: float
    n_boot: int
    n_skipped: int
    n_subjects: int
    differences: np.ndarray


def bootstrap_ci(
    metric: str | Metric, y_true: object, y_score: object, groups: object, n_boot: int = 1000,
    alpha: float = 0.05, random_state: object = None,
) -> BootstrapResult:
    """Confidence interval of a metric by bootstrapping subjects, not lesions.

    Lesions of one patient are correlated, so resampling lesions would give intervals that are
    too narrow. Each resample draws subjects with replacement and keeps all their lesions
    (:func:`subject_bootstrap_indices`). A resample with a single class (no rim+ lesion, which
    happens with few rim+ subjects) is skipped and counted in ``n_skipped``; the interval uses the
    remaining ones, and a :class:`~rimclf.errors.DataWarning` is issued when more than 5 % were
    skipped.

    Parameters
    ----------
    metric : {"pauc", "pr_auc", "roc_auc", "sens_at_spec90"} or callable
        A name, or any ``metric(y_true, y_score) -> float`` (use ``functools.partial`` for
        options, e.g. ``partial(partial_roc_auc, max_fpr=0.2)``).
    y_true : array-like of shape (n_lesions,)
        Labels, 1 = rim+.
    y_score : array-like of shape (n_lesions,)
        Scores, e.g. out-of-fold probabilities from ``cross_val_predict``.
    groups : array-like of shape (n_lesions,)
        Subject of every lesion (``participant_id``).
    n_boot : int, default=1000
        Resamples drawn.
    alpha : float, default=0.05
        1 - confidence level (0.05 gives a 95 % interval).
    random_state : int, RandomState instance or None, default=None
        Seeds the resamples.

    Returns
    -------
    BootstrapResult

    Examples
    --------
    >>> import numpy as np
    >>> y = np.tile([0, 1], 6)                        # six subjects, one rim- and one rim+ lesion each
    >>> score = np.array([.2, .7, .1, .4, .3, .9, .5, .6, .2, .8, .6, .5])
    >>> groups = np.repeat(["01", "02", "03", "04", "05", "06"], 2)
    >>> ci = bootstrap_ci("pauc", y, score, groups, n_boot=200, random_state=0)
    >>> print(f"pAUC {ci.estimate:.3f} [{ci.ci_low:.3f}, {ci.ci_high:.3f}]")
    pAUC 0.763 [0.552, 1.000]

    Any ``metric(y_true, y_score)`` works:

    >>> from functools import partial
    >>> from rimclf.metrics import partial_roc_auc
    >>> ci = bootstrap_ci(partial(partial_roc_auc, max_fpr=0.2), y, score, groups, n_boot=200, random_state=0)
    """
    metric_function = _resolve_metric(metric)
    alpha = _check_alpha(alpha)
    labels = check_labels(y_true)
    scores = check_scores(y_score, labels.size)
    group_array = check_groups(groups, labels.size)
    values, n_skipped = _replicates(
        metric_function, labels, [scores], group_array, n_boot, random_state
    )
    low, high = _percentile_interval(values[:, 0], alpha)
    return BootstrapResult(
        estimate=float(metric_function(labels, scores)), ci_low=low, ci_high=high, alpha=alpha,
        n_boot=int(n_boot), n_skipped=n_skipped, n_subjects=int(np.unique(group_array).size),
        values=values[:, 0],
    )


def paired_bootstrap(
    metric: str | Metric, y_true: object, score_a: object, score_b: object, groups: object,
    n_boot: int = 1000, alpha: float = 0.05, random_state: object = None,
) -> PairedBootstrapResult:
    """Compare two methods scored on the same lesions with a paired subject bootstrap.

    Both methods are evaluated on the very same subject resample in every replicate, so the
    subject-to-subject variation they share cancels in the difference. Use scores of both methods
    from the same cross-validation folds (same ``StratifiedGroupKFold`` and ``groups``).
    Single-class resamples are skipped as in :func:`bootstrap_ci`.

    Parameters
    ----------
    metric : {"pauc", "pr_auc", "roc_auc", "sens_at_spec90"} or callable
        As in :func:`bootstrap_ci`.
    y_true : array-like of shape (n_lesions,)
        Labels, 1 = rim+.
    score_a, score_b : array-like of shape (n_lesions,)
        Scores of method A and method B for the same lesions, in the same order.
    groups : array-like of shape (n_lesions,)
        Subject of every lesion.
    n_boot : int, default=1000
        Resamples drawn.
    alpha : float, default=0.05
        1 - confidence level.
    random_state : int, RandomState instance or None, default=None
        Seeds the resamples.

    Returns
    -------
    PairedBootstrapResult
        ``difference > 0`` means method A scores higher.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.tile([0, 1], 6)                        # six subjects, one rim- and one rim+ lesion each
    >>> score = np.array([.2, .7, .1, .4, .3, .9, .5, .6, .2, .8, .6, .5])
    >>> groups = np.repeat(["01", "02", "03", "04", "05", "06"], 2)
    >>> weaker = np.array([.3, .4, .2, .3, .4, .6, .5, .4, .3, .5, .6, .4])
    >>> cmp = paired_bootstrap("roc_auc", y, score, weaker, groups, n_boot=200, random_state=0)
    >>> print(f"{cmp.difference:+.3f} [{cmp.ci_low:+.3f}, {cmp.ci_high:+.3f}], p = {cmp.p_value:.3f}")
    +0.264 [+0.111, +0.460], p = 0.010
    """
    metric_function = _resolve_metric(metric)
    alpha = _check_alpha(alpha)
    labels = check_labels(y_true)
    scores_a = check_scores(score_a, labels.size, "score_a")
    scores_b = check_scores(score_b, labels.size, "score_b")
    group_array = check_groups(groups, labels.size)
    values, n_skipped = _replicates(
        metric_function, labels, [scores_a, scores_b], group_array, n_boot, random_state
    )
    differences = values[:, 0] - values[:, 1]
    low, high = _percentile_interval(differences, alpha)
    estimate_a = float(metric_function(labels, scores_a))
    estimate_b = float(metric_function(labels, scores_b))
    return PairedBootstrapResult(
        estimate_a=estimate_a, estimate_b=estimate_b, difference=estimate_a - estimate_b,
        ci_low=low, ci_high=high, p_value=bootstrap_p_value(differences), alpha=alpha,
        n_boot=int(n_boot), n_skipped=n_skipped, n_subjects=int(np.unique(group_array).size),
        differences=differences,
    )
