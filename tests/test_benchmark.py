"""The imbalance benchmark: folds, predictions, recomputable results, paired comparisons, CLI."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rimclf.benchmark import (
    METHODS,
    OUTPUT_FILES,
    PREDICTION_COLUMNS,
    REFERENCE,
    BenchmarkSettings,
    ranking_metrics,
    run_imbalance_benchmark,
    summarize_predictions,
)
from rimclf.benchmark._settings import resolve_settings
from rimclf.cli import main
from rimclf.cohort import load_cohort
from rimclf.errors import CohortError, ParameterError
from rimclf.metrics import bootstrap_ci, paired_bootstrap, partial_roc_auc, pr_auc, roc_auc
from rimclf.phantom import make_phantom_cohort

#: A tiny network, few trees and resamples: each run takes seconds.
TINY = {"n_splits": 3, "n_repeats": 2, "max_epochs": 1, "module_width": 2, "patch_shape": 8, "n_estimators": 10,
        "n_boot": 40, "network_radiomics": "lesion", "threshold_cv": 2}
TINY_METHODS = [REFERENCE, "qsmrimnet_smote", "qsmrimnet_oversample", "rf_lesion_smote",
                "rf_lesion_shell_class_weight", "logreg_lesion_class_weight"]
# three training subjects per fold: too few for a threshold CV inside it (the run above has one)
CLI_TINY = ["--quick", "--n-splits", "2", "--epochs", "1", "--n-boot", "30", "--threshold-cv", "0"]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """Six tiny subjects, one in five lesions rim+."""
    return make_phantom_cohort(tmp_path_factory.mktemp("bench") / "cohort", n_subjects=6, random_state=3,
                               shape=(40, 48, 28), lesions_per_subject=(6, 10), rim_prevalence=0.2)


@pytest.fixture(scope="module")
def table(cohort) -> pd.DataFrame:
    return load_cohort(cohort)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bench-cache")


@pytest.fixture(scope="module")
def run(table, cache, tmp_path_factory):
    """One benchmark run through the public API: (results, output folder)."""
    out = tmp_path_factory.mktemp("bench-run") / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = run_imbalance_benchmark(table, out, quick=True, settings=TINY, methods=TINY_METHODS,
                                          random_state=5, cache=cache, n_jobs=2, verbose=False)
    return results, out


def _read(out: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    predictions = pd.read_csv(out / "predictions.tsv", sep="\t", dtype={"participant_id": str, "session": str})
    folds = pd.read_csv(out / "folds.tsv", sep="\t")
    results = pd.read_csv(out / "results.tsv", sep="\t")
    record = json.loads((out / "results.json").read_text())
    return predictions, folds, results, record


# --------------------------------------------------------------------------- metrics
@pytest.mark.slow
def test_ranking_metrics_equal_the_metric_functions():
    rng = np.random.default_rng(0)
    for trial in range(60):
        n = int(rng.integers(8, 300))
        labels = (rng.random(n) < 0.15).astype(np.int64)
        labels[:2] = [0, 1]
        scores = rng.normal(size=n) + labels
        if trial % 3 == 0:
            scores = np.round(scores, 1)  # ties
        for max_fpr in (0.05, 0.1, 0.5, 1.0):
            expected = (partial_roc_auc(labels, scores, max_fpr=max_fpr), pr_auc(labels, scores), roc_auc(labels, scores))
            np.testing.assert_allclose(ranking_metrics(labels, scores, max_fpr), expected, rtol=0, atol=1e-12)


def _synthetic_predictions(n_subjects: int = 12, n_repeats: int = 1, seed: int = 0) -> pd.DataFrame:
    """A noisy reference, an identical copy of it and a perfect method, on the same lesions."""
    rng = np.random.default_rng(seed)
    rows = []
    for subject in range(n_subjects):
        for lesion in range(1, 6):
            rows.append((f"{subject:02d}", lesion, int(rng.random() < 0.25 or lesion == 1 and subject % 2 == 0)))
    lesions = pd.DataFrame(rows, columns=["participant_id", "lesion_id", "rim"]).assign(session="")
    frames = []
    for repeat in range(n_repeats):
        noisy = lesions["rim"] * 0.8 + rng.normal(0, 0.6, len(lesions))
        for method, probability in ((REFERENCE, noisy), ("copy", noisy), ("perfect", lesions["rim"] + rng.random(len(lesions)) * 0.1)):
            frames.append(lesions.assign(method=method, repeat=repeat, fold=0, probability=np.asarray(probability, dtype=float)))
    return pd.concat(frames, ignore_index=True)[PREDICTION_COLUMNS]


def test_paired_differences_of_identical_and_better_methods():
    results = summarize_predictions(_synthetic_predictions(n_repeats=2), n_boot=200, random_state=0).set_index("method")
    assert results.loc[REFERENCE, ["pauc_diff", "pr_auc_diff"]].isna().all()
    for metric in ("pauc", "pr_auc", "roc_auc"):
        assert results.loc["copy", f"{metric}_diff"] == 0.0
        assert results.loc["copy", f"{metric}_diff_ci_low"] == results.loc["copy", f"{metric}_diff_ci_high"] == 0.0
        assert results.loc["copy", f"{metric}_diff_p"] == 1.0
        assert results.loc["perfect", metric] == pytest.approx(1.0)
        assert results.loc["perfect", f"{metric}_diff"] > 0
        assert results.loc["perfect", f"{metric}_diff_ci_low"] > 0
        assert results.loc["perfect", f"{metric}_diff_p"] < 0.05


def test_sessions_are_part_of_the_lesion_key_and_predictions_without_them_still_read():
    predictions = _synthetic_predictions()
    two = pd.concat([predictions.assign(session="1"), predictions.assign(session="2")], ignore_index=True)
    results = summarize_predictions(two, n_boot=20, random_state=0)
    assert results["n_lesions"].iloc[0] == 2 * 12 * 5 and results["n_subjects"].iloc[0] == 12  # participants
    before_sessions = summarize_predictions(predictions.drop(columns="session"), n_boot=20, random_state=0)
    pd.testing.assert_frame_equal(before_sessions, summarize_predictions(predictions, n_boot=20, random_state=0))


@pytest.mark.slow
def test_one_repeat_gives_the_intervals_of_bootstrap_ci_and_paired_bootstrap():
    predictions = _synthetic_predictions(n_repeats=1, seed=3)
    results = summarize_predictions(predictions, n_boot=100, random_state=11).set_index("method")
    rows = predictions[predictions["method"] == REFERENCE].sort_values(["participant_id", "lesion_id"])
    other = predictions[predictions["method"] == "perfect"].sort_values(["participant_id", "lesion_id"])
    labels, groups = rows["rim"].to_numpy(), rows["participant_id"].to_numpy()
    for metric in ("pauc", "pr_auc", "roc_auc"):
        single = bootstrap_ci(metric, labels, rows["probability"], groups, n_boot=100, random_state=11)
        assert results.loc[REFERENCE, metric] == pytest.approx(single.estimate, abs=1e-12)
        assert results.loc[REFERENCE, f"{metric}_ci_low"] == pytest.approx(single.ci_low, abs=1e-12)
        assert results.loc[REFERENCE, f"{metric}_ci_high"] == pytest.approx(single.ci_high, abs=1e-12)
        paired = paired_bootstrap(metric, labels, other["probability"], rows["probability"], groups, n_boot=100, random_state=11)
        assert results.loc["perfect", f"{metric}_diff"] == pytest.approx(paired.difference, abs=1e-12)
        assert results.loc["perfect", f"{metric}_diff_ci_low"] == pytest.approx(paired.ci_low, abs=1e-12)
        assert results.loc["perfect", f"{metric}_diff_ci_high"] == pytest.approx(paired.ci_high, abs=1e-12)
        assert results.loc["perfect", f"{metric}_diff_p"] == pytest.approx(paired.p_value, abs=1e-12)


def test_summarize_rejects_incomplete_or_duplicated_predictions():
    predictions = _synthetic_predictions()
    with pytest.raises(CohortError, match="every method must predict every lesion once"):
        summarize_predictions(predictions.drop(index=7), n_boot=10)
    with pytest.raises(CohortError, match="more than once"):
        summarize_predictions(pd.concat([predictions, predictions.iloc[[3]]]), n_boot=10)
    with pytest.raises(CohortError, match="probability"):
        summarize_predictions(predictions.drop(columns="probability"), n_boot=10)


# --------------------------------------------------------------------------- settings
def test_settings_presets_and_checks():
    assert resolve_settings(None, quick=False) == BenchmarkSettings.full()
    quick = resolve_settings({"max_epochs": 2}, quick=True)
    assert (quick.n_splits, quick.n_repeats, quick.max_epochs) == (3, 1, 2)
    with pytest.raises(ParameterError, match="n_splits=1 is not valid; it must be an integer >= 2"):
        resolve_settings({"n_splits": 1}, quick=False)
    with pytest.raises(ParameterError, match=r"unknown benchmark setting\(s\) \['epochs'\]"):
        resolve_settings({"epochs": 3}, quick=False)
    with pytest.raises(ParameterError, match="max_fpr"):
        BenchmarkSettings(max_fpr=0.0).check()


def test_every_method_builds_an_unfitted_estimator():
    from sklearn.base import clone

    settings = BenchmarkSettings.quick()
    for method in METHODS.values():
        estimator = method.make_estimator(settings, random_state=1)
        assert clone(estimator).get_params()  # an sklearn estimator or pipeline
    assert list(METHODS)[0] == REFERENCE
    assert {m.imbalance for m in METHODS.values() if m.model == "qsmrimnet"} == {"deepsmote", "smote", "class_weight", "oversample", "none"}


@pytest.mark.slow
def test_folds_in_parallel_processes_give_the_same_predictions():
    from skorch.helper import SliceDict

    from rimclf.benchmark._cv import cross_validate_method, make_repeated_folds

    rng = np.random.default_rng(0)
    y = np.tile([1, 0, 0, 0, 0, 0], 8)
    groups = np.repeat(np.arange(12), 4)
    X = SliceDict(patches=rng.normal(size=(48, 2, 8, 8, 8)).astype(np.float32),
                  radiomics=(rng.normal(size=(48, 5)) + y[:, None]).astype(np.float32))
    settings = BenchmarkSettings.quick(n_splits=2, n_repeats=2, max_epochs=2, module_width=2, threshold_cv=2)
    folds, _, seeds = make_repeated_folds(y, groups, 2, 2, random_state=0)
    for name in (REFERENCE, "qsmrimnet_smote"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            serial = cross_validate_method(METHODS[name], X, y, folds, seeds, settings, n_jobs=1, groups=groups)
            parallel = cross_validate_method(METHODS[name], X, y, folds, seeds, settings, n_jobs=2, groups=groups)
        # same folds and seeds; torch's CPU kernels are reproducible to rounding only across processes
        np.testing.assert_allclose(serial[0], parallel[0], rtol=0, atol=1e-3)
        np.testing.assert_array_equal(serial[1], parallel[1])
        assert [row["n_train"] for row in serial[2]] == [len(train) for repeat in folds for train, _ in repeat]


@pytest.mark.slow
def test_bad_arguments_raise_before_any_work(table, tmp_path):
    with pytest.raises(ParameterError, match="methods='svm' is not valid; it must be one of"):
        run_imbalance_benchmark(table, tmp_path / "a", methods=["svm"])
    with pytest.raises(ParameterError, match="n_splits=7 folds but the data hold only 6 subjects"):
        run_imbalance_benchmark(table, tmp_path / "b", settings={"n_splits": 7}, verbose=False)
    assert not (tmp_path / "b").exists()
    with pytest.raises(CohortError, match="needs labelled rim\\+ and rim- lesions"):
        run_imbalance_benchmark(table.assign(rim=pd.array([0] * len(table), dtype="Int64")), tmp_path / "c")


# --------------------------------------------------------------------------- a real run
@pytest.mark.slow
def test_writes_every_file_with_settings_and_versions(run, table):
    results, out = run
    assert sorted(OUTPUT_FILES) == sorted(p.name for p in out.iterdir() if p.is_file())
    predictions, folds, saved, record = _read(out)
    assert saved["method"].tolist() == TINY_METHODS == results["method"].tolist()
    assert list(predictions.columns) == [*PREDICTION_COLUMNS, "network_probability", "threshold"]
    for name in ("rimclf", "torch", "scikit-learn", "imbalanced-learn", "skorch", "pyradiomics", "numpy", "python"):
        assert record["versions"][name]
    assert record["settings"]["n_splits"] == 3 and record["settings"]["max_epochs"] == 1
    assert record["cohort"]["n_lesions"] == len(table) and record["cohort"]["n_rim"] == int(table["rim"].sum())
    assert len(record["seeds"]["split_per_repeat"]) == 2
    metrics = saved[["pauc", "pr_auc", "roc_auc"]].to_numpy()
    assert np.all((metrics >= 0) & (metrics <= 1))
    assert (saved["pauc_ci_low"] <= saved["pauc_ci_high"]).all()
    assert saved.loc[saved["method"] != REFERENCE, "pauc_diff_p"].between(0, 1).all()
    assert (saved["fit_seconds"] > 0).all()
    assert len(folds) == len(TINY_METHODS) * 2 * 3


@pytest.mark.slow
def test_every_lesion_is_predicted_once_per_repeat_out_of_fold_grouped_by_subject(run, table):
    _, out = run
    predictions, folds, _, _ = _read(out)
    lesions = set(zip("sub-" + table["participant_id"].astype(str), table["lesion_id"]))  # BIDS identifiers
    assert len(predictions) == len(TINY_METHODS) * 2 * len(lesions)
    assert set(predictions["session"].fillna("n/a")) == {"n/a"}
    for (method, repeat), rows in predictions.groupby(["method", "repeat"]):
        keys = list(zip(rows["participant_id"], rows["lesion_id"]))
        assert len(keys) == len(set(keys)) == len(lesions) and set(keys) == lesions
        assert set(rows["fold"]) == {0, 1, 2}
        assert rows.groupby("participant_id")["fold"].nunique().max() == 1  # no subject in two folds
        sizes = folds[(folds["method"] == method) & (folds["repeat"] == repeat)].set_index("fold")
        assert (rows.groupby("fold").size() == sizes["n_test"]).all()
        assert (sizes["n_train"] + sizes["n_test"] == len(lesions)).all()


@pytest.mark.slow
def test_all_methods_share_the_same_folds(run):
    _, out = run
    predictions, _, _, _ = _read(out)
    assignment = predictions.pivot_table(index=["repeat", "participant_id", "lesion_id"], columns="method", values="fold")
    assert (assignment.nunique(axis=1) == 1).all()
    by_repeat = assignment[REFERENCE].unstack("repeat")
    assert not (by_repeat[0] == by_repeat[1]).all()  # repeats reshuffle the subjects


@pytest.mark.slow
def test_results_are_recomputed_from_the_predictions(run):
    _, out = run
    predictions, folds, saved, record = _read(out)
    for method, rows in predictions.groupby("method"):
        pauc = np.mean([partial_roc_auc(r["rim"], r["probability"], max_fpr=0.1) for _, r in rows.groupby("repeat")])
        assert saved.set_index("method").loc[method, "pauc"] == pytest.approx(pauc, abs=1e-12)
    again = summarize_predictions(predictions, n_boot=record["settings"]["n_boot"], alpha=record["settings"]["alpha"],
                                  random_state=record["seeds"]["bootstrap"], timings=folds)
    pd.testing.assert_frame_equal(again, saved, check_dtype=False, atol=1e-12)


@pytest.mark.slow
def test_refuses_to_overwrite_without_force(run, table):
    _, out = run
    before = (out / "results.tsv").read_bytes()
    with pytest.raises(FileExistsError, match="--force"):
        run_imbalance_benchmark(table, out, settings=TINY, verbose=False)
    assert (out / "results.tsv").read_bytes() == before


# --------------------------------------------------------------------------- command line
@pytest.mark.slow
def test_cli_benchmark_writes_the_files_and_reuses_its_cache_with_force(cohort, tmp_path, capsys):
    out = tmp_path / "bench"
    args = ["benchmark", str(cohort), "-o", str(out), *CLI_TINY, "--methods", "rf_lesion_smote", "logreg_lesion_smote"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"to {out}" in printed and "rf_lesion_smote" in printed
    results = pd.read_csv(out / "results.tsv", sep="\t")
    assert results["method"].tolist() == ["rf_lesion_smote", "logreg_lesion_smote"]
    predictions = pd.read_csv(out / "predictions.tsv", sep="\t")
    assert set(predictions["fold"]) == {0, 1} and set(predictions["repeat"]) == {0}
    cached = sorted(p.relative_to(out) for p in (out / "cache").rglob("*"))
    assert cached

    assert main(args) == 1
    assert "already exists" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0
    assert sorted(p.relative_to(out) for p in (out / "cache").rglob("*")) == cached  # nothing re-extracted
    # --cache OUT/cache is the default said aloud: not refused as lying inside OUT
    assert main([*args, "--force", "--cache", str(out / "cache")]) == 0
    assert sorted(p.relative_to(out) for p in (out / "cache").rglob("*")) == cached


@pytest.mark.slow
def test_cli_cv_runs_one_method(cohort, cache, tmp_path, capsys):
    out = tmp_path / "cv"
    assert main(["cv", str(cohort), "-o", str(out), *CLI_TINY, "--method", "logreg_lesion_class_weight", "--cache", str(cache)]) == 0
    results = pd.read_csv(out / "results.tsv", sep="\t")
    assert results["method"].tolist() == ["logreg_lesion_class_weight"]
    assert results["pauc_diff"].isna().all()
    assert not (out / "paired_differences.png").exists() and (out / "roc_curves.png").is_file()
    printed = capsys.readouterr().out
    assert "logreg_lesion_class_weight" in printed
    assert "cross-validation: " in printed and "benchmark" not in printed
    assert "Δ" not in printed and "reference" not in printed  # no empty difference columns without a reference
    assert "metric [95% CI]" in printed and "expected count CCC" in printed and (out / "reliability.png").is_file()


# --------------------------------------------------------------------------- figures
def _render(figure):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return canvas.get_renderer()


def _figure_predictions() -> tuple[pd.DataFrame, pd.DataFrame]:
    predictions = _synthetic_predictions(n_repeats=2)
    names = [REFERENCE, "qsmrimnet_smote", "rf_lesion_smote", "rf_lesion_class_weight", "logreg_lesion_smote"]
    rng = np.random.default_rng(1)
    frames = [
        predictions[predictions["method"] == REFERENCE].assign(
            method=name, probability=lambda f: f["rim"] * 0.7 + rng.normal(0, 0.5, len(f)))
        for name in names
    ]
    predictions = pd.concat(frames, ignore_index=True)
    return predictions, summarize_predictions(predictions, n_boot=20, random_state=0)


@pytest.mark.slow
def test_roc_figure_zooms_into_the_pauc_region_with_legends_below_and_distinct_colours():
    from matplotlib.colors import to_hex

    from rimclf.benchmark._plots import plot_curves

    predictions, results = _figure_predictions()
    figure = plot_curves(predictions, results, "roc")
    renderer = _render(figure)
    axes = figure.axes
    assert len(axes) == 4  # network and radiomics panels, each with its pAUC zoom below
    zooms = [axis for axis in axes if axis.get_xlim() == (0.0, 0.1)]
    assert len(zooms) == 2 and all("pAUC region" in axis.get_title() for axis in zooms)
    for zoom in zooms:
        legend = zoom.get_legend()
        assert legend is not None
        assert legend.get_window_extent(renderer).y1 <= zoom.get_window_extent(renderer).y0  # below the axes
        colours = [to_hex(line.get_color()) for line in legend.get_lines()]
        assert len(set(colours)) == len(colours)  # one hue per method
        assert any("pAUC" in text.get_text() for text in legend.get_texts())
    for axis in axes:
        for line in axis.get_lines():
            if line.get_label().startswith("QSMRim-Net, SMOTE"):
                assert line.get_linestyle() == "-"  # network: solid
            if line.get_label().startswith("Random forest"):
                assert line.get_linestyle() == "--"  # radiomics: dashed


@pytest.mark.slow
def test_pr_figure_legends_stand_below_the_curves():
    from rimclf.benchmark._plots import plot_curves

    predictions, results = _figure_predictions()
    figure = plot_curves(predictions, results, "pr")
    renderer = _render(figure)
    for axis in figure.axes:
        assert axis.get_legend().get_window_extent(renderer).y1 <= axis.get_window_extent(renderer).y0
        assert "chance: prevalence" in axis.get_legend().get_texts()[-1].get_text()


# --------------------------------------------------------------------------- the ablation
@pytest.mark.slow
def test_ablation_compares_every_method_with_the_default_model(table, cache, tmp_path):
    """run_benchmark on ablation methods: the default model is the reference; the networks train
    as their configurations say (rim features alone, or with a CNN on 4-channel patches)."""
    from rimclf.benchmark import ABLATION_METHODS, ABLATION_REFERENCE, run_benchmark

    methods = [ABLATION_REFERENCE, "net_fused", "logreg_rim", "rf_lesion_shell"]
    assert ABLATION_METHODS["net_fused"].uses_patches and not ABLATION_METHODS["default"].uses_patches
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = run_benchmark(table, tmp_path / "out", methods=methods, settings={**TINY, "n_repeats": 1},
                                random_state=0, cache=cache, n_jobs=1, verbose=False)
    rows = results.set_index("method")
    assert list(rows.index) == methods
    assert rows.loc[ABLATION_REFERENCE, ["pauc_diff", "pr_auc_diff"]].isna().all()
    assert rows.drop(index=ABLATION_REFERENCE)["pauc_diff"].notna().all()
    record = json.loads((tmp_path / "out" / "results.json").read_text())
    assert record["benchmark"] == "ablation" and record["reference"] == ABLATION_REFERENCE
    networks = {m["name"]: dict(m["network"]) for m in record["methods"] if m["model"] == "qsmrimnet"}
    assert networks["net_fused"]["channels"] == ["qsm", "flair", "mask", "distance"]
    assert (tmp_path / "out" / "paired_differences.png").is_file()
