"""``rimclf train COHORT -o MODEL``: train QSMRim-Net and its decision threshold, save the model."""

from __future__ import annotations

import argparse

# Choices are repeated here (not imported) so that ``rimclf --help`` imports nothing heavy.
_IMBALANCE = ("deepsmote", "class_weight", "oversample", "none")
_REGIONS = ("lesion", "shell", "both")
_NORMALIZATIONS = ("nawm", "zscore", "none")


def add_model_options(parser: argparse.ArgumentParser, *, epochs: int = 30, width: int = 16, patch_shape: int = 32, threshold_cv: int = 5) -> None:
    """Options of the network, its features and its threshold (shared with ``rimclf demo``)."""
    network = parser.add_argument_group("network (QSMRimNetClassifier)")
    network.add_argument("--depth", type=int, choices=(10, 18, 34), default=10, help="ResNet depth (default 10; the paper's is 18)")
    network.add_argument("--width", type=int, default=width, metavar="N", help=f"ResNet base width (default {width}; the paper's is 64)")
    network.add_argument("--epochs", type=int, default=epochs, metavar="N", help=f"training epochs (default {epochs})")
    network.add_argument("--batch-size", type=int, default=32, metavar="N", help="lesions per batch (default 32)")
    network.add_argument("--lr", type=float, default=1e-3, help="learning rate of AdamW, cosine schedule (default 1e-3)")
    network.add_argument("--imbalance", choices=_IMBALANCE, default="deepsmote", help="class-imbalance strategy (default deepsmote)")
    network.add_argument("--fusion", choices=("sum", "concat"), default="sum", help="how patch and radiomics features are combined (default sum)")
    features = parser.add_argument_group("features (LesionFeaturizer)")
    features.add_argument("--patch-size-mm", type=float, default=32.0, metavar="MM", help="patch edge in mm (default 32)")
    features.add_argument("--patch-shape", type=int, default=patch_shape, metavar="N", help=f"samples per patch edge (default {patch_shape})")
    features.add_argument("--normalize", choices=_NORMALIZATIONS, default="nawm", help="patch intensity normalisation (default nawm)")
    features.add_argument("--region", choices=_REGIONS, default="lesion", help="radiomics of the lesion, a ring around it, or both (default lesion)")
    features.add_argument("--shell-mm", type=float, default=2.0, metavar="MM", help="ring width for --region shell/both (default 2)")
    features.add_argument("--radiomics-params", default="qsmrim", metavar="FILE", help="pyradiomics parameter file (default: QSMRim-Net settings)")
    threshold = parser.add_argument_group("decision threshold")
    threshold.add_argument("--target-specificity", type=float, default=0.9, metavar="S",
                           help="choose the threshold for this specificity (default 0.9, i.e. FPR <= 0.1)")
    threshold.add_argument("--threshold-cv", type=int, default=threshold_cv, metavar="K",
                           help=f"subject-grouped CV folds whose out-of-fold probabilities set the threshold (default {threshold_cv}; "
                                "K extra trainings). 0: in-sample probabilities, cheaper but optimistic")
    threshold.add_argument("--threshold", type=float, metavar="P", help="use this fixed probability threshold instead")
    runtime = parser.add_argument_group("runtime")
    runtime.add_argument("--device", default="auto", help="torch device: auto (CUDA when present), cpu, cuda, cuda:1 ... (default auto)")
    runtime.add_argument("--seed", type=int, default=0, help="random seed of the network and the CV folds (default 0)")
    runtime.add_argument("-j", "--jobs", type=int, default=1, metavar="N", help="subjects in parallel during feature extraction (-1: all cores)")
    runtime.add_argument("--cache", metavar="DIR", help="reuse per-subject features cached in DIR")
    runtime.add_argument("-q", "--quiet", action="store_true", help="no progress bar or epoch table")


def add_cohort_options(parser: argparse.ArgumentParser) -> None:
    """Options of :func:`rimclf.load_cohort`."""
    cohort = parser.add_argument_group("cohort")
    cohort.add_argument("--min-voxels", type=int, default=8, metavar="N", help="leave out smaller lesions (default 8)")
    cohort.add_argument("--qsm-unit", choices=("ppb", "ppm"), default="ppb", help="unit of the QSM files (default ppb)")
    cohort.add_argument("--connectivity", type=int, choices=(6, 18, 26), default=26, help="splits binary masks into lesions (default 26)")


def quiet_library_logs(args: argparse.Namespace) -> None:
    """Keep pyradiomics' and pykwalify's INFO chatter (on every parameter load) out of the output, unless -v."""
    import logging

    if not getattr(args, "verbose", False):
        for name in ("radiomics", "pykwalify"):
            logging.getLogger(name).setLevel(logging.WARNING)


def make_estimators(args: argparse.Namespace, *, memory=None):
    """The featurizer and classifier the model options describe."""
    from rimclf.classifier import QSMRimNetClassifier
    from rimclf.features import LesionFeaturizer, PatchExtractor, RadiomicsExtractor

    featurizer = LesionFeaturizer(
        radiomics=RadiomicsExtractor(params=args.radiomics_params, region=args.region, shell_mm=args.shell_mm),
        patches=PatchExtractor(size_mm=args.patch_size_mm, shape=args.patch_shape, normalize=args.normalize),
        n_jobs=args.jobs,
        memory=args.cache if memory is None else memory,
        progress=not args.quiet,
    )
    classifier = QSMRimNetClassifier(
        module__depth=args.depth,
        module__width=args.width,
        module__fusion=args.fusion,
        max_epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        imbalance=args.imbalance,
        device=args.device,
        random_state=args.seed,
        verbose=0 if args.quiet else 1,
    )
    return featurizer, classifier


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Define the ``train`` subcommand's arguments."""
    parser = subparsers.add_parser(
        "train",
        help="train a model (features, QSMRim-Net, decision threshold) on a labelled cohort",
        description=(
            "Extract the lesion features of a labelled cohort once, choose the decision threshold for "
            "--target-specificity on out-of-fold probabilities of a subject-grouped CV (--threshold-cv), train "
            "QSMRim-Net on every lesion, and save the model directory MODEL (settings.json, weights.pt)."
        ),
    )
    parser.add_argument("cohort", help="cohort directory (BIDS-like) or manifest CSV/TSV, with rims.tsv labels")
    parser.add_argument("-o", "--out", required=True, metavar="MODEL", help="model directory to write (atomically)")
    parser.add_argument("--force", action="store_true", help="replace MODEL if it exists")
    add_model_options(parser)
    add_cohort_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Train, save, and report the threshold and where the model went."""
    from rimclf.workflows import train_model

    quiet_library_logs(args)
    featurizer, classifier = make_estimators(args)
    model = train_model(
        args.cohort,
        featurizer=featurizer,
        classifier=classifier,
        target_specificity=args.target_specificity,
        threshold_cv=args.threshold_cv,
        threshold=args.threshold,
        random_state=args.seed,
        out=args.out,
        force=args.force,
        min_voxels=args.min_voxels,
        qsm_unit=args.qsm_unit,
        connectivity=args.connectivity,
    )
    training = model.training_
    print(f"trained on {training['n_lesions']} lesions ({training['n_rim_pos']} rim+) of {training['n_subjects']} subjects")
    print(model.threshold_choice_.describe())
    print(f"wrote the model to {args.out}")
    return 0
