"""``rimclf demo``: train on a phantom cohort, predict held-out subjects, print metrics, draw curves."""

from __future__ import annotations

import argparse

from rimclf.cli._options import (
    add_feature_options,
    add_network_options,
    add_runtime_options,
    add_threshold_options,
    model_config,
)


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Define the ``demo`` subcommand's arguments."""
    parser = subparsers.add_parser(
        "demo",
        help="the whole workflow on synthetic phantom data (a few minutes on 2 CPU cores)",
        description=(
            "Write a training and a held-out phantom cohort (different seeds), train the default model with a "
            "threshold for specificity 0.9 from a subject-grouped CV, save and reload the model, predict the "
            "held-out subjects, print partial ROC AUC, PR AUC, ROC AUC and per-subject rim+ count agreement, and "
            "write OUT/metrics.tsv, OUT/roc_pr.png, OUT/model and OUT/predictions (lesion table, probability maps, "
            "montages). Features are cached in OUT/cache, so a rerun with --force is faster."
        ),
    )
    # -j -1 (all cores) by default, deliberately: `make demo` runs it without options and should be quick
    add_runtime_options(parser, out="demo_output", jobs=-1, cache=False, device=False)
    parser.add_argument("--train-subjects", type=int, default=40, metavar="N", help="training subjects (default 40)")
    parser.add_argument("--test-subjects", type=int, default=20, metavar="M", help="held-out subjects (default 20)")
    add_feature_options(parser)
    add_network_options(parser)
    add_threshold_options(parser, fixed=False)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the demo; it prints its own progress, metrics and output paths."""
    from rimclf.cli._checks import check_options
    from rimclf.demo import run_demo

    check_options(args)

    run_demo(
        args.out,
        train_subjects=args.train_subjects,
        test_subjects=args.test_subjects,
        config=model_config(args),
        seed=args.seed,
        n_jobs=args.jobs,
        force=args.force,
        progress=not args.quiet,
    )
    return 0
