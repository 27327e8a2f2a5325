"""Per-subject rim+ counts from lesion probabilities, and how well they agree with the truth.

:func:`subject_counts` turns lesion probabilities into what a clinician reads per scan: the
expected count with an interval of about 90 % (Poisson-binomial), P(at least one rim+ lesion), P(four or
more: the prognostic cut-off used in the literature) and the count at the decision threshold.
:func:`subject_count_metrics` scores those counts against the true ones with subject-bootstrap
intervals, warning (never silently) about skipped resamples and degenerate intervals.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.utils import check_random_state

from rimclf._validation import check_int, check_real
from rimclf.defaults import COUNT_INTERVAL_RULE
from rimclf.errors import CohortError, DataWarning
from rimclf.metrics._calibration import count_interval, poisson_binomial
from rimclf._data_checks import check_groups, check_scores
from rimclf.metrics._counts import _concordance
from rimclf.metrics._ranking import roc_auc

#: the count categories clinical studies report: 0, 1-3 and 4 or more rim+ lesions
CATEGORY_EDGES = (1, 4)


def count_category(count: object) -> np.ndarray:
    """0 for no rim+ lesion, 1 for 1-3, 2 for 4 or more.

    Examples
    --------
    >>> count_category([0, 1, 3, 4, 9]).tolist()
    [0, 1, 1, 2, 2]
    """
    return np.searchsorted(np.asarray(CATEGORY_EDGES), np.asarray(count, dtype=np.float64), side="right")


def subject_counts(probability: object, groups: object, *, threshold: float | None = None,
                   y_true: object = None, level: float = 0.9,
                   interval_rule: str = COUNT_INTERVAL_RULE) -> pd.DataFrame:
    """What the lesion probabilities say about each subject's number of rim+ lesions.

    Parameters
    ----------
    probability : array-like of shape (n_lesions,)
        Calibrated rim+ probability of every lesion.
    groups : array-like of shape (n_lesions,)
        Subject (or scan) of every lesion.
    threshold : float, optional
        Decision threshold: adds ``n_rim_pos_predicted``.
    y_true : array-like of shape (n_lesions,), optional
        Reference labels: adds ``n_rim_pos_true``.
    level : float, default=0.9
        Intended probability of the count interval.
    interval_rule : {"nearest", "at_least"}, default="nearest"
        Where the interval stops (:func:`count_interval`): at the probability nearest to
        ``level``, or at the first reaching it.

    Returns
    -------
    pandas.DataFrame
        Index: the subjects (sorted); columns ``n_lesions``, ``expected_rim_pos`` (sum of the
        probabilities), ``rim_pos_low``/``rim_pos_high`` (the most probable counts of the
        Poisson-binomial count distribution, lesions taken as independent, holding about ``level``:
        :func:`count_interval`), ``p_rim_pos_in_interval`` (their probability), ``p_any_rim_pos``,
        ``p_rim_pos_4plus``, then ``n_rim_pos_predicted`` and ``n_rim_pos_true`` when asked.

    Examples
    --------
    >>> counts = subject_counts([0.9, 0.8, 0.05, 0.5, 0.5], ["a", "a", "a", "b", "b"], threshold=0.5)
    >>> counts[["expected_rim_pos", "rim_pos_low", "rim_pos_high", "p_rim_pos_in_interval"]].to_numpy().tolist()
    [[1.75, 1.0, 2.0, 0.945], [1.0, 0.0, 2.0, 1.0]]
    >>> counts["n_rim_pos_predicted"].tolist()
    [2, 2]
    """
    group_array = np.asarray(groups)
    p = check_scores(probability, group_array.shape[0], "probability")
    group_array = check_groups(group_array, p.size)
    level = check_real(level, "level", min=0.0, max=1.0, closed="neither")
    if threshold is not None:
        threshold = check_real(threshold, "threshold")
    subjects, codes = np.unique(group_array, return_inverse=True)
    rows = []
    for index in range(subjects.size):
        member = p[codes == index]
        pmf = poisson_binomial(member)
        low, high = count_interval(pmf, level, interval_rule)
        rows.append((member.size, member.sum(), low, high, float(pmf[low:high + 1].sum()), 1.0 - pmf[0],
                     float(pmf[4:].sum())))
    table = pd.DataFrame(rows, index=pd.Index(subjects, name="subject"),
                         columns=["n_lesions", "expected_rim_pos", "rim_pos_low", "rim_pos_high", "p_rim_pos_in_interval",
                                  "p_any_rim_pos", "p_rim_pos_4plus"])
    rounded = ["expected_rim_pos", "p_rim_pos_in_interval", "p_any_rim_pos", "p_rim_pos_4plus"]
    table[rounded] = table[rounded].clip(lower=0.0).round(3)
    if threshold is not None:
        table["n_rim_pos_predicted"] = np.bincount(codes, p >= threshold, subjects.size).astype(np.int64)
    if y_true is not None:
        labels = np.asarray(y_true, dtype=np.float64)
        if labels.shape != p.shape or np.isnan(labels).any():
            raise CohortError("y_true must give a 0/1 label for every lesion")
        table["n_rim_pos_true"] = np.bincount(codes, labels, subjects.size).astype(np.int64)
    return table


def _rank_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula, ties counted half; NaN with one class."""
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if not n_pos or not n_neg:
        return float("nan")
    ranks = stats.rankdata(scores)
    return float((ranks[labels == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def count_scores(n_true: object, expected: object, low: object, high: object, p_any: object,
                 predicted: object = None) -> dict[str, float]:
    """How well per-subject (or per-scan) rim+ counts agree with the true counts.

    The plain-array form of what :func:`subject_count_metrics` scores, fast enough to run on
    every bootstrap resample of a benchmark.

    Parameters
    ----------
    n_true, expected, low, high, p_any : array-like of shape (n_subjects,)
        The true count, the expected count, the ends of its interval and P(at least one rim+)
        (:func:`subject_counts`' ``n_rim_pos_true``, ``expected_rim_pos``, ``rim_pos_low``,
        ``rim_pos_high``, ``p_any_rim_pos``).
    predicted : array-like of shape (n_subjects,), optional
        The count at the decision threshold.

    Returns
    -------
    dict
        ``count_ccc``, ``count_mae``, ``count_bias`` (of the expected count), ``count_coverage``
        (fraction of subjects whose interval holds the true count), ``subject_auc_any`` (ROC AUC of
        P(>= 1) for "has a rim+ lesion"; NaN when all subjects or none have one) and, with
        ``predicted``, ``threshold_count_ccc``, ``threshold_count_mae``, ``threshold_count_bias``
        and ``category_agreement`` (0 / 1-3 / >= 4 the same).

    Examples
    --------
    >>> scores = count_scores([0, 1, 3], [0.2, 1.1, 2.5], [0, 0, 1], [1, 2, 4], [0.18, 0.7, 0.95], predicted=[0, 2, 4])
    >>> {key: round(value, 3) for key, value in scores.items()}    # doctest: +NORMALIZE_WHITESPACE
    {'count_ccc': 0.959, 'count_mae': 0.267, 'count_bias': -0.067, 'count_coverage': 1.0, 'subject_auc_any': 1.0,
     'threshold_count_ccc': 0.857, 'threshold_count_mae': 0.667, 'threshold_count_bias': 0.667, 'category_agreement': 0.667}
    """
    true = np.asarray(n_true, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    scores = {
        "count_ccc": _concordance(true, expected),
        "count_mae": float(np.abs(expected - true).mean()),
        "count_bias": float((expected - true).mean()),
        "count_coverage": float(((np.asarray(low) <= true) & (true <= np.asarray(high))).mean()),
        "subject_auc_any": _rank_auc((true > 0).astype(int), np.asarray(p_any, dtype=np.float64)),
    }
    if predicted is not None:
        pred = np.asarray(predicted, dtype=np.float64)
        scores.update({
            "threshold_count_ccc": _concordance(true, pred),
            "threshold_count_mae": float(np.abs(pred - true).mean()),
            "threshold_count_bias": float((pred - true).mean()),
            "category_agreement": float((count_category(true) == count_category(pred)).mean()),
        })
    return scores


def _count_scores(counts: pd.DataFrame, predicted: str) -> dict[str, float]:
    true = counts["n_rim_pos_true"].to_numpy(dtype=np.float64)
    pred = counts[predicted].to_numpy(dtype=np.float64)
    scores = {
        "ccc": _concordance(true, pred),
        "mae": float(np.abs(pred - true).mean()),
        "bias": float((pred - true).mean()),
    }
    if predicted == "n_rim_pos_predicted":
        scores["category_agreement"] = float((count_category(true) == count_category(pred)).mean())
    else:
        scores["interval_coverage"] = float(((counts["rim_pos_low"] <= true) & (true <= counts["rim_pos_high"])).mean())
        any_true = (true > 0).astype(int)
        scores["subject_auc_any"] = roc_auc(any_true, counts["p_any_rim_pos"].to_numpy()) if 0 < any_true.sum() < any_true.size else float("nan")
    return scores


def subject_count_metrics(counts: pd.DataFrame, *, n_boot: int = 1000, alpha: float = 0.05,
                          random_state: object = None) -> pd.DataFrame:
    """Agreement of predicted and true per-subject counts with subject-bootstrap intervals.

    Parameters
    ----------
    counts : pandas.DataFrame
        :func:`subject_counts` with ``threshold`` and ``y_true``.

    Returns
    -------
    pandas.DataFrame
        Rows ``metric`` (``expected: ccc``, ``expected: mae``, ``expected: bias``,
        ``expected: interval_coverage``, ``expected: subject_auc_any`` (ROC AUC of
        P(at least one rim+) for "the subject has a rim+ lesion"), ``threshold: ccc``,
        ``threshold: mae``, ``threshold: bias``, ``threshold: category_agreement`` (0 / 1-3 / 4+
        the same)); columns ``value``, ``ci_low``, ``ci_high``, ``n_skipped``.

    Warns
    -----
    DataWarning
        When resamples were skipped (a metric undefined on them) or an interval is a single
        value (too few subjects of some kind to show any uncertainty).

    Examples
    --------
    >>> counts = subject_counts([0.9, 0.1, 0.2, 0.7, 0.3, 0.1], ["a", "a", "b", "b", "c", "c"],
    ...                         threshold=0.5, y_true=[1, 0, 0, 1, 0, 0])
    >>> table = subject_count_metrics(counts, n_boot=50, random_state=0)   # doctest: +SKIP
    """
    n_boot = check_int(n_boot, "n_boot", min=1)
    alpha = check_real(alpha, "alpha", min=0.0, max=1.0, closed="neither")
    missing = {"n_rim_pos_true", "n_rim_pos_predicted"} - set(counts)
    if missing:
        raise CohortError(f"counts lacks {sorted(missing)}: give subject_counts a threshold and y_true")
    estimate = {f"{kind}: {key}": value for kind, column in (("expected", "expected_rim_pos"), ("threshold", "n_rim_pos_predicted"))
                for key, value in _count_scores(counts, column).items()}
    rng = check_random_state(random_state)
    replicates = {name: [] for name in estimate}
    for _ in range(n_boot):
        sample = counts.iloc[rng.randint(0, len(counts), len(counts))]
        for kind, column in (("expected", "expected_rim_pos"), ("threshold", "n_rim_pos_predicted")):
            for key, value in _count_scores(sample, column).items():
                replicates[f"{kind}: {key}"].append(value)
    rows = []
    for name, value in estimate.items():
        values = np.asarray(replicates[name])
        valid = values[np.isfinite(values)]
        skipped = n_boot - valid.size
        low, high = (np.quantile(valid, [alpha / 2, 1 - alpha / 2]) if valid.size else (math.nan, math.nan))
        if skipped > 0.05 * n_boot:
            warnings.warn(f"{name}: {skipped} of {n_boot} subject resamples were skipped (the metric is undefined on "
                          "them); the interval is conditional on the others", DataWarning, stacklevel=2)
        if valid.size and low == high:
            warnings.warn(f"{name}: the {100 * (1 - alpha):.0f} % interval is the single value {low:.3g}; "
                          f"{len(counts)} subjects are too few to show its uncertainty", DataWarning, stacklevel=2)
        rows.append((name, value, float(low), float(high), skipped))
    return pd.DataFrame(rows, columns=["metric", "value", "ci_low", "ci_high", "n_skipped"])
