"""``rimclf demo``: train on a phantom cohort, predict held-out subjects, print metrics, draw curves."""

from __future__ import annotations

import argparse

from rimclf import defaults
from rimclf.cli._options import quiet_library_logs
from rimclf.defaults import DEMO_MODEL


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Define the ``demo`` subcommand's arguments."""
    parser = subparsers.add_parser(
        "demo",
        help="the whole workflow on synthetic phantom data (about 10 minutes on 2 CPU cores)",
        description=(
            "Write a training and a held-out phantom cohort (different seeds), train a CPU-size QSMRim-Net with a "
            "threshold for specificity 0.9 from a subject-grouped CV, save and reload the model, predict the "
            "held-out subjects, print partial ROC AUC, PR AUC, ROC AUC and per-subject rim+ count agreement, and "
            "write OUT/metrics.tsv, OUT/roc_pr.png, OUT/model and OUT/predictions (lesion table, probability maps, "
            "montages). Features are cached in OUT/cache, so a rerun with --force is faster."
        ),
    )
    parser.add_argument("-o", "--out", default="demo_output", help="output folder (default demo_output)")
    parser.add_argument("--force", action="store_true", help="replace the outputs in OUT (its feature cache is kept)")
    parser.add_argument("--train-subjects", type=int, default=40, metavar="N", help="training subjects (default 40)")
    parser.add_argument("--test-subjects", type=int, default=20, metavar="M", help="held-out subjects (default 20)")
    config = DEMO_MODEL
    parser.add_argument("--epochs", type=int, default=config.max_epochs, metavar="E",
                        help=f"training epochs (default {config.max_epochs})")
    parser.add_argument("--width", type=int, default=config.width, metavar="N",
                        help=f"ResNet-{config.depth} base width (default {config.width})")
    parser.add_argument("--patch-shape", type=int, default=config.patch_shape, metavar="N",
                        help=f"samples per {config.patch_size_mm:g} mm patch edge (default {config.patch_shape})")
    parser.add_argument("--threshold-cv", type=int, default=config.threshold_cv, metavar="K",
                        help=f"threshold CV folds (default {config.threshold_cv}; 0: in-sample)")
    parser.add_argument("--region", choices=defaults.REGIONS, default=config.region,
                        help=f"radiomics of the lesion, a {config.shell_mm:g} mm ring around it, or both (default {config.region})")
    parser.add_argument("--fusion", choices=defaults.FUSIONS, default=config.fusion,
                        help=f"network fusion of patches and radiomics (default {config.fusion})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the phantoms, the network and the CV (default 0)")
    parser.add_argument("-j", "--jobs", type=int, default=-1, metavar="N", help="subjects in parallel (default -1: all cores)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or epoch tables")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the demo; it prints its own progress, metrics and output paths."""
    from rimclf.demo import run_demo

    quiet_library_logs(args)
    run_demo(
        args.out,
        train_subjects=args.train_subjects,
        test_subjects=args.test_subjects,
        epochs=args.epochs,
        width=args.width,
        patch_shape=args.patch_shape,
        threshold_cv=args.threshold_cv,
        region=args.region,
        fusion=args.fusion,
        seed=args.seed,
        n_jobs=args.jobs,
        force=args.force,
        progress=not args.quiet,
    )
    return 0
