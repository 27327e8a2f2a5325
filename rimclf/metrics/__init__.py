"""Evaluation metrics for rim+ lesion classification, sklearn scorers and subject bootstraps.

Ranking metrics take ``(y_true, y_score)`` with ``y_true`` in {0, 1} (1 = rim+) and ``y_score``
a continuous score where higher means "more likely rim+" (a probability, a logit or a decision
function). :data:`SCORERS` wraps them for ``cross_val_score(scoring=...)``. Confidence intervals
resample whole subjects (:func:`bootstrap_ci`, :func:`paired_bootstrap`), because lesions of one
patient are not independent; for the same reason cross-validation splits by subject
(:func:`subject_folds`).
"""

from rimclf.metrics._bootstrap import (
    BootstrapResult,
    PairedBootstrapResult,
    bootstrap_ci,
    bootstrap_p_value,
    paired_bootstrap,
    subject_bootstrap,
    subject_bootstrap_indices,
)
from rimclf.metrics._calibration import (
    brier_score,
    calibration_slope,
    count_interval,
    expected_calibration_error,
    log_loss_score,
    logit,
    poisson_binomial,
)
from rimclf.metrics._counts import CountAgreement, concordance, count_agreement
from rimclf.metrics._folds import group_fit_params, subject_folds
from rimclf.metrics._subject_counts import count_category, count_scores, subject_count_metrics, subject_counts
from rimclf.metrics._ranking import (
    SCORERS,
    partial_roc_auc,
    pr_auc,
    roc_auc,
    sensitivity_at_specificity,
    threshold_at_specificity,
)

__all__ = [
    "SCORERS",
    "BootstrapResult",
    "CountAgreement",
    "PairedBootstrapResult",
    "bootstrap_ci",
    "bootstrap_p_value",
    "brier_score",
    "calibration_slope",
    "concordance",
    "count_agreement",
    "count_category",
    "count_interval",
    "count_scores",
    "expected_calibration_error",
    "group_fit_params",
    "log_loss_score",
    "logit",
    "paired_bootstrap",
    "poisson_binomial",
    "partial_roc_auc",
    "pr_auc",
    "roc_auc",
    "sensitivity_at_specificity",
    "subject_bootstrap",
    "subject_bootstrap_indices",
    "subject_count_metrics",
    "subject_counts",
    "subject_folds",
    "threshold_at_specificity",
]
