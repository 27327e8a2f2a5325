"""Which parts of the rim detector help? The default model against each one-part change and baselines.

Every method of :data:`rimclf.benchmark.ABLATION_METHODS` is cross-validated on the same
subject-grouped folds of each phantom cohort, with the same seeds (:func:`rimclf.benchmark.run_benchmark`):

- the default model (:data:`rimclf.defaults.DEFAULT_MODEL`: the network's MLP branch on the
  rim-profile features), the reference of every paired difference;
- the same network on radiomics (lesion + 2 mm ring) instead of, or beside, the rim features;
  with DeepSMOTE or class weights instead of no imbalance correction;
- the same network with a CNN branch on 24 mm patches (distance channel, QSM referenced to the
  lesion's ring, flips + turns + small rotations), the CNN alone, and the CNN branch without
  augmentation, with flips and turns only, with NAWM-normalised patches, without the distance
  channel;
- logistic regression and a random forest on the rim features, random forests on lesion and on
  lesion + ring radiomics (the strongest radiomics baseline).

Full run: three 60-subject phantom cohorts that no default was tuned on ("default" difficulty with
seeds 11 and 12, "hard" with seed 13), 5 folds x 3 repeats, 1000 subject-bootstrap resamples.
``--quick``: the first cohort at 30 subjects, 3 folds x 1 repeat, 300 resamples, and only the
methods of ``QUICK_METHODS`` (the CNN variants' augmentation, normalisation and distance ablations
are left out): a check that runs in minutes on 2 CPU cores.
OUT/<cohort>/ holds what ``run_benchmark`` writes; OUT/summary.md the combined markdown tables and
the verdicts (README-ready); OUT/summary.tsv every row; OUT/ablation.png the paired differences
against the default model on every cohort; OUT/bench.json settings, timings, machine load and
package versions. Run from the repository root::

    .venv/bin/python benchmarks/bench_ablation.py [--quick] [--out DIR] [--work DIR] [--jobs 2]
        [--methods NAME ...] [--cohorts NAME ...] [--repeats N] [--force]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bench_imbalance import combined_tables, phantom_cohort

ROOT = Path(__file__).resolve().parent.parent

#: (folder name, difficulty, seed) of the phantom cohorts of each mode; the defaults were chosen on
#: other seeds (100-102), and the demo uses seeds 0 and 10000.
COHORTS = {
    "full": [("default-seed11", "default", 11), ("default-seed12", "default", 12), ("hard-seed13", "hard", 13)],
    "quick": [("default-seed11", "default", 11)],
}
N_SUBJECTS = {"full": 60, "quick": 30}
#: The methods of ``--quick``: the default model, DeepSMOTE, the CNN added or alone, and baselines.
QUICK_METHODS = ["default", "net_rim_deepsmote", "net_rim_radiomics", "net_fused", "net_cnn", "logreg_rim",
                 "rf_lesion_shell"]
#: The strongest radiomics baseline, which the default model must beat.
RADIOMICS_BASELINE = "rf_lesion_shell"
#: The default model with a CNN branch: does the CNN add?
WITH_CNN = "net_fused"


def _interval(row: pd.Series, metric: str) -> str:
    return f"{row[metric + '_diff']:+.3f} [{row[metric + '_diff_ci_low']:+.3f}, {row[metric + '_diff_ci_high']:+.3f}]"


def verdicts(results: dict[str, pd.DataFrame]) -> str:
    """The questions the ablation answers, per cohort, as markdown."""
    lines = ["**Verdicts** (paired subject-bootstrap 95% CIs; a difference is method − default model)", ""]
    for name, frame in results.items():
        rows = frame.set_index("method")
        default = rows.loc["default"]
        line = [f"- {name}: default model pAUC {default['pauc']:.3f}, PR AUC {default['pr_auc']:.3f}"]
        if RADIOMICS_BASELINE in rows.index:
            rf = rows.loc[RADIOMICS_BASELINE]
            beaten = rf["pauc_diff_ci_high"] < 0
            line.append(f"; {RADIOMICS_BASELINE} − default: pAUC {_interval(rf, 'pauc')} "
                        f"({'default better' if beaten else 'not significant'})")
        if WITH_CNN in rows.index:
            cnn = rows.loc[WITH_CNN]
            adds = cnn["pr_auc_diff"] >= 0.03
            line.append(f"; adding the CNN: PR AUC {_interval(cnn, 'pr_auc')} "
                        f"({'adds >= 0.03' if adds else 'adds < 0.03'})")
        lines.append("".join(line))
    return "\n".join(lines)


def plot_ablation(results: dict[str, pd.DataFrame]):
    """Forest plot: each method's paired difference from the default model, per cohort, pAUC and PR AUC."""
    from matplotlib.figure import Figure

    every = pd.concat(list(results.values()), ignore_index=True).drop_duplicates("method")
    methods = [m for m in every["method"] if m != "default"]
    labels = every.set_index("method").loc[methods, "label"].tolist()
    figure = Figure(figsize=(12, 0.42 * len(methods) + 1.8))
    axes = figure.subplots(1, 2, sharey=True)
    colours = ("tab:blue", "tab:orange", "tab:green", "tab:red")
    offsets = np.linspace(-0.25, 0.25, len(results)) if len(results) > 1 else [0.0]
    positions = np.arange(len(methods))[::-1]
    for axis, metric, title in zip(axes, ("pauc", "pr_auc"), ("Δ pAUC (FPR ≤ 0.1)", "Δ PR AUC")):
        for (name, frame), offset, colour in zip(results.items(), offsets, colours):
            rows = frame.set_index("method").reindex(methods)  # NaN (no point) where a cohort lacks a method
            centre = rows[f"{metric}_diff"].to_numpy()
            low, high = rows[f"{metric}_diff_ci_low"].to_numpy(), rows[f"{metric}_diff_ci_high"].to_numpy()
            axis.errorbar(centre, positions + offset, xerr=[centre - low, high - centre], fmt="o", ms=4,
                          color=colour, capsize=2, label=name)
        axis.axvline(0.0, color="black", lw=0.8)
        axis.set_xlabel(f"{title}: method − default model")
        axis.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(positions, labels)
    handles, names = axes[1].get_legend_handles_labels()  # below the panels: it hides no point
    figure.legend(handles, names, loc="lower center", ncol=len(names), fontsize=9, title="cohort", frameon=False)
    figure.suptitle("Ablation: each change to the default model, paired 95% subject-bootstrap CIs")
    figure.tight_layout(rect=(0, 0.07, 1, 1))
    return figure


def _read_results(folder: Path) -> pd.DataFrame:
    """A cohort folder's results table (``results.tsv``; ``results.csv`` of runs before rimclf wrote TSV)."""
    if (folder / "results.tsv").is_file():
        return pd.read_csv(folder / "results.tsv", sep="\t", na_values="n/a")
    return pd.read_csv(folder / "results.csv")


def merge_runs(frames: list[pd.DataFrame], cohort: str) -> pd.DataFrame:
    """One cohort's results from runs that split its methods between them.

    Each run cross-validated the default model on the same folds with the same seeds, so its paired
    differences are against the same reference; the reference rows must therefore agree (else the runs
    are not comparable and this raises). A method in several runs is kept from the first.
    """
    reference = [frame.set_index("method").loc["default", ["pauc", "pr_auc"]].astype(float) for frame in frames]
    for other in reference[1:]:
        if not np.allclose(other.to_numpy(), reference[0].to_numpy(), atol=1e-9):
            raise SystemExit(f"{cohort}: the runs' default models differ (pAUC/PR AUC {reference[0].tolist()} vs "
                             f"{other.tolist()}); they did not use the same folds, seeds or code")
    merged = pd.concat(frames, ignore_index=True)
    return merged.drop_duplicates("method", keep="first").reset_index(drop=True)


def summarize_folders(args: argparse.Namespace) -> int:
    """OUT/summary.md, summary.tsv and ablation.png from cohort folders of earlier runs (copied into OUT).

    Folders of the same name (one cohort run in parts, e.g. the CNN variants on their own) are merged
    with :func:`merge_runs`; their copies go to OUT/<cohort>/run-1, run-2, ...
    """
    from rimclf._atomic import atomic_output_dir
    from rimclf.benchmark import format_results

    out = args.out or ROOT / "benchmarks" / "results" / "ablation"
    runs: dict[str, list[Path]] = {}
    for folder in args.from_results:
        runs.setdefault(folder.name, []).append(folder)
    results = {name: merge_runs([_read_results(f) for f in folders], name) for name, folders in runs.items()}
    records = {name: [json.loads((f / "results.json").read_text()) for f in folders] for name, folders in runs.items()}
    with atomic_output_dir(out, force=args.force) as tmp:
        for name, folders in runs.items():
            for k, folder in enumerate(folders, start=1):
                target = tmp / name if len(folders) == 1 else tmp / name / f"run-{k}"
                shutil.copytree(folder, target, ignore=shutil.ignore_patterns("cache"))
            if len(folders) > 1:
                results[name].to_csv(tmp / name / "results.tsv", sep="\t", index=False, na_rep="n/a")
        header = ["# Ablation", "", "Cohorts: " + "; ".join(
            f"{name}: {r[0]['cohort']['n_subjects']} subjects, {r[0]['cohort']['n_lesions']} lesions, "
            f"{r[0]['cohort']['n_rim']} rim+, {r[0]['settings']['n_splits']} folds x {r[0]['settings']['n_repeats']} "
            f"repeat(s), {sum(run['timing']['total_seconds'] for run in r) / 60:.0f} min in {len(r)} run(s)"
            for name, r in records.items()), ""]
        per_cohort = [f"## {name}\n\n{format_results(frame, markdown=True)}" for name, frame in results.items()]
        text = "\n".join(header) + "\n" + verdicts(results) + "\n\n" + combined_tables(results, "the default model")
        (tmp / "summary.md").write_text(text + "\n\n" + "\n\n".join(per_cohort) + "\n", encoding="utf-8")
        pd.concat([frame.assign(cohort=name) for name, frame in results.items()]).to_csv(tmp / "summary.tsv", sep="\t", index=False, na_rep="n/a")
        plot_ablation(results).savefig(tmp / "ablation.png", dpi=110)
    print(verdicts(results))
    print(f"wrote {out}/summary.md, summary.tsv, ablation.png")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one 30-subject cohort, 3 folds x 1 repeat")
    parser.add_argument("--out", type=Path, help="output folder (default benchmarks/results/ablation[-quick])")
    parser.add_argument("--work", type=Path, help="keep the phantom cohorts and feature cache here (default: a temporary folder)")
    parser.add_argument("--subjects", type=int, help="subjects per cohort (default 60; quick 30)")
    parser.add_argument("--methods", nargs="+", metavar="NAME", help="ablation methods to run (default: all)")
    parser.add_argument("--cohorts", nargs="+", metavar="NAME", help="cohorts to run (default: all of the mode)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="repeats of the 5-fold CV of the full run (default 3; fewer for a cheaper look at slow methods)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel subjects and folds (default: all cores)")
    parser.add_argument("--force", action="store_true", help="replace OUT")
    parser.add_argument("--from-results", nargs="+", type=Path, metavar="DIR",
                        help="write OUT's summary from these earlier outputs (each a cohort folder with results.tsv, "
                             "named after the cohort) instead of running; e.g. one cohort per run, or one cohort's "
                             "methods split between runs (folders of the same name are merged)")
    args = parser.parse_args(argv)
    if args.from_results:
        return summarize_folders(args)

    warnings.simplefilter("ignore")  # pyradiomics' and SMOTE's per-lesion/per-fold chatter
    from rimclf._atomic import atomic_output_dir
    from rimclf.benchmark import ABLATION_REFERENCE, BenchmarkSettings, format_results, package_versions, run_benchmark
    from rimclf.defaults import DEFAULT_MODEL, describe_config

    mode = "quick" if args.quick else "full"
    out = args.out or ROOT / "benchmarks" / "results" / ("ablation-quick" if args.quick else "ablation")
    n_subjects = args.subjects or N_SUBJECTS[mode]
    cohorts = [c for c in COHORTS[mode] if args.cohorts is None or c[0] in args.cohorts]
    work = args.work or Path(tempfile.mkdtemp(prefix="rimclf-bench-ablation-"))
    settings = BenchmarkSettings.quick() if args.quick else BenchmarkSettings.full(n_repeats=args.repeats)
    started, load_start = time.perf_counter(), os.getloadavg()
    timings, results = {}, {}
    try:
        with atomic_output_dir(out, force=args.force) as tmp:
            for name, difficulty, seed in cohorts:
                print(f"\n=== cohort {name}: {n_subjects} subjects, difficulty {difficulty}, seed {seed}", flush=True)
                cohort, phantom_seconds = phantom_cohort(work, name, difficulty, seed, n_subjects, args.jobs)
                start = time.perf_counter()
                methods = args.methods or (QUICK_METHODS if args.quick else None)
                results[name] = run_benchmark(
                    cohort, tmp / name, methods=methods, reference=ABLATION_REFERENCE, settings=settings,
                    random_state=0, cache=work / "cache", n_jobs=args.jobs,
                )
                record = json.loads((tmp / name / "results.json").read_text())
                timings[name] = {"phantom_seconds": phantom_seconds, "features_seconds": record["features"]["seconds"],
                                 "benchmark_seconds": time.perf_counter() - start, **record["cohort"]}
            total = time.perf_counter() - started
            versions = package_versions()
            header = [
                f"# Ablation ({mode})", "",
                f"Default model: {describe_config(DEFAULT_MODEL)}.", "",
                f"Phantom cohorts of {n_subjects} subjects; {settings.n_splits}-fold subject-grouped CV x "
                f"{settings.n_repeats} repeat(s); {settings.n_boot} subject-bootstrap resamples. Total "
                f"{total / 60:.1f} min on {os.cpu_count()} CPU core(s), load average {load_start[0]:.1f} at the "
                f"start and {os.getloadavg()[0]:.1f} at the end.", "",
                "Cohorts: " + "; ".join(f"{name}: {t['n_subjects']} subjects, {t['n_lesions']} lesions, {t['n_rim']} rim+"
                                        for name, t in timings.items()), "",
                "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()), "",
            ]
            per_cohort = [f"## {name}\n\n{format_results(frame, markdown=True)}" for name, frame in results.items()]
            text = "\n".join(header) + "\n" + verdicts(results) + "\n\n" + combined_tables(results, "the default model")
            (tmp / "summary.md").write_text(text + "\n\n" + "\n\n".join(per_cohort) + "\n", encoding="utf-8")
            pd.concat([frame.assign(cohort=name) for name, frame in results.items()]).to_csv(tmp / "summary.tsv", sep="\t", index=False, na_rep="n/a")
            if "default" in next(iter(results.values()))["method"].tolist():
                plot_ablation(results).savefig(tmp / "ablation.png", dpi=110)
            bench = {"mode": mode, "n_subjects": n_subjects, "settings": dataclasses.asdict(settings),
                     "default_model": dataclasses.asdict(DEFAULT_MODEL),
                     "cohorts": timings, "total_seconds": total, "cpu_count": os.cpu_count(), "jobs": args.jobs,
                     "load_average_start": list(load_start), "load_average_end": list(os.getloadavg()),
                     "versions": versions, "command": " ".join([Path(sys.executable).name, *sys.argv])}
            (tmp / "bench.json").write_text(json.dumps(bench, indent=2, default=str) + "\n", encoding="utf-8")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print("\n" + verdicts(results))
    print(f"\ntotal {total / 60:.1f} min; wrote {out}/summary.md, summary.tsv, ablation.png, bench.json and one folder per cohort")
    return 0


if __name__ == "__main__":
    sys.exit(main())
