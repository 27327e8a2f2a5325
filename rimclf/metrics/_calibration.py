"""Whether probabilities mean what they say, and what they imply for a subject's rim+ count.

Calibration metrics take ``(y_true, probability)``: the Brier score, the log-loss, the
calibration slope (a logistic regression of the truth on ``logit(p)``: 1 is ideal, below 1
over-confident) and the expected calibration error (ECE). A subject's lesion probabilities give
the distribution of its rim+ count, the Poisson-binomial distribution (:func:`poisson_binomial`),
computed exactly by convolution: its mean is the expected count, its most probable counts an
interval of about 90 % (:func:`count_interval`).
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, log_loss

from rimclf._validation import check_choice, check_int, check_real
from rimclf.defaults import COUNT_INTERVAL_RULE, COUNT_INTERVAL_RULES
from rimclf.errors import CohortError
from rimclf._data_checks import check_labels, check_scores

#: probabilities are clipped to [EPS, 1 - EPS] before a logit or a log-loss
EPS = 1e-6


def logit(probability: object) -> np.ndarray:
    """``log(p / (1 - p))`` of probabilities clipped to ``[EPS, 1 - EPS]``.

    Examples
    --------
    >>> logit([0.5, 0.9]).round(3)
    array([0.   , 2.197])
    """
    p = np.clip(np.asarray(probability, dtype=np.float64), EPS, 1.0 - EPS)
    return np.log(p) - np.log1p(-p)


def _check_probability(probability: object, n_samples: int) -> np.ndarray:
    """Finite float64 probabilities in [0, 1], or CohortError naming ``probability``."""
    p = check_scores(probability, n_samples, "probability")
    if (p < 0).any() or (p > 1).any():
        raise CohortError("probability must lie in [0, 1]")
    return p


def _check(y_true: object, probability: object) -> tuple[np.ndarray, np.ndarray]:
    labels = check_labels(y_true, both_classes=False)
    return labels, _check_probability(probability, labels.size)


def brier_score(y_true: object, probability: object) -> float:
    """Mean squared difference between the probability and the 0/1 truth (0 is perfect).

    Examples
    --------
    >>> brier_score([0, 1, 0], [0.1, 0.8, 0.2])
    0.03
    """
    labels, p = _check(y_true, probability)
    return round(float(brier_score_loss(labels, p, labels=[0, 1])), 12)


def log_loss_score(y_true: object, probability: object) -> float:
    """Mean negative log-likelihood of the truth (probabilities clipped to ``[EPS, 1 - EPS]``).

    Examples
    --------
    >>> round(log_loss_score([0, 1], [0.2, 0.9]), 4)
    0.1643
    """
    labels, p = _check(y_true, probability)
    return float(log_loss(labels, np.clip(p, EPS, 1 - EPS), labels=[0, 1]))


def calibration_slope(y_true: object, probability: object) -> float:
    """Slope of a logistic regression of the truth on ``logit(p)``: 1 ideal, < 1 over-confident.

    NaN when ``y_true`` holds a single class.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(0.01, 0.99, 4000)
    >>> y = (rng.uniform(size=p.size) < p).astype(int)        # calibrated by construction
    >>> round(calibration_slope(y, p), 1)
    1.0
    >>> round(calibration_slope(y, 1 / (1 + np.exp(-3 * logit(p)))), 1)   # over-confident
    0.3
    """
    labels, p = _check(y_true, probability)
    if labels.min() == labels.max():
        return float("nan")
    fit = LogisticRegression(C=np.inf).fit(logit(p)[:, None], labels)
    return float(fit.coef_[0, 0])


def expected_calibration_error(y_true: object, probability: object, n_bins: int = 10) -> float:
    """Expected calibration error: over ``n_bins`` equal-width probability bins, the
    lesion-weighted mean of ``|mean(truth) - mean(probability)|`` (0 is perfect).

    Examples
    --------
    >>> expected_calibration_error([0, 0, 1, 1], [0.1, 0.1, 0.9, 0.7])
    0.15
    """
    labels, p = _check(y_true, probability)
    n_bins = check_int(n_bins, "n_bins", min=1)
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    gap = np.abs(np.bincount(bins, labels, n_bins) - np.bincount(bins, p, n_bins))
    return round(float(gap.sum() / max(count.sum(), 1)), 12)


def poisson_binomial(probability: object) -> np.ndarray:
    """Distribution of the number of successes of independent trials with these probabilities.

    Exact convolution, ``O(n^2)`` for ``n`` lesions (microseconds for a scan's lesions).

    Returns
    -------
    pmf : ndarray of shape (n + 1,)
        ``pmf[k]`` = P(exactly k rim+ lesions).

    Raises
    ------
    CohortError
        A probability that is NaN, infinite or outside [0, 1].

    Examples
    --------
    >>> poisson_binomial([0.5, 0.5]).tolist()
    [0.25, 0.5, 0.25]
    >>> poisson_binomial([]).tolist()
    [1.0]
    """
    p = np.asarray(probability)
    p = _check_probability(p.reshape(-1), p.size) if p.size else np.zeros(0)
    pmf = np.zeros(p.size + 1)
    pmf[0] = 1.0
    for n, q in enumerate(p, start=1):
        pmf[1:n + 1] = pmf[1:n + 1] * (1.0 - q) + pmf[:n] * q
        pmf[0] *= 1.0 - q
    return pmf


def count_interval(pmf: np.ndarray, level: float = 0.9, rule: str = COUNT_INTERVAL_RULE) -> tuple[int, int]:
    """Interval ``[low, high]`` of the most probable counts of a count distribution, at ``level``.

    The counts are taken from the most probable down (ties: the smaller count first) and the
    interval spans them. A Poisson-binomial distribution is log-concave, hence unimodal, so those
    counts are contiguous: each such interval is the shortest of its probability. Where to stop:

    - ``"nearest"``: when their total probability is nearest to ``level`` (on a tie, the larger
      set). The interval may hold a little less than ``level`` (say 86 %) or more; over many
      scans it holds the true count about ``level`` of the time.
    - ``"at_least"``: when it reaches ``level``. Never less, but counts are discrete: a scan with
      P(0) = 0.97 gets 0-0, a 97 % interval, so over many scans a 90 % interval holds the true
      count more often than 90 % (96-97 % on the project's phantom cohorts).

    Unlike the equal-tailed interval (each tail <= ``(1 - level) / 2``) neither wastes the lower
    tail's share when the count cannot go below 0: for a scan with P(0) = 0.5, P(1) = 0.42,
    P(2) = 0.08 the 90 % interval is 0-1 (92 %), not 0-2 (100 %).

    Parameters
    ----------
    pmf : ndarray of shape (n_counts,)
        Probability of each count 0, 1, ... (e.g. :func:`poisson_binomial`).
    level : float, default=0.9
        The interval's intended probability, in (0, 1).
    rule : {"nearest", "at_least"}, default="nearest"
        Where to stop (above).

    Returns
    -------
    tuple of int
        ``(low, high)``, both included.

    Examples
    --------
    >>> pmf = poisson_binomial([0.5] * 10)
    >>> count_interval(pmf, 0.9), round(float(pmf[3:8].sum()), 3)
    ((3, 7), 0.891)
    >>> count_interval(pmf, 0.9, rule="at_least")     # 2 and 8 tie: the smaller count is taken
    (2, 7)
    >>> count_interval(np.array([0.5, 0.42, 0.08]), 0.9)
    (0, 1)
    >>> pmf = np.array([0.6, 0.27, 0.13])
    >>> count_interval(pmf, 0.9), count_interval(pmf, 0.9, rule="at_least")   # 87 % is nearer than 100 %
    ((0, 1), (0, 2))
    """
    level = check_real(level, "level", min=0.0, max=1.0, closed="neither")
    check_choice(rule, "rule", COUNT_INTERVAL_RULES)
    pmf = check_scores(pmf, len(np.atleast_1d(pmf)), "pmf")
    if pmf.size == 0 or (pmf < 0).any():
        raise CohortError("pmf must hold the probabilities (>= 0) of the counts 0, 1, ...; got an empty or negative one")
    order = np.lexsort((np.arange(pmf.size), -pmf))  # most probable first, the smaller count on ties
    cumulative = np.cumsum(pmf[order])
    n_taken = min(int(np.searchsorted(cumulative, level - 1e-12, side="left")) + 1, pmf.size)
    if rule == "nearest" and n_taken > 1 and level - cumulative[n_taken - 2] < cumulative[n_taken - 1] - level:
        n_taken -= 1
    taken = order[:n_taken]
    return int(taken.min()), int(taken.max())
