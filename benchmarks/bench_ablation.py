"""Which parts of the rim detector help? The default model against each one-part change and baselines.

Every method of :data:`rimclf.benchmark.ABLATION_METHODS` is cross-validated on the same
subject-grouped folds of each phantom cohort, with the same seeds (:func:`rimclf.benchmark.run_benchmark`):

- the default model (:data:`rimclf.defaults.DEFAULT_MODEL`: the network's MLP branch on the
  rim-profile and rim-fit features, "the rim features"), the reference of every paired difference;
- the same network on radiomics (lesion + 2 mm ring) instead of, or beside, the rim features;
  with DeepSMOTE or class weights instead of no imbalance correction;
- the same network with a CNN branch on 24 mm patches (distance channel, QSM referenced to the
  lesion's ring, flips + turns + small rotations), the CNN alone, and the CNN branch without
  augmentation, with flips and turns only, with NAWM-normalised patches, without the distance
  channel;
- logistic regression and a random forest on the rim features, random forests on lesion and on
  lesion + ring radiomics (the strongest radiomics baseline).

Full run: four 60-subject phantom cohorts that no default was tuned on ("default" difficulty with
seeds 11 and 12, "hard" with seed 13, and seed 14 with 8 drawn acquisition protocols:
``acquisition="varied"``), 5 folds x 3 repeats, 1000 subject-bootstrap resamples.
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

import pandas as pd

from bench_imbalance import phantom_cohort

ROOT = Path(__file__).resolve().parent.parent

#: (folder name, difficulty, seed, acquisition, sites) of the phantom cohorts of each mode; the defaults
#: were chosen on other seeds (100-102 and the acquisition benchmark's 1-3), and the demo uses seeds 0
#: and 10000. "varied" with 8 sites draws 8 acquisition protocols (oblique slabs, thick slices,
#: streaks, noise levels), as ``rimclf phantom --acquisition varied --sites 8``.
COHORTS = {
    "full": [("default-seed11", "default", 11, "sites", 3), ("default-seed12", "default", 12, "sites", 3),
             ("hard-seed13", "hard", 13, "sites", 3), ("varied-seed14", "default", 14, "varied", 8)],
    "quick": [("default-seed11", "default", 11, "sites", 3)],
}
N_SUBJECTS = {"full": 60, "quick": 30}
#: The methods of ``--quick``: the default model, DeepSMOTE, the CNN added or alone, and baselines.
QUICK_METHODS = ["default", "net_rim_deepsmote", "net_rim_radiomics", "net_fused", "net_cnn", "logreg_rim",
                 "rf_lesion_shell"]

def summarize_folders(args: argparse.Namespace) -> int:
    """OUT/summary.md, summary.tsv and ablation.png from cohort folders of earlier runs (copied into OUT).

    Folders of the same name (one cohort run in parts, e.g. the CNN variants on their own) are merged
    with :func:`rimclf.benchmark.merge_runs`; their copies go to OUT/<cohort>/run-1, run-2, ...
    """
    from rimclf.benchmark import combined_tables, format_results, merge_runs, plot_ablation, read_results, results_folder, verdicts

    out = args.out or ROOT / "benchmarks" / "results" / "ablation"
    runs: dict[str, list[Path]] = {}
    for folder in args.from_results:
        runs.setdefault(folder.name, []).append(folder)
    results = {name: merge_runs([read_results(f) for f in folders], name) for name, folders in runs.items()}
    records = {name: [json.loads((f / "results.json").read_text()) for f in folders] for name, folders in runs.items()}
    with results_folder(out, force=args.force) as tmp:
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
    parser.add_argument("--threshold-cv", type=int, metavar="K",
                        help="threshold CV in every training fold, as rimclf train (default 5: K+1 fits per fold; "
                             "0: the methods' own probabilities, one fit per fold, as the committed results were computed)")
    parser.add_argument("--from-results", nargs="+", type=Path, metavar="DIR",
                        help="write OUT's summary from these earlier outputs (each a cohort folder with results.tsv, "
                             "named after the cohort) instead of running; e.g. one cohort per run, or one cohort's "
                             "methods split between runs (folders of the same name are merged)")
    args = parser.parse_args(argv)
    if args.from_results:
        return summarize_folders(args)

    warnings.simplefilter("ignore")  # pyradiomics' and SMOTE's per-lesion/per-fold chatter
    from rimclf.benchmark import (
        ABLATION_REFERENCE, BenchmarkSettings, combined_tables, format_results, package_versions, plot_ablation,
        results_folder, run_benchmark, verdicts,
    )
    from rimclf.defaults import DEFAULT_MODEL, describe_config

    mode = "quick" if args.quick else "full"
    out = args.out or ROOT / "benchmarks" / "results" / ("ablation-quick" if args.quick else "ablation")
    n_subjects = args.subjects or N_SUBJECTS[mode]
    cohorts = [c for c in COHORTS[mode] if args.cohorts is None or c[0] in args.cohorts]
    work = args.work or Path(tempfile.mkdtemp(prefix="rimclf-bench-ablation-"))
    settings = BenchmarkSettings.quick() if args.quick else BenchmarkSettings.full(n_repeats=args.repeats)
    if args.threshold_cv is not None:
        settings = settings.replace(threshold_cv=args.threshold_cv)
    started, load_start = time.perf_counter(), os.getloadavg()
    timings, results = {}, {}
    try:
        with results_folder(out, force=args.force) as tmp:
            for name, difficulty, seed, acquisition, n_sites in cohorts:
                print(f"\n=== cohort {name}: {n_subjects} subjects, difficulty {difficulty}, seed {seed}, "
                      f"acquisition {acquisition}", flush=True)
                cohort, phantom_seconds = phantom_cohort(work, name, difficulty, seed, n_subjects, args.jobs,
                                                         acquisition=acquisition, n_sites=n_sites)
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
            if ABLATION_REFERENCE in next(iter(results.values()))["method"].tolist():
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
