"""``rimclf demo``: phantom cohorts, training, prediction on held-out subjects, metrics and plots.

The demo is the whole workflow on synthetic data, sized for a laptop CPU (about 10 minutes on
2 cores with the defaults):

1. writes two phantom cohorts with different seeds: ``OUT/cohort-train`` and ``OUT/cohort-test``
   (held-out subjects), and prints their lesion and rim+ counts;
2. trains a :class:`~rimclf.RimModel` (CPU-size QSMRim-Net, threshold from a
   subject-grouped CV) on the training cohort and saves it to ``OUT/model``;
3. loads the saved model and predicts the held-out cohort into ``OUT/predictions`` (lesion
   table, per-subject counts, NIfTI probability maps, PNG montages);
4. scores the held-out predictions (``OUT/metrics.tsv``: partial ROC AUC, PR AUC, ROC AUC with
   subject-bootstrap 95 % intervals, sensitivity and specificity at the model's threshold,
   calibration slope, expected calibration error and Brier score, per-subject rim+ counts at the
   threshold and expected with 90 % intervals, all with subject-bootstrap 95 % intervals) and
   draws ``OUT/roc_pr.png``, the reliability diagram ``OUT/reliability.png`` and the per-subject
   counts ``OUT/subject_counts.png``.

``OUT`` is written atomically: the demo builds it in a hidden sibling folder
(``rimclf._atomic.atomic_output_dir``) and moves it into place when complete, so an error or
Ctrl-C leaves no ``OUT`` (with ``force=True``, the previous ``OUT`` as it was). Every file names
other outputs by paths relative to ``OUT`` or not at all, so none mentions the temporary folder.

With ``force=True`` the previous ``OUT``'s feature cache (``OUT/cache``) is carried over, and so
are its phantom cohorts when their settings match (the generator is deterministic): hard-linked
where the file system allows (their writers replace files by renaming, never in place, so the
previous ``OUT`` is never changed), so a rerun skips the extraction.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rimclf._atomic import atomic_output_dir, atomic_write, copy_tree_linked, reserving_output
from rimclf.defaults import DEFAULT_MODEL, ModelConfig, describe_config
from rimclf.errors import DataWarning

#: the held-out cohort's phantom seed is the demo seed plus this
TEST_SEED_OFFSET = 10_000
#: what the demo writes, by name (the keys of ``DemoResult.paths``): its place inside ``OUT``
OUTPUTS = {"train_cohort": "cohort-train", "test_cohort": "cohort-test", "cache": "cache", "model": "model",
           "predictions": "predictions", "metrics": "metrics.tsv", "roc_pr": "roc_pr.png",
           "reliability": "reliability.png", "subject_counts": "subject_counts.png"}


@dataclass
class DemoResult:
    """What :func:`run_demo` made: metrics on the held-out subjects and output paths."""

    metrics: pd.DataFrame
    counts: pd.DataFrame
    paths: dict[str, Path]
    seconds: float


def _phantom_parameters(n_subjects: int, seed: int, options: dict) -> dict:
    """The ``parameters`` record that the phantom's ``phantom.json`` holds for these settings (JSON-normalised)."""
    import inspect

    from rimclf.phantom import make_phantom_cohort
    from rimclf.phantom._config import DEFAULT_SHAPE

    recorded = {"n_subjects", "random_state", "difficulty", "shape", "n_sites", "rim_prevalence", "lesions_per_subject"}
    defaults = {name: p.default for name, p in inspect.signature(make_phantom_cohort).parameters.items() if name in recorded}
    parameters = {**defaults, **options, "n_subjects": n_subjects, "random_state": seed}
    if parameters["shape"] is None:
        parameters["shape"] = DEFAULT_SHAPE
    return json.loads(json.dumps(parameters))


def _phantom(path: Path, final: Path, n_subjects: int, seed: int, options: dict, n_jobs, report) -> None:
    """Write the phantom cohort for these settings at ``path`` (staging); ``final`` is its place in ``OUT``.

    A cohort at ``final`` (a previous ``OUT``, ``force``) made with these settings by this version
    is carried over (:func:`rimclf._atomic.copy_tree_linked`): the generator is deterministic (same settings and
    version, same bytes), so reuse changes nothing but the time.
    """
    from rimclf._version import __version__
    from rimclf.phantom import make_phantom_cohort, read_provenance

    saved = read_provenance(final) if final.is_dir() and not final.is_symlink() else None
    if saved is not None:
        same = saved.get("parameters") == _phantom_parameters(n_subjects, seed, options)
        if same and saved.get("versions", {}).get("rimclf") == __version__:
            copy_tree_linked(final, path)
            report(f"  reusing {final} (same phantom settings)")
            return
    started = time.perf_counter()
    make_phantom_cohort(path, n_subjects=n_subjects, random_state=seed, n_jobs=n_jobs, **options)
    report(f"  wrote {final} ({time.perf_counter() - started:.0f} s)")


def _check_classes(table: pd.DataFrame, cohort: str, n_subjects: int, minimum: int, why: str, option: str) -> None:
    """Refuse a phantom cohort with fewer than ``minimum`` rim+ or rim- lesions, saying which option helps."""
    from rimclf.errors import CohortError

    n_positive, n_negative = int((table["rim"] == 1).sum()), int((table["rim"] == 0).sum())
    if min(n_positive, n_negative) >= minimum:
        return
    if minimum == 1:
        found = f"no {'rim+' if n_positive == 0 else 'rim-'} lesion"
    else:
        found = f"{n_positive} rim+ and {n_negative} rim- lesions, fewer than {minimum} of each"
    raise CohortError(
        f"the {cohort} cohort ({n_subjects} subjects, {len(table)} lesions) has {found}, so {why}; the phantom gives "
        f"rim+ lesions to few subjects, so use more {cohort} subjects ({option}) or another --seed"
    )


def _cohort_line(name: str, table: pd.DataFrame) -> dict:
    per_subject = table.groupby("participant_id")["rim"].agg(["size", "sum"])
    return {
        "cohort": name,
        "subjects": len(per_subject),
        "lesions": len(table),
        "rim+": int((table["rim"] == 1).sum()),
        "rim-": int((table["rim"] == 0).sum()),
        "subjects with rim+": int((per_subject["sum"] > 0).sum()),
        "lesions/subject": f"{per_subject['size'].min()}-{per_subject['size'].max()}",
    }


def evaluate_predictions(lesions: pd.DataFrame, threshold: float, *, n_boot: int = 1000, random_state: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Held-out metrics of a ``lesions.tsv`` table with reference labels.

    Bootstrap warnings (resamples skipped because they hold no rim+ lesion, an interval that is a
    single value) are issued as :class:`~rimclf.errors.DataWarning`, never hidden.

    Returns
    -------
    metrics : pandas.DataFrame
        Columns ``metric, value, ci_low, ci_high`` (subject-bootstrap 95 % intervals for the
        ranking, calibration and per-subject count metrics, NaN where none is computed).
    counts : pandas.DataFrame
        Per subject: ``n_lesions, n_rim_pos_true, n_rim_pos_predicted`` and the expected count
        with its 90 % interval and that interval's own probability (``expected_rim_pos,
        rim_pos_low_90, rim_pos_high_90, p_rim_pos_in_interval``).
    """
    from rimclf.metrics import (bootstrap_ci, brier_score, calibration_slope, expected_calibration_error,
                                log_loss_score, subject_count_metrics, subject_counts)

    y = lesions["rim"].astype(int).to_numpy()
    score = lesions["probability"].to_numpy(dtype=float)
    groups = lesions["participant_id"].astype(str).to_numpy()
    decision = (score >= threshold).astype(int)
    rows = []
    for name, key in (("partial ROC AUC (FPR <= 0.1)", "pauc"), ("PR AUC (average precision)", "pr_auc"), ("ROC AUC", "roc_auc"),
                      ("calibration slope (1 ideal)", calibration_slope), ("expected calibration error", expected_calibration_error),
                      ("Brier score", brier_score)):
        result = bootstrap_ci(key, y, score, groups, n_boot=n_boot, random_state=random_state)
        rows.append((name, result.estimate, result.ci_low, result.ci_high))
    rows.append(("log-loss", log_loss_score(y, score), np.nan, np.nan))
    rows.append(("rim+ prevalence (PR AUC of chance)", float(y.mean()), np.nan, np.nan))
    rows.append((f"sensitivity at threshold {threshold:.3g}", float(decision[y == 1].mean()), np.nan, np.nan))
    rows.append((f"specificity at threshold {threshold:.3g}", float(1 - decision[y == 0].mean()), np.nan, np.nan))
    per_subject = subject_counts(score, groups, threshold=threshold, y_true=y)
    names = {
        "expected: ccc": "expected rim+ count per subject: concordance (CCC)",
        "expected: mae": "expected rim+ count per subject: mean abs. error",
        "expected: bias": "expected rim+ count per subject: bias (pred - true)",
        "expected: interval_coverage": "90% count interval holds the true count (fraction)",
        "expected: subject_auc_any": "subject has a rim+ lesion: ROC AUC of P(>= 1)",
        "threshold: ccc": "rim+ count per subject: concordance (CCC)",
        "threshold: mae": "rim+ count per subject: mean abs. error",
        "threshold: bias": "rim+ count per subject: bias (pred - true)",
        "threshold: category_agreement": "count category (0 / 1-3 / >= 4) agrees (fraction)",
    }
    count_metrics = subject_count_metrics(per_subject, n_boot=n_boot, random_state=random_state)
    for row in count_metrics.itertuples(index=False):
        rows.append((names[row.metric], row.value, row.ci_low, row.ci_high))
    metrics = pd.DataFrame(rows, columns=["metric", "value", "ci_low", "ci_high"])
    counts = per_subject.rename(columns={"rim_pos_low": "rim_pos_low_90", "rim_pos_high": "rim_pos_high_90"})
    counts = counts.rename_axis("participant_id").reset_index()[
        ["participant_id", "n_lesions", "n_rim_pos_true", "n_rim_pos_predicted", "expected_rim_pos", "rim_pos_low_90",
         "rim_pos_high_90", "p_rim_pos_in_interval"]]
    return metrics, counts


def plot_reliability(path: str | os.PathLike, y: np.ndarray, probability: np.ndarray, *, title: str = "",
                     force: bool = False) -> Path:
    """Save the reliability diagram of :func:`rimclf.calibration.reliability_figure` (PNG)."""
    from rimclf.calibration import reliability_figure

    fig = reliability_figure({"rimclf (calibrated)": (y, probability)}, title=title or "reliability")
    return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"), force=force)


def plot_subject_counts(path: str | os.PathLike, counts: pd.DataFrame, *, title: str = "", force: bool = False) -> Path:
    """Save :func:`rimclf.outputs.subject_counts_figure` of per-subject counts (PNG)."""
    from rimclf.outputs import subject_counts_figure

    fig = subject_counts_figure(counts, title=title)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"), force=force)


def format_metrics(metrics: pd.DataFrame) -> str:
    """The metrics table as aligned text."""
    width = max(len(name) for name in metrics["metric"])
    lines = [f"{'metric':<{width}}  value   95% CI (subject bootstrap)"]
    for row in metrics.itertuples(index=False):
        ci = "" if np.isnan(row.ci_low) else f"[{row.ci_low:.3f}, {row.ci_high:.3f}]"
        lines.append(f"{row.metric:<{width}}  {row.value:6.3f}  {ci}")
    return "\n".join(lines)


def plot_roc_pr(path: str | os.PathLike, y: np.ndarray, score: np.ndarray, threshold: float, *, title: str = "", force: bool = False) -> Path:
    """Save ROC and precision-recall curves side by side (PNG), with the model's operating point.

    The ROC panel shades the FPR <= 0.1 range of the partial AUC; the PR panel draws the rim+
    prevalence, the precision of a random score.
    """
    from matplotlib.figure import Figure  # the object API: no pyplot state, the user's backend untouched
    from sklearn.metrics import precision_recall_curve, roc_curve

    from rimclf.metrics import partial_roc_auc, pr_auc, roc_auc

    y = np.asarray(y, dtype=int)
    score = np.asarray(score, dtype=float)
    decision = score >= threshold
    sensitivity = decision[y == 1].mean()
    fpr_point = decision[y == 0].mean()
    precision_point = (decision & (y == 1)).sum() / max(decision.sum(), 1)
    fig = Figure(figsize=(10, 4.6))
    ax_roc, ax_pr = fig.subplots(1, 2)
    fpr, tpr, _ = roc_curve(y, score)
    ax_roc.axvspan(0, 0.1, color="tab:orange", alpha=0.15, label="FPR ≤ 0.1 (partial AUC)")
    ax_roc.plot(fpr, tpr, color="tab:blue", lw=2, label=f"ROC AUC {roc_auc(y, score):.3f}, pAUC {partial_roc_auc(y, score):.3f}")
    ax_roc.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="chance")
    ax_roc.plot(fpr_point, sensitivity, "o", color="tab:red", label=f"threshold {threshold:.3g}")
    ax_roc.set(xlabel="false-positive rate (1 - specificity)", ylabel="sensitivity", xlim=(0, 1), ylim=(0, 1.01), title="ROC")
    ax_roc.legend(loc="lower right", fontsize=8)
    precision, recall, _ = precision_recall_curve(y, score)
    ax_pr.plot(recall, precision, drawstyle="steps-post", color="tab:blue", lw=2, label=f"PR AUC (AP) {pr_auc(y, score):.3f}")
    ax_pr.axhline(y.mean(), color="grey", ls="--", lw=1, label=f"chance (prevalence {y.mean():.3f})")
    ax_pr.plot(sensitivity, precision_point, "o", color="tab:red", label=f"threshold {threshold:.3g}")
    ax_pr.set(xlabel="recall (sensitivity)", ylabel="precision", xlim=(0, 1), ylim=(0, 1.01), title="Precision-recall")
    ax_pr.legend(loc="upper right", fontsize=8)
    fig.suptitle(title or f"held-out lesions: {len(y)} ({int(y.sum())} rim+)", fontsize=10)
    fig.tight_layout()
    return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"), force=force)


@reserving_output("out")  # claimed for the whole run: a second demo into the same OUT fails at once
def run_demo(
    out: str | os.PathLike = "demo_output",
    *,
    train_subjects: int = 40,
    test_subjects: int = 20,
    config: ModelConfig = DEFAULT_MODEL,
    seed: int = 0,
    n_jobs: int | None = None,
    phantom_options: dict | None = None,
    force: bool = False,
    progress: bool = True,
    report: Callable[[str], None] | None = print,
) -> DemoResult:
    """Run the demo (see the module documentation) and return its metrics and paths.

    Parameters
    ----------
    out : str or path-like, default="demo_output"
        Output folder, written atomically: built in a hidden sibling folder and moved into place
        when complete, so a failure or Ctrl-C leaves no ``out`` (and no temporary folder). An
        existing one is refused unless ``force``; with ``force`` it is replaced only when the new
        one is complete, and its feature cache and matching phantom cohorts are carried over.
        It is claimed for the whole run: a second demo started into the same folder meanwhile
        fails at once (``OutputError``), so two runs never mix their outputs.
    train_subjects, test_subjects : int, default=40, 20
        Phantom subjects to train on and to predict (held out, another seed).
    config : ModelConfig, default=rimclf.defaults.DEFAULT_MODEL
        The model trained (features, network, threshold CV): the default model unless given.
    seed : int, default=0
        Seeds the training phantom (the held-out one uses ``seed + 10000``), the network and the CV.
    n_jobs : int or None
        Subjects in parallel for the phantoms and the feature extraction.
    phantom_options : dict, optional
        More :func:`rimclf.phantom.make_phantom_cohort` arguments (e.g. ``shape``, ``difficulty``).
    force : bool, default=False
    progress : bool, default=True
        Progress bars and the per-epoch table.
    report : callable or None, default=print
        Receives the text the demo prints (None: silent).

    Examples
    --------
    >>> from dataclasses import replace
    >>> from rimclf.defaults import DEFAULT_MODEL
    >>> result = run_demo("demo_output", config=replace(DEFAULT_MODEL, threshold_cv=3))  # doctest: +SKIP
    >>> result.metrics  # doctest: +SKIP
    """
    from rimclf.outputs import output_paths

    report = report or (lambda text: None)
    started = time.perf_counter()
    out = Path(out)
    paths = {name: out / place for name, place in OUTPUTS.items()}
    with atomic_output_dir(out, force=force) as tmp:  # the folder reserving_output claimed
        staged = {name: tmp / place for name, place in OUTPUTS.items()}
        metrics, counts, lesions = _write_demo(staged, paths, train_subjects=train_subjects, test_subjects=test_subjects,
                                               config=config, seed=seed, n_jobs=n_jobs, options=dict(phantom_options or {}),
                                               progress=progress, report=report)
    seconds = time.perf_counter() - started
    top = lesions.loc[lesions["probability"].idxmax()]  # the most suspicious lesion's scan
    session = "" if pd.isna(top["session"]) else str(top["session"]).removeprefix("ses-")
    montage = output_paths(paths["predictions"], str(top["participant_id"]).removeprefix("sub-"), session)["montage"]
    report(f"outputs (in {seconds / 60:.1f} min):")
    for name in ("model", "predictions", "metrics", "roc_pr", "reliability", "subject_counts"):
        report(f"  {name:<12} {paths[name]}")
    report(f"  {'lesions':<12} {paths['predictions'] / 'lesions.tsv'}")
    report(f"  {'maps':<12} {paths['predictions']}/sub-*/anat/sub-*_desc-rimprob_probseg.nii.gz "
           "(lesion ids: *_desc-lesions_dseg.nii.gz)")
    if montage.is_file():
        report(f"  {'montages':<12} {paths['predictions']}/sub-*/figures/sub-*_desc-rimprob_montage.png "
               f"(most suspicious lesion: {montage})")
    return DemoResult(metrics=metrics, counts=counts, paths=paths, seconds=seconds)


def _write_demo(staged: dict[str, Path], paths: dict[str, Path], *, train_subjects: int, test_subjects: int,
                config: ModelConfig, seed: int, n_jobs, options: dict, progress: bool,
                report: Callable[[str], None]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Steps 1-4 of :func:`run_demo`: write every output at its ``staged`` path; messages name the final ``paths``.

    Returns the held-out metrics, per-subject counts and the predicted lesion table.
    """
    from rimclf.classifier import make_classifier
    from rimclf.cohort import MIN_LESIONS_PER_CLASS, load_cohort
    from rimclf.features import make_featurizer
    from rimclf.model_files import load_model
    from rimclf.outputs import read_lesions
    from rimclf.workflows import predict_cohort, train_model

    if paths["cache"].is_dir() and not paths["cache"].is_symlink():  # a previous OUT (force): keep its features
        copy_tree_linked(paths["cache"], staged["cache"])
    report(f"[1/4] phantom cohorts ({train_subjects} training subjects, {test_subjects} held-out subjects)")
    # the held-out cohort first: when it lacks a class, the demo stops before drawing the training one
    _phantom(staged["test_cohort"], paths["test_cohort"], test_subjects, seed + TEST_SEED_OFFSET, options, n_jobs, report)
    test_table = load_cohort(staged["test_cohort"])
    _check_classes(test_table, "held-out", test_subjects, 1, "the metrics are undefined", "--test-subjects")
    _phantom(staged["train_cohort"], paths["train_cohort"], train_subjects, seed, options, n_jobs, report)
    train_table = load_cohort(staged["train_cohort"])
    _check_classes(train_table, "training", train_subjects, MIN_LESIONS_PER_CLASS, "no model can be trained", "--train-subjects")
    summary = pd.DataFrame([_cohort_line("training", train_table), _cohort_line("held-out", test_table)])
    report(summary.to_string(index=False))

    report(f"[2/4] training: {describe_config(config)}; {config.threshold_cv}-fold threshold CV and the final model")
    featurizer = make_featurizer(config, n_jobs=n_jobs, memory=str(staged["cache"]), progress=progress)
    classifier = make_classifier(config, random_state=seed, verbose=int(progress))
    model = train_model(train_table, featurizer=featurizer, classifier=classifier, target_specificity=config.target_specificity,
                        threshold_cv=config.threshold_cv, random_state=seed, operating_point=config.operating_point,
                        target_sensitivity=config.target_sensitivity, calibration=config.calibration,
                        out=staged["model"])
    if model.calibration_ is not None:
        report(model.calibration_.describe())
    report(model.threshold_choice_.describe())
    report(f"  saved the model to {paths['model']}")

    report(f"[3/4] predicting the {test_subjects} held-out subjects with the saved model")
    loaded = load_model(staged["model"])
    loaded.featurizer_.set_params(progress=progress)
    predict_cohort(loaded, test_table, staged["predictions"], n_jobs=n_jobs, memory=str(staged["cache"]))

    report("[4/4] held-out metrics")
    lesions = read_lesions(staged["predictions"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        metrics, counts = evaluate_predictions(lesions, loaded.threshold_, random_state=seed)
    atomic_write(staged["metrics"], lambda tmp: metrics.to_csv(tmp, sep="\t", index=False, float_format="%.4f"))
    plot_roc_pr(staged["roc_pr"], lesions["rim"].to_numpy(), lesions["probability"].to_numpy(), loaded.threshold_,
                title=f"rimclf on {test_subjects} held-out phantom subjects ({len(lesions)} lesions, "
                      f"{int(lesions['rim'].sum())} rim+)")
    plot_reliability(staged["reliability"], lesions["rim"].to_numpy(), lesions["probability"].to_numpy(),
                     title=f"reliability on {test_subjects} held-out subjects")
    plot_subject_counts(staged["subject_counts"], counts, title=f"rim+ lesions of {test_subjects} held-out subjects")
    report(format_metrics(metrics))
    for warning in caught:
        report(f"  note: {warning.message}")
    report("rim+ lesions per held-out subject (true; at the threshold; expected from the calibrated probabilities, "
           "90% interval and its own probability):")
    report(counts.to_string(index=False))
    return metrics, counts, lesions
