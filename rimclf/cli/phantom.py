"""``rimclf phantom OUT``: write a synthetic QSM/FLAIR cohort with labelled rim+ lesions."""

from __future__ import annotations

import argparse

from rimclf.cli._options import add_force_option, add_runtime_options
from rimclf.defaults import DIFFICULTIES, PHANTOM_ACQUISITIONS


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Define the ``phantom`` subcommand's arguments."""
    parser = subparsers.add_parser(
        "phantom",
        help="write a synthetic cohort (QSM, FLAIR, lesion masks, rim labels)",
        description=(
            "Write a realistic synthetic cohort as a BIDS dataset: OUT/participants.tsv, "
            "sub-<label>/anat/sub-<label>_{Chimap,FLAIR}.nii.gz with JSON sidecars (QSM in ppb), and "
            "OUT/derivatives/phantom/ with the lesion masks (sub-<label>_desc-lesions_dseg.nii.gz), rims.tsv "
            "(rim labels) and phantom_lesions.tsv (each lesion's ground-truth pattern); about 4% rim+ "
            "lesions, veins and other rim mimics, three sites and anisotropic voxels."
        ),
    )
    parser.add_argument("out", help="cohort folder to create (written atomically)")
    parser.add_argument("-n", "--subjects", type=int, default=40, metavar="N", help="number of subjects (default 40)")
    parser.add_argument("--difficulty", choices=DIFFICULTIES, default="default", help="rim contrast, noise and mimics (default: default)")
    parser.add_argument("--shape", type=int, nargs=3, metavar=("X", "Y", "Z"), help="QSM grid of site A (default 96 112 64)")
    parser.add_argument("--sites", type=int, default=3, metavar="N",
                        help="number of sites (default 3; at most 3, or 26 with --acquisition varied)")
    parser.add_argument("--acquisition", choices=PHANTOM_ACQUISITIONS, default="sites",
                        help="sites: the fixed sites A, B, C (default); varied: each site draws its own protocol "
                             "(oblique slabs, permuted and flipped axes, 0.5-3 mm voxels with thick slices, noise levels "
                             "and textures, dipole streaks, background fields, offsets and scales), recorded in "
                             "participants.tsv")
    parser.add_argument("--rim-prevalence", type=float, default=0.04, metavar="P", help="expected fraction of rim+ lesions (default 0.04)")
    parser.add_argument("--lesions", type=int, nargs=2, default=(10, 40), metavar=("LOW", "HIGH"), help="lesions per subject (default 10 40)")
    parser.add_argument("--sessions", type=int, default=1, metavar="N",
                        help="sessions per subject (default 1: no ses- level; more: ses-01.., each an independent draw)")
    add_force_option(parser)
    add_runtime_options(parser, out=False, cache=False, device=False)
    return parser


def run(args: argparse.Namespace) -> int:
    """Write the cohort and report where it went."""
    from rimclf.phantom import make_phantom_cohort, read_provenance

    out = make_phantom_cohort(
        args.out,
        n_subjects=args.subjects,
        random_state=args.seed,
        difficulty=args.difficulty,
        shape=None if args.shape is None else tuple(args.shape),
        n_sites=args.sites,
        rim_prevalence=args.rim_prevalence,
        lesions_per_subject=tuple(args.lesions),
        n_sessions=args.sessions,
        acquisition=args.acquisition,
        force=args.force,
        n_jobs=args.jobs,
    )
    summary = read_provenance(out)["summary"]
    n_lesions, n_rim = summary["n_lesions"], summary["n_rim"]
    share = 100.0 * n_rim / n_lesions if n_lesions else 0.0
    if not args.quiet:
        print(f"{summary['n_subjects']} subjects, {n_lesions} lesions, {n_rim} rim+ ({share:.1f}%)")
    print(f"wrote a phantom cohort to {out}")
    return 0
