"""``tune_cohort``: a whole study from a cohort folder, as ``rimclf tune`` runs it."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import optuna
from optuna.trial import TrialState

from rimclf._atomic import atomic_output_dir, known_inputs, reserving_output
from rimclf._records import installed_versions
from rimclf._validation import check_choice, check_int, check_model_config
from rimclf.defaults import DEFAULT_MODEL, TUNING_MODELS, ModelConfig
from rimclf.errors import ParameterError, RimclfError
from rimclf.tuning._objective import CV_ATTR, SCORING_ATTR, jsonable
from rimclf.tuning._plots import save_study_plots
from rimclf.tuning._table import write_trials_tsv
from rimclf.tuning._spaces import SPACES
from rimclf.tuning._search import (
    ESTIMATOR_ATTR,
    FEATURES_ATTR,
    MODEL_ATTR,
    SPACE_ATTR,
    check_search,
    describe_estimator,
    describe_featurizer,
    describe_space,
)
from rimclf.tuning._storage import check_storage, default_storage_path, describe_storage, open_storage, storage_inputs
from rimclf.tuning._tune import TuningResult, tune

logger = logging.getLogger(__name__)

#: ``--model`` choices: the network, or a radiomics baseline (a quick study on a CPU).
MODELS = TUNING_MODELS
BEST_PARAMS_FILE = "best_params.json"
TRIALS_FILE = "trials.tsv"


def make_model(model: str, random_state: int, *, small: bool | None = None, config: ModelConfig = DEFAULT_MODEL):
    """The estimator and search space of a ``--model`` choice.

    Parameters
    ----------
    model : {"qsmrimnet", "random_forest", "logistic_regression", "gradient_boosting"}
    random_state : int
        Seeds the estimator.
    small : bool or None, default=None
        Network only: CPU-sized ranges (:func:`network_space` ``small=True``); ``None`` picks
        them when no CUDA device is present.
    config : ModelConfig, default=rimclf.defaults.DEFAULT_MODEL
        Network only: the network tuned; its ``branches`` decide whether the CNN's settings are
        searched at all, its ``imbalance`` whether ``smote_k`` is.

    Returns
    -------
    (estimator, space)

    Examples
    --------
    >>> estimator, space = make_model("logistic_regression", random_state=0)
    >>> type(estimator).__name__, sorted(space)
    ('Pipeline', ['model__C', 'sampler__k_neighbors'])
    >>> net, space = make_model("qsmrimnet", random_state=0, small=True)
    >>> type(net).__name__, "module__depth" in space  # the default network has no CNN branch
    ('QSMRimNetClassifier', False)
    """
    check_choice(model, "model", MODELS)
    if model == "qsmrimnet":
        import torch

        from rimclf.classifier import make_classifier

        if small is None:
            small = not torch.cuda.is_available()
        return make_classifier(config, random_state=random_state), SPACES[model](small=small, branches=config.branches, imbalance=config.imbalance)
    from rimclf import baselines

    estimator = getattr(baselines, f"make_{model}")(sampler="smote", random_state=random_state)
    return estimator, SPACES[model](sampler="smote")


def featurize_cohort(
    cohort: str | os.PathLike, *, model: str, config: ModelConfig = DEFAULT_MODEL,
    cache: str | os.PathLike | None = None, n_jobs: int | None = None, progress: bool = True, cohort_options=None,
):
    """Load a cohort's labelled lesions and featurise them once for a whole study.

    Trials then tune the classifier on the features, so no trial extracts anything; with
    ``cache`` the per-subject features are also kept across commands (resumed studies).
    The lesions are those of :func:`rimclf.cohort.labelled_lesions`, the features those of
    :func:`rimclf.features.make_featurizer` ``(config)``, with patches for the network only.

    Returns
    -------
    X : skorch.helper.SliceDict
        The tabular features of ``config.feature_set`` (``rim``: the rim-profile features by
        default; ``radiomics``) and, for the network, ``patches``.
    y : numpy.ndarray of int
    groups : numpy.ndarray of str
        ``participant_id`` of every lesion.

    Examples
    --------
    >>> X, y, groups = featurize_cohort("COHORT", model="random_forest", cache="feature-cache")  # doctest: +SKIP
    >>> sorted(X)                                                                             # doctest: +SKIP
    ['rim']
    """
    from rimclf.cohort import labelled_lesions, load_cohort, scan_store

    with scan_store(volumes=False):  # each mask read (and resampled) once, for the table and the features
        table = load_cohort(cohort, cohort_options)
        table, y, groups = labelled_lesions(table, purpose="the study")
        featurizer = _study_featurizer(model, config, n_jobs=n_jobs, memory=cache, progress=progress)
        return featurizer.fit_transform(table), y, groups


def _study_featurizer(model: str, config: ModelConfig, **runtime: object):
    from rimclf.features import make_featurizer

    # the network reads the patches only when its configuration has a CNN branch; baselines never
    return make_featurizer(config, patches=None if model == "qsmrimnet" else False, **runtime)


def _study_versions() -> dict[str, str]:
    return installed_versions(("rimclf", "optuna", "scikit-learn", "numpy", "torch"))


def study_summary(study: optuna.Study, best_params: dict, **extra: object) -> dict:
    """The content of ``best_params.json``: best trial, its parameters, trial counts, versions."""
    best = study.best_trial
    counts = {state.name: len(study.get_trials(deepcopy=False, states=(state,))) for state in TrialState}
    return {
        "study_name": study.study_name,
        **extra,
        "best_trial": best.number,
        "best_value": best.value,
        "best_fold_scores": best.user_attrs.get("fold_scores"),
        "best_params": jsonable(best_params),
        "trial_params": jsonable(best.params),
        "n_trials": {name: n for name, n in counts.items() if n},
        "cv": study.user_attrs.get(CV_ATTR),
        "scoring": study.user_attrs.get(SCORING_ATTR),
        "versions": _study_versions(),
    }


def write_study_outputs(
    study: optuna.Study, best_params: dict, out: str | os.PathLike, *, force: bool = False, **extra: object,
) -> Path:
    """Write ``best_params.json``, ``trials.tsv`` and the plots into ``out`` (atomically).

    Examples
    --------
    >>> import optuna
    >>> from rimclf.tuning import best_params_of
    >>> study = optuna.load_study(study_name="qsmrimnet", storage=open_storage("qsmrimnet.journal"))  # doctest: +SKIP
    >>> write_study_outputs(study, best_params_of(study, space), "tune_out", force=True)        # doctest: +SKIP
    """
    with atomic_output_dir(out, force=force) as tmp:
        summary = study_summary(study, best_params, **extra)
        (tmp / BEST_PARAMS_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        write_trials_tsv(study, tmp / TRIALS_FILE)
        save_study_plots(study, tmp)
    return Path(out)


def _check_existing_study(storage: object, study_name: str, search: dict) -> None:
    """Refuse, before featurising, to resume a study of another search (:func:`tune` checks it again)."""
    files = [path for path in storage_inputs(storage, study_name=study_name).values() if path is not None]
    if any(not path.exists() for path in files):
        return  # a new journal or SQLite file: no study yet, and none is created here
    try:
        study = optuna.load_study(study_name=study_name, storage=open_storage(storage, study_name=study_name))
    except KeyError:  # no such study in the storage yet
        return
    check_search(study, search, describe_storage(storage), record=False)


def _tune_inputs(arguments: dict) -> dict:
    """What :func:`tune_cohort` reads, which its ``out`` may not touch (the study's journal or SQLite
    file: it must survive)."""
    storage, study_name = arguments.get("storage"), arguments.get("study_name")
    try:
        study_files = storage_inputs(storage, study_name=study_name) if storage is not None or isinstance(study_name, str) else {}
    except RimclfError:  # a study name leading elsewhere: check_storage says so
        study_files = {}
    return {**known_inputs(arguments), **study_files}


@reserving_output("out", inputs=_tune_inputs)
def tune_cohort(
    cohort: str | os.PathLike,
    out: str | os.PathLike,
    *,
    model: str = "qsmrimnet",
    n_trials: int = 20,
    storage: object = None,
    study_name: str = "rimclf",
    n_workers: int = 1,
    n_folds: int = 5,
    random_state: int = 0,
    sampler_seed: int | None = None,
    config: ModelConfig = DEFAULT_MODEL,
    cohort_options=None,
    cache: str | os.PathLike | None = None,
    n_jobs: int | None = None,
    progress: bool = True,
    verbose: bool = True,
    force: bool = False,
) -> TuningResult:
    """Run (or resume) a study on a cohort and write its results to ``out``.

    The labelled lesions are featurised once, then :func:`tune` runs ``n_trials`` trials of
    ``model`` with subject-grouped ``n_folds``-fold CV (``n_workers`` processes), printing a line
    per finished trial. ``out`` receives ``best_params.json`` (best trial, its ``set_params``
    parameters, trial counts, folds, scoring, versions), ``trials.tsv`` (every trial of the
    study) and the plots ``optimization_history.png`` / ``param_importances.png`` (the latter
    from two completed trials on).

    ``out`` is refused up front if it exists (unless ``force``), cannot be created, or another
    process is writing it; the study storage, on the contrary, is meant to be reused: the same
    ``storage`` and ``study_name`` resume the study. It is checked before any featurisation too
    (:func:`rimclf.tuning.check_storage`: URL, driver, connection, journal lines).

    Parameters
    ----------
    cohort : path
        Cohort folder or manifest (see :func:`rimclf.load_cohort`).
    out : path
        Output folder.
    model : {"qsmrimnet", "random_forest", "logistic_regression", "gradient_boosting"}, default="qsmrimnet"
    n_trials, storage, study_name, n_workers, random_state
        As in :func:`tune`.
    n_folds : int, default=5
        Folds of the subject-grouped CV.
    sampler_seed : int or None, default=None
        Seed of the TPE sampler; ``None`` derives it from ``random_state``. Several commands started
        at once on one study (several shells or machines) should each get their own.
    config : ModelConfig, default=rimclf.defaults.DEFAULT_MODEL
        Feature settings (``radiomics_params``, ``patch_size_mm``, ``patch_shape``, ...).
    cohort_options : rimclf.cohort.CohortOptions, optional
        How :func:`rimclf.load_cohort` reads ``cohort``.
    cache, n_jobs, progress
        Featurisation settings (see :func:`featurize_cohort`).
    verbose : bool, default=True
        Print the table of finished trials.
    force : bool, default=False
        Replace ``out``.

    Returns
    -------
    TuningResult
        With ``best_estimator=None``: refit the best parameters with ``rimclf train``.

    Examples
    --------
    >>> result = tune_cohort("COHORT", "tune_out", model="random_forest", n_trials=20)  # doctest: +SKIP
    >>> result.best_params                                                             # doctest: +SKIP
    >>> tune_cohort("COHORT", "tune_out-host2", storage="postgresql+psycopg2://rimclf:PASSWORD@db-host/rimclf",
    ...             study_name="shared", sampler_seed=2)                                # doctest: +SKIP
    """
    check_choice(model, "model", MODELS)
    check_int(n_trials, "n_trials", min=1)
    check_int(n_workers, "n_workers", min=1)
    check_int(n_folds, "n_folds", min=2, hint="each fold holds out whole subjects")
    check_model_config(config)
    check_storage(storage, study_name=study_name)
    estimator, space = make_model(model, random_state, config=config)
    search = {MODEL_ATTR: model, FEATURES_ATTR: describe_featurizer(_study_featurizer(model, config))}
    _check_existing_study(storage, study_name, {
        **search, ESTIMATOR_ATTR: describe_estimator(estimator), SPACE_ATTR: describe_space(space),
    })
    X, y, groups = featurize_cohort(
        cohort, model=model, config=config, cache=cache, n_jobs=n_jobs, progress=progress,
        cohort_options=cohort_options,
    )
    logger.info("%d lesions (%d rim+) of %d subjects", len(y), int(y.sum()), len(set(groups)))
    sampler = None if sampler_seed is None else optuna.samplers.TPESampler(seed=sampler_seed)
    if storage is None:
        storage = str(default_storage_path(study_name))
    result = tune(
        estimator, X, y, groups, space=space, n_trials=n_trials, storage=storage,
        study_name=study_name, sampler=sampler, cv=n_folds, random_state=random_state,
        n_workers=n_workers, refit=False, verbose=verbose, search_attrs=search,
    )
    if not result.best_params:
        raise ParameterError(
            f"study {study_name!r} has no completed trial yet (all pruned or failed); nothing written to {out}"
        )
    write_study_outputs(
        result.study, result.best_params, out, force=force, model=model,
        storage=describe_storage(storage), cohort=str(Path(cohort).resolve()),
        n_lesions=len(y), n_rim_positive=int(y.sum()), n_subjects=len(set(groups)),
    )
    return result
