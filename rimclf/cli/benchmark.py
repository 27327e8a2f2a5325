"""``rimclf benchmark COHORT -o OUT``: the default model against its ablations and baselines, on
the same subject-grouped folds of any cohort."""

from __future__ import annotations

import argparse

# Importing the method table is cheap (no torch, no sklearn), so --help can list the names.
from rimclf.benchmark import ABLATION_METHODS, ABLATION_REFERENCE, METHODS
from rimclf.cli._options import (
    add_benchmark_options,
    add_threshold_options,
    benchmark_methods,
    benchmark_options,
    cohort_options,
    drop_default_cache,
    threshold_settings,
)


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Define the ``benchmark`` subcommand's arguments."""
    parser = subparsers.add_parser(
        "benchmark",
        help="compare the default model with its ablations and baselines",
        description=(
            "Cross-validate the default model (rimclf.defaults.DEFAULT_MODEL) and the same model with one "
            "part changed (no logistic blend, radiomics instead of or beside the rim features, a CNN branch with its "
            "augmentation, normalisation and distance-channel variants, DeepSMOTE or class weights), and "
            "baselines (logistic regression and random forest on rim features, random forests on "
            "radiomics), all on the same subject-grouped folds, each training fold calibrated and thresholded as "
            "'rimclf train' does (--threshold-cv extra fits per fold; baselines too). --methods also takes the imbalance "
            "benchmark's methods. Writes OUT/results.tsv (one row per method: pAUC, PR AUC, ROC AUC, calibration and "
            "per-scan count metrics with subject-bootstrap 95% CIs, paired differences against the default model, "
            "training time per fold), results.json (with settings, package versions, notes and a data dictionary), "
            "predictions.tsv (every out-of-fold probability, calibrated and not, with its fold's threshold), "
            "folds.tsv and ROC/PR/forest-plot/reliability PNGs."
        ),
    )
    add_benchmark_options(parser)
    add_threshold_options(parser, fixed=False)  # each training fold is calibrated and thresholded as 'rimclf train' does
    parser.add_argument("--methods", nargs="+", metavar="NAME", choices=[*ABLATION_METHODS, *METHODS],
                        help="methods to run (default: every ablation method): " + ", ".join(ABLATION_METHODS)
                             + "; imbalance benchmark: " + ", ".join(METHODS))
    return parser


def run(args: argparse.Namespace) -> int:
    """Load the cohort, run the benchmark and say where the results went."""
    from rimclf.benchmark import format_calibration, format_results, run_benchmark
    from rimclf.cli._checks import check_options, naming_options
    from rimclf.cohort import load_cohort, scan_store

    drop_default_cache(args)  # --cache OUT/cache: the default
    check_options(args)
    options = benchmark_options(args)
    options["settings"].update(threshold_settings(args))
    with scan_store(volumes=False):  # each mask read (and resampled) once, for the table and the features
        table = load_cohort(args.cohort, cohort_options(args))
        with naming_options(args):  # --n-splits, --threshold-cv against the cohort's subjects
            results = run_benchmark(table, args.out, table=benchmark_methods(args), methods=args.methods,
                                    reference=ABLATION_REFERENCE, **options)
    if args.quiet:  # -q hides progress, not results (run_benchmark prints the table unless quiet)
        print(format_results(results) + "\n\n" + format_calibration(results))
    print(f"wrote results.tsv, results.json, predictions.tsv, folds.tsv and figures (ROC, PR, reliability) to {args.out}")
    return 0
