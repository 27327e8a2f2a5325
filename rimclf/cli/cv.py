"""``rimclf cv COHORT -o OUT --method NAME``: subject-grouped cross-validation of one method."""

from __future__ import annotations

import argparse

from rimclf.benchmark._methods import METHODS, REFERENCE
from rimclf.cli.benchmark import add_run_arguments, run_benchmark


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Define the ``cv`` subcommand's arguments."""
    parser = subparsers.add_parser(
        "cv",
        help="cross-validate one method, grouped by subject",
        description=(
            "Cross-validate one method (by default QSMRim-Net with DeepSMOTE) with subject-grouped, "
            "repeated stratified folds and print its pAUC, PR AUC and ROC AUC with subject-bootstrap "
            "95% CIs. Writes the same files as 'rimclf benchmark' for that method alone."
        ),
    )
    add_run_arguments(parser)
    parser.add_argument("--method", choices=list(METHODS), default=REFERENCE, metavar="NAME",
                        help=f"method to cross-validate (default {REFERENCE}): " + ", ".join(METHODS))
    return parser


def run(args: argparse.Namespace) -> int:
    """Cross-validate the method."""
    return run_benchmark(args, [args.method])
