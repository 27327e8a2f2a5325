"""The demo, at a tiny size: outputs, metrics, plots, reuse of phantoms and feature cache, atomic OUT."""

from __future__ import annotations

import gzip
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rimclf import CohortError
from rimclf.defaults import DEFAULT_MODEL
from rimclf.demo import evaluate_predictions, format_metrics, plot_roc_pr, run_demo
from rimclf.outputs import read_lesions
from tests.model_builders import PHANTOM_OPTIONS

#: in the names of the temporary siblings that rimclf._atomic writes an output folder in
STAGING_MARK = b".rimclf-tmp."

pytestmark = pytest.mark.slow

#: the default model (rim features, MLP) at a tiny size
TINY = {"train_subjects": 5, "test_subjects": 3, "config": replace(DEFAULT_MODEL, max_epochs=1, width=4, threshold_cv=0),
        "n_jobs": 1, "phantom_options": {**PHANTOM_OPTIONS, "rim_prevalence": 0.4}, "progress": False}


def test_evaluate_predictions() -> None:
    lesions = pd.DataFrame({
        "participant_id": ["a"] * 4 + ["b"] * 4,
        "rim": [1, 0, 0, 0, 1, 1, 0, 0],
        "probability": [0.9, 0.1, 0.2, 0.3, 0.8, 0.4, 0.5, 0.05],
    })
    metrics, counts = evaluate_predictions(lesions, threshold=0.45, n_boot=50)
    values = dict(zip(metrics["metric"], metrics["value"]))
    assert values["ROC AUC"] == pytest.approx(14 / 15)  # one of 15 rim+/rim- pairs is misordered
    assert values["sensitivity at threshold 0.45"] == pytest.approx(2 / 3)
    assert values["specificity at threshold 0.45"] == pytest.approx(4 / 5)
    assert values["rim+ count per subject: mean abs. error"] == pytest.approx(0.0)  # a: 1 vs 1, b: 2 vs 2 (0.8, 0.5)
    assert counts[["n_rim_pos_true", "n_rim_pos_predicted"]].to_numpy().tolist() == [[1, 1], [2, 2]]
    ranking = metrics.iloc[:3]  # pAUC, PR AUC, ROC AUC carry bootstrap intervals
    assert ranking["ci_low"].le(ranking["value"]).all() and ranking["ci_high"].ge(ranking["value"]).all()
    assert "partial ROC AUC (FPR <= 0.1)" in format_metrics(metrics)


def test_plot_roc_pr(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(40, int), np.ones(6, int)]
    path = plot_roc_pr(tmp_path / "curves.png", y, rng.random(46) + y * 0.5, threshold=0.9)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(FileExistsError):
        plot_roc_pr(tmp_path / "curves.png", y, rng.random(46), threshold=0.5)


def _mentions_of_staging(folder: Path) -> list[str]:
    """Files under ``folder`` whose bytes (gunzipped for ``.gz``) name a temporary sibling folder."""
    found = []
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
            if STAGING_MARK in data:
                found.append(str(path.relative_to(folder)))
    return found


def test_tiny_demo_runs_and_reruns_from_cache(tmp_path: Path) -> None:
    lines: list[str] = []
    result = run_demo(tmp_path / "demo", seed=0, report=lines.append, **TINY)
    assert [p.name for p in tmp_path.iterdir()] == ["demo"], "no temporary folder is left beside OUT"
    assert _mentions_of_staging(tmp_path / "demo") == [], "paths inside OUT must name OUT, not the staging folder"
    assert STAGING_MARK.decode() not in "\n".join(lines), "the messages name the final paths"
    paths = result.paths
    for name in ("model", "predictions", "train_cohort", "test_cohort", "cache"):
        assert paths[name].is_dir(), name
    assert paths["roc_pr"].read_bytes()[:4] == b"\x89PNG"
    assert paths["reliability"].read_bytes()[:4] == b"\x89PNG"
    assert not (paths["model"] / "reliability.png").exists()  # threshold_cv=0: no out-of-fold probabilities to draw
    metrics = pd.read_csv(paths["metrics"], sep="\t")
    assert metrics["metric"].iloc[0] == "partial ROC AUC (FPR <= 0.1)"
    lesions = read_lesions(paths["predictions"])
    assert lesions["participant_id"].nunique() == 3 and len(result.counts) == 3
    text = "\n".join(lines)
    assert "training" in text and "held-out" in text and "PR AUC" in text and str(paths["roc_pr"]) in text
    assert any(paths["cache"].rglob("*")), "features are cached"

    with pytest.raises(FileExistsError, match="--force"):
        run_demo(tmp_path / "demo", seed=0, report=None, **TINY)
    cached = {path.name: path.stat().st_mtime_ns for path in paths["cache"].iterdir()}
    again: list[str] = []
    rerun = run_demo(tmp_path / "demo", seed=0, force=True, report=again.append, **TINY)
    assert sum("reusing" in line for line in again) == 2
    assert {path.name: path.stat().st_mtime_ns for path in paths["cache"].iterdir()} == cached, "the cache is carried over"
    pd.testing.assert_frame_equal(rerun.metrics, result.metrics)  # same seed, same cohorts, same numbers
    assert [p.name for p in tmp_path.iterdir()] == ["demo"]
    assert _mentions_of_staging(tmp_path / "demo") == []


def test_a_failing_demo_leaves_no_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Complete or not at all: a failure after the cohorts were written leaves no OUT and no temporary folder;
    with force, the previous OUT stays as it was."""
    import rimclf.workflows

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C during the training

    monkeypatch.setattr(rimclf.workflows, "train_model", interrupted)
    out = tmp_path / "demo"
    with pytest.raises(KeyboardInterrupt):
        run_demo(out, report=None, **TINY)
    assert list(tmp_path.iterdir()) == []

    (out / "cache").mkdir(parents=True)
    (out / "cache" / "kept.txt").write_text("previous run")
    (out / "metrics.tsv").write_text("previous metrics")
    with pytest.raises(KeyboardInterrupt):
        run_demo(out, force=True, report=None, **TINY)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "demo", "demo/cache", "demo/cache/kept.txt", "demo/metrics.tsv"]
    assert (out / "metrics.tsv").read_text() == "previous metrics"


def test_demo_needs_both_classes_in_the_held_out_cohort(tmp_path: Path) -> None:
    options = {**TINY, "phantom_options": {**PHANTOM_OPTIONS, "rim_prevalence": 0.0}, "test_subjects": 1}
    with pytest.raises(CohortError, match="held-out cohort .* has no rim\\+ lesion.*--test-subjects"):
        run_demo(tmp_path / "demo", report=None, **options)
    assert list(tmp_path.iterdir()) == [], "a failed demo leaves nothing behind"
