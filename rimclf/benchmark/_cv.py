"""Features extracted once, repeated subject-grouped folds, and out-of-fold predictions per method.

Each outer training part is treated as ``RimModel.fit`` treats a training cohort (with
``settings.threshold_cv >= 2``): a subject-grouped threshold CV inside it gives out-of-fold
probabilities, a calibration is fitted on them (:func:`rimclf.calibration.calibrate_out_of_fold`)
and the threshold of the operating point is chosen on the calibrated ones; the method fitted on the
whole part then predicts the test part, calibrated. So the benchmark scores what a model trained
with those settings outputs. The baselines (random forest, logistic regression) go through the
same procedure, so that every method is compared on calibrated probabilities.

Extracting features once for the whole table and indexing them per fold is the same as
extracting them inside each fold, because :class:`~rimclf.features.LesionFeaturizer` is
stateless: a lesion's radiomics and patches depend on its own subject's images only, never on
the other lesions of the fold. Everything learnt from data (imputation, standardisation,
SMOTE, the model) is fitted inside each training fold.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state

from rimclf.defaults import MAX_SEED
from rimclf.benchmark._methods import ALL_CHANNELS, Method
from rimclf.errors import CohortError, ParameterError
from rimclf.feature_registry import TABULAR, feature_names
from rimclf.metrics import subject_folds



@dataclass
class BenchmarkFeatures:
    """Every feature any method needs, for all lesions of the table, in table order.

    Attributes
    ----------
    tabular : dict of str to ndarray of shape (n, F)
        The registered tabular features other than radiomics that a method needs (``"rim"``,
        ``"rim_fit"``), by name.
    radiomics : dict of {"lesion", "shell"} to ndarray, or empty
        pyradiomics features of the lesion and of its ring.
    patches : dict of normalisation to ndarray of shape (n, 4, D, H, W)
        Patches with every channel of :data:`~rimclf.benchmark._methods.ALL_CHANNELS`.
    radiomics_names : list of str
    seconds : float
        Extraction time.
    """

    tabular: dict[str, np.ndarray]
    radiomics: dict[str, np.ndarray]
    patches: dict[str, np.ndarray]
    radiomics_names: list[str]
    seconds: float

    def inputs(self, method: Method, settings) -> object:
        """The X of ``method``: a feature matrix for a baseline, a ``SliceDict`` for the network."""
        from skorch.helper import SliceDict

        tabular = []
        for part in method.tabular_parts:
            if part in self.tabular:
                tabular.append(self.tabular[part])
            elif part == "radiomics":  # the imbalance benchmark's network radiomics
                tabular.extend(self.radiomics[region] for region in settings.network_radiomics.split("+"))
            else:
                tabular.append(self.radiomics[part])
        matrix = None
        if tabular:
            matrix = tabular[0] if len(tabular) == 1 else np.concatenate(tabular, axis=1)
        if method.model != "qsmrimnet":
            return matrix
        entries = {}
        if method.uses_patches:
            config = method.config(settings)
            channels = [ALL_CHANNELS.index(channel) for channel in config.channels]
            entries["patches"] = np.ascontiguousarray(self.patches[config.normalize][:, channels])
        if matrix is not None:
            entries["radiomics"] = matrix
        return SliceDict(**entries)


def extract_features(table: pd.DataFrame, methods: list[Method], settings, *, cache, n_jobs, progress) -> BenchmarkFeatures:
    """Featurize the table once: the registered tabular features the methods name (rim-profile,
    rim-fit), the radiomics (of the lesion, and of its ring when a method needs it) and the patches of each normalisation the CNN variants use,
    all through :func:`rimclf.features.make_featurizer`."""
    from rimclf.features import make_featurizer

    parts = {part for method in methods for part in method.parts}
    if "radiomics" in parts:
        parts |= set(settings.network_radiomics.split("+"))
    start = time.perf_counter()
    runtime = {"n_jobs": n_jobs, "memory": cache, "progress": progress}
    plain, radiomics, names = {}, {}, []
    tabular = [name for name in feature_names(TABULAR) if name in parts or (name == "radiomics" and {"lesion", "shell"} & parts)]
    if tabular:
        region = "both" if "shell" in parts else "lesion"
        config = settings.model_config(feature_set=tuple(tabular), region=region)
        featurizer = make_featurizer(config, patches=False, **runtime)
        X = featurizer.transform(table)
        plain = {name: np.asarray(X[name]) for name in tabular if name != "radiomics"}
        if "radiomics" in X:
            names = [str(name) for name in featurizer.extractors()["radiomics"].get_feature_names_out()]
            values = np.asarray(X["radiomics"])
            if region == "lesion":
                radiomics["lesion"] = values
            else:  # columns "lesion_<name>" then "shell_<name>"; the lesion_ ones equal region="lesion"
                lesion = np.array([name.startswith("lesion_") for name in names])
                radiomics = {"lesion": np.ascontiguousarray(values[:, lesion]), "shell": np.ascontiguousarray(values[:, ~lesion])}
    patches = {}
    for normalize in sorted({method.config(settings).normalize for method in methods if method.uses_patches}):
        config = settings.model_config(normalize=normalize, channels=ALL_CHANNELS)
        patches[normalize] = np.asarray(make_featurizer(config, features=False, patches=True, **runtime).transform(table)["patches"])
    return BenchmarkFeatures(plain, radiomics, patches, names, time.perf_counter() - start)


def make_repeated_folds(
    y: np.ndarray, groups: np.ndarray, n_splits: int, n_repeats: int, random_state: object
) -> tuple[list[list[tuple[np.ndarray, np.ndarray]]], list[int], np.ndarray]:
    """Subject-grouped stratified folds for each repeat, and one seed per (repeat, fold).

    The folds are those of :func:`rimclf.metrics.subject_folds`; the fit seeds are drawn from
    the same random state after the folds' shuffle seeds.

    Returns
    -------
    folds : list (repeats) of list (folds) of (train_index, test_index)
    split_seeds : list of int
        The ``StratifiedGroupKFold(shuffle=True)`` seed of each repeat.
    fit_seeds : numpy.ndarray of shape (n_repeats, n_splits)
        The ``random_state`` of every method's estimator in that fold (shared by all methods).

    Examples
    --------
    >>> import numpy as np
    >>> y = np.tile([1, 0, 0, 0, 0], 8)
    >>> groups = np.repeat([f"{i:02d}" for i in range(1, 9)], 5)
    >>> folds, split_seeds, fit_seeds = make_repeated_folds(y, groups, n_splits=4, n_repeats=2, random_state=0)
    >>> len(folds), len(folds[0]), fit_seeds.shape                # repeats, folds per repeat
    (2, 4, (2, 4))
    """
    rng = check_random_state(random_state)
    flat, split_seeds = subject_folds(y, groups, n_splits, rng, n_repeats=n_repeats, return_seeds=True)
    fit_seeds = rng.randint(0, MAX_SEED, size=(n_repeats, n_splits))
    folds = [flat[repeat * n_splits : (repeat + 1) * n_splits] for repeat in range(n_repeats)]
    return folds, split_seeds, fit_seeds


@contextmanager
def limited_threads(n_threads: int) -> Iterator[None]:
    """Limit torch's intra-op threads and the BLAS pools to ``n_threads`` (restored after).

    torch's own setter is used rather than ``threadpoolctl`` on every OpenMP runtime, so that
    torch's thread pool and its record of it stay consistent. Other OpenMP pools (gradient
    boosting) are bounded in worker processes by joblib, which starts them with
    ``OMP_NUM_THREADS = cpu_count // n_jobs``.
    """
    import torch
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        with threadpool_limits(limits=n_threads, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(previous)


def _fit_fold(method: Method, X: object, y: np.ndarray, groups: np.ndarray | None, train: np.ndarray, test: np.ndarray,
              seed: int, settings, inner_folds) -> tuple:
    """Fit on ``train`` as ``RimModel.fit`` would (threshold CV on ``inner_folds``, calibration,
    threshold), predict ``test``; return the probabilities, times, warnings raised and the fold's record."""
    from rimclf.calibration import calibrate_out_of_fold
    from rimclf.threshold import choose_threshold, fold_of, out_of_fold_probabilities

    estimator = method.make_estimator(settings, seed)
    targets = {"target_specificity": settings.target_specificity, "target_sensitivity": settings.target_sensitivity}
    with warnings.catch_warnings(record=True) as caught, limited_threads(settings.n_threads):
        warnings.simplefilter("always")
        wall = time.perf_counter()
        oof = None
        if inner_folds:
            threshold_log = logging.getLogger("rimclf.threshold")  # one line per inner fold: too many here
            level = threshold_log.level
            threshold_log.setLevel(max(level, logging.WARNING))
            try:
                oof = out_of_fold_probabilities(estimator, X[train], y[train], groups[train], inner_folds)
            finally:
                threshold_log.setLevel(level)
        calibration_seconds = time.perf_counter() - wall
        wall, cpu = time.perf_counter(), time.process_time()
        estimator.fit(X[train], y[train])
        fit_seconds, fit_cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
        wall = time.perf_counter()
        network = np.asarray(estimator.predict_proba(X[test]))[:, 1].astype(np.float64)
        predict_seconds = time.perf_counter() - wall
        calibration = None
        if oof is not None:
            calibration = calibrate_out_of_fold(y[train], oof, settings.calibration, folds=fold_of(inner_folds, len(train)))
            chosen_on = oof if calibration is None else calibration.apply(oof)
            choice = choose_threshold(y[train], chosen_on, settings.operating_point, method="cv",
                                      n_splits=len(inner_folds), **targets)
        else:  # threshold_cv=0: the in-sample threshold of RimModel(threshold_cv=0), no calibration
            in_sample = np.asarray(estimator.predict_proba(X[train]))[:, 1].astype(np.float64)
            choice = choose_threshold(y[train], in_sample, settings.operating_point, method="in-sample", **targets)
    probabilities = network if calibration is None else calibration.apply(network)
    notes = [(w.category, str(w.message)) for w in caught]
    record = {"threshold": choice.value, "calibration_seconds": calibration_seconds,
              "calibration_coef": np.nan if calibration is None or calibration.coef is None else calibration.coef,
              "calibration_intercept": np.nan if calibration is None or calibration.intercept is None else calibration.intercept,
              **method.fold_record(estimator)}
    return probabilities, network, fit_seconds, fit_cpu_seconds, predict_seconds, notes, record


def make_inner_folds(y: np.ndarray, groups: np.ndarray, folds, fit_seeds: np.ndarray, n_splits: int) -> list | None:
    """The threshold CV of every outer training part (``[repeat][fold]`` -> folds in training-part
    indices), as ``RimModel(threshold_cv=n_splits, random_state=fit_seed).fit`` splits it; None
    for ``n_splits=0``. Raises :class:`~rimclf.errors.ParameterError` naming ``threshold_cv`` when
    a training part has too few subjects or rim+ lesions, before any fit.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.tile([1, 0, 0, 0, 0], 12)
    >>> groups = np.repeat([f"{i:02d}" for i in range(12)], 5)
    >>> folds, _, fit_seeds = make_repeated_folds(y, groups, 3, 1, random_state=0)
    >>> inner = make_inner_folds(y, groups, folds, fit_seeds, 2)
    >>> len(inner[0]), len(inner[0][0])                  # per outer fold, its 2 threshold-CV folds
    (3, 2)
    >>> train, test = inner[0][0][0]                     # indices into the outer training part
    >>> int(max(train.max(), test.max())) < len(folds[0][0][0])
    True
    """
    from rimclf.threshold import threshold_folds

    if not n_splits:
        return None
    groups = np.asarray(groups)
    return [[threshold_folds(y[train], groups[train], n_splits, int(fit_seeds[repeat, fold]))
             for fold, (train, _) in enumerate(repeat_folds)] for repeat, repeat_folds in enumerate(folds)]


class OutOfFold(NamedTuple):
    """What :func:`cross_validate_method` returns."""

    #: (n_repeats, n_lesions): the calibrated out-of-fold rim+ probability of every lesion in every repeat
    probabilities: np.ndarray
    #: (n_repeats, n_lesions): the fold that predicted each lesion
    fold_of: np.ndarray
    #: one row per fold (see :func:`cross_validate_method`)
    timings: list
    #: (n_repeats, n_lesions): the same probabilities before calibration (the method's own)
    network_probabilities: np.ndarray
    #: (n_repeats, n_lesions): the decision threshold of the fold that predicted each lesion
    thresholds: np.ndarray


def cross_validate_method(
    method: Method, X: object, y: np.ndarray, folds, fit_seeds: np.ndarray, settings, *, n_jobs,
    groups: np.ndarray | None = None, inner_folds: list | None = None,
) -> OutOfFold:
    """Fit ``method`` on every training fold as a model is trained, and predict its test fold.

    With ``settings.threshold_cv >= 2`` each training fold runs the threshold CV of
    ``RimModel.fit`` (``inner_folds``, by default :func:`make_inner_folds` of ``groups``), fits the
    calibration ``settings.calibration`` on its out-of-fold probabilities and chooses the
    threshold of ``settings.operating_point`` on the calibrated ones: ``threshold_cv + 1`` fits per
    fold. With ``threshold_cv=0`` the method's own probabilities are scored and the threshold is
    read off the training lesions (one fit per fold).

    ``method`` is a :class:`Method`, or any object with a ``name``, ``make_estimator(settings,
    random_state)`` and ``fold_record(estimator) -> dict`` (e.g. an ablation's configuration).

    Folds run in ``n_jobs`` processes (joblib), each fit limited to ``settings.n_threads``
    threads; the results do not depend on ``n_jobs``. Warnings of the fits (e.g. SMOTE lowering
    its neighbours in a fold with few rim+ lesions) are re-issued here, once each.

    Returns
    -------
    OutOfFold
        ``probabilities`` (calibrated) and ``network_probabilities`` (the method's own), both
        ``(n_repeats, n_lesions)``; ``fold_of`` (the fold that predicted each lesion);
        ``thresholds`` (its fold's threshold); ``timings``: one row per fold: ``method, repeat,
        fold, n_train, n_train_rim, n_test, n_test_rim, fit_seconds`` (the final fit),
        ``fit_cpu_seconds, predict_seconds, calibration_seconds`` (the threshold CV's fits),
        ``threshold, calibration_coef, calibration_intercept`` and what ``method.fold_record`` adds.

    Examples
    --------
    >>> import numpy as np
    >>> from rimclf.benchmark import ABLATION_METHODS, BenchmarkSettings
    >>> rng = np.random.default_rng(0)
    >>> y = np.tile([1, 0, 0, 0, 0], 8)
    >>> groups = np.repeat([f"{i:02d}" for i in range(1, 9)], 5)
    >>> X = rng.normal(size=(40, 3)) + y[:, None]                  # the method's input (rim features here)
    >>> folds, _, fit_seeds = make_repeated_folds(y, groups, 4, 1, random_state=0)
    >>> result = cross_validate_method(ABLATION_METHODS["logreg_rim"], X, y, folds, fit_seeds,
    ...                                BenchmarkSettings.quick(threshold_cv=2), n_jobs=1, groups=groups)
    >>> result.probabilities.shape, len(result.timings)            # (repeats, lesions), one row per fold
    ((1, 40), 4)
    """
    from joblib import Parallel, delayed

    if settings.threshold_cv and inner_folds is None:
        if groups is None:
            raise ParameterError(f"cross_validate_method needs the subjects (groups=) for the threshold CV of every training "
                                 f"fold (threshold_cv={settings.threshold_cv}); give them, or settings threshold_cv=0")
        inner_folds = make_inner_folds(y, groups, folds, fit_seeds, settings.threshold_cv)
    groups = None if groups is None else np.asarray(groups)
    tasks = [(repeat, fold, train, test) for repeat, repeat_folds in enumerate(folds)
             for fold, (train, test) in enumerate(repeat_folds)]
    outputs = Parallel(n_jobs=n_jobs)(
        delayed(_fit_fold)(method, X, y, groups, train, test, int(fit_seeds[repeat, fold]), settings,
                           None if inner_folds is None else inner_folds[repeat][fold])
        for repeat, fold, train, test in tasks
    )
    probabilities = np.full((len(folds), len(y)), np.nan)
    network = np.full((len(folds), len(y)), np.nan)
    thresholds = np.full((len(folds), len(y)), np.nan)
    fold_of = np.full((len(folds), len(y)), -1, dtype=np.int64)
    timings, notes = [], {}
    for (repeat, fold, train, test), output in zip(tasks, outputs):
        proba, own, fit_seconds, fit_cpu_seconds, predict_seconds, caught, record = output
        probabilities[repeat, test] = proba
        network[repeat, test] = own
        thresholds[repeat, test] = record["threshold"]
        fold_of[repeat, test] = fold
        timings.append({
            "method": method.name, "repeat": repeat, "fold": fold,
            "n_train": len(train), "n_train_rim": int(y[train].sum()),
            "n_test": len(test), "n_test_rim": int(y[test].sum()),
            "fit_seconds": fit_seconds, "fit_cpu_seconds": fit_cpu_seconds, "predict_seconds": predict_seconds,
            **record,
        })
        notes.update(dict.fromkeys(caught))
    for category, message in notes:
        warnings.warn(f"{method.name}: {message}", category, stacklevel=2)
    if (fold_of < 0).any() or not np.isfinite(probabilities).all():
        raise CohortError(f"method {method.name!r}: some lesions were not predicted out of fold, or not finitely")
    return OutOfFold(probabilities, fold_of, timings, network, thresholds)


def _sessions(table: pd.DataFrame) -> np.ndarray:
    """The table's session labels ("" without sessions, or for a table without the column)."""
    if "session" not in table:
        return np.full(len(table), "", dtype=object)
    return table["session"].fillna("").astype(str).to_numpy(dtype=object)


def prediction_frame(method: Method, table: pd.DataFrame, y: np.ndarray, probabilities: np.ndarray, fold_of: np.ndarray,
                     network_probabilities: np.ndarray | None = None, thresholds: np.ndarray | None = None) -> pd.DataFrame:
    """Rows of ``predictions.tsv`` for one method: every lesion once per repeat, in table order
    (with ``network_probability`` and ``threshold`` when given)."""
    n_repeats, n_lesions = probabilities.shape
    frame = pd.DataFrame({
        "method": method.name,
        "repeat": np.repeat(np.arange(n_repeats), n_lesions),
        "fold": fold_of.reshape(-1),
        "participant_id": np.tile(table["participant_id"].astype(str).to_numpy(), n_repeats),
        "session": np.tile(_sessions(table), n_repeats),
        "lesion_id": np.tile(table["lesion_id"].to_numpy(dtype=np.int64), n_repeats),
        "rim": np.tile(y, n_repeats),
        "probability": probabilities.reshape(-1).astype(np.float64),
    })
    if network_probabilities is not None:
        frame["network_probability"] = network_probabilities.reshape(-1).astype(np.float64)
    if thresholds is not None:
        frame["threshold"] = thresholds.reshape(-1).astype(np.float64)
    return frame
