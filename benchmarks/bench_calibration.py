"""Calibration, operating points and the fold ensemble of RimModel, measured on phantom cohorts.

For each cohort (a folder written by ``rimclf phantom``), an outer subject-grouped 5-fold CV
(``--repeats`` times) runs what ``RimModel.fit`` does inside each outer training part: a 5-fold
threshold CV giving out-of-fold probabilities, the final network on the whole part, calibrators
fitted on the out-of-fold probabilities and the threshold of each operating point. The outer test
lesions are then scored with each calibration ("none"; "sigmoid", RimModel's, its slope fitted within
the threshold-CV folds; "sigmoid-pooled", one Platt fit of all out-of-fold probabilities, RimModel's
until the logistic blend; "isotonic"; and the mean of
the threshold-CV fold models and the final model calibrated with the sigmoid, "ensemble+sigmoid"):
pAUC, calibration slope, ECE, Brier, log-loss, expected-count CCC/MAE/bias, how often the 90 %
count interval holds the true count and its mean own probability (the default "nearest" rule and
"at_least"), the subject AUC of P(at least one rim+), and per operating point the count CCC, the
category agreement (0 / 1-3 / >= 4), sensitivity, specificity and PPV; with subject-bootstrap CIs
of the slope and ECE and paired pAUC differences (repeat 0). The README numbers came from::

    rimclf phantom -n 40 --seed 303 cohort-303; rimclf phantom -n 40 --seed 101 cohort-101   # choices
    rimclf phantom -n 60 --seed 111 cohort60-111; rimclf phantom -n 60 --seed 222 cohort60-222  # evaluation
    (then seeds 444 and 555, 666 and 777, 888 and 999 likewise: held-out pairs for later checks)
    python benchmarks/bench_calibration.py cohort-101 --repeats 1 --out calib-choice
    python benchmarks/bench_calibration.py cohort60-111 cohort60-222 --repeats 3 --out calib-eval
"""

from __future__ import annotations

import argparse
import pickle
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import clone

import rimclf
from rimclf.calibration import fit_calibration
from rimclf.classifier import make_classifier
from rimclf.cohort import labelled_lesions
from rimclf.features import make_featurizer
from rimclf.metrics import (bootstrap_ci, brier_score, calibration_slope, concordance, count_category, expected_calibration_error,
                            log_loss_score, logit, paired_bootstrap, partial_roc_auc, roc_auc, subject_counts, subject_folds)
from rimclf.threshold import choose_threshold
from rimclf.threshold import fold_of, threshold_folds

OPERATING_POINTS = ("specificity", "sensitivity", "f1", "count")


def run_folds(cohort: str, repeats: int, cache: str) -> dict:
    """Outer-CV folds with the inner out-of-fold probabilities and the outer test probabilities."""
    table, y, groups = labelled_lesions(rimclf.load_cohort(cohort), None, None)
    X = make_featurizer(n_jobs=1, memory=cache, progress=False).fit(table).transform(table)
    records = []
    for repeat in range(repeats):
        for k, (train, test) in enumerate(subject_folds(y, groups, 5, 1000 + repeat)):
            classifier = make_classifier(random_state=repeat * 10 + k, verbose=0)
            oof, fold_test = np.full(len(train), np.nan), []
            inner_folds = threshold_folds(y[train], groups[train], 5, repeat * 10 + k)
            for inner_train, inner_test in inner_folds:
                model = clone(classifier).fit(X[train][inner_train], y[train][inner_train])
                oof[inner_test] = model.predict_proba(X[train][inner_test])[:, 1]
                fold_test.append(model.predict_proba(X[test])[:, 1])
            final = clone(classifier).fit(X[train], y[train])
            records.append({"repeat": repeat, "train": train, "test": test, "oof": oof,
                            "oof_fold": fold_of(inner_folds, len(train)),
                            "fold_test": np.array(fold_test), "p_test": final.predict_proba(X[test])[:, 1]})
            print(f"{cohort}: repeat {repeat} fold {k}", flush=True)
    return {"y": y, "groups": groups, "folds": records}


def score(name: str, record: dict) -> tuple[list[dict], dict]:
    """Metrics of every variant on each repeat's pooled outer test lesions."""
    y, groups = record["y"], record["groups"]
    codes = pd.factorize(groups, sort=True)[0]
    rows, pooled = [], {}
    for repeat in sorted({f["repeat"] for f in record["folds"]}):
        probs, thresholds = {}, {}
        for fold in (f for f in record["folds"] if f["repeat"] == repeat):
            train, test, oof = fold["train"], fold["test"], fold["oof"]
            ensemble = np.mean(np.vstack([fold["fold_test"], fold["p_test"][None]]), axis=0)
            sigmoid = fit_calibration(y[train], oof, "sigmoid", folds=fold["oof_fold"]).apply  # RimModel's
            variants = {"none": (lambda q: q, fold["p_test"]), "sigmoid": (sigmoid, fold["p_test"]),
                        "sigmoid-pooled": (fit_calibration(y[train], oof, "sigmoid").apply, fold["p_test"]),
                        "isotonic": (fit_calibration(y[train], oof, "isotonic").apply, fold["p_test"]),
                        "ensemble+sigmoid": (sigmoid, ensemble)}
            for variant, (apply, p_test) in variants.items():
                probs.setdefault(variant, np.full(len(y), np.nan))[test] = apply(p_test)
                for point in OPERATING_POINTS:
                    value = choose_threshold(y[train], apply(oof), point, method="cv").value
                    thresholds.setdefault((variant, point), np.full(len(y), np.nan))[test] = value
        for variant, p in probs.items():
            counts = subject_counts(p, groups, y_true=y)
            at_least = subject_counts(p, groups, interval_rule="at_least")
            true = counts["n_rim_pos_true"].to_numpy(float)
            has_rim = (true > 0).astype(int)
            row = dict(cohort=name, repeat=repeat, variant=variant, pauc=partial_roc_auc(y, p),
                       slope=calibration_slope(y, p), ece=expected_calibration_error(y, p), brier=brier_score(y, p),
                       logloss=log_loss_score(y, p), exp_ccc=concordance(true, counts["expected_rim_pos"].to_numpy()),
                       exp_mae=float(np.abs(counts["expected_rim_pos"] - true).mean()),
                       exp_bias=float((counts["expected_rim_pos"] - true).mean()),
                       coverage=float(((counts.rim_pos_low <= true) & (true <= counts.rim_pos_high)).mean()),
                       interval_prob=float(counts["p_rim_pos_in_interval"].mean()),
                       coverage_at_least=float(((at_least.rim_pos_low <= true) & (true <= at_least.rim_pos_high)).mean()),
                       interval_prob_at_least=float(at_least["p_rim_pos_in_interval"].mean()),
                       subj_auc=roc_auc(has_rim, counts["p_any_rim_pos"].to_numpy()) if 0 < has_rim.sum() < has_rim.size else np.nan)
            for point in OPERATING_POINTS:
                decision = (p >= thresholds[(variant, point)]).astype(int)
                n_pred = np.bincount(codes, decision).astype(float)
                row[f"{point}:ccc"] = concordance(true, n_pred)
                row[f"{point}:cat"] = float((count_category(true) == count_category(n_pred)).mean())
                row[f"{point}:mae"] = float(np.abs(n_pred - true).mean())
                row[f"{point}:sens"] = float(decision[y == 1].mean())
                row[f"{point}:spec"] = float(1 - decision[y == 0].mean())
                row[f"{point}:ppv"] = float(decision[y == 1].sum() / max(decision.sum(), 1))
            rows.append(row)
            if repeat == 0:
                pooled[variant] = p
    return rows, pooled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cohorts", nargs="+")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="calibration-bench")
    parser.add_argument("--cache", default=None, help="feature cache folder (default OUT/cache)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started, rows, lines = time.perf_counter(), [], []
    for cohort in args.cohorts:
        name = Path(cohort).name
        record = run_folds(cohort, args.repeats, args.cache or str(out / "cache"))
        (out / f"{name}_folds.pkl").write_bytes(pickle.dumps(record))  # this script's own scratch results
        cohort_rows, pooled = score(name, record)
        rows += cohort_rows
        y, groups = record["y"], record["groups"]
        lines.append(f"{name}: {int(y.sum())} rim+ of {len(y)} lesions, {len(np.unique(groups))} subjects")
        for variant in ("sigmoid", "ensemble+sigmoid"):
            r = paired_bootstrap("pauc", y, pooled[variant], pooled["none"], groups, n_boot=500, random_state=0)
            lines.append(f"{name} repeat 0 pAUC {variant} - none: {r.difference:+.4f} [{r.ci_low:+.4f}, {r.ci_high:+.4f}]")
        for variant in ("none", "sigmoid", "sigmoid-pooled", "isotonic"):
            s = bootstrap_ci(calibration_slope, y, pooled[variant], groups, n_boot=300, random_state=0)
            e = bootstrap_ci(expected_calibration_error, y, pooled[variant], groups, n_boot=300, random_state=0)
            lines.append(f"{name} repeat 0 {variant}: slope {s.estimate:.3f} [{s.ci_low:.3f}, {s.ci_high:.3f}], "
                         f"ECE {e.estimate:.4f} [{e.ci_low:.4f}, {e.ci_high:.4f}]")
    results = pd.DataFrame(rows)
    results.to_csv(out / "results.tsv", sep="\t", index=False)
    summary = results.drop(columns=["repeat"]).groupby(["cohort", "variant"], sort=False).mean().round(3).T
    text = summary.to_string() + "\n" + "\n".join(lines) + f"\n{time.perf_counter() - started:.0f} s\n"
    (out / "summary.txt").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
