"""The benchmark scores what a trained model outputs: calibrated probabilities, the fold's threshold,
calibration and per-scan count metrics with subject-bootstrap intervals."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from rimclf.benchmark import ABLATION_METHODS, BenchmarkSettings, cross_validate_method, make_repeated_folds, summarize_predictions
from rimclf.benchmark._summary import (CALIBRATION_METRICS, CALIBRATION_TABLE, COUNT_METRICS, calibration_metrics,
                                      format_calibration)
from rimclf.errors import DataWarning, ParameterError
from rimclf.metrics import brier_score, calibration_slope, expected_calibration_error, log_loss_score


def _data(n_subjects: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.tile([1, 0, 0, 0, 0], n_subjects)
    groups = np.repeat([f"{i:02d}" for i in range(n_subjects)], 5)
    X = rng.normal(size=(y.size, 3)) + 1.2 * y[:, None]
    return X, y, groups


def test_each_training_fold_is_calibrated_and_thresholded_as_a_rim_model() -> None:
    from rimclf.calibration import calibrate_out_of_fold
    from rimclf.benchmark import make_inner_folds
    from rimclf.threshold import choose_threshold, fold_of, out_of_fold_probabilities

    X, y, groups = _data()
    method = ABLATION_METHODS["logreg_rim"]
    settings = BenchmarkSettings.quick(threshold_cv=3, operating_point="f1")
    folds, _, seeds = make_repeated_folds(y, groups, 4, 1, random_state=0)
    result = cross_validate_method(method, X, y, folds, seeds, settings, n_jobs=1, groups=groups)
    inner = make_inner_folds(y, groups, folds, seeds, 3)
    for fold, (train, test) in enumerate(folds[0]):
        estimator = method.make_estimator(settings, int(seeds[0, fold]))
        oof = out_of_fold_probabilities(estimator, X[train], y[train], groups[train], inner[0][fold])
        calibration = calibrate_out_of_fold(y[train], oof, "sigmoid", folds=fold_of(inner[0][fold], len(train)))
        own = estimator.fit(X[train], y[train]).predict_proba(X[test])[:, 1]
        np.testing.assert_allclose(result.network_probabilities[0, test], own)
        np.testing.assert_allclose(result.probabilities[0, test], calibration.apply(own))
        threshold = choose_threshold(y[train], calibration.apply(oof), "f1", method="cv").value
        assert np.all(result.thresholds[0, test] == threshold)
        assert result.timings[fold]["calibration_coef"] == calibration.coef
    # threshold_cv=0: the method's own probabilities, the threshold read off the training lesions
    plain = cross_validate_method(method, X, y, folds, seeds, BenchmarkSettings.quick(threshold_cv=0), n_jobs=1)
    np.testing.assert_allclose(plain.probabilities, result.network_probabilities)
    np.testing.assert_array_equal(plain.probabilities, plain.network_probabilities)


def test_the_threshold_cv_needs_the_subjects_and_enough_of_them() -> None:
    from rimclf.benchmark import make_inner_folds

    X, y, groups = _data(n_subjects=8)
    folds, _, seeds = make_repeated_folds(y, groups, 4, 1, random_state=0)
    with pytest.raises(ParameterError, match="groups"):
        cross_validate_method(ABLATION_METHODS["logreg_rim"], X, y, folds, seeds, BenchmarkSettings.quick(), n_jobs=1)
    with pytest.raises(ParameterError, match="threshold_cv=7"):
        make_inner_folds(y, groups, folds, seeds, 7)  # 6 training subjects per fold


def test_calibration_metrics_equal_the_metric_functions() -> None:
    rng = np.random.default_rng(3)
    for trial in range(10):
        p = rng.uniform(0, 1, 400) ** rng.uniform(0.5, 3)
        y = (rng.uniform(size=p.size) < rng.uniform(0.3, 1) * p).astype(int)
        expected = (calibration_slope(y, p), expected_calibration_error(y, p), brier_score(y, p), log_loss_score(y, p))
        np.testing.assert_allclose(calibration_metrics(y, p), expected, rtol=1e-3, atol=1e-9)


def _predictions(n_subjects: int = 30, seed: int = 0, with_threshold: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for subject in range(n_subjects):
        for lesion in range(1, 11):
            rows.append((f"{subject:02d}", lesion))
    frame = pd.DataFrame(rows, columns=["participant_id", "lesion_id"])
    # informative, calibrated probabilities (the labels are drawn from them)
    truth = np.where(rng.uniform(size=len(frame)) < 0.12, rng.uniform(0.8, 0.99, len(frame)), rng.uniform(0.0, 0.05, len(frame)))
    frame = frame.assign(session="", method="default", repeat=0, fold=0, rim=(rng.uniform(size=len(frame)) < truth).astype(int),
                         probability=truth)
    if with_threshold:
        frame["threshold"] = 0.3
    return frame


def test_the_results_hold_calibration_and_count_metrics_with_intervals() -> None:
    predictions = _predictions()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        results = summarize_predictions(predictions, reference=None, n_boot=200, random_state=0)
    row = results.iloc[0]
    for metric in (*CALIBRATION_METRICS, *COUNT_METRICS):
        assert np.isfinite(row[metric]) and row[f"{metric}_ci_low"] <= row[metric] <= row[f"{metric}_ci_high"], metric
    assert row["calibration_slope"] == pytest.approx(1.0, abs=0.4) and row["ece"] < 0.05
    assert row["count_ccc"] > 0.5 and abs(row["count_bias"]) < 0.5 and row["count_coverage"] >= 0.8
    text = format_calibration(results)
    lines = text.splitlines()  # a row per metric, a column per method
    assert lines[0].split() == ["metric", "[95%", "CI]", "default"] and len(lines) == 1 + len(CALIBRATION_TABLE)
    assert any(line.startswith("expected count CCC") and "[" in line for line in lines)
    # predictions.tsv of an older run (no thresholds): no count at the threshold, the rest as before
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        older = summarize_predictions(predictions.drop(columns="threshold"), reference=None, n_boot=200, random_state=0)
    assert np.isnan(older.loc[0, "threshold_count_ccc"]) and older.loc[0, "count_ccc"] == row["count_ccc"]
    assert "n/a" in format_calibration(older)


def test_degenerate_and_skipped_intervals_are_announced() -> None:
    predictions = _predictions(n_subjects=6, seed=1)
    predictions.loc[predictions["lesion_id"] == 1, "rim"] = 1  # every subject has a rim+ lesion
    with pytest.warns(DataWarning) as caught:
        summarize_predictions(predictions, reference=None, n_boot=100, random_state=0)
    messages = [str(w.message) for w in caught]
    assert any("subject_auc_any" in message for message in messages)  # undefined: all subjects have one


def test_scores_that_are_not_probabilities_get_no_calibration() -> None:
    predictions = _predictions().assign(probability=lambda f: f["probability"] * 3 - 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        results = summarize_predictions(predictions, reference=None, n_boot=50, random_state=0)
    assert results[list(CALIBRATION_METRICS + COUNT_METRICS)].isna().all(axis=None)
    assert np.isfinite(results.loc[0, "pauc"])


def test_a_calibration_slope_undefined_on_some_resamples_still_gets_an_interval(monkeypatch) -> None:
    import rimclf.benchmark._summary as summary

    slope, calls = summary._logistic_slope, []

    def sometimes_undefined(z, y, max_iter=100):  # as on a resample whose truth the probabilities separate
        calls.append(1)
        return float("nan") if len(calls) % 5 == 0 else slope(z, y, max_iter)

    monkeypatch.setattr(summary, "_logistic_slope", sometimes_undefined)
    with pytest.warns(DataWarning, match="calibration_slope: .* subject resamples were skipped"):
        results = summarize_predictions(_predictions(), reference=None, n_boot=200, random_state=0)
    row = results.iloc[0]
    assert row["calibration_slope_ci_low"] <= row["calibration_slope"] <= row["calibration_slope_ci_high"]
