"""The imbalance benchmark on phantom cohorts: DeepSMOTE against input-level SMOTE, class weights,
oversampling and radiomics baselines, every method on the same subject-grouped folds.

Full run: three 30-subject phantom cohorts (difficulty "default" with seeds 0 and 1, "hard" with
seed 2), 5 folds x 2 repeats, 20 epochs per network (within an hour on two CPU cores).
``--quick``: the first of these cohorts only, 3 folds x 1 repeat, 15 epochs (a few minutes).
Each cohort's folder under OUT holds what :func:`rimclf.benchmark.run_imbalance_benchmark`
writes (results.tsv/json, predictions.tsv, folds.tsv, figures); OUT/summary.md holds the
combined markdown tables (README-ready), OUT/summary.tsv all rows, OUT/bench.json the settings,
timings, machine load and package versions. Run from the repository root::

    .venv/bin/python benchmarks/bench_imbalance.py [--quick] [--out DIR] [--work DIR] [--jobs 2]
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

ROOT = Path(__file__).resolve().parent.parent

#: (folder name, difficulty, seed) of the phantom cohorts of each mode
COHORTS = {
    "full": [("default-seed0", "default", 0), ("default-seed1", "default", 1), ("hard-seed2", "hard", 2)],
    "quick": [("default-seed0", "default", 0)],
}
N_SUBJECTS = {"full": 30, "quick": 30}


def phantom_cohort(work: Path, name: str, difficulty: str, seed: int, n_subjects: int, n_jobs: int,
                   acquisition: str = "sites", n_sites: int = 3) -> tuple[Path, float]:
    """The phantom cohort ``work/cohorts/name``, generated unless an identical one is there.

    ``acquisition`` and ``n_sites`` are :func:`rimclf.phantom.make_phantom_cohort`'s (``"varied"``:
    ``n_sites`` drawn acquisition protocols).
    """
    from rimclf.phantom import make_phantom_cohort, read_provenance

    path = work / "cohorts" / name
    wanted = (n_subjects, seed, difficulty, acquisition, n_sites)
    provenance = read_provenance(path)
    if provenance is not None:
        parameters = provenance["parameters"]
        if tuple(parameters.get(key) for key in ("n_subjects", "random_state", "difficulty", "acquisition", "n_sites")) == wanted:
            return path, 0.0
    start = time.perf_counter()
    make_phantom_cohort(path, n_subjects=n_subjects, random_state=seed, difficulty=difficulty, n_jobs=n_jobs,
                        acquisition=acquisition, n_sites=n_sites, force=True)
    return path, time.perf_counter() - start


#: How the tables name the imbalance benchmark's reference.
REFERENCE_LABEL = "QSMRim-Net + DeepSMOTE"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one cohort, 3 folds x 1 repeat, 15 epochs")
    parser.add_argument("--out", type=Path, help="output folder (default benchmarks/results/imbalance[-quick])")
    parser.add_argument("--work", type=Path, help="keep the phantom cohorts and feature cache here (default: a temporary folder)")
    parser.add_argument("--subjects", type=int, help="subjects per cohort (default 30)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel subjects and trees (default: all cores)")
    parser.add_argument("--force", action="store_true", help="replace OUT")
    parser.add_argument("--threshold-cv", type=int, metavar="K",
                        help="threshold CV in every training fold, as rimclf train (default 5: K+1 fits per fold; "
                             "0: the methods' own probabilities, one fit per fold, as the committed results were computed)")
    args = parser.parse_args(argv)

    warnings.simplefilter("ignore")  # pyradiomics' and SMOTE's per-lesion/per-fold chatter
    from rimclf.benchmark import (
        BenchmarkSettings, combined_tables, format_results, package_versions, results_folder, run_imbalance_benchmark,
    )

    mode = "quick" if args.quick else "full"
    out = args.out or ROOT / "benchmarks" / "results" / ("imbalance-quick" if args.quick else "imbalance")
    n_subjects = args.subjects or N_SUBJECTS[mode]
    work = args.work or Path(tempfile.mkdtemp(prefix="rimclf-bench-imbalance-"))
    settings = BenchmarkSettings.quick() if args.quick else BenchmarkSettings.full()
    if args.threshold_cv is not None:
        settings = settings.replace(threshold_cv=args.threshold_cv)
    started, load_start = time.perf_counter(), os.getloadavg()
    timings, results = {}, {}
    try:
        with results_folder(out, force=args.force) as tmp:
            for name, difficulty, seed in COHORTS[mode]:
                print(f"\n=== cohort {name}: {n_subjects} subjects, difficulty {difficulty}, seed {seed}", flush=True)
                cohort, phantom_seconds = phantom_cohort(work, name, difficulty, seed, n_subjects, args.jobs)
                start = time.perf_counter()
                results[name] = run_imbalance_benchmark(
                    cohort, tmp / name, settings=settings, random_state=0, cache=work / "cache", n_jobs=args.jobs,
                )
                record = json.loads((tmp / name / "results.json").read_text())
                timings[name] = {"phantom_seconds": phantom_seconds, "features_seconds": record["features"]["seconds"],
                                 "benchmark_seconds": time.perf_counter() - start, **record["cohort"]}
            total = time.perf_counter() - started
            versions = package_versions()
            header = [
                f"# Imbalance benchmark ({mode})", "",
                f"Phantom cohorts of {n_subjects} subjects; {settings.n_splits}-fold subject-grouped CV x "
                f"{settings.n_repeats} repeat(s); {settings.max_epochs} epochs; {settings.n_boot} subject-bootstrap "
                f"resamples. Total {total / 60:.1f} min on {os.cpu_count()} CPU core(s), load average "
                f"{load_start[0]:.1f} at the start and {os.getloadavg()[0]:.1f} at the end.", "",
                "Cohorts: " + "; ".join(f"{name}: {t['n_subjects']} subjects, {t['n_lesions']} lesions, {t['n_rim']} rim+"
                                        for name, t in timings.items()), "",
                "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()), "",
            ]
            per_cohort = [f"## {name}\n\n{format_results(frame, markdown=True)}" for name, frame in results.items()]
            text = "\n".join(header) + "\n" + combined_tables(results, REFERENCE_LABEL) + "\n\n" + "\n\n".join(per_cohort) + "\n"
            (tmp / "summary.md").write_text(text, encoding="utf-8")
            pd.concat([frame.assign(cohort=name) for name, frame in results.items()]).to_csv(tmp / "summary.tsv", sep="\t", index=False, na_rep="n/a")
            bench = {"mode": mode, "n_subjects": n_subjects, "settings": dataclasses.asdict(settings),
                     "cohorts": timings, "total_seconds": total, "cpu_count": os.cpu_count(), "jobs": args.jobs,
                     "load_average_start": list(load_start), "load_average_end": list(os.getloadavg()),
                     "versions": versions, "command": " ".join([Path(sys.executable).name, *sys.argv])}
            (tmp / "bench.json").write_text(json.dumps(bench, indent=2) + "\n", encoding="utf-8")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print("\n" + combined_tables(results, REFERENCE_LABEL))
    print(f"\ntotal {total / 60:.1f} min; wrote {out}/summary.md, summary.tsv, bench.json and one folder per cohort")
    return 0


if __name__ == "__main__":
    sys.exit(main())
