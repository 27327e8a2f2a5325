"""Tests for rimclf.metrics: sklearn equality, operating points, scorers, subject bootstraps."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold, cross_val_score, cross_validate

from rimclf.errors import CohortError, DataWarning, ParameterError
from rimclf.metrics import (
    SCORERS,
    bootstrap_ci,
    count_agreement,
    paired_bootstrap,
    partial_roc_auc,
    pr_auc,
    roc_auc,
    sensitivity_at_specificity,
    subject_bootstrap_indices,
    threshold_at_specificity,
)


def make_lesions(n_subjects=30, n_per_subject=10, prevalence=0.04, shift=1.5, seed=0):
    """Lesion labels (~4 % rim+), informative scores and subject ids; both classes present."""
    rng = np.random.default_rng(seed)
    groups = np.repeat([f"s{i:03d}" for i in range(n_subjects)], n_per_subject)
    y = (rng.random(groups.size) < prevalence).astype(int)
    y[:2] = [0, 1]
    scores = rng.normal(size=groups.size) + shift * y
    return y, scores, groups


# --------------------------------------------------------------------------- sklearn equality
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("tied", [False, True])
def test_ranking_metrics_equal_sklearn(seed, tied):
    y, scores, _ = make_lesions(seed=seed)
    if tied:
        scores = np.round(scores, 0)  # many ties
    for max_fpr in (0.05, 0.1, 0.3, 1.0):
        assert partial_roc_auc(y, scores, max_fpr=max_fpr) == pytest.approx(
            roc_auc_score(y, scores, max_fpr=max_fpr), abs=1e-12
        )
    assert partial_roc_auc(y, scores) == pytest.approx(roc_auc_score(y, scores, max_fpr=0.1))
    assert roc_auc(y, scores) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
    assert pr_auc(y, scores) == pytest.approx(average_precision_score(y, scores), abs=1e-12)


def test_partial_auc_reference_values():
    y = np.array([0, 0, 0, 0, 1, 1])
    assert partial_roc_auc(y, [0.1, 0.2, 0.3, 0.4, 0.8, 0.9]) == pytest.approx(1.0)
    assert partial_roc_auc(y, [0.8, 0.9, 0.3, 0.4, 0.1, 0.2]) == pytest.approx(
        roc_auc_score(y, [0.8, 0.9, 0.3, 0.4, 0.1, 0.2], max_fpr=0.1)
    )


# --------------------------------------------------------------------------- operating points
# 10 rim- scored 0.0 .. 0.9 and 4 rim+ scored 0.95, 0.85, 0.82, 0.30.
HAND_Y = np.array([0] * 10 + [1] * 4)
HAND_SCORES = np.array([i / 10 for i in range(10)] + [0.95, 0.85, 0.82, 0.30])


@pytest.mark.parametrize(
    ("specificity", "sensitivity", "threshold"),
    [
        (1.0, 0.25, 0.95),  # no false positive: only 0.95 is called rim+
        (0.9, 0.75, 0.82),  # one FP (0.9) allowed: 0.95, 0.85, 0.82 called rim+
        (0.8, 0.75, 0.82),  # 0.8 reaches the same sensitivity; the more specific 0.82 wins
        (0.5, 0.75, 0.82),
        (0.3, 1.0, 0.30),  # 0.30 calls 7 rim- positive: specificity exactly 0.3
        (0.0, 1.0, 0.30),
    ],
)
def test_sensitivity_at_specificity_hand_computed(specificity, sensitivity, threshold):
    achieved = sensitivity_at_specificity(HAND_Y, HAND_SCORES, specificity)
    assert achieved == pytest.approx(sensitivity)
    assert threshold_at_specificity(HAND_Y, HAND_SCORES, specificity) == pytest.approx(threshold)


def test_sensitivity_at_specificity_unreachable_gives_inf_threshold():
    y, scores = np.array([0, 1]), np.array([1.0, 0.0])
    assert sensitivity_at_specificity(y, scores, 0.9) == 0.0
    assert threshold_at_specificity(y, scores, 0.9) == np.inf


@pytest.mark.parametrize("target", [0.8, 0.9, 0.95])
def test_operating_point_is_optimal_among_all_thresholds(target):
    y, scores, _ = make_lesions(seed=3, prevalence=0.2)
    scores = np.round(scores, 1)  # ties
    threshold = threshold_at_specificity(y, scores, target)
    called = scores >= threshold
    achieved_spec = np.mean(~called[y == 0])
    achieved_sens = np.mean(called[y == 1])
    assert achieved_spec >= target
    assert achieved_sens == pytest.approx(sensitivity_at_specificity(y, scores, target))
    for candidate in np.unique(scores):  # brute force over every threshold
        called = scores >= candidate
        if np.mean(~called[y == 0]) >= target:
            assert np.mean(called[y == 1]) <= achieved_sens
    # invariant to monotone transforms of the score
    assert sensitivity_at_specificity(y, np.exp(scores), target) == achieved_sens


# --------------------------------------------------------------------------- input errors
@pytest.mark.parametrize(
    ("function", "args", "match"),
    [
        (roc_auc, ([0, 1, 1], [0.1, 0.2]), "y_score has 2 values but y_true has 3"),
        (pr_auc, ([1, 1, 1], [0.1, 0.2, 0.3]), "y_true holds a single class"),
        (partial_roc_auc, ([0, 1, 1], [0.1, np.nan, 0.3]), "y_score holds 1 NaN/Inf"),
        (roc_auc, ([0, 1, 2], [0.1, 0.2, 0.3]), r"y_true must hold binary labels.*2"),
        (roc_auc, ([0, 1], [[0.9, 0.1], [0.2, 0.8]]), r"predict_proba\(X\)\[:, 1\]"),
        (roc_auc, ([0, 1, np.nan], [0.1, 0.2, 0.3]), "y_true holds 1 missing"),
    ],
)
def test_bad_input_names_the_argument(function, args, match):
    with pytest.raises(CohortError, match=match):
        function(*args)


@pytest.mark.parametrize(
    ("function", "args", "match"),
    [
        (partial_roc_auc, ([0, 1], [0.1, 0.2], 0.0), r"max_fpr=0.0 is not valid; it must be a number in \(0, 1\]"),
        (sensitivity_at_specificity, ([0, 1], [0.1, 0.2], 1.5), r"specificity=1.5 is not valid; it must be a number in \[0, 1\]"),
        (sensitivity_at_specificity, ([0, 1], [0.1, 0.2], "90%"), "specificity='90%' is not valid"),
    ],
)
def test_bad_setting_names_the_argument(function, args, match):
    with pytest.raises(ParameterError, match=match):
        function(*args)


def test_bootstrap_errors_name_the_argument():
    y, scores, groups = make_lesions()
    with pytest.raises(CohortError, match="groups has shape"):
        bootstrap_ci("pauc", y, scores, groups[:-1])
    with pytest.raises(ParameterError, match="metric='auc' is not valid; it must be one of"):
        bootstrap_ci("auc", y, scores, groups)
    with pytest.raises(ParameterError, match="n_boot=0 is not valid; it must be a positive integer"):
        bootstrap_ci("pauc", y, scores, groups, n_boot=0)
    with pytest.raises(ParameterError, match="alpha=1.5 is not valid"):
        bootstrap_ci("pauc", y, scores, groups, alpha=1.5)
    bad = scores.copy()
    bad[5] = np.nan
    with pytest.raises(CohortError, match="score_b holds 1 NaN"):
        paired_bootstrap("pauc", y, scores, bad, groups)


def test_bootstrap_of_a_single_subject_is_refused():
    # once a zero-width "interval" came back, as if one subject's metric were certain
    y, scores, _ = make_lesions(n_subjects=1, n_per_subject=20)
    one = np.full(y.size, "s000")
    with pytest.raises(CohortError, match="groups holds 1 subject"):
        bootstrap_ci("pauc", y, scores, one, n_boot=10, random_state=0)
    with pytest.raises(CohortError, match="groups holds 1 subject"):
        paired_bootstrap("pauc", y, scores, -scores, one, n_boot=10, random_state=0)


# --------------------------------------------------------------------------- scorers
def test_scorers_in_grouped_cross_validation_match_manual_folds():
    rng = np.random.default_rng(0)
    y, _, groups = make_lesions(n_subjects=40, prevalence=0.08)
    X = rng.normal(size=(y.size, 3)) + np.outer(y, [1.5, 0.5, 0.0])
    cv = StratifiedGroupKFold(n_splits=3, shuffle=True, random_state=0)
    model = LogisticRegression()
    for name, metric in [
        ("pauc", partial_roc_auc),
        ("pr_auc", pr_auc),
        ("roc_auc", roc_auc),
        ("sens_at_spec90", sensitivity_at_specificity),
    ]:
        scores = cross_val_score(model, X, y, groups=groups, cv=cv, scoring=SCORERS[name])
        expected = []
        for train, test in cv.split(X, y, groups):
            fitted = clone(model).fit(X[train], y[train])
            expected.append(metric(y[test], fitted.predict_proba(X[test])[:, 1]))
        np.testing.assert_allclose(scores, expected, atol=1e-12)
        assert np.all(np.isfinite(scores))
    result = cross_validate(model, X, y, groups=groups, cv=cv, scoring=SCORERS)
    assert {f"test_{name}" for name in SCORERS} <= set(result)
    assert np.mean(result["test_roc_auc"]) > 0.8


# --------------------------------------------------------------------------- count agreement
def test_count_agreement_hand_computed():
    groups = ["a", "a", "a", "b", "b", "c", "c", "c", "d"]
    y_true = [1, 1, 0, 0, 0, 1, 0, 0, 0]  # a: 2, b: 0, c: 1, d: 0
    y_pred = [1, 0, 0, 1, 0, 1, 1, 1, 0]  # a: 1, b: 1, c: 3, d: 0
    result = count_agreement(y_true, y_pred, groups)
    assert result.per_subject.index.tolist() == ["a", "b", "c", "d"]
    assert result.per_subject["n_true"].tolist() == [2, 0, 1, 0]
    assert result.per_subject["n_pred"].tolist() == [1, 1, 3, 0]
    assert result.per_subject["difference"].tolist() == [-1, 1, 2, 0]
    assert result.n_subjects == 4
    assert result.mae == pytest.approx(1.0)
    assert result.bias == pytest.approx(0.5)
    assert result.exact_fraction == pytest.approx(0.25)
    true, pred = np.array([2, 0, 1, 0.0]), np.array([1, 1, 3, 0.0])
    covariance = np.mean((true - true.mean()) * (pred - pred.mean()))
    ccc = 2 * covariance / (true.var() + pred.var() + (true.mean() - pred.mean()) ** 2)
    assert result.ccc == pytest.approx(ccc)
    # ranks true (4, 1.5, 3, 1.5), pred (2.5, 2.5, 4, 1): Pearson of ranks = 2.25 / 4.5
    assert result.spearman == pytest.approx(0.5)


def test_count_agreement_ccc_penalises_offset_and_handles_constants():
    groups = np.repeat(["a", "b", "c"], 4)
    y_true = np.array([1, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 0])  # 1, 2, 3
    perfect = count_agreement(y_true, y_true, groups)
    assert (perfect.mae, perfect.ccc, perfect.exact_fraction) == (0.0, 1.0, 1.0)
    over = count_agreement(y_true, np.array([1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1]), groups)
    assert over.spearman == pytest.approx(1.0)  # same ranking ...
    assert over.ccc < 0.8  # ... but counts are off by one everywhere
    assert over.bias == pytest.approx(1.0)
    none = count_agreement(np.zeros(12, int), np.zeros(12, int), groups)
    assert none.ccc == 1.0 and np.isnan(none.spearman)


def test_count_agreement_rejects_scores():
    with pytest.raises(CohortError, match="y_pred must hold binary labels"):
        count_agreement([0, 1], [0.2, 0.7], ["a", "b"])
    with pytest.raises(CohortError, match="groups"):
        count_agreement([0, 1], [0, 1], ["a"])


# --------------------------------------------------------------------------- subject bootstrap
def test_subject_bootstrap_draws_whole_subjects_deterministically():
    groups = np.array(["b", "a", "b", "c", "a", "b"])  # sizes a: 2, b: 3, c: 1, interleaved
    sizes = {"a": 2, "b": 3, "c": 1}
    draws = list(subject_bootstrap_indices(groups, n_boot=50, random_state=7))
    for index in draws:
        drawn, counts = np.unique(groups[index], return_counts=True)
        multiplicity = [count / sizes[name] for name, count in zip(drawn, counts)]
        assert all(m == int(m) for m in multiplicity)  # whole subjects only
        assert sum(multiplicity) == 3  # as many subject draws as subjects
        for name in drawn:  # a drawn subject brings every one of its lesions
            assert set(np.flatnonzero(groups == name)) <= set(index.tolist())
    again = list(subject_bootstrap_indices(groups, n_boot=50, random_state=7))
    assert all(np.array_equal(a, b) for a, b in zip(draws, again))
    assert any(len(index) != len(groups) for index in draws)


@pytest.mark.slow
def test_bootstrap_ci_depends_on_subjects_not_lesions():
    rng = np.random.default_rng(1)
    n_subjects = 30
    y_subject = np.r_[[1] * 8, [0] * (n_subjects - 8)]
    score_subject = rng.normal(size=n_subjects) + y_subject
    results = {}
    for n_copies in (1, 10):  # every subject's lesions are identical copies
        y = np.repeat(y_subject, n_copies)
        scores = np.repeat(score_subject, n_copies)
        groups = np.repeat(np.arange(n_subjects), n_copies)
        results[n_copies] = bootstrap_ci("roc_auc", y, scores, groups, n_boot=200, random_state=0)
    assert results[1].estimate == pytest.approx(results[10].estimate)
    assert results[1].ci_low == pytest.approx(results[10].ci_low)
    assert results[1].ci_high == pytest.approx(results[10].ci_high)
    # resampling the same 300 lesions as if independent gives a much narrower interval
    naive = bootstrap_ci(
        "roc_auc", np.repeat(y_subject, 10), np.repeat(score_subject, 10), np.arange(300),
        n_boot=200, random_state=0,
    )
    assert naive.ci_high - naive.ci_low < 0.6 * (results[10].ci_high - results[10].ci_low)


@pytest.mark.slow
def test_bootstrap_ci_is_deterministic_and_narrows_with_more_subjects():
    y, scores, groups = make_lesions(n_subjects=20, prevalence=0.1, seed=2)
    widths = []
    for n_copies in (1, 6):  # the same 20 subjects, then 6 distinct copies of each: 120 subjects
        big_groups = np.concatenate([np.char.add(groups, f"-{i}") for i in range(n_copies)])
        big_y, big_scores = np.tile(y, n_copies), np.tile(scores, n_copies)
        first = bootstrap_ci("roc_auc", big_y, big_scores, big_groups, n_boot=100, random_state=3)
        second = bootstrap_ci("roc_auc", big_y, big_scores, big_groups, n_boot=100, random_state=3)
        np.testing.assert_array_equal(first.values, second.values)
        assert first.estimate == pytest.approx(roc_auc_score(y, scores))
        assert first.ci_low <= first.estimate <= first.ci_high
        assert first.n_subjects == 20 * n_copies
        assert first.values.size == first.n_boot - first.n_skipped
        widths.append(first.ci_high - first.ci_low)
    assert widths[1] < 0.6 * widths[0]  # about 1 / sqrt(6) = 0.41


@pytest.mark.slow
def test_bootstrap_skips_and_counts_single_class_resamples():
    # 6 subjects, only "s0" has rim+ lesions: about (5/6)^6 = 33 % of resamples lack them
    groups = np.repeat([f"s{i}" for i in range(6)], 5)
    y = np.zeros(30, int)
    y[:2] = 1
    scores = np.linspace(0, 1, 30)[::-1]
    with pytest.warns(DataWarning, match="held a single class and were skipped"):
        result = bootstrap_ci("roc_auc", y, scores, groups, n_boot=300, random_state=0)
    expected_skipped = sum(
        y[index].max() == 0 for index in subject_bootstrap_indices(groups, 300, random_state=0)
    )
    assert result.n_skipped == expected_skipped
    assert 50 < result.n_skipped < 150
    assert result.values.size == 300 - result.n_skipped


def test_bootstrap_with_no_valid_resample_raises():
    groups, y, scores = np.array(["a", "b"]), np.array([1, 0]), np.array([0.9, 0.1])
    seed = next(
        s for s in range(100)
        if len(set(groups[next(subject_bootstrap_indices(groups, 1, random_state=s))])) == 1
    )
    with pytest.raises(CohortError, match="all 1 subject resamples held a single class"):
        bootstrap_ci("roc_auc", y, scores, groups, n_boot=1, random_state=seed)


def mean_gap(y, scores):
    """A cheap metric for coverage simulations: mean score of rim+ minus that of rim-."""
    return scores[y == 1].mean() - scores[y == 0].mean()


@pytest.mark.slow
def test_bootstrap_coverage_sanity():
    # Rim+ lesions of one subject share a subject effect, so lesions are not independent.
    rng = np.random.RandomState(0)  # sklearn-style random_state: int or RandomState
    n_subjects, n_per_subject, n_datasets = 30, 8, 100
    groups = np.repeat(np.arange(n_subjects), n_per_subject)
    covered = {"subject": 0, "lesion": 0}
    for _ in range(n_datasets):
        y = (rng.random_sample(groups.size) < 0.3).astype(int)
        subject_effect = rng.normal(scale=1.0, size=n_subjects)[groups]
        scores = y * (1.0 + subject_effect) + rng.normal(scale=0.3, size=groups.size)
        for kind, resampled in (("subject", groups), ("lesion", np.arange(groups.size))):
            ci = bootstrap_ci(mean_gap, y, scores, resampled, n_boot=200, random_state=rng)
            covered[kind] += ci.ci_low <= 1.0 <= ci.ci_high  # true mean gap is 1
    assert 0.85 <= covered["subject"] / n_datasets <= 1.0
    assert covered["lesion"] < covered["subject"] - 10


# --------------------------------------------------------------------------- paired bootstrap
@pytest.mark.slow
def test_paired_identical_scores_give_zero_difference():
    y, scores, groups = make_lesions()
    result = paired_bootstrap("pauc", y, scores, scores.copy(), groups, n_boot=100, random_state=0)
    assert result.difference == 0.0
    assert (result.ci_low, result.ci_high) == (0.0, 0.0)
    assert result.p_value == 1.0
    assert result.estimate_a == result.estimate_b == pytest.approx(partial_roc_auc(y, scores))


@pytest.mark.slow
def test_paired_clearly_better_method_is_detected():
    y, _, groups = make_lesions(n_subjects=40, prevalence=0.08)
    rng = np.random.default_rng(5)
    good = y * 3.0 + rng.normal(size=y.size)
    weak = y * 0.5 + rng.normal(size=y.size)
    result = paired_bootstrap("roc_auc", y, good, weak, groups, n_boot=200, random_state=0)
    assert result.difference > 0.15
    assert result.ci_low > 0
    assert result.p_value == pytest.approx(2 / 201)  # no replicate at or below 0
    reverse = paired_bootstrap("roc_auc", y, weak, good, groups, n_boot=200, random_state=0)
    np.testing.assert_allclose(reverse.differences, -result.differences)


def test_paired_uses_the_same_resample_for_both_methods():
    y, _, groups = make_lesions(n_subjects=12, prevalence=0.2)
    score_a = np.arange(y.size, dtype=float)  # a score identifies its lesion
    score_b = score_a + 1000.0
    calls = []

    def recording_metric(labels, scores):
        calls.append((labels.copy(), scores.copy()))
        return float(scores.mean())

    paired_bootstrap(recording_metric, y, score_a, score_b, groups, n_boot=20, random_state=1)
    replicate_calls = calls[:-2]  # the last two are the full-data estimates
    assert len(replicate_calls) % 2 == 0 and replicate_calls
    for (labels_a, seen_a), (labels_b, seen_b) in zip(replicate_calls[::2], replicate_calls[1::2]):
        np.testing.assert_array_equal(labels_a, labels_b)
        np.testing.assert_array_equal(seen_b, seen_a + 1000.0)  # same lesions, same order
    # and the same resamples as bootstrap_ci with the same seed
    paired = paired_bootstrap("pr_auc", y, score_a, -score_a, groups, n_boot=50, random_state=4)
    single_a = bootstrap_ci("pr_auc", y, score_a, groups, n_boot=50, random_state=4)
    single_b = bootstrap_ci("pr_auc", y, -score_a, groups, n_boot=50, random_state=4)
    np.testing.assert_allclose(paired.differences, single_a.values - single_b.values)
