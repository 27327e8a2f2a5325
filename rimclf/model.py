"""RimModel: lesion features, QSMRim-Net and a decision threshold, trained and used as one.

:func:`train_model` (``rimclf train``) fits a :class:`RimModel` on a labelled cohort and
:func:`predict_cohort` (``rimclf predict``) applies one to new subjects and writes what
:mod:`rimclf.outputs` describes. :func:`subject_table` turns one subject's three files into a
lesion table without writing a manifest by hand. Models are saved and loaded with
:func:`rimclf.save_model` / :func:`rimclf.load_model`.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.validation import check_is_fitted

from rimclf._atomic import reserving_output
from rimclf.errors import CohortError
from rimclf.threshold import (
    ThresholdChoice,
    check_specificity,
    out_of_fold_probabilities,
    subject_folds,
    threshold_from_probabilities,
)

logger = logging.getLogger(__name__)


class RimModel(ClassifierMixin, BaseEstimator):
    """A rim+ lesion classifier on lesion tables: featurizer, QSMRim-Net and a decision threshold.

    ``fit(table)`` extracts the lesion features once, chooses the decision threshold for
    ``target_specificity`` (see :mod:`rimclf.threshold`) and fits the classifier on every
    training lesion. X is the lesion table of :func:`rimclf.load_cohort`; y defaults to its
    ``rim`` column and the subjects (for the threshold's grouped CV) to ``participant_id``.

    Parameters
    ----------
    featurizer : LesionFeaturizer or None, default=None
        Default ``LesionFeaturizer()`` (QSMRim-Net radiomics and 32 mm patches).
    classifier : QSMRimNetClassifier or None, default=None
        Default ``QSMRimNetClassifier()``; fitted as a clone.
    target_specificity : float, default=0.9
        Specificity the threshold is chosen for (QSMRim-Net's FPR <= 0.1).
    threshold_cv : int, default=5
        Folds of the subject-grouped CV whose out-of-fold probabilities set the threshold
        (``threshold_cv`` extra fits). 0: read it off the training lesions' in-sample
        probabilities instead (no extra fit, but optimistic: expect a lower specificity on new
        subjects).
    threshold : float or None, default=None
        A fixed threshold; overrides ``threshold_cv`` and ``target_specificity``.
    random_state : int, RandomState or None, default=None
        Shuffles the threshold CV's folds (the classifier has its own ``random_state``).

    Attributes
    ----------
    featurizer_ : LesionFeaturizer
    classifier_ : QSMRimNetClassifier
        Fitted on all training lesions.
    threshold_ : float
        Rim+ when ``predict_proba(table)[:, 1] >= threshold_``.
    threshold_choice_ : ThresholdChoice
        How the threshold was chosen and what it reached (out-of-fold scores with the CV).
    oof_probability_ : ndarray of shape (n_lesions,) or None
        Out-of-fold rim+ probabilities of the training lesions (``threshold_cv >= 2``).
    training_ : dict
        Subjects, lesions and rim+ lesions the model was trained on.
    classes_ : ndarray, ``[0, 1]``
    """

    def __init__(self, featurizer=None, classifier=None, *, target_specificity: float = 0.9, threshold_cv: int = 5,
                 threshold: float | None = None, random_state=None) -> None:
        self.featurizer = featurizer
        self.classifier = classifier
        self.target_specificity = target_specificity
        self.threshold_cv = threshold_cv
        self.threshold = threshold
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False  # X is a lesion table (pandas DataFrame)
        return tags

    def _check_params(self) -> None:
        if self.threshold is not None:
            valid = not isinstance(self.threshold, bool) and isinstance(self.threshold, (int, float, np.number))
            if not valid or not np.isfinite(self.threshold):
                raise CohortError(f"threshold={self.threshold!r} is not valid; give a probability (e.g. 0.5) or None")
            return
        check_specificity(self.target_specificity)
        cv = self.threshold_cv
        if isinstance(cv, bool) or not isinstance(cv, (int, np.integer)) or cv == 1 or cv < 0:
            raise CohortError(f"threshold_cv={cv!r} is not valid; use 0 (in-sample) or at least 2 folds")

    def _featurizer(self):
        from rimclf.features import LesionFeaturizer

        return LesionFeaturizer() if self.featurizer is None else clone(self.featurizer)

    def _classifier(self):
        from rimclf.classifier import QSMRimNetClassifier

        return QSMRimNetClassifier() if self.classifier is None else clone(self.classifier)

    def fit(self, X: pd.DataFrame, y=None, groups=None) -> RimModel:
        """Extract features, choose the threshold, fit the classifier on all lesions of ``X``."""
        self._check_params()
        table = _check_table(X)
        y = _labels(table if y is None else y, len(table))
        groups = np.asarray(table["participant_id"] if groups is None else groups).astype(str)
        if groups.shape != (len(table),):
            raise CohortError(f"groups has shape {groups.shape}; it needs one subject per lesion ({len(table)})")
        featurizer = self._featurizer().fit(table)
        classifier = self._classifier()
        logger.info("extracting features of %d lesions of %d subjects", len(table), len(np.unique(groups)))
        features = featurizer.transform(table)
        oof = None
        if self.threshold is None and self.threshold_cv >= 2:
            folds = subject_folds(y, groups, int(self.threshold_cv), self.random_state)
            oof = out_of_fold_probabilities(classifier, features, y, groups, folds)
        logger.info("training the final model on all %d lesions", len(table))
        classifier.fit(features, y)
        if self.threshold is not None:
            choice = ThresholdChoice(value=float(self.threshold), method="fixed")
        elif oof is not None:
            choice = threshold_from_probabilities(y, oof, self.target_specificity, method="cv", n_splits=int(self.threshold_cv))
        else:
            in_sample = classifier.predict_proba(features)[:, 1]
            choice = threshold_from_probabilities(y, in_sample, self.target_specificity, method="in-sample")
        logger.debug("%s", choice.describe())
        self.featurizer_ = featurizer
        self.classifier_ = classifier
        self.threshold_choice_ = choice
        self.threshold_ = choice.value
        self.oof_probability_ = oof
        self.training_ = {
            "n_subjects": int(len(np.unique(groups))),
            "n_lesions": int(len(table)),
            "n_rim_pos": int(y.sum()),
        }
        self.classes_ = np.array([0, 1])
        return self

    def transform(self, X: pd.DataFrame, **featurizer_params):
        """The features the classifier takes (``featurizer_params``: e.g. ``n_jobs``, ``memory``)."""
        check_is_fitted(self, "classifier_")
        featurizer = clone(self.featurizer_).set_params(**featurizer_params) if featurizer_params else self.featurizer_
        return featurizer.transform(_check_table(X))

    def predict_proba(self, X: pd.DataFrame, **featurizer_params) -> np.ndarray:
        """Probabilities ``(n_lesions, 2)``: columns rim- and rim+, rows in table order."""
        table = _check_table(X)
        if not len(table):
            check_is_fitted(self, "classifier_")
            return np.zeros((0, 2), dtype=np.float32)
        return self.classifier_.predict_proba(self.transform(table, **featurizer_params))

    def predict(self, X: pd.DataFrame, **featurizer_params) -> np.ndarray:
        """Decisions 0/1: rim+ where the rim+ probability is at least ``threshold_``."""
        return (self.predict_proba(X, **featurizer_params)[:, 1] >= self.threshold_).astype(np.int64)


def _check_table(table: object) -> pd.DataFrame:
    if not isinstance(table, pd.DataFrame):
        raise CohortError(f"X must be the lesion table of rimclf.load_cohort (a pandas DataFrame); got {type(table).__name__}")
    missing = [c for c in ("participant_id", "lesion_id") if c not in table]
    if missing:
        raise CohortError(f"the lesion table has no {missing} column(s); make it with rimclf.load_cohort")
    return table


def _labels(y: object, n_rows: int) -> np.ndarray:
    """0/1 labels from a lesion table's ``rim`` column or an array; every lesion must be labelled."""
    if isinstance(y, pd.DataFrame) and "rim" not in y:
        raise CohortError("the lesion table has no 'rim' column: training needs rim labels (rims.tsv)")
    values = y["rim"] if isinstance(y, pd.DataFrame) else pd.Series(np.asarray(y, dtype=object))
    if len(values) != n_rows:
        raise CohortError(f"y has {len(values)} labels for {n_rows} lesions")
    n_missing = int(pd.isna(values).sum())
    if n_missing:
        raise CohortError(f"{n_missing} of {n_rows} lesions have no rim label (rims.tsv); training needs every lesion labelled")
    labels = np.asarray(values, dtype=float)
    if not np.isin(labels, (0.0, 1.0)).all():
        raise CohortError(f"rim labels must be 0 or 1; found {sorted(set(labels.tolist()) - {0.0, 1.0})[:5]}")
    if labels.sum() < 2 or labels.sum() == n_rows:
        raise CohortError(f"training needs at least 2 rim+ and some rim- lesions; got {int(labels.sum())} rim+ of {n_rows}")
    return labels.astype(int)


def _as_table(cohort: object, **load_options) -> pd.DataFrame:
    from rimclf.cohort import load_cohort

    if isinstance(cohort, pd.DataFrame):
        return cohort
    return load_cohort(cohort, **load_options)


@reserving_output("out")  # exists, unwritable, or being written: fail before training
def train_model(
    cohort: str | os.PathLike | pd.DataFrame,
    *,
    featurizer=None,
    classifier=None,
    target_specificity: float = 0.9,
    threshold_cv: int = 5,
    threshold: float | None = None,
    random_state=None,
    out: str | os.PathLike | None = None,
    force: bool = False,
    min_voxels: int = 8,
    qsm_unit: str = "ppb",
    connectivity: int = 26,
) -> RimModel:
    """Train a :class:`RimModel` on a labelled cohort (and save it when ``out`` is given).

    Parameters
    ----------
    cohort : str, path-like or pandas.DataFrame
        Cohort directory or manifest (read with :func:`rimclf.load_cohort`) or a lesion table.
        Every lesion needs a rim label.
    featurizer, classifier, target_specificity, threshold_cv, threshold, random_state
        See :class:`RimModel`.
    out : str or path-like, optional
        Save the model there with :func:`rimclf.save_model`; an existing ``out`` is refused
        before any work unless ``force``.
    force : bool, default=False
    min_voxels, qsm_unit, connectivity
        Passed to :func:`rimclf.load_cohort` when ``cohort`` is a path.

    Returns
    -------
    RimModel
        Fitted.
    """
    from rimclf._atomic import refuse_overwrite

    if out is not None:
        refuse_overwrite(out, force=force)
    table = _as_table(cohort, min_voxels=min_voxels, qsm_unit=qsm_unit, connectivity=connectivity)
    model = RimModel(featurizer, classifier, target_specificity=target_specificity, threshold_cv=threshold_cv,
                     threshold=threshold, random_state=random_state)
    model.fit(table)
    if out is not None:
        from rimclf.io import save_model

        save_model(model, out, force=force)
    return model


def subject_table(
    qsm: str | os.PathLike,
    flair: str | os.PathLike,
    mask: str | os.PathLike,
    *,
    participant_id: str = "01",
    min_voxels: int = 8,
    qsm_unit: str = "ppb",
    connectivity: int = 26,
) -> pd.DataFrame:
    """The lesion table of one subject given by its QSM, FLAIR and lesion mask files.

    Equivalent to :func:`rimclf.load_cohort` on a one-row manifest (it writes one to a temporary
    folder and reads it), with the same checks and error messages. ``rim`` is ``<NA>``.
    """
    with tempfile.TemporaryDirectory(prefix="rimclf-subject-") as folder:
        manifest = Path(folder) / "manifest.tsv"
        paths = {kind: str(Path(path).expanduser().resolve()) for kind, path in (("qsm", qsm), ("flair", flair), ("mask", mask))}
        pd.DataFrame([{"participant_id": str(participant_id), **paths}]).to_csv(manifest, sep="\t", index=False)
        return _as_table(manifest, min_voxels=min_voxels, qsm_unit=qsm_unit, connectivity=connectivity)


@reserving_output("out")  # exists, unwritable, or being written: fail before predicting
def predict_cohort(
    model: RimModel,
    cohort: str | os.PathLike | pd.DataFrame,
    out: str | os.PathLike,
    *,
    force: bool = False,
    n_jobs: int | None = None,
    memory=None,
    montage: bool = True,
    min_voxels: int = 8,
    qsm_unit: str = "ppb",
    connectivity: int = 26,
) -> dict[str, Path]:
    """Predict every lesion of a cohort and write the outputs of :func:`rimclf.outputs.write_prediction_outputs`.

    Parameters
    ----------
    model : RimModel
        Fitted (e.g. from :func:`rimclf.load_model`).
    cohort : str, path-like or pandas.DataFrame
        Cohort directory, manifest or lesion table (:func:`subject_table` for one subject).
    out : str or path-like
        Output folder (``lesions.tsv``, ``subjects.tsv``, per-subject probability map and
        montage), written atomically; an existing one is refused before any work unless ``force``.
    n_jobs, memory
        Feature extraction in parallel over subjects, and its cache (see ``LesionFeaturizer``);
        None keeps the model's featurizer settings.
    montage : bool, default=True
        Draw the per-subject PNG montages.
    min_voxels, qsm_unit, connectivity
        Passed to :func:`rimclf.load_cohort` when ``cohort`` is a path.

    Returns
    -------
    dict
        ``{"lesions": path, "subjects": path, "maps": folder}``.
    """
    from rimclf._atomic import refuse_overwrite
    from rimclf.outputs import write_prediction_outputs

    check_is_fitted(model, "classifier_")
    refuse_overwrite(out, force=force)
    table = _as_table(cohort, min_voxels=min_voxels, qsm_unit=qsm_unit, connectivity=connectivity)
    runtime = {name: value for name, value in (("n_jobs", n_jobs), ("memory", memory)) if value is not None}
    probability = model.predict_proba(table, **runtime)[:, 1]
    return write_prediction_outputs(out, table, probability, model.threshold_, montage=montage, force=force)
