"""Calibrated probabilities, operating points and per-subject counts with intervals."""

from __future__ import annotations

import itertools
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from rimclf.calibration import Calibration, fit_calibration
from rimclf.errors import CohortError, DataWarning, ModelFileError, ParameterError
from rimclf.metrics import (
    brier_score,
    calibration_slope,
    count_category,
    count_interval,
    expected_calibration_error,
    poisson_binomial,
    subject_count_metrics,
    subject_counts,
)
from rimclf.threshold import ThresholdChoice, choose_threshold


def test_poisson_binomial_is_the_exact_distribution() -> None:
    p = np.array([0.1, 0.5, 0.7, 0.95])
    brute = np.zeros(5)
    for outcome in itertools.product([0, 1], repeat=4):
        brute[sum(outcome)] += np.prod(np.where(outcome, p, 1 - p))
    np.testing.assert_allclose(poisson_binomial(p), brute, atol=1e-12)
    assert poisson_binomial(p) @ np.arange(5) == pytest.approx(p.sum())


@pytest.mark.parametrize("bad", [[0.2, np.nan], [0.2, 1.5], [-0.1, 0.5], [0.2, np.inf]])
def test_count_distributions_refuse_invalid_probabilities(bad) -> None:
    # once a NaN gave an all-NaN pmf and p > 1 negative "probabilities", silently
    with pytest.raises(CohortError, match="probability"):
        poisson_binomial(bad)
    with pytest.raises(CohortError, match="probability"):
        subject_counts(bad, ["a", "a"])


@pytest.mark.parametrize("pmf", [[np.nan, np.nan], [0.5, -0.1, 0.6], []])
def test_count_interval_refuses_an_invalid_pmf(pmf) -> None:
    # once a NaN pmf gave the interval (0, 0), silently
    with pytest.raises(CohortError, match="pmf"):
        count_interval(np.array(pmf), 0.9)


def test_count_interval_at_least_holds_its_level_and_is_shortest() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        pmf = poisson_binomial(rng.uniform(size=rng.integers(1, 30)) ** 3)
        low, high = count_interval(pmf, 0.9, rule="at_least")
        assert pmf[low:high + 1].sum() >= 0.9 - 1e-9
        # the shortest such interval: every interval one count shorter holds less than 90 %
        width = high - low
        assert all(pmf[start:start + width].sum() < 0.9 for start in range(pmf.size - width + 1)) or width == 0
    # the lower tail's share is not wasted at 0: the equal-tailed interval would be 0-2
    assert count_interval(np.array([0.5, 0.42, 0.08]), 0.9, rule="at_least") == (0, 1)


def test_count_interval_nearest_stops_at_the_probability_nearest_the_level() -> None:
    rng = np.random.default_rng(1)
    for _ in range(50):
        pmf = poisson_binomial(rng.uniform(size=rng.integers(1, 30)) ** 3)
        low, high = count_interval(pmf, 0.9)
        at_least_low, at_least_high = count_interval(pmf, 0.9, rule="at_least")
        assert at_least_low <= low <= high <= at_least_high  # the same counts, one fewer at most
        assert (at_least_high - at_least_low) - (high - low) in (0, 1)
        assert abs(pmf[low:high + 1].sum() - 0.9) <= abs(pmf[at_least_low:at_least_high + 1].sum() - 0.9) + 1e-12
    assert count_interval(np.array([0.6, 0.27, 0.13]), 0.9) == (0, 1)     # 87 %, not 100 %
    assert count_interval(np.array([0.97, 0.03]), 0.9) == (0, 0)          # never empty
    with pytest.raises(ParameterError, match="rule"):
        count_interval(np.array([0.5, 0.5]), 0.9, rule="widest")


def test_count_intervals_hold_the_count_as_often_as_they_say_when_probabilities_are_calibrated() -> None:
    # scans of 5-40 lesions with skewed probabilities (most near 0, as rim+ lesions are rare); the
    # true counts drawn from those probabilities, so the probabilities are calibrated by construction
    rng = np.random.default_rng(2)
    held = {"nearest": [], "at_least": []}
    for _ in range(3000):
        p = rng.beta(0.3, 4.0, size=rng.integers(5, 40))
        count = int((rng.uniform(size=p.size) < p).sum())
        pmf = poisson_binomial(p)
        for rule, outcomes in held.items():
            low, high = count_interval(pmf, 0.9, rule=rule)
            outcomes.append(low <= count <= high)
    assert 0.88 <= np.mean(held["nearest"]) <= 0.93
    assert np.mean(held["at_least"]) > 0.93  # discrete counts: "at least 90 %" holds more often


def test_calibration_metrics() -> None:
    rng = np.random.default_rng(1)
    p = rng.uniform(0.01, 0.99, 5000)
    y = (rng.uniform(size=p.size) < p).astype(int)
    assert calibration_slope(y, p) == pytest.approx(1.0, abs=0.1)
    assert expected_calibration_error(y, p) < 0.03
    assert expected_calibration_error(y, np.clip(p + 0.2, 0, 1)) > 0.1
    assert brier_score([0, 1], [0.0, 1.0]) == 0.0
    assert np.isnan(calibration_slope([0, 0], [0.2, 0.3]))


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_calibration_fits_round_trips_and_is_monotone(method: str) -> None:
    rng = np.random.default_rng(2)
    raw = rng.uniform(size=3000)
    y = (rng.uniform(size=raw.size) < raw**4).astype(int)  # raw overstates the risk
    calibration = fit_calibration(y, raw, method)
    calibrated = calibration.apply(raw)
    assert np.all(np.diff(calibration.apply(np.sort(raw))) >= 0)
    assert abs(calibrated.mean() - y.mean()) < 0.01 and abs(raw.mean() - y.mean()) > 0.2
    assert expected_calibration_error(y, calibrated) < expected_calibration_error(y, raw)
    stored = json.loads(json.dumps(calibration.to_dict()))
    assert Calibration.from_dict(stored) == calibration
    assert (calibration.n_lesions, calibration.n_rim_pos) == (3000, int(y.sum()))


def test_sigmoid_calibration_keeps_the_ranking() -> None:
    rng = np.random.default_rng(3)
    raw = rng.uniform(size=500)
    y = (rng.uniform(size=raw.size) < raw).astype(int)
    calibrated = fit_calibration(y, raw, "sigmoid").apply(raw)
    assert (np.argsort(calibrated, kind="stable") == np.argsort(raw, kind="stable")).all()


@pytest.mark.parametrize("fields", [
    {"method": "platt", "coef": 1.0, "intercept": 0.0},
    {"method": "sigmoid", "coef": float("nan"), "intercept": 0.0},
    {"method": "sigmoid", "coef": 1.0},
    {"method": "isotonic", "knots_x": [0.1, 0.05], "knots_y": [0.0, 1.0]},
    {"method": "isotonic", "knots_x": [0.1, 0.2], "knots_y": [0.0, 1.5]},
    {"method": "sigmoid", "coef": 1.0, "intercept": 0.0, "code": "import os"},
    ["sigmoid"],
])
def test_bad_stored_calibrations_are_refused(fields) -> None:
    with pytest.raises(ParameterError):
        Calibration.from_dict(fields)


def test_fit_calibration_checks_its_input() -> None:
    with pytest.raises(ParameterError, match="calibration='beta'"):
        fit_calibration([0, 1], [0.2, 0.8], "beta")
    with pytest.raises(ParameterError, match="rim\\+ and rim-"):
        fit_calibration([0, 0], [0.2, 0.8], "sigmoid")


def _data(seed: int = 4):
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=400) < 0.1).astype(int)
    return y, np.clip(rng.normal(0.3 + 0.3 * y, 0.15), 0, 1)


def test_operating_points_reach_what_they_promise() -> None:
    y, p = _data()
    count = choose_threshold(y, p, "count", method="cv", n_splits=5)
    assert (p >= count.value).sum() == y.sum() and count.operating_point == "count"
    sensitive = choose_threshold(y, p, "sensitivity", target_sensitivity=0.9, method="cv")
    assert sensitive.sensitivity >= 0.9 and sensitive.target_sensitivity == 0.9
    assert (p[y == 1] >= np.nextafter(sensitive.value, 1)).mean() < 0.9 or sensitive.value == p.max()  # the highest such
    best = choose_threshold(y, p, "f1", method="cv")
    f1 = [2 * ((p >= t) & (y == 1)).sum() / ((p >= t).sum() + y.sum()) for t in np.unique(p)]
    assert 2 * best.ppv * best.sensitivity / (best.ppv + best.sensitivity) == pytest.approx(max(f1))
    specific = choose_threshold(y, p, "specificity", target_specificity=0.9, method="cv")
    assert specific.specificity >= 0.9 and specific.ppv == pytest.approx(((p >= specific.value) & (y == 1)).sum() / (p >= specific.value).sum())
    for choice in (count, sensitive, best, specific):
        assert ThresholdChoice.from_dict(json.loads(json.dumps(choice.to_dict()))) == choice
        assert "threshold" in choice.describe()
    with pytest.raises(ParameterError, match="operating_point='median'"):
        choose_threshold(y, p, "median", method="cv")
    with pytest.raises(ParameterError, match="operating_point"):
        ThresholdChoice.from_dict({**count.to_dict(), "operating_point": "median"})


@pytest.mark.slow
def test_subject_counts_and_their_metrics() -> None:
    rng = np.random.default_rng(5)
    groups = np.repeat([f"{i:02d}" for i in range(30)], 20)
    p = rng.uniform(size=groups.size) ** 12
    y = (rng.uniform(size=p.size) < p).astype(int)
    counts = subject_counts(p, groups, threshold=0.5, y_true=y)
    assert len(counts) == 30 and (counts["rim_pos_low"] <= counts["expected_rim_pos"]).all()
    assert (counts["expected_rim_pos"] <= counts["rim_pos_high"]).all()
    assert counts["p_rim_pos_4plus"].le(counts["p_any_rim_pos"]).all()
    assert counts["n_rim_pos_true"].sum() == y.sum() and counts["n_rim_pos_predicted"].sum() == (p >= 0.5).sum()
    metrics = subject_count_metrics(counts, n_boot=200, random_state=0).set_index("metric")
    assert 0.7 <= metrics.loc["expected: interval_coverage", "value"] <= 1.0  # calibrated by construction
    assert metrics.notna().all().all()
    assert metrics["ci_low"].le(metrics["value"] + 1e-12).all() and metrics["ci_high"].ge(metrics["value"] - 1e-12).all()
    assert count_category([0, 2, 5]).tolist() == [0, 1, 2]


def test_subject_counts_refuses_a_nan_threshold() -> None:
    # once threshold=nan counted no lesion as rim+, silently
    with pytest.raises(ParameterError, match="threshold=nan is not valid"):
        subject_counts([0.9, 0.1], ["a", "a"], threshold=float("nan"))


def test_degenerate_bootstrap_intervals_are_announced() -> None:
    counts = subject_counts([0.9, 0.1, 0.8, 0.1], ["a", "a", "b", "b"], threshold=0.5, y_true=[1, 0, 1, 0])
    with pytest.warns(DataWarning, match="single value"):
        subject_count_metrics(counts, n_boot=50, random_state=0)


# ------------------------------------------------------------------ RimModel and model files
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.slow
def test_rim_model_probabilities_are_calibrated_and_saved(tmp_path: Path) -> None:
    from rimclf import load_model, save_model
    from tests.model_builders import tiny_model, tiny_table

    model = tiny_model()
    table = tiny_table()
    assert model.calibration_ is not None and model.calibration_.method == "sigmoid"
    raw = model.classifier_.predict_proba(model.transform(table))[:, 1]
    probability = model.predict_proba(table)
    np.testing.assert_allclose(probability[:, 1], model.calibration_.apply(raw), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probability.sum(axis=1), 1.0, rtol=1e-6)
    assert model.threshold_choice_.operating_point == "specificity" and model.threshold_choice_.brier is not None
    loaded = load_model(save_model(model, tmp_path / "model"))
    assert loaded.calibration_ == model.calibration_
    np.testing.assert_allclose(loaded.predict_proba(table), probability, rtol=1e-5, atol=1e-6)
    assert loaded.get_params()["calibration"] == "sigmoid"


def _write_settings(folder: Path, settings: dict) -> None:
    from rimclf._model_checks import settings_digest

    settings = {key: value for key, value in settings.items() if key != "settings_sha256"}
    (folder / "settings.json").write_text(json.dumps({**settings, "settings_sha256": settings_digest(settings)}))


@pytest.mark.slow
def test_a_version_5_model_file_loads_uncalibrated(tmp_path: Path) -> None:
    from rimclf import load_model
    from tests.model_builders import tiny_model_dir

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir(), folder)
    settings = json.loads((folder / "settings.json").read_text())
    assert settings["format_version"] == 8 and settings["calibration"]["method"] == "sigmoid"
    old = {**settings, "format_version": 5, "model": dict(settings["model"])}
    del old["calibration"], old["ensemble"]
    for key in ("operating_point", "target_sensitivity", "calibration", "ensemble"):
        del old["model"][key]
    _write_settings(folder, old)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = load_model(folder)
    assert loaded.calibration_ is None and loaded.operating_point == "specificity"
    for changed, match in (({"calibration": {"method": "sigmoid", "coef": "1"}}, "calibration"),
                           ({"calibration": {"method": "isotonic", "knots_x": [0.0] * 20001, "knots_y": [0.0] * 20001}}, "knots"),
                           ({"model": {**settings["model"], "operating_point": "median"}}, "operating_point"),
                           ({"model": {**settings["model"], "target_sensitivity": 1.5}}, "target_sensitivity")):
        _write_settings(folder, {**settings, **changed})
        with pytest.raises(ModelFileError, match=match):
            load_model(folder)


@pytest.mark.slow
def test_rim_model_checks_the_new_parameters() -> None:
    from rimclf import RimModel
    from tests.model_builders import tiny_table

    with pytest.raises(ParameterError, match="operating_point"):
        RimModel(operating_point="median").fit(tiny_table())
    with pytest.raises(ParameterError, match="calibration"):
        RimModel(calibration="beta").fit(tiny_table())


def test_the_counts_figure_draws_intervals_that_miss_the_mean(tmp_path: Path) -> None:
    import pandas as pd

    from rimclf.outputs import subject_counts_figure, subject_summary

    predictions = pd.DataFrame({"participant_id": ["01", "02", "02"], "session": "", "lesion_id": [1, 1, 2],
                                "probability": [0.98, 0.1, 0.6], "decision": [1, 0, 1], "rim": [1, 0, 1]})
    summary = subject_summary(predictions)
    assert summary.loc[0, ["expected_rim_pos", "rim_pos_low_90", "rim_pos_high_90"]].tolist() == [0.98, 1, 1]
    subject_counts_figure(summary, title="two scans").savefig(tmp_path / "counts.png")
    assert (tmp_path / "counts.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_invert_gives_the_raw_threshold_of_a_calibrated_one(method: str) -> None:
    rng = np.random.default_rng(6)
    raw = rng.uniform(size=2000)
    y = (rng.uniform(size=raw.size) < raw**2).astype(int)
    calibration = fit_calibration(y, raw, method)
    for value in (0.05, 0.3, 0.7):
        cut = calibration.invert(value)
        calls_raw, calls_calibrated = raw >= cut, calibration.apply(raw) >= value
        assert (calls_raw != calls_calibrated).sum() <= 1  # the same lesions called, up to rounding at the cut


@pytest.mark.slow
def test_the_classifier_decides_as_the_calibrated_model() -> None:
    from tests.model_builders import tiny_model, tiny_table

    model, table = tiny_model(), tiny_table()
    np.testing.assert_array_equal(model.classifier_.predict(model.transform(table)), model.predict(table))


def test_the_sigmoid_slope_is_fitted_within_the_folds() -> None:
    """Fold models with different offsets: one pooled Platt fit flattens the slope; with the fold of
    each probability the slope is fitted with one intercept per fold, and the map stays a sigmoid."""
    from scipy.special import expit, logit

    from rimclf.calibration import fit_calibration

    rng = np.random.default_rng(0)
    n = 6000
    fold = np.repeat(np.arange(3), n // 3)
    z = rng.normal(-3.0, 1.5, n)
    y = (rng.random(n) < expit(z)).astype(int)           # calibrated on the logit scale, slope 1
    offsets = np.array([-1.0, 0.0, 1.0])[fold]           # each fold model shifted
    shifted = expit(z + offsets)
    pooled = fit_calibration(y, shifted, "sigmoid")
    within = fit_calibration(y, shifted, "sigmoid", folds=fold)
    assert within.method == "sigmoid" and abs(within.coef - 1.0) < 0.1
    assert pooled.coef < within.coef - 0.1
    # the intercept makes the mean calibrated probability the mean of Platt's targets
    n_pos = y.sum()
    targets = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (y.size - n_pos + 2))
    assert within.apply(shifted).mean() == pytest.approx(targets.mean(), rel=1e-6)
    with pytest.raises(ParameterError, match="folds must give the fold of each"):
        fit_calibration(y, shifted, "sigmoid", folds=fold[:10])
    assert np.isfinite(logit(within.apply(shifted))).all()


def test_the_within_fold_sigmoid_copes_with_separable_folds() -> None:
    """Perfectly separated out-of-fold probabilities make the slope huge; the intercept is still found."""
    from rimclf.calibration import fit_calibration

    y = np.tile([0, 0, 0, 1], 6)
    probability = np.where(y == 1, 0.9, 0.1) + np.linspace(0, 0.01, y.size)
    calibration = fit_calibration(y, probability, "sigmoid", folds=np.repeat(np.arange(3), 8))
    calibrated = calibration.apply(probability)
    assert calibration.coef > 0 and np.isfinite(calibration.intercept)
    assert calibrated[y == 1].min() > calibrated[y == 0].max()
