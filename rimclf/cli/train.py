"""``rimclf train COHORT -o MODEL``: train QSMRim-Net and its decision threshold, save the model."""

from __future__ import annotations

import argparse

from rimclf.cli._options import (
    add_cohort_options,
    add_feature_options,
    add_network_options,
    add_runtime_options,
    add_threshold_options,
    cohort_options,
    model_config,
    training_verbosity,
)


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Define the ``train`` subcommand's arguments."""
    parser = subparsers.add_parser(
        "train",
        help="train a model (features, QSMRim-Net, decision threshold) on a labelled cohort",
        description=(
            "Extract the lesion features of a labelled cohort once, calibrate the probabilities (--calibration) and "
            "choose the decision threshold (--operating-point) on out-of-fold probabilities of a subject-grouped CV "
            "(--threshold-cv), train "
            "QSMRim-Net on every labelled lesion, and save the model directory MODEL (settings.json, weights.pt, and "
            "reliability.png: the reliability diagram of the out-of-fold probabilities, calibrated and the network's own). "
            "Defaults: rimclf.defaults.DEFAULT_MODEL."
        ),
    )
    parser.add_argument("cohort", help="cohort directory (BIDS-like) or manifest CSV/TSV, with rims.tsv labels")
    add_runtime_options(parser, out_metavar="MODEL")
    add_network_options(parser)
    add_feature_options(parser)
    add_threshold_options(parser)
    parser.add_argument("--ensemble", action="store_true",
                        help="predict with the mean of the --threshold-cv fold models and the final model (a fold "
                             "ensemble, stored in MODEL; calibrated and thresholded on the fold models' out-of-fold "
                             "probabilities). Off by default: it did not help measurably on held-out phantoms "
                             "(docs/benchmarks.md) and costs K+1 network passes per prediction")
    add_cohort_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Train, save, and report the threshold and where the model went."""
    from rimclf.cli._checks import check_options, naming_options

    check_options(args)
    from rimclf.classifier import make_classifier
    from rimclf.features import make_featurizer
    from rimclf.workflows import train_model

    config = model_config(args)
    with naming_options(args):  # --threshold-cv against the cohort's subjects
        model = train_model(
            args.cohort,
            featurizer=make_featurizer(config, n_jobs=args.jobs, memory=args.cache, progress=not args.quiet),
            classifier=make_classifier(config, device=args.device, random_state=args.seed, verbose=training_verbosity(args)),
            target_specificity=config.target_specificity,
            threshold_cv=config.threshold_cv,
            threshold=args.threshold,
            random_state=args.seed,
            operating_point=config.operating_point,
            target_sensitivity=config.target_sensitivity,
            calibration=config.calibration,
            ensemble=args.ensemble,
            out=args.out,
            force=args.force,
            cohort_options=cohort_options(args),
        )
    training = model.training_
    print(f"trained on {training['n_lesions']} lesions ({training['n_rim_pos']} rim+) of {training['n_subjects']} subjects")
    if training["skipped_scans"]:
        print(f"{len(training['skipped_scans'])} scan(s) skipped (recorded in the model's settings.json, training): "
              + "; ".join(training["skipped_scans"][:3]) + (" ..." if len(training["skipped_scans"]) > 3 else ""))
    if model.calibration_ is not None:
        print(model.calibration_.describe())
    print(model.threshold_choice_.describe())
    if model.ensemble_:
        print(f"fold ensemble: the final model and {len(model.ensemble_)} threshold-CV fold models")
    reliability = "" if model.oof_network_probability_ is None else " (with reliability.png, the out-of-fold reliability diagram)"
    print(f"wrote the model to {args.out}{reliability}")
    return 0
