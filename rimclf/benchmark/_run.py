"""``run_benchmark``: every method on the same subject-grouped folds of one cohort; the ablation and
the imbalance benchmark are two method tables run by it."""

from __future__ import annotations

import dataclasses
import json
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state

from rimclf.defaults import MAX_SEED
from rimclf._atomic import atomic_output_dir, copy_tree_linked
from rimclf._bids import bids_identifiers
from rimclf._records import installed_versions
from rimclf.benchmark._cv import (
    cross_validate_method,
    extract_features,
    make_inner_folds,
    make_repeated_folds,
    prediction_frame,
)
from rimclf.benchmark._methods import ABLATION_METHODS, ABLATION_REFERENCE, METHODS, REFERENCE, Method, resolve_methods
from rimclf.benchmark._plots import plot_curves, plot_paired_differences
from rimclf.benchmark._settings import BenchmarkSettings, resolve_settings
from rimclf.benchmark._summary import (
    METRIC_DESCRIPTIONS,
    format_calibration,
    format_results,
    summarize_predictions,
)
from rimclf._validation import check_n_jobs, is_int
from rimclf.errors import DataWarning, ParameterError
from rimclf.cohort import labelled_lesions, load_cohort

#: Distributions whose versions ``results.json`` records.
VERSIONED_PACKAGES = ("rimclf", "torch", "scikit-learn", "imbalanced-learn", "skorch", "pyradiomics", "numpy",
                      "scipy", "pandas", "SimpleITK", "matplotlib")
#: Files written into the output folder.
OUTPUT_FILES = ("results.tsv", "results.json", "predictions.tsv", "folds.tsv", "roc_curves.png", "pr_curves.png",
                "paired_differences.png", "reliability.png")
#: The columns of ``predictions.tsv`` (``results.json`` records them as its data dictionary).
PREDICTION_DESCRIPTIONS = {
    "method": "the method's name", "repeat": "repeat of the cross-validation (new shuffle of the subjects)",
    "fold": "the outer fold that predicted the lesion", "participant_id": "sub-<label>",
    "session": "ses-<label>, or n/a without sessions", "lesion_id": "lesion label in the mask",
    "rim": "reference label: 1 rim+, 0 rim-",
    "probability": "out-of-fold rim+ probability, calibrated as a model trained with the settings' threshold_cv and "
                   "calibration calibrates it (the method's own with threshold_cv 0)",
    "network_probability": "the same before calibration: the method's own probability",
    "threshold": "decision threshold of the fold (settings' operating_point on the calibrated out-of-fold probabilities "
                 "of the threshold CV in its training part; in-sample with threshold_cv 0)",
}


def package_versions(names: Sequence[str] = VERSIONED_PACKAGES) -> dict[str, str]:
    """Versions of Python and of the packages the benchmark's numbers depend on (or of ``names``).

    Examples
    --------
    >>> versions = package_versions()
    >>> "torch" in versions and "scikit-learn" in versions
    True
    """
    return installed_versions(names)


def _prepare_cache(cache: object, out: Path, tmp: Path) -> object:
    """The feature cache: ``cache`` when given, else ``OUT/cache``, seeded (by hard links, or
    copies where links fail) from the cache of an ``OUT`` being replaced with ``force``."""
    if cache is not None:
        return cache
    target = tmp / "cache"
    previous = out / "cache"
    if previous.is_dir():
        copy_tree_linked(previous, target)
    return target


def _method_line(method: Method, probabilities: np.ndarray, y: np.ndarray, timings: list[dict], max_fpr: float) -> str:
    from rimclf.metrics import brier_score, partial_roc_auc, pr_auc, roc_auc

    pauc = np.mean([partial_roc_auc(y, p, max_fpr=max_fpr) for p in probabilities])
    ap = np.mean([pr_auc(y, p) for p in probabilities])
    roc = np.mean([roc_auc(y, p) for p in probabilities])
    brier = np.mean([brier_score(y, np.clip(p, 0, 1)) for p in probabilities])
    fit = np.mean([row["fit_seconds"] + row["calibration_seconds"] for row in timings])
    return (f"{method.name:<34} pAUC {pauc:.3f}  PR AUC {ap:.3f}  ROC AUC {roc:.3f}  Brier {brier:.4f}  "
            f"fit {fit:6.1f} s/fold (with its threshold CV)")


def _reliability(predictions: pd.DataFrame, settings: BenchmarkSettings):
    """The reliability diagram of every method's out-of-fold probabilities (all repeats), and the
    method's own beside them for a single method."""
    from rimclf.calibration import reliability_figure

    calibrated = settings.threshold_cv and settings.calibration
    curves = {}
    for name, rows in predictions.groupby("method", sort=False):
        curves[f"{name}{' (calibrated)' if calibrated else ''}"] = (rows["rim"], rows["probability"].clip(0, 1))
    if calibrated and predictions["method"].nunique() == 1 and "network_probability" in predictions:
        curves[f"{name} (its own)"] = (rows["rim"], rows["network_probability"].clip(0, 1))
    return reliability_figure(curves, title="out-of-fold lesions")


def _common_folder(table: pd.DataFrame) -> str | None:
    """The deepest folder holding every QSM file of the table (the cohort folder for BIDS)."""
    if "qsm" not in table.columns or table.empty:
        return None
    return os.path.commonpath([str(Path(path).parent) for path in table["qsm"].astype(str)])


def _json_ready(value: object) -> object:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, (np.floating, np.integer)):
        return _json_ready(value.item())
    return value


def run_imbalance_benchmark(cohort: str | os.PathLike | pd.DataFrame, out: str | os.PathLike, **options) -> pd.DataFrame:
    """:func:`run_benchmark` of the imbalance benchmark's methods (:data:`METHODS`): QSMRim-Net on
    patches and radiomics with DeepSMOTE (the reference), input-level SMOTE, class weights,
    oversampling or nothing, and radiomics baselines. ``options`` are those of :func:`run_benchmark`.

    Examples
    --------
    >>> from rimclf.benchmark import run_imbalance_benchmark
    >>> results = run_imbalance_benchmark("COHORT", "imbalance_out", quick=True)      # doctest: +SKIP
    >>> results.set_index("method").loc["qsmrimnet_none", "pauc_diff"]                # doctest: +SKIP
    """
    options.setdefault("reference", REFERENCE)
    return run_benchmark(cohort, out, kind="imbalance", table=METHODS, **options)


def run_benchmark(
    cohort: str | os.PathLike | pd.DataFrame,
    out: str | os.PathLike,
    *,
    kind: str = "ablation",
    table: Mapping[str, Method] | None = None,
    reference: str | None = ABLATION_REFERENCE,
    quick: bool = False,
    settings: BenchmarkSettings | Mapping | None = None,
    methods: Sequence[str] | None = None,
    random_state: int | None = 0,
    cache: str | os.PathLike | None = None,
    n_jobs: int | None = 1,
    force: bool = False,
    verbose: bool = True,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Cross-validate several methods on the same subject-grouped folds of one cohort.

    By default the ablation (:data:`rimclf.benchmark.ABLATION_METHODS`): the default model
    against the same model with one part changed (rim features or radiomics, a CNN branch and its
    augmentation, normalisation and distance channel, DeepSMOTE or class weights) and baselines
    (logistic regression and random forest on rim features, random forests on radiomics). Every
    method is cross-validated on the same subject-grouped folds (``StratifiedGroupKFold``,
    repeated over shuffles), with the same seeds.
    Features are extracted once for the whole cohort (cached) and indexed per fold, which is
    valid because the featurizer is stateless; all fitting (imputation, scaling, SMOTE, model)
    happens inside each training fold.

    Parameters
    ----------
    cohort : str, path-like or pandas.DataFrame
        A cohort folder or manifest (read with :func:`rimclf.load_cohort`), or its lesion table.
        Unlabelled lesions are left out.
    out : str or path-like
        Output folder, written atomically: ``results.tsv`` (one row per method: metrics, CIs,
        paired differences against the reference, time per fold), ``results.json`` (the same with
        settings, seeds, timing and package versions), ``predictions.tsv`` (out-of-fold
        probabilities: method, repeat, fold, participant_id, session, lesion_id, rim, probability),
        ``folds.tsv`` (sizes and times of every fit), ``roc_curves.png``, ``pr_curves.png``,
        ``paired_differences.png`` (without the reference, no differences and no forest plot),
        and ``cache/`` (the feature cache) unless ``cache`` is given.
    kind : str, default="ablation"
        Name of the comparison, recorded in ``results.json`` and printed.
    table : mapping of str to Method, optional
        The methods to choose from (default :data:`ABLATION_METHODS`).
    reference : str or None, default="default"
        The method every other one is compared with (paired differences); None: none.
    quick : bool, default=False
        Start from :meth:`BenchmarkSettings.quick` instead of :meth:`BenchmarkSettings.full`.
    settings : BenchmarkSettings or mapping, optional
        A complete :class:`BenchmarkSettings`, or a mapping of fields overriding the preset,
        e.g. ``{"n_splits": 3, "max_epochs": 2}``.
    methods : list of str, optional
        Names of methods of ``table`` to run (default: all of it), in table order.
    random_state : int or None, default=0
        Seeds the folds, every estimator and the bootstrap.
    cache : str or path-like, optional
        Feature cache folder shared across runs (default ``OUT/cache``).
    n_jobs : int or None, default=1
        Processes: subjects featurized and folds fitted in parallel (each fit uses
        ``settings.n_threads`` threads). Results do not depend on it.
    force : bool, default=False
        Replace an existing ``out``.
    verbose : bool, default=True
        Print a line per method as it finishes and the table at the end.
    progress : bool or None, default=None
        Show the feature-extraction progress bar (None: when ``verbose``).

    Returns
    -------
    pandas.DataFrame
        The content of ``results.tsv`` (see :func:`summarize_predictions`).

    Examples
    --------
    >>> from rimclf.benchmark import run_benchmark
    >>> results = run_benchmark("COHORT", "bench_out", quick=True, n_jobs=2)          # doctest: +SKIP
    >>> results = run_benchmark("COHORT", "bench_out", methods=["default", "rf_rim"],
    ...                         settings={"n_splits": 3, "max_epochs": 10}, force=True)  # doctest: +SKIP
    >>> results[["method", "pauc", "pauc_diff", "pauc_diff_p"]]                       # doctest: +SKIP
    """
    started = time.perf_counter()
    load_start = os.getloadavg()
    settings = resolve_settings(settings, quick)
    table_of_methods = ABLATION_METHODS if table is None else dict(table)
    method_list = resolve_methods(methods, table_of_methods)
    n_jobs = check_n_jobs(n_jobs)
    out = Path(out)
    if isinstance(cohort, (str, os.PathLike)):
        cohort = load_cohort(cohort)
    table, y, groups = labelled_lesions(cohort, purpose="the benchmark")
    n_unlabelled = len(cohort) - len(table)
    rng = check_random_state(random_state)
    cv_seed, bootstrap_seed = (int(seed) for seed in rng.randint(0, MAX_SEED, size=2))
    say = print if verbose else (lambda *args, **kwargs: None)
    with atomic_output_dir(out, force=force) as tmp:
        folds, split_seeds, fit_seeds = make_repeated_folds(y, groups, settings.n_splits, settings.n_repeats, cv_seed)
        try:  # too few subjects: now
            inner_folds = make_inner_folds(y, groups, folds, fit_seeds, settings.threshold_cv)
        except ParameterError as exc:  # say which data: a training part, not the cohort
            raise ParameterError(f"{exc} (the threshold CV splits the training part of each of the "
                                 f"{settings.n_splits} CV folds)") from None
        heading = kind if kind == "cross-validation" else f"{kind} benchmark"
        say(f"{heading}: {len(np.unique(groups))} subjects, {len(y)} lesions, {int(y.sum())} rim+; "
            f"{settings.n_splits} folds x {settings.n_repeats} repeat(s); {len(method_list)} methods", flush=True)
        if settings.threshold_cv:
            say(f"each training fold as 'rimclf train' does: a {settings.threshold_cv}-fold threshold CV, "
                f"{settings.calibration or 'no'} calibration, operating point {settings.operating_point} "
                f"({settings.threshold_cv + 1} fits per fold)", flush=True)
        features = extract_features(table, method_list, settings, cache=_prepare_cache(cache, out, tmp),
                                    n_jobs=n_jobs, progress=verbose if progress is None else bool(progress))
        say(f"features extracted in {features.seconds:.0f} s", flush=True)
        frames, timing_rows = [], []
        for method in method_list:
            result = cross_validate_method(method, features.inputs(method, settings), y, folds, fit_seeds, settings,
                                           n_jobs=n_jobs, groups=groups, inner_folds=inner_folds)
            frames.append(prediction_frame(method, table, y, result.probabilities, result.fold_of,
                                           result.network_probabilities, result.thresholds))
            timing_rows.extend(result.timings)
            say(_method_line(method, result.probabilities, y, result.timings, settings.max_fpr), flush=True)
        predictions = pd.concat(frames, ignore_index=True)
        timings_frame = pd.DataFrame(timing_rows)
        with warnings.catch_warnings(record=True) as caught:  # bootstrap warnings: shown as notes, recorded
            warnings.simplefilter("always", DataWarning)
            results = summarize_predictions(
                predictions, reference=reference if reference in {m.name for m in method_list} else None, n_boot=settings.n_boot,
                alpha=settings.alpha, max_fpr=settings.max_fpr, random_state=bootstrap_seed, timings=timings_frame,
            )
        notes = list(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, DataWarning)))
        for w in caught:
            if not issubclass(w.category, DataWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        # BIDS identifiers (sub-<p>, ses-<s> or n/a), as in every table rimclf writes
        bids_identifiers(predictions).to_csv(tmp / "predictions.tsv", sep="\t", index=False)
        timings_frame.to_csv(tmp / "folds.tsv", sep="\t", index=False)
        results.to_csv(tmp / "results.tsv", sep="\t", index=False, na_rep="n/a")
        figures = {"roc_curves.png": plot_curves(predictions, results, "roc"),
                   "pr_curves.png": plot_curves(predictions, results, "pr"),
                   "reliability.png": _reliability(predictions, settings)}
        if results["pauc_diff"].notna().any():
            figures["paired_differences.png"] = plot_paired_differences(results)
        for name, figure in figures.items():
            figure.savefig(tmp / name, dpi=120)
        record = {
            "benchmark": kind,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "cohort": {
                "qsm_folder": _common_folder(table),
                "n_subjects": int(len(np.unique(groups))), "n_lesions": int(len(y)), "n_rim": int(y.sum()),
                "n_unlabelled_left_out": int(n_unlabelled),
            },
            "quick": bool(quick),
            "settings": dataclasses.asdict(settings),
            "methods": [dataclasses.asdict(method) for method in method_list],
            "reference": reference,
            "random_state": None if random_state is None else int(random_state) if is_int(random_state) else repr(random_state),
            "seeds": {"cv": cv_seed, "bootstrap": bootstrap_seed, "split_per_repeat": split_seeds,
                      "fit_per_repeat_and_fold": fit_seeds.tolist()},
            "features": {"seconds": features.seconds, "n_radiomics": len(features.radiomics_names),
                         "cache": None if cache is None else str(cache)},
            "timing": {"total_seconds": time.perf_counter() - started, "cpu_count": os.cpu_count(),
                       "load_average_start": list(load_start), "load_average_end": list(os.getloadavg())},
            "versions": package_versions(),
            "results": [{key: _json_ready(value) for key, value in row.items()} for row in results.to_dict("records")],
            "notes": notes,
            "columns": {"results.tsv": METRIC_DESCRIPTIONS, "predictions.tsv": PREDICTION_DESCRIPTIONS},
            "files": sorted(path.name for path in tmp.iterdir() if path.is_file()) + ["results.json"],
        }
        (tmp / "results.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        say("\n" + format_results(results) + "\n\n" + format_calibration(results), flush=True)
        if verbose:
            for note in notes:
                print(f"  note: {note}", flush=True)
        else:
            for note in notes:
                warnings.warn(note, DataWarning, stacklevel=2)
    return results
