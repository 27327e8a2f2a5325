"""``rimclf benchmark COHORT -o OUT``: DeepSMOTE against other imbalance strategies and
radiomics baselines, on the same subject-grouped folds of any cohort."""

from __future__ import annotations

import argparse

# Importing the method table is cheap (no torch, no sklearn), so --help can list the names.
from rimclf.benchmark._methods import METHODS


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by ``benchmark`` and ``cv``: cohort, output, settings."""
    parser.add_argument("cohort", help="cohort directory (BIDS-like) or manifest CSV/TSV, with rims.tsv labels")
    parser.add_argument("-o", "--out", required=True, help="output folder (written atomically)")
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")
    parser.add_argument("--quick", action="store_true",
                        help="quick settings: 3 folds x 1 repeat, 15 epochs, 200 trees, 300 bootstrap resamples")
    parser.add_argument("--n-splits", type=int, metavar="K", help="folds per repeat (default 5; quick 3)")
    parser.add_argument("--n-repeats", type=int, metavar="R", help="repeats over new shuffles (default 2; quick 1)")
    parser.add_argument("--epochs", type=int, metavar="E", help="network training epochs (default 20; quick 15)")
    parser.add_argument("--n-boot", type=int, metavar="B", help="subject bootstrap resamples (default 1000; quick 300)")
    parser.add_argument("--seed", type=int, default=0, help="seed of folds, models and bootstrap (default 0)")
    parser.add_argument("--cache", metavar="DIR", help="feature cache folder (default OUT/cache)")
    parser.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                        help="subjects featurized and forest trees grown in parallel (-1: all cores; default 1)")
    parser.add_argument("--qsm-unit", choices=("ppb", "ppm"), default="ppb", help="unit of the QSM files (default ppb)")
    parser.add_argument("--min-voxels", type=int, default=8, metavar="N", help="leave out smaller lesions (default 8)")
    parser.add_argument("--no-progress", action="store_true", help="hide the feature-extraction progress bar")
    parser.add_argument("--quiet", action="store_true", help="print only where the results went")


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Define the ``benchmark`` subcommand's arguments."""
    parser = subparsers.add_parser(
        "benchmark",
        help="compare DeepSMOTE with other imbalance strategies and radiomics baselines",
        description=(
            "Cross-validate QSMRim-Net with DeepSMOTE, input-level SMOTE, class weights, oversampling "
            "and no correction, and radiomics baselines (random forest on lesion and lesion+shell "
            "radiomics, logistic regression, gradient boosting), all on the same subject-grouped folds. "
            "Writes OUT/results.csv (one row per method: pAUC, PR AUC, ROC AUC with subject-bootstrap "
            "95% CIs, paired differences against DeepSMOTE, training time per fold), results.json "
            "(with settings and package versions), predictions.tsv (every out-of-fold probability), "
            "folds.tsv and ROC/PR/forest-plot PNGs."
        ),
    )
    add_run_arguments(parser)
    parser.add_argument("--methods", nargs="+", metavar="NAME", choices=list(METHODS),
                        help="methods to run (default all): " + ", ".join(METHODS))
    return parser


def settings_overrides(args: argparse.Namespace) -> dict:
    """The benchmark settings given on the command line."""
    given = {"n_splits": args.n_splits, "n_repeats": args.n_repeats, "max_epochs": args.epochs, "n_boot": args.n_boot}
    return {name: value for name, value in given.items() if value is not None}


def run_benchmark(args: argparse.Namespace, methods: list[str] | None) -> int:
    """Load the cohort, run the benchmark and say where the results went."""
    from rimclf.benchmark import run_imbalance_benchmark
    from rimclf.cohort import load_cohort

    table = load_cohort(args.cohort, min_voxels=args.min_voxels, qsm_unit=args.qsm_unit)
    run_imbalance_benchmark(
        table, args.out, quick=args.quick, settings=settings_overrides(args), methods=methods,
        random_state=args.seed, cache=args.cache, n_jobs=args.jobs, force=args.force, verbose=not args.quiet,
        progress=not (args.quiet or args.no_progress),
    )
    print(f"wrote results.csv, results.json, predictions.tsv, folds.tsv and figures to {args.out}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the benchmark."""
    return run_benchmark(args, args.methods)
