"""Ranking metrics (ROC AUC, partial ROC AUC, PR AUC, sensitivity at specificity) and scorers."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.metrics import average_precision_score, make_scorer, roc_auc_score, roc_curve

from rimclf._data_checks import check_labels, check_scores
from rimclf.metrics._checks import check_fraction

Metric = Callable[[np.ndarray, np.ndarray], float]

# Ranking metrics are invariant to monotone transforms of the score, so a scorer may use
# ``decision_function`` (e.g. logistic regression) and falls back to ``predict_proba``.
_RANKING_RESPONSE = ("decision_function", "predict_proba")
# Absolute tolerance when comparing an achieved specificity with the requested one.
_SPECIFICITY_TOLERANCE = 1e-12


def roc_auc(y_true: object, y_score: object) -> float:
    """Area under the ROC curve (``sklearn.metrics.roc_auc_score``) with rimclf's input checks.

    Parameters
    ----------
    y_true : array-like of shape (n_lesions,)
        Labels, 1 = rim+, 0 = rim-. Both classes must be present.
    y_score : array-like of shape (n_lesions,)
        Scores, higher = more likely rim+. No NaN/Inf.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([0, 0, 0, 1, 0, 0, 0, 0, 1, 0])
    >>> score = np.array([0.1, 0.2, 0.3, 0.9, 0.4, 0.2, 0.7, 0.1, 0.6, 0.3])
    >>> roc_auc(y, score)
    0.9375
    """
    labels = check_labels(y_true)
    return float(roc_auc_score(labels, check_scores(y_score, labels.size)))


def partial_roc_auc(y_true: object, y_score: object, max_fpr: float = 0.1) -> float:
    """Standardised partial ROC AUC over false-positive rates ``[0, max_fpr]``.

    The McClish (1989) standardisation used by QSMRim-Net: the raw partial area is mapped to
    ``[0.5, 1]`` so that a random score gives 0.5 and a perfect one 1. Identical to
    ``sklearn.metrics.roc_auc_score(y_true, y_score, max_fpr=max_fpr)``.

    Parameters
    ----------
    y_true : array-like of shape (n_lesions,)
        Labels, 1 = rim+.
    y_score : array-like of shape (n_lesions,)
        Scores, higher = more likely rim+.
    max_fpr : float, default=0.1
        Upper false-positive rate, in (0, 1]; 1 gives the full ROC AUC.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([0, 0, 0, 1, 0, 0, 0, 0, 1, 0])
    >>> score = np.array([0.1, 0.2, 0.3, 0.9, 0.4, 0.2, 0.7, 0.1, 0.6, 0.3])
    >>> round(partial_roc_auc(y, score), 3)  # FPR <= 0.1
    0.737
    >>> round(partial_roc_auc(y, score, max_fpr=0.2), 3)
    0.826
    """
    max_fpr = check_fraction(max_fpr, "max_fpr", low_open=True)
    labels = check_labels(y_true)
    return float(roc_auc_score(labels, check_scores(y_score, labels.size), max_fpr=max_fpr))


def pr_auc(y_true: object, y_score: object) -> float:
    """Area under the precision-recall curve as average precision (``average_precision_score``).

    A random score gives the rim+ prevalence (about 0.04), not 0.5.

    Parameters
    ----------
    y_true : array-like of shape (n_lesions,)
        Labels, 1 = rim+.
    y_score : array-like of shape (n_lesions,)
        Scores, higher = more likely rim+.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([0, 0, 0, 1, 0, 0, 0, 0, 1, 0])
    >>> score = np.array([0.1, 0.2, 0.3, 0.9, 0.4, 0.2, 0.7, 0.1, 0.6, 0.3])
    >>> round(pr_auc(y, score), 3)  # chance level: the prevalence, 0.2
    0.833
    """
    labels = check_labels(y_true)
    return float(average_precision_score(labels, check_scores(y_score, labels.size)))


def _operating_point(y_true: object, y_score: object, specificity: float) -> tuple[float, float]:
    specificity = check_fraction(specificity, "specificity", low_open=False)
    labels = check_labels(y_true)
    scores = check_scores(y_score, labels.size)
    fpr, tpr, thresholds = roc_curve(labels, scores, drop_intermediate=False)
    allowed = (1.0 - fpr) >= specificity - _SPECIFICITY_TOLERANCE  # always holds at thresholds[0]
    best_sensitivity = tpr[allowed].max()
    # ROC points are ordered by decreasing threshold: the first point reaching the best
    # sensitivity has the highest threshold, hence the highest specificity among the ties.
    first = int(np.flatnonzero(allowed & (tpr == best_sensitivity))[0])
    return float(best_sensitivity), float(thresholds[first])


def sensitivity_at_specificity(y_true: object, y_score: object, specificity: float = 0.9) -> float:
    """Highest sensitivity among decision thresholds whose specificity is at least ``specificity``.

    A lesion is called rim+ when ``y_score >= threshold``. Every distinct score (and +inf, which
    calls nothing rim+) is a candidate threshold; the result is the largest true-positive rate of
    the candidates with ``1 - FPR >= specificity`` on these data (no interpolation between ROC
    points). It is a step function of the scores, so it moves in steps of ``1 / n_rim+``.

    Parameters
    ----------
    y_true : array-like of shape (n_lesions,)
        Labels, 1 = rim+.
    y_score : array-like of shape (n_lesions,)
        Scores, higher = more likely rim+.
    specificity : float, default=0.9
        Minimum specificity, in [0, 1].

    Returns
    -------
    float
        Sensitivity in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([0, 0, 0, 1, 0, 0, 0, 0, 1, 0])
    >>> score = np.array([0.1, 0.2, 0.3, 0.9, 0.4, 0.2, 0.7, 0.1, 0.6, 0.3])
    >>> sensitivity_at_specificity(y, score, specificity=0.9)
    0.5
    >>> sensitivity_at_specificity(y, score, specificity=0.8)
    1.0
    """
    return _operating_point(y_true, y_score, specificity)[0]


def threshold_at_specificity(y_true: object, y_score: object, specificity: float = 0.9) -> float:
    """The score threshold achieving :func:`sensitivity_at_specificity`.

    Among the thresholds with specificity ``>= specificity`` and the highest sensitivity, the
    highest one (i.e. the most specific) is returned. Use it as ``y_score >= threshold``; it may be
    ``+inf`` when no threshold reaches the specificity while calling any lesion rim+. It is in the
    units of ``y_score``: pass ``predict_proba(X)[:, 1]`` (e.g. out-of-fold, from
    ``cross_val_predict``) to get a probability threshold for new lesions.

    Parameters
    ----------
    y_true : array-like of shape (n_lesions,)
        Labels, 1 = rim+.
    y_score : array-like of shape (n_lesions,)
        Scores, higher = more likely rim+.
    specificity : float, default=0.9
        Minimum specificity, in [0, 1].

    Returns
    -------
    float
        A value of ``y_score`` (or ``inf``).

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([0, 0, 0, 1, 0, 0, 0, 0, 1, 0])
    >>> score = np.array([0.1, 0.2, 0.3, 0.9, 0.4, 0.2, 0.7, 0.1, 0.6, 0.3])
    >>> t = threshold_at_specificity(y, score, specificity=0.9)
    >>> float(t)
    0.9
    >>> int((score >= t).sum())  # lesions called rim+
    1
    """
    return _operating_point(y_true, y_score, specificity)[1]


# --------------------------------------------------------------------------- scorers
def _make_ranking_scorer(metric: Metric, **kwargs: float) -> Callable:
    return make_scorer(metric, response_method=_RANKING_RESPONSE, **kwargs)


#: sklearn scorers for ``cross_val_score(scoring=SCORERS["pauc"])`` or, all at once,
#: ``cross_validate(scoring=SCORERS)``. They use ``decision_function`` when the estimator has
#: one and ``predict_proba`` (rim+ column) otherwise.
SCORERS: dict[str, Callable] = {
    "pauc": _make_ranking_scorer(partial_roc_auc, max_fpr=0.1),
    "pr_auc": _make_ranking_scorer(pr_auc),
    "roc_auc": _make_ranking_scorer(roc_auc),
    "sens_at_spec90": _make_ranking_scorer(sensitivity_at_specificity, specificity=0.9),
}


