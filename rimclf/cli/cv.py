"""``rimclf cv COHORT -o OUT --method NAME``: subject-grouped cross-validation of one method."""

from __future__ import annotations

import argparse

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
    """Define the ``cv`` subcommand's arguments."""
    parser = subparsers.add_parser(
        "cv",
        help="cross-validate one method, grouped by subject",
        description=(
            "Cross-validate one method (by default the default model) with subject-grouped, "
            "repeated stratified folds, each training fold calibrated and thresholded as 'rimclf train' does "
            "(--threshold-cv, --calibration, --operating-point; --threshold-cv 0: the method's own probabilities, "
            "one fit per fold), and print its pAUC, PR AUC and ROC AUC, calibration (slope, ECE, Brier, log-loss) "
            "and per-scan counts (expected count CCC, MAE, bias and 90% interval coverage, subject AUC of "
            "P(>=1 rim+), count at the threshold and its category) with subject-bootstrap 95% CIs. Writes the same "
            "files as 'rimclf benchmark' for that method alone."
        ),
    )
    add_benchmark_options(parser)
    add_threshold_options(parser, fixed=False)  # each training fold is calibrated and thresholded as 'rimclf train' does
    parser.add_argument("--method", choices=[*ABLATION_METHODS, *METHODS], default=ABLATION_REFERENCE, metavar="NAME",
                        help=f"method to cross-validate (default {ABLATION_REFERENCE}): "
                             + ", ".join([*ABLATION_METHODS, *METHODS]))
    return parser


def run(args: argparse.Namespace) -> int:
    """Cross-validate the method and say where the results went."""
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
            results = run_benchmark(table, args.out, kind="cross-validation", table=benchmark_methods(args),
                                    methods=[args.method], reference=None, **options)
    if args.quiet:  # -q hides progress, not results (run_benchmark prints the table unless quiet)
        print(format_results(results) + "\n\n" + format_calibration(results))
    print(f"wrote results.tsv, results.json, predictions.tsv, folds.tsv and figures (ROC, PR, reliability) to {args.out}")
    return 0
