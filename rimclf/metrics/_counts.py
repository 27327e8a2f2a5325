"""Per-subject agreement of true and predicted rim+ counts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from rimclf.errors import CohortError
from rimclf._data_checks import check_groups, check_labels


@dataclass(frozen=True)
class CountAgreement:
    """Agreement between true and predicted numbers of rim+ lesions per subject.

    Attributes
    ----------
    per_subject : pandas.DataFrame
        Index ``participant_id``; columns ``n_true``, ``n_pred``, ``difference`` (pred - true).
    mae : float
        Mean absolute count error over subjects.
    bias : float
        Mean of ``n_pred - n_true`` (positive = over-counting).
    ccc : float
        Lin's concordance correlation coefficient between the counts (1 = perfect agreement;
        unlike Pearson/Spearman it penalises a systematic offset). 1.0 when both count vectors
        are constant and equal, 0.0 when constant and different.
    spearman : float
        Spearman rank correlation of the counts (NaN when either count vector is constant).
    exact_fraction : float
        Fraction of subjects whose predicted count equals the true count.

    Examples
    --------
    >>> import numpy as np
    >>> y_true = np.array([0, 1, 1, 0, 0, 0, 1, 0])
    >>> y_pred = np.array([0, 1, 0, 0, 1, 0, 1, 1])
    >>> groups = ["01", "01", "01", "02", "02", "03", "03", "03"]
    >>> agreement = count_agreement(y_true, y_pred, groups)
    >>> agreement.per_subject
                    n_true  n_pred  difference
    participant_id
    01                   2       1          -1
    02                   0       1           1
    03                   1       2           1
    >>> agreement.n_subjects
    3
    """

    per_subject: pd.DataFrame
    mae: float
    bias: float
    ccc: float
    spearman: float
    exact_fraction: float

    @property
    def n_subjects(self) -> int:
        """Number of subjects compared."""
        return len(self.per_subject)


def _concordance(x: np.ndarray, y: np.ndarray) -> float:
    mean_gap = x.mean() - y.mean()
    denominator = x.var() + y.var() + mean_gap**2
    if denominator == 0.0:
        return 1.0
    covariance = ((x - x.mean()) * (y - y.mean())).mean()
    return float(2.0 * covariance / denominator)


def concordance(x: object, y: object) -> float:
    """Lin's concordance correlation coefficient of two equally long vectors (e.g. true and
    predicted per-subject counts): 1 perfect agreement, 0 none; a systematic offset lowers it.

    Examples
    --------
    >>> concordance([0, 1, 2, 4], [0, 1, 2, 4])
    1.0
    >>> round(concordance([0, 1, 2, 4], [1, 2, 3, 5]), 3)       # off by one everywhere
    0.814
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise CohortError(f"concordance needs two 1-D vectors of one length, got shapes {x.shape} and {y.shape}")
    return _concordance(x, y)


def count_agreement(y_true: object, y_pred: object, groups: object) -> CountAgreement:
    """Compare per-subject rim+ counts: a clinically read summary of a lesion classifier.

    Parameters
    ----------
    y_true : array-like of shape (n_lesions,)
        True labels, 1 = rim+ (a single class is allowed).
    y_pred : array-like of shape (n_lesions,)
        Predicted decisions 0/1, e.g. ``y_score >= threshold_at_specificity(...)``.
    groups : array-like of shape (n_lesions,)
        Subject of every lesion (``participant_id``).

    Returns
    -------
    CountAgreement

    Examples
    --------
    >>> import numpy as np
    >>> y_true = np.array([0, 1, 1, 0, 0, 0, 1, 0])
    >>> y_pred = np.array([0, 1, 0, 0, 1, 0, 1, 1])
    >>> groups = ["01", "01", "01", "02", "02", "03", "03", "03"]
    >>> agreement = count_agreement(y_true, y_pred, groups)
    >>> agreement.mae, round(agreement.bias, 3), agreement.exact_fraction
    (1.0, 0.333, 0.0)
    """
    labels = check_labels(y_true, both_classes=False)
    decisions = np.asarray(y_pred)
    if decisions.shape != labels.shape:
        raise CohortError(f"y_pred has shape {decisions.shape} but y_true has {labels.shape}")
    decisions = check_labels(decisions, "y_pred", both_classes=False)
    group_array = check_groups(groups, labels.size)
    per_subject = (
        pd.DataFrame({"participant_id": group_array, "n_true": labels, "n_pred": decisions})
        .groupby("participant_id", sort=True)
        .sum()
    )
    per_subject["difference"] = per_subject["n_pred"] - per_subject["n_true"]
    n_true = per_subject["n_true"].to_numpy(dtype=np.float64)
    n_pred = per_subject["n_pred"].to_numpy(dtype=np.float64)
    if np.ptp(n_true) == 0 or np.ptp(n_pred) == 0:
        spearman = float("nan")
    else:
        spearman = float(stats.spearmanr(n_true, n_pred).statistic)
    return CountAgreement(
        per_subject=per_subject,
        mae=float(np.abs(n_pred - n_true).mean()),
        bias=float((n_pred - n_true).mean()),
        ccc=_concordance(n_true, n_pred),
        spearman=spearman,
        exact_fraction=float((n_pred == n_true).mean()),
    )


