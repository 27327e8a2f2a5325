"""``rimclf tune COHORT -o OUT``: an Optuna study of the network or a baseline on a cohort."""

from __future__ import annotations

import argparse

from rimclf.cli._options import add_cohort_options, add_feature_options, add_runtime_options, cohort_options, model_config
from rimclf.defaults import TUNING_MODELS

def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Define the ``tune`` subcommand's arguments."""
    parser = subparsers.add_parser(
        "tune",
        help="tune the network or a baseline with Optuna (one process to many machines)",
        description=(
            "Featurise COHORT's labelled lesions once, then run Optuna trials scored by "
            "subject-grouped cross-validation (partial ROC AUC up to FPR 0.1), printing a line per "
            "finished trial. The study lives in --storage: run the same command again to resume it, "
            "or in several shells / on several machines at once to share it. OUT receives "
            "best_params.json, trials.tsv, optimization_history.png and param_importances.png."
        ),
    )
    parser.add_argument("cohort", help="cohort directory (BIDS-like) or manifest CSV/TSV")
    add_runtime_options(parser, device=False)
    parser.add_argument("--trials", type=int, default=20, metavar="N", help="trials this command runs (default 20); the study keeps all")
    parser.add_argument(
        "--storage", metavar="URL",
        help="Optuna storage: a journal file path (default: STUDY_NAME.journal here) or an RDB URL "
        "such as postgresql+psycopg2://user:password@host:5432/db for many machines",
    )
    parser.add_argument("--study-name", default="rimclf", metavar="NAME", help="study to create or resume (default rimclf)")
    parser.add_argument("--workers", type=int, default=1, metavar="N", help="processes running trials at once (default 1)")
    parser.add_argument("--model", choices=TUNING_MODELS, default=TUNING_MODELS[0],
                        help=f"what to tune (default {TUNING_MODELS[0]}, the network; a baseline is quick on a CPU)")
    parser.add_argument("--sampler-seed", type=int, metavar="S", help="seed of the TPE sampler only; give each concurrent command its own")
    parser.add_argument("--folds", type=int, default=5, metavar="K", help="subject-grouped CV folds (default 5)")
    add_feature_options(parser)
    add_cohort_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the study and report where its results went."""
    import optuna

    from rimclf.cli._checks import check_options
    from rimclf.tuning import describe_storage, tune_cohort
    from rimclf.tuning._storage import storage_inputs

    check_options(args, storage_inputs(args.storage, study_name=args.study_name))

    # the trial table says it all; -v is for rimclf's own debug lines, not Optuna's
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    result = tune_cohort(
        args.cohort, args.out, model=args.model, n_trials=args.trials, storage=args.storage,
        study_name=args.study_name, n_workers=args.workers, n_folds=args.folds,
        random_state=args.seed, sampler_seed=args.sampler_seed, config=model_config(args),
        cache=args.cache, n_jobs=args.jobs, progress=not args.quiet, verbose=not args.quiet, force=args.force, cohort_options=cohort_options(args),
    )
    study = result.study
    best = study.best_trial
    storage = describe_storage(args.storage) if args.storage else f"{args.study_name}.journal"
    print(f"study {study.study_name!r} in {storage}: {len(study.trials)} trial(s); best #{best.number} = {best.value:.4f}")
    print(f"wrote best_params.json, trials.tsv and plots to {args.out}")
    return 0
