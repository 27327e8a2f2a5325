"""``rimclf predict MODEL (COHORT | --qsm Q --flair F --mask M) -o OUT``: rim+ probabilities and maps."""

from __future__ import annotations

import argparse

from rimclf.cli._options import add_cohort_options, add_runtime_options, cohort_options
from rimclf.defaults import MONTAGE_LESIONS


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Define the ``predict`` subcommand's arguments."""
    parser = subparsers.add_parser(
        "predict",
        help="predict rim+ lesions of a cohort or one subject with a trained model",
        description=(
            "Apply a model from 'rimclf train' to a cohort (directory or manifest) or to one subject given by "
            "--qsm/--flair/--mask, and write OUT as a BIDS derivative: dataset_description.json, lesions.tsv "
            "(participant, session, lesion, centroid, volume, rim+ probability, decision at the model's threshold) "
            "and subjects.tsv (rim+ counts per scan) with JSON data dictionaries, and per scan, in "
            "sub-X/[ses-Y/]anat/, a probability map (*_desc-rimprob_probseg.nii.gz, 0-1) and a lesion-label image "
            "(*_desc-lesions_dseg.nii.gz, values = lesion_id) on the QSM grid with JSON sidecars, and in "
            "sub-X/figures/ a PNG montage of the lesions ranked by probability. OUT is written atomically."
        ),
    )
    parser.add_argument("model", help="model directory written by 'rimclf train'")
    parser.add_argument("cohort", nargs="?", help="cohort directory or manifest CSV/TSV (or give --qsm/--flair/--mask)")
    single = parser.add_argument_group("one subject instead of a cohort")
    single.add_argument("--qsm", metavar="FILE", help="QSM NIfTI (unit: its JSON sidecar's 'Units', else ppm; or --qsm-unit)")
    single.add_argument("--flair", metavar="FILE", help="FLAIR NIfTI registered to the QSM")
    single.add_argument("--mask", metavar="FILE", help="lesion mask NIfTI (instance labels or binary); one on another grid than the QSM is resampled onto it")
    single.add_argument("--participant", default="01", metavar="LABEL", help="participant label in the outputs (default 01)")
    add_runtime_options(parser, seed=False)
    parser.add_argument("--no-montage", action="store_true", help="skip the PNG montages")
    parser.add_argument("--montage-lesions", type=int, default=MONTAGE_LESIONS, metavar="K",
                        help=f"lesions per montage: the K most probable and every one called rim+ (default {MONTAGE_LESIONS}; "
                             "0: no montage)")
    add_cohort_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Predict and report where the outputs went."""
    from rimclf.errors import ParameterError

    files = {"--qsm": args.qsm, "--flair": args.flair, "--mask": args.mask}
    given = [name for name, value in files.items() if value]
    if args.cohort and given:
        raise ParameterError(f"give either COHORT ({args.cohort}) or {', '.join(given)}, not both")
    if not args.cohort and len(given) != 3:
        missing = [name for name in files if name not in given]
        raise ParameterError(f"give a COHORT, or one subject's --qsm, --flair and --mask (missing: {', '.join(missing)})")

    from rimclf.cli._checks import check_options

    check_options(args)  # -o against the model, the cohort or the three files, the cache; --device
    if not args.cohort:
        from rimclf._bids import check_label

        check_label(args.participant, "--participant")  # it names the output files: fail before loading anything
    from rimclf.model_files import load_model
    from rimclf.workflows import predict_cohort, predict_subject

    options = {"cohort_options": cohort_options(args), "force": args.force, "n_jobs": args.jobs, "memory": args.cache,
               "montage": not args.no_montage, "montage_lesions": args.montage_lesions}
    from rimclf.rim_model import RimModel

    model = load_model(args.model, device=args.device)
    if not isinstance(model, RimModel):
        raise ParameterError(
            f"{args.model} holds a {type(model).__name__} saved with rimclf.save_model; rimclf predict needs a model "
            "written by 'rimclf train' (features, network and decision threshold)"
        )
    model.featurizer_.set_params(progress=not args.quiet)
    if args.cohort:
        paths = predict_cohort(model, args.cohort, args.out, **options)
    else:
        paths = predict_subject(model, args.qsm, args.flair, args.mask, args.out, participant_id=args.participant, **options)
    import pandas as pd

    subjects = pd.read_csv(paths["subjects"], sep="\t", dtype={"participant_id": str}, na_values=["n/a"])
    skipped = subjects["status"].eq("skipped").sum() if "status" in subjects else 0
    print(f"threshold {model.threshold_:.4g} ({model.threshold_choice_.method}); "
          f"{int(subjects['n_lesions'].sum())} lesions of {len(subjects) - skipped} scans, "
          f"{int(subjects['n_rim_pos_predicted'].sum())} called rim+"
          + (f"; {skipped} scan(s) skipped (see subjects.tsv)" if skipped else ""))
    montages = not args.no_montage and args.montage_lesions > 0
    print(f"wrote {paths['lesions']}, {paths['subjects']} and per-scan maps (sub-*/[ses-*/]anat/)"
          + (" and montages (sub-*/figures/)" if montages else "") + f" in {paths['maps']}")
    return 0
