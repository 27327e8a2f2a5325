"""RimModel: lesion features, QSMRim-Net and a decision threshold, trained and used as one.

A :class:`RimModel` is an sklearn estimator on lesion tables. Its fitted state
(:meth:`RimModel.fitted_state`) is what a model directory stores
(:func:`rimclf.save_model` / :func:`rimclf.load_model`); :mod:`rimclf.workflows` trains one on
a cohort (``rimclf train``) and applies one to new subjects (``rimclf predict``).
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.validation import check_is_fitted

from rimclf._data_checks import check_lesion_table
from rimclf._validation import Interval, Options, RandomStates, Types, is_int, validate_params
from rimclf.calibration import Calibration, calibrate_out_of_fold
from rimclf._bids import scan_name
from rimclf.cohort import cohort_scans, labelled_lesions
from rimclf.defaults import CALIBRATIONS, DEFAULT_MODEL, OPERATING_POINTS
from rimclf.metrics import brier_score, group_fit_params, log_loss_score
from rimclf.errors import ParameterError
from rimclf.threshold import (
    ThresholdChoice,
    choose_threshold,
    fold_of,
    out_of_fold_probabilities,
    threshold_folds,
)

logger = logging.getLogger(__name__)

#: The threshold of an unfitted classifier (skorch's default); a RimModel's fitted classifier
#: takes the model's ``threshold_``, so that ``model.classifier_.predict`` decides as the model does.
_NET_THRESHOLD = 0.5



def _skipped_scans(table: object) -> list[str]:
    """``"sub-<p>[_ses-<s>]: <reason>"`` for each scan :func:`rimclf.load_cohort` skipped (none for a
    table that did not come from it)."""
    scans = cohort_scans(table) if isinstance(table, pd.DataFrame) else None
    if scans is None:
        return []
    skipped = scans[scans["status"] == "skipped"]
    return [f"{scan_name(row.participant_id, row.session)}: {row.reason}" for row in skipped.itertuples()]

class RimModel(ClassifierMixin, BaseEstimator):
    """A rim+ lesion classifier on lesion tables: featurizer, QSMRim-Net and a decision threshold.

    ``fit(table)`` extracts the lesion features once, predicts every training lesion out of fold
    in a subject-grouped CV, fits a probability calibration on those out-of-fold probabilities
    (:mod:`rimclf.calibration`), chooses the decision threshold of ``operating_point`` on the
    calibrated ones (see :mod:`rimclf.threshold`) and fits the classifier on every labelled
    training lesion. ``predict_proba`` returns calibrated probabilities: of lesions given
    probability 0.2, about one in five is rim+ (on data like the training data). X is the lesion table of :func:`rimclf.load_cohort`; y defaults to
    its ``rim`` column and the subjects (for the threshold's grouped CV) to ``participant_id``.

    Defaults marked (*) come from :data:`rimclf.defaults.DEFAULT_MODEL`.

    Parameters
    ----------
    featurizer : LesionFeaturizer or None, default=None
        Default :func:`rimclf.features.make_featurizer` ``()`` (*): the default model's
        rim-profile features, without patches (give a featurizer with patches to a classifier
        with a CNN branch).
    classifier : QSMRimNetClassifier or None, default=None
        Default :func:`rimclf.classifier.make_classifier` ``(random_state=random_state)`` (*):
        the network's MLP branch; fitted as a clone. ``predict`` calls a lesion rim+ when ``predict_proba(X)[:, 1] >=
        threshold_``; the fitted ``classifier_.threshold`` is ``threshold_`` too (one
        threshold), and a ``classifier__threshold`` of its own is refused.
    operating_point : {"specificity", "sensitivity", "f1", "count"}, default="specificity" (*)
        How the threshold is set on the calibrated out-of-fold probabilities:
        ``target_specificity``, ``target_sensitivity``, the largest F1, or as many lesions called
        rim+ as are rim+ (``"count"``: unbiased per-subject counts at the threshold).
    target_specificity : float, default=0.9 (*)
        Specificity the threshold is chosen for (QSMRim-Net's FPR <= 0.1).
    target_sensitivity : float, default=0.8 (*)
        Sensitivity the threshold is chosen for with ``operating_point="sensitivity"``.
    calibration : {"sigmoid", "isotonic"} or None, default="sigmoid" (*)
        Calibration fitted on the threshold CV's out-of-fold probabilities (needs
        ``threshold_cv >= 2`` and no fixed ``threshold``; otherwise the probabilities are the
        classifier's own: the network's, or with the logistic blend the mean of it and the regression's). None: no calibration.
    threshold_cv : int, default=5 (*)
        Folds of the subject-grouped CV whose out-of-fold probabilities set the threshold
        (``threshold_cv`` extra fits). 0: read it off the training lesions' in-sample
        probabilities instead (no extra fit, but optimistic: expect a lower specificity on new
        subjects).
    threshold : float or None, default=None
        A fixed threshold; overrides ``threshold_cv`` and ``target_specificity``.
    ensemble : bool, default=False
        Predict with the mean of the network's probabilities from the ``threshold_cv`` fold
        models of the threshold CV and the final model (a fold ensemble; all are stored in the
        model file), calibrated and thresholded like a single model: the calibration and the
        threshold are fitted on the fold models' out-of-fold probabilities (single models; an
        ensemble's own out-of-fold probabilities would need a CV inside each fold). Needs
        ``threshold_cv >= 2`` and no fixed ``threshold``. Off by default: on two held-out phantom
        cohorts it changed pAUC by -0.004 [-0.016, +0.010] and +0.014 [-0.000, +0.030]
        (docs/benchmarks.md, "Calibration and operating points") at ``threshold_cv + 1`` times
        the prediction cost.
    random_state : int, RandomState or None, default=None
        Shuffles the threshold CV's folds; an int also seeds the default classifier
        (``classifier=None``), so that two fits give the same model. A classifier given has its
        own ``random_state``.

    Attributes
    ----------
    featurizer_ : LesionFeaturizer
    classifier_ : QSMRimNetClassifier
        Fitted on all training lesions.
    threshold_ : float
        Rim+ when ``predict_proba(table)[:, 1] >= threshold_``.
    threshold_choice_ : ThresholdChoice
        How the threshold was chosen and what it reached (out-of-fold scores with the CV).
    calibration_ : Calibration or None
        The map from the network's probabilities to calibrated ones (None: uncalibrated).
    oof_probability_ : ndarray of shape (n_lesions,) or None
        Out-of-fold rim+ probabilities of the training lesions (``threshold_cv >= 2``),
        calibrated when ``calibration_`` is set (in-sample for the calibration map itself).
    oof_network_probability_ : ndarray of shape (n_lesions,) or None
        The same before calibration: the fold networks' own probabilities.
    oof_labels_ : ndarray of shape (n_lesions,) or None
        The rim labels of those lesions (the labelled training lesions, in table order).
    ensemble_ : list of QSMRimNetClassifier
        The threshold-CV fold models predicting with ``classifier_`` (``ensemble=True``); empty otherwise.
    training_ : dict
        Subjects, lesions and rim+ lesions the model was trained on, and ``skipped_scans``: the scans
        :func:`rimclf.load_cohort` skipped (``"sub-<p>[_ses-<s>]: <reason>"``; empty for a table from elsewhere).
    classes_ : ndarray, ``[0, 1]``

    Examples
    --------
    >>> from rimclf import RimModel
    >>> from rimclf.classifier import make_classifier
    >>> from rimclf.features import make_featurizer
    >>> model = RimModel(make_featurizer(n_jobs=2), make_classifier(random_state=0), threshold_cv=3, random_state=0)
    >>> model.set_params(classifier__max_epochs=10).classifier.max_epochs      # nested parameters
    10
    >>> model.fit(table)                                   # doctest: +SKIP
    >>> print(model.threshold_choice_.describe())          # doctest: +SKIP
    >>> probability = model.predict_proba(new_table)[:, 1]   # doctest: +SKIP
    >>> calls = model.predict(new_table)                   # doctest: +SKIP

    ``RimModel()`` is the default model (:data:`rimclf.defaults.DEFAULT_MODEL`);
    :func:`rimclf.workflows.train_model` fits one on a cohort and saves it.
    """

    def __init__(self, featurizer=None, classifier=None, *, target_specificity: float = DEFAULT_MODEL.target_specificity,
                 threshold_cv: int = DEFAULT_MODEL.threshold_cv, threshold: float | None = None, random_state=None,
                 operating_point: str = DEFAULT_MODEL.operating_point,
                 target_sensitivity: float = DEFAULT_MODEL.target_sensitivity,
                 calibration: str | None = DEFAULT_MODEL.calibration, ensemble: bool = False) -> None:
        self.featurizer = featurizer
        self.classifier = classifier
        self.target_specificity = target_specificity
        self.threshold_cv = threshold_cv
        self.threshold = threshold
        self.random_state = random_state
        self.operating_point = operating_point
        self.target_sensitivity = target_sensitivity
        self.calibration = calibration
        self.ensemble = ensemble

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False  # X is a lesion table (pandas DataFrame of paths and ids)
        tags.input_tags.string = True
        tags.target_tags.required = False  # y defaults to the table's "rim" column
        tags.classifier_tags.multi_class = False  # rim+ (1) against rim- (0)
        return tags

    _parameter_constraints = {
        "featurizer": [Options(None), Types(BaseEstimator, description="a LesionFeaturizer (a scikit-learn estimator)")],
        "classifier": [Options(None), Types(BaseEstimator, description="a QSMRimNetClassifier (a scikit-learn estimator)")],
        "target_specificity": [Interval(float, 0, 1, closed="neither")],
        "threshold_cv": [Options(0), Interval(int, 2)],  # 0: in-sample; k >= 2: a k-fold CV
        "threshold": [Options(None), Interval(float, 0, 1)],
        "random_state": [RandomStates()],
        "operating_point": [Options(*OPERATING_POINTS)],
        "target_sensitivity": [Interval(float, 0, 1, closed="right")],
        "calibration": [Options(None, *CALIBRATIONS)],
        "ensemble": [Options(False, True)],
    }

    def _check_params(self) -> None:
        threshold = getattr(self.classifier, "threshold", _NET_THRESHOLD)
        if threshold != _NET_THRESHOLD:
            raise ParameterError(
                f"RimModel: classifier__threshold={threshold!r} is not used: a RimModel decides with its own "
                "threshold (chosen for target_specificity, or fixed); set RimModel(threshold=...) instead"
            )
        validate_params(self)
        if self.ensemble and (self.threshold is not None or self.threshold_cv < 2):
            raise ParameterError(
                f"RimModel: ensemble=True predicts with the models of the threshold CV, so it needs threshold_cv >= 2 and no "
                f"fixed threshold; got threshold_cv={self.threshold_cv!r}, threshold={self.threshold!r}"
            )

    def _featurizer(self):
        from rimclf.features import make_featurizer

        return make_featurizer() if self.featurizer is None else clone(self.featurizer)

    def _classifier(self):
        from rimclf.classifier import make_classifier

        if self.classifier is None:  # seeded like `rimclf train --seed`
            return make_classifier(random_state=int(self.random_state) if is_int(self.random_state) else None)
        return clone(self.classifier)

    def fit(self, X: pd.DataFrame, y=None, groups=None) -> RimModel:
        """Extract features, choose the threshold, fit the classifier on the labelled lesions of ``X``.

        ``y`` (default: the ``rim`` column) and ``groups`` (default: ``participant_id``) are
        optional; lesions without a label are left out (:func:`rimclf.cohort.labelled_lesions`).
        The classifier's fits get the subjects as ``groups`` when they use them (a classifier
        with ``train_split=GroupValidSplit(...)``; see :func:`rimclf.metrics.group_fit_params`).
        """
        self._check_params()
        table, y, groups = labelled_lesions(check_lesion_table(X, ("participant_id", "lesion_id")), y, groups)
        featurizer = self._featurizer().fit(table)
        classifier = self._classifier()
        check_classifier = getattr(classifier, "_check_params", None)
        if callable(check_classifier):  # a QSMRimNetClassifier's own checks, before the long feature extraction
            check_classifier()
        logger.info("extracting features of %d lesions of %d subjects", len(table), len(np.unique(groups)))
        features = featurizer.transform(table)
        oof, fold_models = None, []
        if self.threshold is None and self.threshold_cv >= 2:
            folds = threshold_folds(y, groups, int(self.threshold_cv), self.random_state)
            oof, fold_models = out_of_fold_probabilities(classifier, features, y, groups, folds, return_models=True)
        network_oof = oof
        logger.info("training the final model on all %d lesions", len(table))
        classifier.fit(features, y, **group_fit_params(classifier, groups))
        calibration = None
        targets = {"target_specificity": self.target_specificity, "target_sensitivity": self.target_sensitivity}
        if self.threshold is not None:
            choice = ThresholdChoice(value=float(self.threshold), method="fixed")
        elif oof is not None:
            calibration = calibrate_out_of_fold(y, oof, self.calibration, folds=fold_of(folds, len(y)))
            if calibration is not None:
                logger.debug("%s", calibration.describe())  # the CLI and the demo print it
                oof = calibration.apply(oof)
            choice = choose_threshold(y, oof, self.operating_point, method="cv", n_splits=int(self.threshold_cv), **targets)
            choice = dataclasses.replace(choice, brier=brier_score(y, oof), log_loss=log_loss_score(y, oof))
        else:
            in_sample = classifier.predict_proba(features)[:, 1]
            choice = choose_threshold(y, in_sample, self.operating_point, method="in-sample", **targets)
        if calibration is None and self.calibration is not None and oof is None:
            logger.warning("calibration=%r needs the threshold CV's out-of-fold probabilities (threshold_cv >= 2 and "
                           "no fixed threshold); the probabilities are the network's own, uncalibrated", self.calibration)
        logger.debug("%s", choice.describe())
        # the classifier's predict decides as the model does (on its own, uncalibrated probabilities)
        classifier.threshold = _raw_threshold(calibration, choice.value)
        self.featurizer_ = featurizer
        self.classifier_ = classifier
        self.threshold_choice_ = choice
        self.threshold_ = choice.value
        self.calibration_ = calibration
        self.oof_probability_ = oof
        self.oof_network_probability_ = network_oof
        self.oof_labels_ = None if oof is None else np.asarray(y, dtype=np.int64)
        self.ensemble_ = fold_models if self.ensemble else []
        self.training_ = {
            "n_subjects": int(len(np.unique(groups))),
            "n_lesions": int(len(table)),
            "n_rim_pos": int(y.sum()),
            "skipped_scans": _skipped_scans(X),
        }
        self.classes_ = np.array([0, 1])
        return self

    # ------------------------------------------------------------------ state
    def fitted_state(self) -> dict:
        """Everything a model file needs to rebuild this fitted model.

        Returns
        -------
        state : dict
            - ``"params"``: ``target_specificity``, ``threshold_cv``, ``random_state`` (an int or
              None; another random state is not kept), ``operating_point``,
              ``target_sensitivity``, ``calibration`` and ``ensemble``;
            - ``"calibration"``: ``calibration_`` (a :class:`~rimclf.calibration.Calibration` or None);
            - ``"ensemble"``: ``fitted_state()`` of each of ``ensemble_`` (an empty list without one);
            - ``"featurizer"``: the (stateless) ``featurizer_``;
            - ``"classifier"``: ``classifier_.fitted_state()`` (JSON parameters, module state dict,
              radiomics statistics and input sizes);
            - ``"threshold"``: ``threshold_choice_``;
            - ``"training"``: a copy of ``training_``.
        """
        check_is_fitted(self, "classifier_")
        random_state = self.random_state
        return {
            "params": {
                "target_specificity": self.target_specificity,
                "threshold_cv": self.threshold_cv,
                "random_state": int(random_state) if is_int(random_state) else None,
                "operating_point": self.operating_point,
                "target_sensitivity": self.target_sensitivity,
                "calibration": self.calibration,
                "ensemble": bool(self.ensemble),
            },
            "calibration": self.calibration_,
            "ensemble": [member.fitted_state() for member in getattr(self, "ensemble_", [])],
            "featurizer": self.featurizer_,
            "classifier": self.classifier_.fitted_state(),
            "threshold": self.threshold_choice_,
            "training": dict(self.training_),
        }

    @classmethod
    def from_fitted_state(cls, state: dict, **classifier_params) -> RimModel:
        """Rebuild a fitted model from :meth:`fitted_state` (or what a model file holds).

        ``classifier_params`` (e.g. ``device="cpu"``) go to
        :meth:`QSMRimNetClassifier.from_fitted_state`. The result predicts exactly like the
        original; its ``oof_probability_`` is None.
        """
        from rimclf.classifier import QSMRimNetClassifier

        classifier = QSMRimNetClassifier.from_fitted_state(state["classifier"], **classifier_params)
        choice: ThresholdChoice = state["threshold"]
        params = state["params"]
        model = cls(
            featurizer=state["featurizer"],
            classifier=clone(classifier).set_params(threshold=_NET_THRESHOLD),
            target_specificity=params["target_specificity"],
            threshold_cv=params["threshold_cv"],
            threshold=choice.value if choice.method == "fixed" else None,
            random_state=params["random_state"],
            operating_point=params.get("operating_point", "specificity"),
            target_sensitivity=params.get("target_sensitivity", DEFAULT_MODEL.target_sensitivity),
            calibration=params.get("calibration"),
            ensemble=bool(params.get("ensemble", False)),
        )
        model.featurizer_ = state["featurizer"]
        classifier.threshold = _raw_threshold(state.get("calibration"), choice.value)
        model.classifier_ = classifier
        model.threshold_choice_ = choice
        model.threshold_ = choice.value
        model.calibration_ = state.get("calibration")
        model.oof_probability_ = None
        model.oof_network_probability_ = None
        model.oof_labels_ = None
        model.ensemble_ = [QSMRimNetClassifier.from_fitted_state(member, **classifier_params)
                           for member in state.get("ensemble") or []]
        model.training_ = dict(state["training"])
        model.classes_ = np.array([0, 1])
        return model

    # -------------------------------------------------------------- prediction
    def transform(self, X: pd.DataFrame, **featurizer_params):
        """The features the classifier takes (``featurizer_params``: e.g. ``n_jobs``, ``memory``)."""
        check_is_fitted(self, "classifier_")
        featurizer = clone(self.featurizer_).set_params(**featurizer_params) if featurizer_params else self.featurizer_
        return featurizer.transform(check_lesion_table(X, ("participant_id", "lesion_id")))

    def predict_proba(self, X: pd.DataFrame, **featurizer_params) -> np.ndarray:
        """Probabilities ``(n_lesions, 2)``: columns rim- and rim+, rows in table order; calibrated
        when ``calibration_`` is set; the mean over the fold ensemble (``ensemble_``) when it has one.

        Raises :class:`~rimclf.errors.PredictionError` when any probability is NaN or infinite
        (a broken model), naming the lesions.
        """
        from rimclf.outputs import check_probabilities

        table = check_lesion_table(X, ("participant_id", "lesion_id"))
        if not len(table):
            check_is_fitted(self, "classifier_")
            return np.zeros((0, 2), dtype=np.float32)
        features = self.transform(table, **featurizer_params)
        probability = self.classifier_.predict_proba(features)
        members = getattr(self, "ensemble_", [])
        if members:  # the fold ensemble: the mean of the network probabilities of all its models
            probability = np.mean([probability, *(member.predict_proba(features) for member in members)], axis=0)
        if getattr(self, "calibration_", None) is not None:
            rim_pos = self.calibration_.apply(probability[:, 1]).astype(probability.dtype)
            probability = np.column_stack([1 - rim_pos, rim_pos])
        check_probabilities(probability[:, 1], table)
        return probability

    def predict(self, X: pd.DataFrame, **featurizer_params) -> np.ndarray:
        """Decisions 0/1: rim+ where the rim+ probability is at least ``threshold_``."""
        return (self.predict_proba(X, **featurizer_params)[:, 1] >= self.threshold_).astype(np.int64)


def _raw_threshold(calibration: Calibration | None, value: float) -> float:
    """The network's own probability that the calibration maps to ``value`` (``value`` without one)."""
    return float(value) if calibration is None else calibration.invert(value)
