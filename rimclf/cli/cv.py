"""``rimclf cv COHORT -o OUT --method NAME``: subject-grouped cross-validation of one method."""

from __future__ import annotations

import argparse

from rimclf.benchmark import ABLATION_METHODS, ABLATION_REFERENCE, METHODS
from rimclf.cli._options import add_benchmark_options, benchmark_methods, benchmark_options, cohort_options


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Define the ``cv`` subcommand's arguments."""
    parser = subparsers.add_parser(
        "cv",
        help="cross-validate one method, grouped by subject",
        description=(
            "Cross-validate one method (by default the default model) with subject-grouped, "
            "repeated stratified folds and print its pAUC, PR AUC and ROC AUC with subject-bootstrap "
            "95% CIs. Writes the same files as 'rimclf benchmark' for that method alone."
        ),
    )
    add_benchmark_options(parser)
    parser.add_argument("--method", choices=[*ABLATION_METHODS, *METHODS], default=ABLATION_REFERENCE, metavar="NAME",
                        help=f"method to cross-validate (default {ABLATION_REFERENCE}): "
                             + ", ".join([*ABLATION_METHODS, *METHODS]))
    return parser


def run(args: argparse.Namespace) -> int:
    """Cross-validate the method and say where the results went."""
    from rimclf.benchmark import format_results, run_benchmark
    from rimclf.cli._checks import check_options
    from rimclf.cohort import load_cohort

    check_options(args)
    table = load_cohort(args.cohort, cohort_options(args))
    results = run_benchmark(table, args.out, kind="cross-validation", table=benchmark_methods(args),
                            methods=[args.method], reference=None, **benchmark_options(args))
    if args.quiet:  # -q hides progress, not results (run_benchmark prints the table unless quiet)
        print(format_results(results))
    print(f"wrote results.tsv, results.json, predictions.tsv, folds.tsv and figures to {args.out}")
    return 0
