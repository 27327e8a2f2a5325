"""``rimclf extract COHORT -o OUT``: write a cohort's lesion features (rim-profile, radiomics) and patches."""

from __future__ import annotations

import argparse

from rimclf.cli._options import (
    add_cohort_options,
    add_feature_options,
    add_runtime_options,
    cohort_options,
    model_config,
)


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Define the ``extract`` subcommand's arguments."""
    parser = subparsers.add_parser(
        "extract",
        help="extract lesion features and patches of a cohort",
        description=(
            "Extract every lesion's tabular features (--feature-set: rim-profile features, a fitted rim "
            "model and/or pyradiomics) and QSM/FLAIR/mask patches, and write OUT/<feature>.tsv for each "
            "(OUT/rim.tsv, OUT/rim_fit.tsv, OUT/radiomics.tsv), "
            "OUT/patches.npy (float32, lesion x channel x world x/y/z), OUT/lesions.tsv (the row "
            "order of all) and OUT/features.json."
        ),
    )
    parser.add_argument("cohort", help="cohort directory (BIDS-like) or manifest CSV/TSV")
    add_runtime_options(parser, device=False, seed=False)
    add_feature_options(parser)
    parser.add_argument("--no-patches", action="store_true", help="tabular features only (no patches.npy)")
    parser.add_argument("--no-features", action="store_true", help="patches only (no rim.tsv / radiomics.tsv)")
    add_cohort_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Extract the features and report where they went."""
    import os

    from rimclf.cli._checks import check_options

    params = args.radiomics_params if os.path.isfile(args.radiomics_params) else None
    check_options(args, {"the radiomics parameter file": params})
    from rimclf.cohort import scan_store
    from rimclf.features import make_featurizer, save_features

    featurizer = make_featurizer(
        model_config(args), features=not args.no_features, patches=not args.no_patches,
        n_jobs=args.jobs, memory=args.cache, progress=not args.quiet,
    )
    with scan_store(volumes=False):  # each mask read (and resampled) once, for the table and the features
        out = save_features(args.cohort, args.out, featurizer=featurizer, force=args.force,
                            cohort_options=cohort_options(args))
    written = sorted(path.name for path in out.iterdir())
    print(f"wrote {', '.join(written)} to {out}")
    return 0
