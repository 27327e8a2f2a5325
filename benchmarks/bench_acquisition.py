"""Leave one acquisition out: the default model on an acquisition protocol it never saw.

Two phantom cohorts: one of the fixed sites (``acquisition="sites"``) and one of drawn protocols
(``acquisition="varied"``, ``--sites`` protocols, each with its own orientation, voxel order,
voxel size and slice thickness, noise level and texture, streaks, background field, offset and
scale; see docs/phantom.md). Both are scored in two ways with the default model
(:data:`rimclf.defaults.DEFAULT_MODEL`: the network's MLP branch on the rim-profile features):

- **seen**: subject-grouped 5-fold CV over both cohorts pooled (every protocol is in training);
- **unseen**: for each varied protocol, train on the fixed-site cohort and every other varied
  protocol, predict that protocol's subjects (leave one acquisition out).

For every varied protocol the table gives its lesions, its rim+ lesions and its pAUC and PR AUC in
both ways; the last row pools the varied cohort's predictions (the headline: how much leaving a
protocol out of training costs). Per-protocol figures rest on a few rim+ lesions each and are
noisy. pAUC and PR AUC are those of the network's own probabilities.

In the seen CV the first method is fitted as a :class:`rimclf.RimModel` (its default threshold
settings: a subject-grouped ``threshold_cv``-fold CV of the training part, a sigmoid calibration
of its out-of-fold probabilities, the threshold of the default operating point, specificity 0.9),
so every test lesion is also decided at the threshold the model itself chose without it (6 network
fits per outer fold instead of 1; "s per fit" in the methods table is per network fit). Two
tables give how often isointense rim- lesions are called rim+, by size tercile and noise level:
at that threshold (with the realised rim- false-positive rate and rim+ sensitivity over all
lesions), and at a threshold read off the test lesions (the 0.9 quantile of their rim- scores: the
rate a threshold at exactly specificity 0.9 would give). Each is repeated with every cell's count
and 95 % Wilson interval, and a verdict against the promised rate (1 - target specificity, 0.10)
± ``TOLERANCE`` (issue 24): the size x noise cells whose interval lies wholly above or below that
band, and a chi-square test (with a permutation p) that the cells share one rate (see
``cell_rates.py``). OUT/acquisition.md holds the tables and the settings, OUT/acquisition.json the
numbers and package versions, OUT/predictions.tsv every lesion's probabilities (seen and unseen,
per method) and the first method's decision at its own threshold; ``pool_acquisition.py`` pools
the varied protocols of several runs (pairs of cohorts) with a subject-bootstrap CI.

``--methods`` scores other models on the same folds (``METHODS``: the default model with the
surface-map branch fused, ``default+surface_map``, and the surface-map branch alone,
``surface_map``; the same two with the encoder started from the pretrained weights shipped with
rimclf and fine-tuned, ``default+pretrained_surface_map`` and ``pretrained_surface_map``); a second table then gives, for the fixed-site cohort (seen), the varied cohort
(seen) and the varied cohort (unseen), each method's pAUC and PR AUC and its PR AUC difference
from the first method with a paired subject-bootstrap 95 % CI. Run from the repository root::

    .venv/bin/python benchmarks/bench_acquisition.py [--subjects 40] [--sites 8] [--seed 1]
        [--sites-cohort DIR] [--varied-cohort DIR] [--cache DIR] [--out DIR]
        [--methods default,default+surface_map,surface_map]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd

import rimclf
from rimclf import RimModel
from rimclf.classifier import make_classifier
from rimclf.defaults import DEFAULT_MODEL
from rimclf.features import make_featurizer
from rimclf.metrics import paired_bootstrap, partial_roc_auc, pr_auc, subject_folds
from rimclf.phantom import make_phantom_cohort

from cell_rates import format_cells, homogeneity, rate_cells, verdict, describe_verdict  # noqa: E402 (beside this script)

#: How far an isointense cell's rate may sit from the promised one (1 - target specificity): issue 24.
TOLERANCE = 0.03

#: The models ``--methods`` may compare (the first one named is the reference of the differences).
METHODS = {
    "default": DEFAULT_MODEL,
    "default+surface_map": dataclasses.replace(DEFAULT_MODEL, branches="both", image="surface_map"),
    "surface_map": dataclasses.replace(DEFAULT_MODEL, branches="patches", image="surface_map", blend="none"),
    # the encoder started from the weights shipped with rimclf (benchmarks/pretrain_surface_map.py), then fine-tuned
    "default+pretrained_surface_map": dataclasses.replace(DEFAULT_MODEL, branches="both", image="surface_map",
                                                          image_weights="pretrained"),
    "pretrained_surface_map": dataclasses.replace(DEFAULT_MODEL, branches="patches", image="surface_map", blend="none",
                                                  image_weights="pretrained"),
}


def _cohort(path: str | None, work: Path, name: str, args: argparse.Namespace, acquisition: str) -> Path:
    if path:
        return Path(path)
    out = work / name
    if not out.exists():
        make_phantom_cohort(out, n_subjects=args.subjects, random_state=args.seed, acquisition=acquisition,
                            n_sites=args.sites if acquisition == "varied" else 3, n_jobs=args.jobs)
    return out


def _table(cohort: Path, tag: str) -> pd.DataFrame:
    table = rimclf.load_cohort(cohort)
    sites = pd.read_csv(cohort / "participants.tsv", sep="\t", dtype=str)
    sites["participant_id"] = sites["participant_id"].str.removeprefix("sub-")
    table = table.merge(sites[["participant_id", "site"]], on="participant_id", how="left")
    table["participant_id"] = tag + table["participant_id"]  # unique subjects across the two cohorts
    return table


def _patterns(table: pd.DataFrame, cohort: Path, tag: str) -> pd.Series:
    """Each lesion's ground-truth pattern (``phantom_lesions.tsv``), aligned with ``table``."""
    truth = pd.read_csv(cohort / "derivatives" / "phantom" / "phantom_lesions.tsv", sep="\t", dtype={"participant_id": str})
    truth["participant_id"] = tag + truth["participant_id"].str.removeprefix("sub-")
    merged = table[["participant_id", "lesion_id"]].merge(truth, on=["participant_id", "lesion_id"], how="left")
    return merged["pattern"]


def isointense_false_positives(table: pd.DataFrame, y: np.ndarray, called: np.ndarray, noise: pd.Series) -> pd.DataFrame:
    """Fraction of isointense rim- lesions called rim+ (``called``: one decision per lesion), by
    lesion size (terciles of voxels among those lesions) and noise level; the last column and row
    pool the sizes and the noise levels. ``attrs`` hold the lesions per cell ("lesions", without
    the pooled row and column) and, in the rates' layout, the lesions called ("called") and in all ("n")."""
    iso = table.assign(fp=np.asarray(called, dtype=bool), noise=noise.to_numpy())[(table["pattern"] == "iso").to_numpy() & (y == 0)]
    iso = iso.assign(size=pd.qcut(iso["n_voxels"], 3, labels=["small", "mid", "large"]))

    def pooled(how: str) -> pd.DataFrame:
        cells = iso.pivot_table(index="noise", columns="size", values="fp", aggfunc=how, observed=True)
        cells["all sizes"] = iso.groupby("noise", observed=True)["fp"].agg(how)
        cells.loc["all noise levels"] = [*iso.groupby("size", observed=True)["fp"].agg(how), iso["fp"].agg(how)]
        return cells

    rates = pooled("mean")
    counts = iso.pivot_table(index="noise", columns="size", values="fp", aggfunc="size", observed=True)
    rates.attrs.update(lesions=counts, called=pooled("sum"), n=pooled("count"))
    return rates


def isointense_intervals(rates: pd.DataFrame, promised: float, seed: int) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """``rates`` (from :func:`isointense_false_positives`) written "rate [95 % CI] (k/n)", the verdict
    over its size x noise cells (not the pooled row and column) against ``promised`` ± ``TOLERANCE``,
    and the cells' numbers."""
    cells = rate_cells(rates.attrs["called"], rates.attrs["n"])
    inner = cells[(cells["row"] != "all noise levels") & (cells["column"] != "all sizes")]
    test = homogeneity(inner["k"].to_numpy(), inner["n"].to_numpy(), random_state=seed)
    return format_cells(cells, rates), verdict(inner, promised, TOLERANCE, test), cells


def quantile_calls(y: np.ndarray, score: np.ndarray, specificity: float) -> np.ndarray:
    """Decisions at the ``specificity`` quantile of the test lesions' own rim- scores (rim+ above it):
    exactly that specificity on these lesions, a threshold no model could choose without them."""
    return score > np.quantile(score[y == 0], specificity)


def _operating(y: np.ndarray, called: np.ndarray, rows: np.ndarray) -> dict[str, float]:
    """Realised rim- false-positive rate and rim+ sensitivity of ``called`` on ``rows``."""
    return {"rim- FPR": float(called[rows & (y == 0)].mean()), "rim+ sensitivity": float(called[rows & (y == 1)].mean())}


def _describe(rates: dict[str, float]) -> str:
    return (f"rim- FPR {rates['rim- FPR']:.3f} (specificity {1 - rates['rim- FPR']:.3f}), "
            f"rim+ sensitivity {rates['rim+ sensitivity']:.3f}")


def threshold_report(table: pd.DataFrame, y: np.ndarray, score: np.ndarray, called: np.ndarray, is_varied: np.ndarray,
                     thresholds: list, own: dict, name: str, seed: int = 0) -> tuple[str, dict]:
    """The isointense tables (at the model's own threshold, ``called``; at the test quantile of
    ``score``) with each cell's 95 % Wilson interval and count and a verdict against the promised
    rate (1 - target specificity) ± ``TOLERANCE``, the realised operating point and the lesions per
    cell: markdown and numbers."""
    target = own["target_specificity"]
    promised = round(1 - target, 10)
    iso = isointense_false_positives(table, y, called, table["noise"])
    iso_quantile = isointense_false_positives(table, y, quantile_calls(y, score, target), table["noise"])
    iso_text, iso_verdict, iso_cells = isointense_intervals(iso, promised, seed)
    quantile_text, quantile_verdict, quantile_cells = isointense_intervals(iso_quantile, promised, seed)
    realised = {where: _operating(y, called, chosen) for where, chosen in
                (("all", np.ones(len(y), dtype=bool)), ("fixed sites", ~is_varied), ("varied", is_varied))}
    values = ", ".join(f"{choice.value:.3f}" for choice in thresholds)
    oof_specificity = ", ".join(f"{choice.specificity:.3f}" for choice in thresholds)
    text = (f"Isointense rim- lesions called rim+ at the model's own threshold (seen CV; {name} fitted as a RimModel on "
            f"each training part: {own['threshold_cv']}-fold threshold CV, {own['calibration']} calibration, operating "
            f"point {own['operating_point']} {target}):\n\n{iso.to_markdown(floatfmt='.3f')}\n\n"
            f"The same with each cell's 95 % Wilson interval and count (called rim+ / lesions):\n\n"
            f"{iso_text.to_markdown()}\n\n{describe_verdict(iso_verdict)}\n\n"
            f"At that threshold (per outer fold {values}; out-of-fold specificity where it was chosen "
            f"{oof_specificity}), all lesions: {_describe(realised['all'])}; fixed sites: "
            f"{_describe(realised['fixed sites'])}; varied: {_describe(realised['varied'])}.\n\n"
            f"Isointense rim- lesions called rim+ at a threshold read off the test lesions (the {target} quantile of "
            f"their rim- scores: the rate a threshold at exactly specificity {target} would give; seen CV):\n\n"
            f"{iso_quantile.to_markdown(floatfmt='.3f')}\n\nThe same with each cell's 95 % Wilson interval and count:"
            f"\n\n{quantile_text.to_markdown()}\n\n{describe_verdict(quantile_verdict)}\n\n"
            f"Isointense rim- lesions per cell:\n\n{iso.attrs['lesions'].to_markdown()}")
    numbers = {
        "isointense_fpr": json.loads(iso.to_json()),
        "isointense_fpr_test_quantile": json.loads(iso_quantile.to_json()),
        "isointense_lesions": json.loads(iso.attrs["lesions"].to_json()),
        "isointense_cells": iso_cells.to_dict(orient="records"),
        "isointense_cells_test_quantile": quantile_cells.to_dict(orient="records"),
        "isointense_verdict": iso_verdict,
        "isointense_verdict_test_quantile": quantile_verdict,
        "own_threshold": {"settings": own, "realised": realised, "thresholds": [choice.to_dict() for choice in thresholds]},
    }
    return text, numbers


def prediction_table(table: pd.DataFrame, y: np.ndarray, predictions: dict, called: np.ndarray, seed: int) -> pd.DataFrame:
    """One row per lesion: ids, cohort ("fixed" or "varied"), protocol, noise level, ground-truth
    pattern, rim label, each method's seen and unseen probability (``<method>_seen``,
    ``<method>_unseen``; unseen is empty for the fixed-site lesions) and the first method's
    decision at its own threshold (``called``)."""
    out = table[["participant_id", "lesion_id", "site", "noise", "pattern", "n_voxels"]].copy()
    out.insert(0, "pair_seed", seed)
    out.insert(2, "cohort", np.where(out["participant_id"].str.startswith("v"), "varied", "fixed"))
    out["rim"] = y.astype(int)
    for name, (seen, unseen) in predictions.items():
        out[f"{name}_seen"], out[f"{name}_unseen"] = seen, unseen
    out["called"] = called.astype(int)
    return out


def _scores(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    if y.min() == y.max():
        return float("nan"), float("nan")
    return float(partial_roc_auc(y, p)), float(pr_auc(y, p))


def compare_methods(methods, predictions, y, groups, is_varied, fit_seconds, args) -> pd.DataFrame:
    """pAUC, PR AUC and the paired-bootstrap PR AUC difference from ``methods[0]`` of every method,
    on the fixed-site cohort (seen CV) and the varied cohort (seen CV; unseen protocols)."""
    rows = []
    for evaluation, chosen, which in (("fixed sites, seen", ~is_varied, 0), ("varied, seen", is_varied, 0),
                                      ("varied, unseen", is_varied, 1)):
        reference = predictions[methods[0]][which][chosen]
        for name in methods:
            score = predictions[name][which][chosen]
            pauc, pr = _scores(y[chosen], score)
            row = {"evaluation": evaluation, "method": name, "pAUC": pauc, "PR AUC": pr,
                   "s per fit": fit_seconds[name]}
            if name != methods[0]:
                cmp = paired_bootstrap("pr_auc", y[chosen], score, reference, groups[chosen], n_boot=args.n_boot,
                                       random_state=args.seed)
                row["Δ PR AUC [95 % CI]"] = f"{cmp.difference:+.3f} [{cmp.ci_low:+.3f}, {cmp.ci_high:+.3f}]"
            else:
                row["Δ PR AUC [95 % CI]"] = "reference"
            rows.append(row)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=40, help="subjects per generated cohort (default 40)")
    parser.add_argument("--sites", type=int, default=8, help="varied protocols (default 8)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the cohorts, folds and models (default 1)")
    parser.add_argument("--sites-cohort", help="an existing fixed-site phantom cohort (else one is generated)")
    parser.add_argument("--varied-cohort", help="an existing varied phantom cohort (else one is generated)")
    parser.add_argument("--work", default="bench_acquisition_work", help="where generated cohorts go")
    parser.add_argument("--cache", default=None, help="feature cache (default WORK/cache)")
    parser.add_argument("--out", default="bench_acquisition_results", help="output folder")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--methods", default="default",
                        help=f"comma-separated models among {list(METHODS)}; the first is the reference (default: default)")
    parser.add_argument("--n-boot", type=int, default=1000, help="paired subject-bootstrap resamples (default 1000)")
    args = parser.parse_args(argv)
    methods = [name.strip() for name in args.methods.split(",") if name.strip()]
    unknown = [name for name in methods if name not in METHODS]
    if not methods or unknown or len(set(methods)) != len(methods):
        parser.error(f"--methods {args.methods!r}: give distinct names among {list(METHODS)}")
    warnings.simplefilter("ignore")
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()

    fixed_path = _cohort(args.sites_cohort, work, "sites", args, "sites")
    varied_path = _cohort(args.varied_cohort, work, "varied", args, "varied")
    fixed, varied = _table(fixed_path, "s"), _table(varied_path, "v")
    fixed["pattern"], varied["pattern"] = _patterns(fixed, fixed_path, "s"), _patterns(varied, varied_path, "v")
    noise = pd.read_csv(varied_path / "participants.tsv", sep="\t", dtype={"participant_id": str})
    level = dict(zip(noise["site"], pd.cut(noise["noise_factor"], [0, 0.8, 1.25, 9], labels=["low", "mid", "high"]).astype(str)))
    fixed["noise"] = "fixed sites (" + fixed["site"] + ")"
    varied["noise"] = "varied, " + varied["site"].map(level) + " noise"
    table = pd.concat([fixed, varied], ignore_index=True)
    images = sorted({METHODS[name].image for name in methods if METHODS[name].branches != "tabular"})
    cache = args.cache or str(work / "cache")
    featurizers = [make_featurizer(n_jobs=args.jobs, memory=cache, progress=False)]
    for image in images:  # the image entries the methods read, extracted once
        featurizers.append(make_featurizer(dataclasses.replace(DEFAULT_MODEL, image=image), features=False, patches=True,
                                           n_jobs=args.jobs, memory=cache, progress=False))
    parts = [featurizer.fit_transform(table) for featurizer in featurizers]
    X = parts[0]
    for part in parts[1:]:
        for key in part:
            X[key] = part[key]
    y = table["rim"].astype(int).to_numpy()
    groups = table["participant_id"].to_numpy()
    is_varied = table["participant_id"].str.startswith("v").to_numpy()

    def fit_predict(config, train: np.ndarray, test: np.ndarray) -> np.ndarray:
        model = make_classifier(config, random_state=args.seed, verbose=0).fit(X[train], y[train])
        return model.predict_proba(X[test])[:, 1]

    own = RimModel().get_params()  # the default threshold settings, stated in the output
    own = {key: own[key] for key in ("threshold_cv", "calibration", "operating_point", "target_specificity")}
    thresholds = []

    def fit_rim_model(config, train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A RimModel with its default threshold settings fitted on the training lesions: the test
        lesions' network probabilities and its decisions at its own threshold (the fitted network's
        ``threshold`` is ``threshold_`` mapped back through the calibration, so it decides as
        ``predict`` does, from one featurization and one forward pass)."""
        model = RimModel(make_featurizer(config, n_jobs=args.jobs, memory=cache, progress=False),
                         make_classifier(config, random_state=args.seed, verbose=0), random_state=args.seed)
        model.fit(table.iloc[train])
        network = model.classifier_.predict_proba(model.transform(table.iloc[test]))[:, 1]
        thresholds.append(model.threshold_choice_)
        return network, network >= model.classifier_.threshold

    protocols = sorted(table.loc[is_varied, "site"].unique(), key=lambda s: int(s[1:]))
    predictions, fit_seconds = {}, {}
    called = np.zeros(len(y), dtype=bool)  # the first method's decisions at its own threshold (seen CV)
    for name in methods:
        config, tic, fits = METHODS[name], time.time(), 0
        seen = np.zeros(len(y))
        for train, test in subject_folds(y, groups, 5, args.seed):
            if name == methods[0]:
                seen[test], called[test] = fit_rim_model(config, train, test)
                fits += 1 + own["threshold_cv"]
            else:
                seen[test] = fit_predict(config, train, test)
                fits += 1
        unseen = np.full(len(y), np.nan)
        for site in protocols:
            test = np.flatnonzero(is_varied & (table["site"] == site).to_numpy())
            train = np.setdiff1d(np.arange(len(y)), test)
            unseen[test] = fit_predict(config, train, test)
            fits += 1
        predictions[name], fit_seconds[name] = (seen, unseen), (time.time() - tic) / fits
    seen, unseen = predictions[methods[0]]

    described = json.loads((Path(args.varied_cohort or work / "varied") / "participants.json").read_text())["site"]["Levels"]
    rows = []
    for site in [*protocols, "all"]:
        rows_of = is_varied & ((table["site"] == site).to_numpy() if site != "all" else True)
        seen_pauc, seen_pr = _scores(y[rows_of], seen[rows_of])
        unseen_pauc, unseen_pr = _scores(y[rows_of], unseen[rows_of])
        rows.append({
            "protocol": site, "description": described.get(site, "all varied protocols pooled"),
            "lesions": int(rows_of.sum()), "rim+": int(y[rows_of].sum()),
            "pAUC seen": seen_pauc, "pAUC unseen": unseen_pauc, "PR AUC seen": seen_pr, "PR AUC unseen": unseen_pr,
        })
    fixed_pauc, fixed_pr = _scores(y[~is_varied], seen[~is_varied])
    result = pd.DataFrame(rows)
    iso_text, iso_numbers = threshold_report(table, y, seen, called, is_varied, thresholds, own, methods[0], args.seed)
    text = result.to_markdown(index=False, floatfmt=".3f") + "\n\n" + iso_text
    comparison = compare_methods(methods, predictions, y, groups, is_varied, fit_seconds, args)
    if len(methods) > 1:
        text = (f"Method {methods[0]} per protocol:\n\n{text}\n\nMethods compared on the same folds (Δ PR AUC: "
                f"against {methods[0]}, paired subject bootstrap, 95 % CI):\n\n"
                + comparison.to_markdown(index=False, floatfmt=".3f"))
    settings = (f"{args.subjects}-subject cohorts (fixed sites; {args.sites} varied protocols), seed {args.seed}; "
                f"{len(y)} lesions, {int(y.sum())} rim+; seen = subject-grouped 5-fold x 1 CV over both cohorts; "
                f"fixed-site cohort in that CV: pAUC {fixed_pauc:.3f}, PR AUC {fixed_pr:.3f}; "
                f"{time.time() - started:.0f} s")
    (out / "acquisition.md").write_text(text + "\n\n" + settings + "\n", encoding="utf-8")
    (out / "acquisition.json").write_text(json.dumps({
        "rows": rows, **iso_numbers, "settings": vars(args), "fixed_sites": {"pauc": fixed_pauc, "pr_auc": fixed_pr},
        "methods": comparison.to_dict(orient="records"),
        "versions": {name: version(name) for name in ("rimclf", "numpy", "torch", "scikit-learn")},
    }, indent=2, default=str) + "\n", encoding="utf-8")
    prediction_table(table, y, predictions, called, args.seed).to_csv(out / "predictions.tsv", sep="\t", index=False,
                                                                    float_format="%.6g")
    print(text)
    print(settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
