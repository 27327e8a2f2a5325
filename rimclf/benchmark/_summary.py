"""From out-of-fold predictions to the results table: metrics, subject-bootstrap CIs, paired differences.

Everything in ``results.tsv`` except the timings is a function of ``predictions.tsv`` alone:
:func:`summarize_predictions` recomputes it (given the same ``n_boot``, ``alpha``, ``max_fpr``
and ``random_state``, which ``results.json`` records).

Statistics
----------
For each method and repeat of the cross-validation, the out-of-fold probabilities of all
lesions are pooled and scored once (pooled, not averaged over folds: a test fold holds one or
two rim+ lesions, too few for a per-fold pAUC). The estimate is the mean over repeats.

Confidence intervals resample *subjects* with replacement (:func:`rimclf.metrics.
subject_bootstrap_indices`): in each resample every method's metric is computed on the drawn
subjects' lesions for every repeat and averaged over repeats, and the interval is the
``[alpha/2, 1 - alpha/2]`` percentile of these means. All methods share the same resamples,
so the difference ``method - reference`` of each resample gives a paired interval and a
two-sided p-value, ``min(1, 2 (1 + min(#{d <= 0}, #{d >= 0})) / (n_valid + 1))``. With one
repeat this is exactly :func:`rimclf.metrics.bootstrap_ci` and :func:`rimclf.metrics.
paired_bootstrap`. The intervals describe the uncertainty due to which subjects were sampled;
the spread over repeats (``*_sd``, due to fold assignment and training randomness) is reported
separately. Resamples holding a single class are skipped and counted.

Calibration (Brier score, log-loss, calibration slope, expected calibration error) is scored on
the same lesion resamples. The per-scan counts (the expected count with its 90 % interval and
P(at least one rim+) from the lesion probabilities, and the count at each fold's threshold;
:func:`rimclf.metrics.subject_counts`) are scored with :func:`rimclf.metrics.count_scores`, their
intervals from resamples of participants (all their scans together). A metric undefined on a
resample (the subject AUC when every drawn subject has a rim+ lesion) skips it for that metric;
more than 5 % skipped, or an interval that is a single value, gives a
:class:`~rimclf.errors.DataWarning` (``rimclf cv``/``benchmark`` print them as notes).
"""

from __future__ import annotations


import numpy as np
import pandas as pd

import warnings

from rimclf.benchmark._methods import ABLATION_METHODS, METHODS, REFERENCE
from rimclf.cohort import LESION_KEY
from rimclf.errors import CohortError, DataWarning
from rimclf.metrics import (
    bootstrap_p_value,
    count_scores,
    logit,
    partial_roc_auc,
    pr_auc,
    roc_auc,
    subject_bootstrap,
    subject_bootstrap_indices,
    subject_counts,
)

#: Every known method by name: the labels of the table (and of the figures, with the families).
_KNOWN = {**ABLATION_METHODS, **METHODS}

#: Columns of ``predictions.tsv``, in order.
PREDICTION_COLUMNS = ["method", "repeat", "fold", "participant_id", "session", "lesion_id", "rim", "probability"]
#: Columns of ``predictions.tsv`` since the benchmark calibrates (absent from older files: no count at the threshold)
OPTIONAL_PREDICTION_COLUMNS = ["network_probability", "threshold"]
#: What identifies a lesion in ``predictions.tsv`` (``session`` is empty without sessions).
#: Metrics of the results table, in order.
METRICS = ("pauc", "pr_auc", "roc_auc")
SHORT_METRIC_LABELS = {"pauc": "pAUC", "pr_auc": "PR AUC", "roc_auc": "ROC AUC"}
#: Calibration metrics of the results table (lesion level, the same resamples as METRICS).
CALIBRATION_METRICS = ("calibration_slope", "ece", "brier", "log_loss")
#: Per-scan count metrics of the results table (:func:`rimclf.metrics.count_scores`).
COUNT_METRICS = ("count_ccc", "count_mae", "count_bias", "count_coverage", "subject_auc_any", "threshold_count_ccc",
                 "threshold_count_mae", "threshold_count_bias", "category_agreement")
#: What each metric column of ``results.tsv`` holds (each also with ``_ci_low``, ``_ci_high``, ``_sd``).
METRIC_DESCRIPTIONS = {
    "pauc": "standardised partial ROC AUC for FPR <= max_fpr (McClish), pooled out-of-fold lesions",
    "pr_auc": "PR AUC (average precision)",
    "roc_auc": "ROC AUC",
    "calibration_slope": "slope of a logistic regression of the truth on logit(probability): 1 ideal, below 1 over-confident",
    "ece": "expected calibration error: lesion-weighted |rim+ fraction - mean probability| over 10 equal-width bins",
    "brier": "Brier score: mean squared difference of probability and truth",
    "log_loss": "log-loss (probabilities clipped to [1e-6, 1 - 1e-6])",
    "count_ccc": "per scan: Lin's concordance of the expected rim+ count (sum of the probabilities) with the true count",
    "count_mae": "per scan: mean absolute error of the expected rim+ count",
    "count_bias": "per scan: mean of expected - true rim+ count",
    "count_coverage": "fraction of scans whose 90 % count interval (the most probable counts of the Poisson-binomial "
                      "distribution whose probability is nearest to 90 %) holds the true count",
    "subject_auc_any": "per scan: ROC AUC of P(at least one rim+ lesion) for 'the scan has a rim+ lesion'",
    "threshold_count_ccc": "per scan: concordance of the count of lesions called rim+ at the fold's threshold with the true count",
    "threshold_count_mae": "per scan: mean absolute error of the count at the threshold",
    "threshold_count_bias": "per scan: mean of called - true rim+ count at the threshold",
    "category_agreement": "fraction of scans whose count at the threshold falls in the true count's category (0 / 1-3 / >= 4)",
}


def _label(name: str) -> str:
    """A method's label (its name when it is none of the known methods)."""
    return _KNOWN[name].label if name in _KNOWN else name


def ranking_metrics(labels: np.ndarray, scores: np.ndarray, max_fpr: float = 0.1) -> tuple[float, float, float]:
    """(standardised partial ROC AUC, average precision, ROC AUC) from one sort of the scores.

    Equal, to rounding, to :func:`~rimclf.metrics.partial_roc_auc`, :func:`~rimclf.metrics.pr_auc`
    and :func:`~rimclf.metrics.roc_auc` (sklearn's ``roc_auc_score(max_fpr=)`` and
    ``average_precision_score``), without their input checks: the bootstrap calls it tens of
    thousands of times. ``labels`` must hold both classes.

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.array([0, 0, 0, 1, 0, 0, 0, 0, 1, 0])
    >>> scores = np.array([0.1, 0.2, 0.3, 0.9, 0.4, 0.2, 0.7, 0.1, 0.6, 0.3])
    >>> [round(value, 3) for value in ranking_metrics(labels, scores)]   # pAUC, PR AUC, ROC AUC
    [0.737, 0.833, 0.938]
    """
    order = np.argsort(scores, kind="mergesort")[::-1]
    sorted_scores = scores[order]
    threshold_index = np.r_[np.flatnonzero(np.diff(sorted_scores)), sorted_scores.size - 1]
    true_positives = np.cumsum(labels[order])[threshold_index]
    false_positives = threshold_index + 1 - true_positives
    tpr = np.r_[0.0, true_positives / true_positives[-1]]
    fpr = np.r_[0.0, false_positives / false_positives[-1]]
    roc = _trapezoid(tpr, fpr)
    precision = true_positives / (true_positives + false_positives)
    average_precision = float(np.sum(np.diff(tpr) * precision))
    if max_fpr >= 1:
        return roc, average_precision, roc
    stop = int(np.searchsorted(fpr, max_fpr, "right"))
    tpr_at_max = np.interp(max_fpr, fpr[stop - 1 : stop + 1], tpr[stop - 1 : stop + 1])
    partial = _trapezoid(np.r_[tpr[:stop], tpr_at_max], np.r_[fpr[:stop], max_fpr])
    min_area, max_area = 0.5 * max_fpr**2, max_fpr
    return float(0.5 * (1 + (partial - min_area) / (max_area - min_area))), average_precision, roc


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1])) / 2.0)


def _check_predictions(predictions: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(predictions, pd.DataFrame):
        raise CohortError(f"predictions must be a pandas DataFrame (predictions.tsv), got {type(predictions).__name__}")
    if "session" not in predictions.columns:  # predictions.tsv of rimclf before sessions
        predictions = predictions.assign(session="")
    missing = [column for column in PREDICTION_COLUMNS if column not in predictions.columns]
    if missing:
        raise CohortError(f"predictions lack the column(s) {missing}; expected {PREDICTION_COLUMNS}")
    frame = predictions[PREDICTION_COLUMNS + [c for c in OPTIONAL_PREDICTION_COLUMNS if c in predictions.columns]].copy()
    # labels with or without their BIDS prefixes (predictions.tsv has them; tables in memory do not)
    frame["participant_id"] = [str(p).removeprefix("sub-") for p in frame["participant_id"]]
    frame["session"] = ["" if pd.isna(s) or str(s) in ("", "n/a") else str(s).removeprefix("ses-") for s in frame["session"]]
    if frame["probability"].isna().any() or frame["rim"].isna().any():
        raise CohortError("predictions hold missing rim labels or probabilities")
    return frame


def _score_matrix(frame: pd.DataFrame, lesions: pd.MultiIndex, column: str = "probability") -> tuple[list[str], list, np.ndarray]:
    """Scores (n_methods, n_repeats, n_lesions) of ``column`` in ``lesions`` order, after checking completeness."""
    methods = list(dict.fromkeys(frame["method"]))
    repeats = sorted(frame["repeat"].unique().tolist())
    scores = np.empty((len(methods), len(repeats), len(lesions)))
    for m, method in enumerate(methods):
        rows = frame[frame["method"] == method]
        for r, repeat in enumerate(repeats):
            subset = rows[rows["repeat"] == repeat].set_index(LESION_KEY)["probability"]
            if subset.index.has_duplicates:
                raise CohortError(f"method {method!r}, repeat {repeat}: a lesion is predicted more than once")
            if len(subset) != len(lesions) or not subset.index.isin(lesions).all():
                raise CohortError(
                    f"method {method!r}, repeat {repeat}: {len(subset)} lesions predicted, the predictions "
                    f"hold {len(lesions)}; every method must predict every lesion once per repeat"
                )
            scores[m, r] = rows[rows["repeat"] == repeat].set_index(LESION_KEY)[column].reindex(lesions).to_numpy(dtype=np.float64)
    return methods, repeats, scores


def summarize_predictions(
    predictions: pd.DataFrame,
    *,
    reference: str | None = REFERENCE,
    n_boot: int = 1000,
    alpha: float = 0.05,
    max_fpr: float = 0.1,
    random_state: object = 0,
    timings: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The results table of the benchmark, recomputed from its out-of-fold predictions.

    Parameters
    ----------
    predictions : pandas.DataFrame
        ``predictions.tsv``: columns ``method, repeat, fold, participant_id, session, lesion_id,
        rim, probability`` (``session`` may be absent or empty: no sessions); every method must
        predict every lesion exactly once per repeat. The subject bootstrap resamples
        participants (all sessions of one together).
    reference : str or None, default="qsmrimnet_deepsmote"
        Method the others are compared with (paired differences ``method - reference``; left
        empty when None or absent from the predictions).
    n_boot : int, default=1000
        Subject bootstrap resamples.
    alpha : float, default=0.05
        1 - confidence level.
    max_fpr : float, default=0.1
        Upper false-positive rate of the partial ROC AUC.
    random_state : int, RandomState instance or None, default=0
        Seeds the resamples.
    timings : pandas.DataFrame, optional
        ``folds.tsv`` (``method``, ``fit_seconds``, ``fit_cpu_seconds``, ``predict_seconds`` and,
        where the folds ran a threshold CV, ``calibration_seconds`` per fold); adds their means per fold.

    Returns
    -------
    pandas.DataFrame
        One row per method, in the order of first appearance: ``method``, ``label``,
        ``n_subjects``, ``n_lesions``, ``n_rim``, ``n_repeats``; for each metric in (``pauc``,
        ``pr_auc``, ``roc_auc``): the estimate (mean over repeats), ``*_ci_low``, ``*_ci_high``,
        ``*_sd`` (over repeats); then ``*_diff``, ``*_diff_ci_low``, ``*_diff_ci_high``,
        ``*_diff_p`` against the reference; ``n_boot_valid``; and the timing means.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> rim = np.tile([1, 0, 0, 0, 0], 8)                  # 8 subjects of 5 lesions, one rim+ each
    >>> lesions = pd.DataFrame({"participant_id": np.repeat([f"{i:02d}" for i in range(1, 9)], 5),
    ...                         "lesion_id": np.tile(np.arange(1, 6), 8), "rim": rim})
    >>> predictions = pd.concat([                          # what predictions.tsv holds
    ...     lesions.assign(method=name, repeat=0, fold=0, probability=gain * rim + rng.uniform(0, 0.5, 40))
    ...     for name, gain in (("default", 0.5), ("rf_rim", 0.2))])
    >>> results = summarize_predictions(predictions, reference="default", n_boot=200, random_state=0)
    >>> results[["method", "pauc", "pauc_ci_low", "pauc_ci_high", "pauc_diff"]].round(3)
        method   pauc  pauc_ci_low  pauc_ci_high  pauc_diff
    0  default  ...
    1   rf_rim  ...

    From a benchmark's output folder:

    >>> predictions = pd.read_csv("bench_out/predictions.tsv", sep="\\t", dtype={"participant_id": str})  # doctest: +SKIP
    >>> results = summarize_predictions(predictions, reference="default")  # doctest: +SKIP
    """
    frame = _check_predictions(predictions)
    lesion_table = frame.drop_duplicates([*LESION_KEY, "rim"])
    if lesion_table.duplicated(LESION_KEY).any():
        raise CohortError("predictions give one lesion two different rim labels")
    lesion_table = lesion_table.sort_values(LESION_KEY)
    lesions = pd.MultiIndex.from_frame(lesion_table[LESION_KEY])
    labels = lesion_table["rim"].to_numpy(dtype=np.int64)
    groups = lesion_table["participant_id"].to_numpy()
    methods, repeats, scores = _score_matrix(frame, lesions)

    lesion_metrics = METRICS + CALIBRATION_METRICS
    estimates = np.empty((len(methods), len(repeats), len(lesion_metrics)))
    for m in range(len(methods)):
        for r in range(len(repeats)):
            estimates[m, r] = (
                partial_roc_auc(labels, scores[m, r], max_fpr=max_fpr),
                pr_auc(labels, scores[m, r]),
                roc_auc(labels, scores[m, r]),
                *calibration_metrics(labels, scores[m, r]),
            )
    def statistic(index: np.ndarray) -> list:
        """Each method's metrics on one resample, averaged over the repeats."""
        return [
            np.mean([(*ranking_metrics(labels[index], scores[m, r, index], max_fpr),
                      *calibration_metrics(labels[index], scores[m, r, index])) for r in range(len(repeats))], axis=0)
            for m in range(len(methods))
        ]

    values, _ = subject_bootstrap(statistic, labels, groups, n_boot, random_state)  # (n_valid, n_methods, n_metrics)
    # e.g. the calibration slope is undefined on a resample whose truth a probability separates
    low, high = _nan_percentiles(values, methods, alpha, np.zeros(values.shape[1:], dtype=bool), lesion_metrics)
    mean = estimates.mean(axis=1)
    spread = estimates.std(axis=1, ddof=1) if len(repeats) > 1 else np.full_like(mean, np.nan)
    _warn_degenerate(methods, lesion_metrics, low, high, len(np.unique(groups)), alpha)

    table = pd.DataFrame({
        "method": methods,
        "label": [_label(name) for name in methods],
        "n_subjects": len(np.unique(groups)),
        "n_lesions": len(labels),
        "n_rim": int(labels.sum()),
        "n_repeats": len(repeats),
    })
    _add_metrics(table, METRICS, mean, low, high, spread)
    has_reference = reference is not None and reference in methods
    for k, metric in enumerate(METRICS):
        diff = np.full(len(methods), np.nan)
        diff_low, diff_high, p_value = diff.copy(), diff.copy(), diff.copy()
        if has_reference:
            ref = methods.index(reference)
            for m in range(len(methods)):
                if m == ref:
                    continue
                differences = values[:, m, k] - values[:, ref, k]
                diff[m] = mean[m, k] - mean[ref, k]
                diff_low[m], diff_high[m] = np.quantile(differences, [alpha / 2.0, 1.0 - alpha / 2.0])
                p_value[m] = bootstrap_p_value(differences)
        table[f"{metric}_diff"] = diff
        table[f"{metric}_diff_ci_low"] = diff_low
        table[f"{metric}_diff_ci_high"] = diff_high
        table[f"{metric}_diff_p"] = p_value
    table["n_boot_valid"] = values.shape[0]
    _add_metrics(table, CALIBRATION_METRICS, mean[:, len(METRICS):], low[:, len(METRICS):], high[:, len(METRICS):],
                 spread[:, len(METRICS):])
    count_estimates, count_values = _count_metrics(frame, lesion_table, lesions, methods, repeats, scores, n_boot, random_state)
    count_mean = count_estimates.mean(axis=1)
    count_spread = count_estimates.std(axis=1, ddof=1) if len(repeats) > 1 else np.full_like(count_mean, np.nan)
    has_thresholds = "threshold" in frame.columns and bool(frame["threshold"].notna().all())
    absent = np.array([[not _probabilities(scores[m]) or (metric in _THRESHOLD_METRICS and not has_thresholds)
                        for metric in COUNT_METRICS] for m in range(len(methods))])
    count_low, count_high = _nan_percentiles(count_values, methods, alpha, absent)
    _warn_degenerate(methods, COUNT_METRICS, count_low, count_high, len(np.unique(groups)), alpha)
    _add_metrics(table, COUNT_METRICS, count_mean, count_low, count_high, count_spread)
    if timings is not None:
        columns = [c for c in ("fit_seconds", "fit_cpu_seconds", "predict_seconds", "calibration_seconds") if c in timings]
        means = timings.groupby("method", sort=False)[columns].mean()
        table = table.join(means, on="method")
    return table


def _add_metrics(table: pd.DataFrame, names, mean: np.ndarray, low: np.ndarray, high: np.ndarray, spread: np.ndarray) -> None:
    for k, metric in enumerate(names):
        table[metric] = mean[:, k]
        table[f"{metric}_ci_low"] = low[:, k]
        table[f"{metric}_ci_high"] = high[:, k]
        table[f"{metric}_sd"] = spread[:, k]


def calibration_metrics(labels: np.ndarray, probability: np.ndarray, n_bins: int = 10) -> tuple[float, float, float, float]:
    """(calibration slope, expected calibration error, Brier score, log-loss) without input checks.

    Equal, to rounding, to :func:`~rimclf.metrics.calibration_slope` (here by Newton's method on
    the two parameters, so that the bootstrap can call it thousands of times),
    :func:`~rimclf.metrics.expected_calibration_error`, :func:`~rimclf.metrics.brier_score` and
    :func:`~rimclf.metrics.log_loss_score`. ``labels`` must hold both classes for the slope.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(0.01, 0.99, 4000)
    >>> y = (rng.uniform(size=p.size) < p).astype(int)
    >>> [round(value, 2) for value in calibration_metrics(y, p)]
    [0.97, 0.01, 0.17, 0.52]

    Scores that are not probabilities (outside [0, 1]) have no calibration: all four are NaN.
    """
    p = np.asarray(probability, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if p.min() < 0 or p.max() > 1:
        return (float("nan"),) * 4
    clipped = np.clip(p, 1e-6, 1 - 1e-6)
    log_loss = float(-np.mean(y * np.log(clipped) + (1 - y) * np.log1p(-clipped)))
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    ece = float(np.abs(np.bincount(bins, y, n_bins) - np.bincount(bins, p, n_bins)).sum() / y.size)
    return _logistic_slope(logit(p), y), ece, float(np.mean((p - y) ** 2)), log_loss


def _logistic_slope(z: np.ndarray, y: np.ndarray, max_iter: int = 100) -> float:
    """Slope of an unpenalised logistic regression of ``y`` on ``z`` (Newton-Raphson; NaN with one class)."""
    if y.min() == y.max():
        return float("nan")
    design = np.column_stack([z, np.ones_like(z)])
    beta = np.zeros(2)
    for _ in range(max_iter):
        mu = 0.5 * (1.0 + np.tanh(0.5 * (design @ beta)))
        weight = mu * (1.0 - mu)
        hessian = design.T @ (design * weight[:, None])
        try:
            step = np.linalg.solve(hessian, design.T @ (y - mu))
        except np.linalg.LinAlgError:
            return float("nan")
        beta += step
        if np.abs(step).max() < 1e-10:
            break
    return float(beta[0])


def _count_metrics(frame: pd.DataFrame, lesion_table: pd.DataFrame, lesions: pd.MultiIndex, methods: list, repeats: list,
                   scores: np.ndarray, n_boot: int, random_state: object) -> tuple[np.ndarray, np.ndarray]:
    """Per-scan count metrics: estimates (n_methods, n_repeats, n_metrics) and their participant
    resamples (n_boot, n_methods, n_metrics), averaged over repeats (NaN where undefined)."""
    labels = lesion_table["rim"].to_numpy(dtype=np.int64)
    scans = (lesion_table["participant_id"].astype(str) + "\x00" + lesion_table["session"].astype(str)).to_numpy()
    scan_names, scan_codes = np.unique(scans, return_inverse=True)
    scan_participant = np.array([name.split("\x00")[0] for name in scan_names])
    has_threshold = "threshold" in frame.columns and frame["threshold"].notna().all()
    thresholds = _score_matrix(frame, lesions, "threshold")[2] if has_threshold else None
    n_true = np.bincount(scan_codes, labels, scan_names.size)
    per_scan = {}  # (m, r) -> arrays of the scans
    estimates = np.full((len(methods), len(repeats), len(COUNT_METRICS)), np.nan)
    proper = [_probabilities(scores[m]) for m in range(len(methods))]
    values = np.full((n_boot, len(methods), len(COUNT_METRICS)), np.nan)
    if not any(proper):  # scores, not probabilities: no counts
        return estimates, values
    for m in range(len(methods)):
        for r in range(len(repeats)):
            if not proper[m]:
                per_scan[m, r] = None
                continue
            counts = subject_counts(scores[m, r], scan_codes)
            called = None if thresholds is None else np.bincount(scan_codes, scores[m, r] >= thresholds[m, r], scan_names.size)
            arrays = (n_true, counts["expected_rim_pos"].to_numpy(), counts["rim_pos_low"].to_numpy(),
                      counts["rim_pos_high"].to_numpy(), counts["p_any_rim_pos"].to_numpy(), called)
            per_scan[m, r] = arrays
            estimates[m, r] = _count_row(arrays, None)
    for b, index in enumerate(subject_bootstrap_indices(scan_participant, n_boot, random_state)):
        for m in (m for m in range(len(methods)) if proper[m]):
            values[b, m] = np.mean([_count_row(per_scan[m, r], index) for r in range(len(repeats))], axis=0)
    return estimates, values


#: the count metrics of the decisions at the threshold
_THRESHOLD_METRICS = ("threshold_count_ccc", "threshold_count_mae", "threshold_count_bias", "category_agreement")


def _probabilities(scores: np.ndarray) -> bool:
    """Whether a method's scores are probabilities (in [0, 1]): only those have a calibration and counts."""
    return bool((scores >= 0).all() and (scores <= 1).all())


def _count_row(arrays: tuple, index: np.ndarray | None) -> list[float]:
    """:data:`COUNT_METRICS` of the scans ``index`` (all: None); NaN for those at the threshold without thresholds."""
    picked = [None if a is None else (a if index is None else a[index]) for a in arrays]
    scores = count_scores(*picked)
    return [scores.get(name, np.nan) for name in COUNT_METRICS]


def _nan_percentiles(values: np.ndarray, methods: list, alpha: float, absent: np.ndarray,
                     names: tuple[str, ...] = COUNT_METRICS) -> tuple[np.ndarray, np.ndarray]:
    """Percentile intervals over the resamples where each metric is defined, warning when more than
    5 % of them are not, or all (``absent[m, k]``: NaN expected, without a warning: scores that are
    not probabilities, counts at the threshold of predictions without thresholds)."""
    n_boot = values.shape[0]
    low = np.full(values.shape[1:], np.nan)
    high = low.copy()
    for m, method in enumerate(methods):
        for k, metric in enumerate(names):
            valid = values[:, m, k][np.isfinite(values[:, m, k])]
            if valid.size:
                low[m, k], high[m, k] = np.quantile(valid, [alpha / 2.0, 1.0 - alpha / 2.0])
            skipped = n_boot - valid.size
            if not valid.size and not absent[m, k]:
                warnings.warn(f"{method}: {metric}: undefined on these subjects and on every resample (e.g. the subject "
                              "AUC when every subject, or none, has a rim+ lesion)", DataWarning, stacklevel=3)
            if valid.size and skipped > 0.05 * n_boot:
                warnings.warn(f"{method}: {metric}: {skipped} of {n_boot} subject resamples were skipped (the metric is "
                              "undefined on them); the interval is conditional on the others", DataWarning, stacklevel=3)
    return low, high


def _warn_degenerate(methods: list, names, low: np.ndarray, high: np.ndarray, n_subjects: int, alpha: float) -> None:
    """A :class:`~rimclf.errors.DataWarning` for each interval that is a single value."""
    for m, method in enumerate(methods):
        for k, metric in enumerate(names):
            if np.isfinite(low[m, k]) and low[m, k] == high[m, k]:
                warnings.warn(f"{method}: {metric}: the {100 * (1 - alpha):.0f} % interval is the single value "
                              f"{low[m, k]:.3g}; {n_subjects} subjects are too few to show its uncertainty",
                              DataWarning, stacklevel=3)


def with_ci(row: pd.Series, metric: str, digits: int = 3) -> str:
    """A results row's ``metric`` with its 95% CI, e.g. ``0.912 [0.871, 0.950]``."""
    return f"{row[metric]:.{digits}f} [{row[metric + '_ci_low']:.{digits}f}, {row[metric + '_ci_high']:.{digits}f}]"


def difference(row: pd.Series, metric: str, digits: int = 3, *, significance: str | None = "p") -> str:
    """A results row's paired difference from the reference with its CI, ``"reference"`` for the
    reference itself; ``significance`` adds ``p=...`` ("p"), a ``*`` when p < 0.05 ("star") or nothing (None)."""
    if not np.isfinite(row[f"{metric}_diff"]):
        return "reference"  # the one row without a difference to itself
    text = (f"{row[metric + '_diff']:+.{digits}f} [{row[metric + '_diff_ci_low']:+.{digits}f}, "
            f"{row[metric + '_diff_ci_high']:+.{digits}f}]")
    p = row.get(metric + "_diff_p", np.nan)
    if significance == "p":
        return f"{text} p={p:.2g}"
    return text + ("*" if significance == "star" and p < 0.05 else "")


def format_results(results: pd.DataFrame, *, markdown: bool = False, digits: int = 3) -> str:
    """The results table as aligned text (or a markdown table): metrics with CIs, differences
    against the reference with their CIs and p-values (only when the results have a reference,
    whose row then says "reference"), and the mean training time per fold.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> rim = np.tile([1, 0, 0, 0, 0], 8)                  # 8 subjects of 5 lesions, one rim+ each
    >>> lesions = pd.DataFrame({"participant_id": np.repeat([f"{i:02d}" for i in range(1, 9)], 5),
    ...                         "lesion_id": np.tile(np.arange(1, 6), 8), "rim": rim})
    >>> predictions = pd.concat([                          # what predictions.tsv holds
    ...     lesions.assign(method=name, repeat=0, fold=0, probability=gain * rim + rng.uniform(0, 0.5, 40))
    ...     for name, gain in (("default", 0.5), ("rf_rim", 0.2))])
    >>> results = summarize_predictions(predictions, reference="default", n_boot=200, random_state=0)
    >>> print(format_results(results, markdown=True))
    | method | pAUC [95% CI] | PR AUC [95% CI] | ROC AUC [95% CI] | Δ pAUC vs reference | Δ PR AUC vs reference |
    |---|---:|---:|---:|---:|---:|
    | default model | ... | reference | reference |
    | random forest on rim features, class weight | ... p=... |
    """
    has_reference = bool(results["pauc_diff"].notna().any())
    header = ["method", *(f"{SHORT_METRIC_LABELS[m]} [95% CI]" for m in METRICS)]
    if has_reference:
        header += ["Δ pAUC vs reference", "Δ PR AUC vs reference"]
    has_time = "fit_seconds" in results.columns
    has_calibration_time = has_time and "calibration_seconds" in results.columns and results["calibration_seconds"].notna().any()
    if has_time:  # the final fit; the threshold CV (calibration and threshold) apart, as it is timed
        header.append("fit s/fold")
        if has_calibration_time:
            header.append("threshold CV s/fold")
    rows = []
    for _, row in results.iterrows():
        cells = [row["label"] if markdown else row["method"], *(with_ci(row, m, digits) for m in METRICS)]
        if has_reference:
            cells += [difference(row, "pauc", digits), difference(row, "pr_auc", digits)]
        if has_time:
            cells.append(f"{row['fit_seconds']:.1f}")
            if has_calibration_time:
                cells.append(f"{row['calibration_seconds']:.1f}" if np.isfinite(row["calibration_seconds"]) else "n/a")
        rows.append(cells)
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
        return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in rows])
    widths = [max(len(str(cells[i])) for cells in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(str(cell).ljust(width) for cell, width in zip(cells, widths)).rstrip() for cells in [header, *rows])


#: Row labels of :func:`format_calibration`'s text form where the short heading is terse.
LONG_CALIBRATION_LABELS = {"calibration_slope": "calibration slope", "ece": "expected calibration error",
                           "brier": "Brier score"}

#: The calibration and count columns :func:`format_calibration` shows, with their headings.
CALIBRATION_TABLE = (
    ("calibration_slope", "slope"), ("ece", "ECE"), ("brier", "Brier"), ("log_loss", "log-loss"),
    ("count_ccc", "expected count CCC"), ("count_mae", "expected count MAE"), ("count_bias", "expected count bias"),
    ("count_coverage", "90% count interval holds"), ("subject_auc_any", "subject AUC P(>=1)"),
    ("threshold_count_ccc", "count at threshold CCC"), ("category_agreement", "category at threshold 0/1-3/4+"),
)


def format_calibration(results: pd.DataFrame, *, markdown: bool = False, digits: int = 3) -> str:
    """The calibration and per-scan count columns of the results table, each with its 95 % CI, as
    aligned text (a row per metric, a column per method: eleven metrics do not fit a terminal's
    width side by side) or a markdown table (a row per method): the calibration slope, ECE, Brier
    score, log-loss; the expected count's concordance (CCC), mean absolute error and bias, how often
    its 90 % interval holds the true count and the subject AUC of P(at least one rim+); the count at
    the threshold's CCC and the category (0 / 1-3 / >= 4) agreement. Missing values (e.g. no
    thresholds) read ``n/a``.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> rim = (rng.uniform(size=60) < 0.2).astype(int)      # 12 subjects of 5 lesions
    >>> predictions = pd.DataFrame({"participant_id": np.repeat([f"{i:02d}" for i in range(12)], 5),
    ...                             "lesion_id": np.tile(np.arange(1, 6), 12), "rim": rim, "method": "default",
    ...                             "repeat": 0, "fold": 0, "threshold": 0.5,
    ...                             "probability": np.clip(0.6 * rim + rng.uniform(0, 0.4, 60), 0, 1)})
    >>> results = summarize_predictions(predictions, reference=None, n_boot=100, random_state=0)
    >>> lines = format_calibration(results).splitlines()     # a row per metric, a column per method
    >>> lines[0].split()
    ['metric', '[95%', 'CI]', 'default']
    >>> print(lines[3])                                       # doctest: +ELLIPSIS
    Brier score ... [..., ...]
    """
    header = ["method", *(f"{label} [95% CI]" for _, label in CALIBRATION_TABLE)]
    rows = []
    for _, row in results.iterrows():
        cells = [row["label"] if markdown else row["method"]]
        for metric, _ in CALIBRATION_TABLE:
            value = row.get(metric, np.nan)
            cells.append("n/a" if not np.isfinite(value) else with_ci(row, metric, digits) if np.isfinite(row[metric + "_ci_low"])
                         else f"{value:.{digits}f}")
        rows.append(cells)
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
        return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in rows])
    # text: a row per metric (the transposed table)
    table = [["metric [95% CI]", *(cells[0] for cells in rows)]]
    table += [[LONG_CALIBRATION_LABELS.get(metric, label), *(cells[k + 1] for cells in rows)]
              for k, (metric, label) in enumerate(CALIBRATION_TABLE)]
    widths = [max(len(str(cells[i])) for cells in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(str(cell).ljust(width) for cell, width in zip(cells, widths)).rstrip() for cells in table)
