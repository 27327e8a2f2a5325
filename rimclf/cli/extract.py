"""``rimclf extract COHORT -o OUT``: write a cohort's lesion radiomics and patches."""

from __future__ import annotations

import argparse

# Choices are repeated here (not imported) so that ``rimclf --help`` imports nothing heavy.
_REGIONS = ("lesion", "shell", "both")
_NORMALIZATIONS = ("nawm", "zscore", "none")


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Define the ``extract`` subcommand's arguments."""
    parser = subparsers.add_parser(
        "extract",
        help="extract lesion radiomics and patches of a cohort",
        description=(
            "Extract every lesion's pyradiomics features (QSMRim-Net settings by default) and "
            "QSM/FLAIR/mask patches, and write OUT/radiomics.tsv, OUT/patches.npy (float32, "
            "lesion x channel x world x/y/z), OUT/lesions.tsv (the row order of both) and "
            "OUT/features.json."
        ),
    )
    parser.add_argument("cohort", help="cohort directory (BIDS-like) or manifest CSV/TSV")
    parser.add_argument("-o", "--out", required=True, help="output folder (written atomically)")
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")
    parser.add_argument(
        "-j", "--jobs", type=int, default=1, metavar="N", help="subjects in parallel (-1: all cores; default 1)"
    )
    parser.add_argument(
        "--region",
        choices=_REGIONS,
        default="lesion",
        help="radiomics of the lesion, a ring around it, or both (default lesion)",
    )
    parser.add_argument(
        "--shell-mm",
        type=float,
        default=2.0,
        metavar="MM",
        help="width of the ring for --region shell/both (default 2)",
    )
    parser.add_argument(
        "--params", default="qsmrim", metavar="FILE", help="pyradiomics parameter file (default: QSMRim-Net settings)"
    )
    parser.add_argument("--patch-size-mm", type=float, default=32.0, metavar="MM", help="patch edge in mm (default 32)")
    parser.add_argument("--patch-shape", type=int, default=32, metavar="N", help="samples per patch edge (default 32)")
    parser.add_argument(
        "--normalize", choices=_NORMALIZATIONS, default="nawm", help="patch intensity normalisation (default nawm)"
    )
    parser.add_argument("--no-patches", action="store_true", help="radiomics only")
    parser.add_argument("--no-radiomics", action="store_true", help="patches only")
    parser.add_argument("--cache", metavar="DIR", help="reuse per-subject results cached in DIR")
    parser.add_argument("--qsm-unit", choices=("ppb", "ppm"), default="ppb", help="unit of the QSM files (default ppb)")
    parser.add_argument("--min-voxels", type=int, default=8, metavar="N", help="leave out smaller lesions (default 8)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def run(args: argparse.Namespace) -> int:
    """Extract the features and report where they went."""
    from rimclf.features import LesionFeaturizer, PatchExtractor, RadiomicsExtractor, save_features

    featurizer = LesionFeaturizer(
        radiomics=None
        if args.no_radiomics
        else RadiomicsExtractor(params=args.params, region=args.region, shell_mm=args.shell_mm),
        patches=None
        if args.no_patches
        else PatchExtractor(size_mm=args.patch_size_mm, shape=args.patch_shape, normalize=args.normalize),
        n_jobs=args.jobs,
        memory=args.cache,
        progress=not args.no_progress,
    )
    out = save_features(
        args.cohort,
        args.out,
        featurizer=featurizer,
        qsm_unit=args.qsm_unit,
        min_voxels=args.min_voxels,
        force=args.force,
    )
    written = sorted(path.name for path in out.iterdir())
    print(f"wrote {', '.join(written)} to {out}")
    return 0
