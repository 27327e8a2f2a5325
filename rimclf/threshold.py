"""The decision threshold of a trained model, chosen for a target specificity.

A rim+ probability becomes a decision (rim+ when ``probability >= threshold``) at a threshold
chosen on the training data. By default (``method="cv"``) the threshold is the most specific one
that reaches the target specificity on *out-of-fold* probabilities: the training lesions are
split by subject (:func:`rimclf.metrics.subject_folds`), a clone of the
classifier is fitted on each training part and predicts the held-out part, and the threshold is
read off those honest probabilities with :func:`rimclf.metrics.threshold_at_specificity`. The
default target, specificity 0.9, is QSMRim-Net's clinically relevant operating range
(false-positive rate at most 0.1). The features are extracted once and indexed per fold.

``method="in-sample"`` reads the threshold off the final model's probabilities on its own
training lesions: cheaper (no extra fits) but optimistic, because a network separates the
lesions it was trained on better than new ones, so its specificity on new subjects is usually
below the target. ``method="fixed"`` takes a threshold given by the user.

The target is an *operating point* (:func:`choose_threshold`): a specificity (the default), a
sensitivity, the largest F1, or ``"count"``: the threshold at which the number of lesions called
rim+ equals the number of rim+ lesions, so that per-subject counts at the threshold are unbiased
on the training subjects. A :class:`~rimclf.RimModel` applies it to its calibrated probabilities.
"""

from __future__ import annotations

import logging
import math
import warnings
import dataclasses
from dataclasses import asdict, dataclass

import numpy as np
from sklearn.base import clone

from rimclf._validation import check_real, is_real
from rimclf.defaults import OPERATING_POINTS, THRESHOLD_METHODS
from rimclf.errors import DataWarning, ParameterError
from rimclf import metrics
from rimclf.metrics import partial_roc_auc, pr_auc, roc_auc, threshold_at_specificity

logger = logging.getLogger(__name__)



@dataclass(frozen=True)
class ThresholdChoice:
    """A decision threshold and how it was chosen.

    Attributes
    ----------
    value : float
        Rim+ when ``probability >= value``.
    method : {"cv", "in-sample", "fixed"}
        Out-of-fold probabilities of a subject-grouped CV, the final model's probabilities on its
        training lesions, or a value given by the user.
    target_specificity : float or None
        Specificity the threshold was chosen for (None for "fixed").
    n_splits : int or None
        CV folds (``method="cv"`` only).
    specificity, sensitivity : float or None
        Reached at ``value`` on the probabilities the threshold was chosen on (None for "fixed").
    pauc, pr_auc, roc_auc : float or None
        Partial ROC AUC (FPR <= 0.1), PR AUC and ROC AUC of the out-of-fold probabilities
        (``method="cv"`` only): a cross-validated estimate of the model's performance.
    operating_point : {"specificity", "sensitivity", "f1", "count"} or None
        What the threshold was chosen for (None: files of rimclf before operating points, and
        "fixed"; they were chosen for ``target_specificity``).
    target_sensitivity : float or None
        Sensitivity the threshold was chosen for (``operating_point="sensitivity"``).
    ppv : float or None
        Positive predictive value (precision) at ``value`` on the same probabilities.
    brier, log_loss : float or None
        Brier score and log-loss of the (calibrated) out-of-fold probabilities.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([0, 0, 0, 1, 0, 0, 0, 0, 1, 0])
    >>> probability = np.array([0.1, 0.2, 0.3, 0.9, 0.4, 0.2, 0.7, 0.1, 0.6, 0.3])
    >>> choice = threshold_from_probabilities(y, probability, 0.9, method="in-sample")
    >>> choice.value, choice.specificity, choice.sensitivity
    (0.9, 1.0, 0.5)
    >>> print(choice.describe())
    threshold 0.9 (in-sample): specificity 1.000, sensitivity 0.500 on the training lesions (optimistic)
    >>> ThresholdChoice.from_dict(choice.to_dict()) == choice      # what a model file stores
    True
    >>> print(ThresholdChoice(0.42, "fixed").describe())
    threshold 0.42 (fixed)
    """

    value: float
    method: str
    target_specificity: float | None = None
    n_splits: int | None = None
    specificity: float | None = None
    sensitivity: float | None = None
    pauc: float | None = None
    pr_auc: float | None = None
    roc_auc: float | None = None
    operating_point: str | None = None
    target_sensitivity: float | None = None
    ppv: float | None = None
    brier: float | None = None
    log_loss: float | None = None

    def to_dict(self) -> dict:
        """The fields as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, fields: object) -> ThresholdChoice:
        """The choice :meth:`to_dict` describes, after checking its keys and values.

        Raises
        ------
        ParameterError
            ``fields`` is not a dict of the known keys with ``value`` and ``method``, the method
            is not one of :data:`THRESHOLD_METHODS`, or a number is not finite.
        """
        known = {field.name for field in dataclasses.fields(cls)}
        if not isinstance(fields, dict) or not set(fields) <= known or not {"value", "method"} <= set(fields):
            shown = sorted(fields) if isinstance(fields, dict) else type(fields).__name__
            raise ParameterError(
                f"threshold must have keys 'value', 'method' and optionally {sorted(known - {'value', 'method'})}; got {shown}"
            )
        if fields["method"] not in THRESHOLD_METHODS:
            raise ParameterError(f"threshold method {fields['method']!r} is not one of {THRESHOLD_METHODS}")
        if fields.get("operating_point") not in (None, *OPERATING_POINTS):
            raise ParameterError(f"threshold operating_point {fields['operating_point']!r} is not one of {OPERATING_POINTS}")
        for key, value in fields.items():
            if key not in ("method", "operating_point") and value is not None and (not is_real(value) or not math.isfinite(value)):
                raise ParameterError(f"threshold['{key}'] must be a finite number, got {value!r}")
        for key in ("value", "target_specificity", "specificity", "sensitivity", "target_sensitivity", "ppv"):
            value = fields.get(key)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ParameterError(f"threshold['{key}']={value!r} is not valid; it must be a probability in [0, 1]")
        return cls(**fields)

    def describe(self) -> str:
        """One line for people: the threshold, how it was chosen and what it reaches."""
        text = f"threshold {self.value:.4g} ({self.method}"
        if self.operating_point not in (None, "specificity"):
            target = f" {self.target_sensitivity:g}" if self.operating_point == "sensitivity" else ""
            text += f", operating point {self.operating_point}{target}"
        if self.method == "cv":
            text += f", {self.n_splits}-fold subject-grouped CV"
        text += ")"
        if self.specificity is not None:
            where = "out of fold" if self.method == "cv" else "on the training lesions (optimistic)"
            text += f": specificity {self.specificity:.3f}, sensitivity {self.sensitivity:.3f}"
            text += f", PPV {self.ppv:.3f} {where}" if self.ppv is not None else f" {where}"
        if self.pauc is not None:
            text += f"; out-of-fold pAUC {self.pauc:.3f}, PR AUC {self.pr_auc:.3f}, ROC AUC {self.roc_auc:.3f}"
        if self.brier is not None:
            text += f", Brier {self.brier:.4f}, log-loss {self.log_loss:.4f}"
        return text


def check_specificity(value: object, name: str = "target_specificity") -> float:
    """A specificity in (0, 1), else :class:`~rimclf.errors.ParameterError` naming ``name``.

    Examples
    --------
    >>> check_specificity(0.9)
    0.9
    >>> check_specificity(1.0)
    Traceback (most recent call last):
    ...
    rimclf.errors.ParameterError: target_specificity=1.0 is not valid; it must be a number in (0, 1); e.g. 0.9
    """
    return check_real(value, name, min=0.0, max=1.0, closed="neither", hint="e.g. 0.9")


def threshold_from_probabilities(
    y: np.ndarray, probability: np.ndarray, target_specificity: float, *, method: str, n_splits: int | None = None
) -> ThresholdChoice:
    """The most specific threshold with the best sensitivity at ``target_specificity``.

    When no threshold that calls any lesion rim+ reaches the target on these probabilities, the
    threshold is set just above the highest probability (nothing in these data is called rim+),
    with a :class:`~rimclf.errors.DataWarning`.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([0, 0, 0, 1, 0, 0, 0, 0, 1, 0])
    >>> probability = np.array([0.1, 0.2, 0.3, 0.9, 0.4, 0.2, 0.7, 0.1, 0.6, 0.3])
    >>> choice = threshold_from_probabilities(y, probability, target_specificity=0.9, method="cv", n_splits=5)
    >>> choice.value
    0.9
    >>> round(choice.pauc, 3)                               # out-of-fold scores with method="cv"
    0.737
    """
    y = np.asarray(y, dtype=int)
    probability = np.asarray(probability, dtype=np.float64)
    value = threshold_at_specificity(y, probability, target_specificity)
    if not math.isfinite(value):
        value = float(np.nextafter(probability.max(), np.inf))
        warnings.warn(
            f"no threshold reaches specificity {target_specificity} on the {'out-of-fold' if method == 'cv' else method} probabilities while calling "
            f"any lesion rim+; using {value:.6g}, just above the highest probability",
            DataWarning,
            stacklevel=2,
        )
    decision = probability >= value
    negatives, positives = y == 0, y == 1
    specificity = float((~decision[negatives]).mean())
    sensitivity = float(decision[positives].mean())
    scores = {}
    if method == "cv":
        scores = {"pauc": partial_roc_auc(y, probability), "pr_auc": pr_auc(y, probability), "roc_auc": roc_auc(y, probability)}
    return ThresholdChoice(
        value=float(value), method=method, target_specificity=float(target_specificity), n_splits=n_splits,
        specificity=specificity, sensitivity=sensitivity, **scores,
    )


def _candidate_thresholds(y: np.ndarray, probability: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct probabilities (descending) and the true and all positives called at each as threshold."""
    order = np.argsort(-probability, kind="stable")
    sorted_p, sorted_y = probability[order], y[order]
    last = np.flatnonzero(np.r_[sorted_p[1:] != sorted_p[:-1], True])  # last index of each run of ties
    return sorted_p[last], np.cumsum(sorted_y)[last], last + 1


def _operating_value(y: np.ndarray, probability: np.ndarray, operating_point: str, target_sensitivity: float) -> float:
    values, true_pos, called = _candidate_thresholds(y, probability)
    n_pos = int(y.sum())
    if operating_point == "sensitivity":
        return float(values[np.argmax(true_pos >= target_sensitivity * n_pos - 1e-9)])
    if operating_point == "f1":
        f1 = 2.0 * true_pos / (called + n_pos)
        return float(values[np.argmax(f1)])  # the highest threshold of the best F1
    return float(values[np.argmin(np.abs(called - n_pos))])  # "count": called == n_pos as near as ties allow


def choose_threshold(
    y: np.ndarray, probability: np.ndarray, operating_point: str = "specificity", *, target_specificity: float = 0.9,
    target_sensitivity: float = 0.8, method: str, n_splits: int | None = None,
) -> ThresholdChoice:
    """The threshold of an operating point on these probabilities, with what it reaches there.

    Parameters
    ----------
    y : array-like of shape (n_lesions,)
        0/1 labels.
    probability : array-like of shape (n_lesions,)
        Rim+ probabilities (out of fold with ``method="cv"``).
    operating_point : {"specificity", "sensitivity", "f1", "count"}, default="specificity"
        ``"specificity"``: :func:`threshold_from_probabilities` for ``target_specificity``;
        ``"sensitivity"``: the highest threshold whose sensitivity reaches ``target_sensitivity``;
        ``"f1"``: the highest threshold of the largest F1; ``"count"``: the threshold at which as
        many lesions are called rim+ as are rim+ (nearest, where ties allow no exact match).
    target_specificity, target_sensitivity : float
    method : {"cv", "in-sample"}
    n_splits : int, optional

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([0, 0, 0, 1, 0, 0, 0, 0, 1, 0])
    >>> probability = np.array([0.1, 0.2, 0.3, 0.9, 0.4, 0.2, 0.7, 0.1, 0.6, 0.3])
    >>> choice = choose_threshold(y, probability, "count", method="in-sample")
    >>> choice.value, choice.sensitivity, choice.ppv        # two lesions called, one of them rim+
    (0.7, 0.5, 0.5)
    >>> choose_threshold(y, probability, "sensitivity", target_sensitivity=1.0, method="in-sample").value
    0.6
    """
    if operating_point not in OPERATING_POINTS:
        raise ParameterError(f"operating_point={operating_point!r} is not valid; it must be one of {OPERATING_POINTS}")
    y = np.asarray(y, dtype=int)
    probability = np.asarray(probability, dtype=np.float64)
    if operating_point == "specificity":
        choice = threshold_from_probabilities(y, probability, target_specificity, method=method, n_splits=n_splits)
    else:
        check_real(target_sensitivity, "target_sensitivity", min=0.0, max=1.0, closed="right", hint="e.g. 0.8")
        value = _operating_value(y, probability, operating_point, float(target_sensitivity))
        decision = probability >= value
        scores = {}
        if method == "cv":
            scores = {"pauc": partial_roc_auc(y, probability), "pr_auc": pr_auc(y, probability), "roc_auc": roc_auc(y, probability)}
        choice = ThresholdChoice(
            value=value, method=method, n_splits=n_splits, specificity=float((~decision[y == 0]).mean()),
            sensitivity=float(decision[y == 1].mean()), **scores,
        )
    decision = probability >= choice.value
    return dataclasses.replace(
        choice, operating_point=operating_point,
        target_specificity=float(target_specificity) if operating_point == "specificity" else None,
        target_sensitivity=float(target_sensitivity) if operating_point == "sensitivity" else None,
        ppv=float((decision & (y == 1)).sum() / decision.sum()) if decision.any() else None,
    )


def threshold_folds(y: np.ndarray, groups: np.ndarray, n_splits: int, random_state: object) -> list[tuple[np.ndarray, np.ndarray]]:
    """The folds of the threshold CV: :func:`rimclf.metrics.subject_folds` with at least 2 rim+
    lesions in every training part (:class:`~rimclf.errors.ParameterError` naming ``threshold_cv``).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> rng = np.random.default_rng(0)
    >>> y = np.tile([1, 0, 0, 0, 0], 8)                      # 8 subjects of 5 lesions
    >>> groups = np.repeat([f"{i:02d}" for i in range(1, 9)], 5)
    >>> X = rng.normal(size=(40, 3)) + y[:, None]             # features, extracted once
    >>> folds = threshold_folds(y, groups, 4, random_state=0)
    >>> len(folds)
    4
    >>> threshold_folds(y, groups, 9, random_state=0)
    Traceback (most recent call last):
    ...
    rimclf.errors.ParameterError: threshold_cv=9 folds but the data hold only 8 subjects; use fewer folds
    """
    return metrics.subject_folds(y, groups, n_splits, random_state, min_train_positives=2, name="threshold_cv")


def fold_of(folds, n: int) -> np.ndarray:
    """The fold (0, 1, ...) whose test part holds each of ``n`` rows; -1 for a row in none.

    Examples
    --------
    >>> import numpy as np
    >>> fold_of([(np.array([2, 3]), np.array([0, 1])), (np.array([0, 1]), np.array([2, 3]))], 4)
    array([0, 0, 1, 1])
    """
    fold = np.full(int(n), -1, dtype=np.int64)
    for index, (_, test) in enumerate(folds):
        fold[np.asarray(test)] = index
    return fold


def out_of_fold_probabilities(classifier, X, y: np.ndarray, groups: np.ndarray, folds, *, return_models: bool = False):
    """Rim+ probability of every lesion from a clone of ``classifier`` fitted without its subject.

    With ``return_models``, also the fitted clones, one per fold (a fold ensemble's members).

    Each fit gets the training subjects as ``groups`` when the classifier uses them (e.g.
    ``train_split=GroupValidSplit(...)``; see :func:`rimclf.metrics.group_fit_params`), with
    scikit-learn's metadata routing on or off.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> rng = np.random.default_rng(0)
    >>> y = np.tile([1, 0, 0, 0, 0], 8)                      # 8 subjects of 5 lesions
    >>> groups = np.repeat([f"{i:02d}" for i in range(1, 9)], 5)
    >>> X = rng.normal(size=(40, 3)) + y[:, None]             # features, extracted once
    >>> probability = out_of_fold_probabilities(LogisticRegression(), X, y, groups, threshold_folds(y, groups, 4, 0))
    >>> print(threshold_from_probabilities(y, probability, 0.9, method="cv", n_splits=4).describe())
    threshold 0.3351 (cv, 4-fold subject-grouped CV): specificity 0.906, sensitivity 0.750 out of fold; out-of-fold pAUC 0.745, PR AUC 0.772, ROC AUC 0.898
    """
    groups = np.asarray(groups)
    probability = np.full(len(y), np.nan)
    models = []
    for index, (train, test) in enumerate(folds):
        logger.info(
            "threshold CV fold %d/%d: training on %d lesions of %d subjects, predicting %d lesions of %d subjects",
            index + 1, len(folds), len(train), len(np.unique(groups[train])), len(test), len(np.unique(groups[test])),
        )
        fold_classifier = clone(classifier)
        fold_classifier.fit(X[train], y[train], **metrics.group_fit_params(fold_classifier, groups[train]))
        probability[test] = fold_classifier.predict_proba(X[test])[:, 1]
        models.append(fold_classifier)
    return (probability, models) if return_models else probability
