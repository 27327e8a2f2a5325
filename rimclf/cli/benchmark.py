"""``rimclf benchmark COHORT -o OUT``: DeepSMOTE against other imbalance strategies and
radiomics baselines, on the same subject-grouped folds of any cohort."""

from __future__ import annotations

import argparse

# Importing the method table is cheap (no torch, no sklearn), so --help can list the names.
from rimclf.benchmark import METHODS
from rimclf.cli._options import add_benchmark_options, benchmark_options, cohort_options


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Define the ``benchmark`` subcommand's arguments."""
    parser = subparsers.add_parser(
        "benchmark",
        help="compare DeepSMOTE with other imbalance strategies and radiomics baselines",
        description=(
            "Cross-validate QSMRim-Net with DeepSMOTE, input-level SMOTE, class weights, oversampling "
            "and no correction, and radiomics baselines (random forest on lesion and lesion+shell "
            "radiomics, logistic regression, gradient boosting), all on the same subject-grouped folds. "
            "Writes OUT/results.tsv (one row per method: pAUC, PR AUC, ROC AUC with subject-bootstrap "
            "95% CIs, paired differences against DeepSMOTE, training time per fold), results.json "
            "(with settings and package versions), predictions.tsv (every out-of-fold probability), "
            "folds.tsv and ROC/PR/forest-plot PNGs."
        ),
    )
    add_benchmark_options(parser)
    parser.add_argument("--methods", nargs="+", metavar="NAME", choices=list(METHODS),
                        help="methods to run (default all): " + ", ".join(METHODS))
    return parser


def run(args: argparse.Namespace) -> int:
    """Load the cohort, run the benchmark and say where the results went."""
    from rimclf.benchmark import run_imbalance_benchmark
    from rimclf.cohort import load_cohort

    table = load_cohort(args.cohort, **cohort_options(args))
    run_imbalance_benchmark(table, args.out, methods=args.methods, **benchmark_options(args))
    print(f"wrote results.tsv, results.json, predictions.tsv, folds.tsv and figures to {args.out}")
    return 0
