"""Options shared by the subcommands, with their choices and defaults from :mod:`rimclf.defaults`.

A subcommand adds the groups it needs (``add_feature_options``, ``add_network_options``,
``add_threshold_options``, ``add_cohort_options``); :func:`model_config` turns the parsed
options back into the :class:`~rimclf.defaults.ModelConfig` that
:func:`rimclf.features.make_featurizer` and :func:`rimclf.classifier.make_classifier` take.
:func:`add_output_options` gives every subcommand (and the top-level parser) the same ``-v`` and
``-q``; :func:`add_runtime_options` the same ``-o``, ``--force``, ``-j``, ``--cache``, ``--device``
and ``--seed``, each command taking those it needs. Only :mod:`rimclf.defaults` is imported here (pure Python), so ``rimclf --help`` stays
instant.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging

from rimclf import defaults
from rimclf.defaults import CALIBRATIONS, DEFAULT_MODEL, OPERATING_POINTS, ModelConfig
from rimclf.feature_registry import TABULAR, feature_names, feature_sets, format_feature_set, parse_feature_set


def add_output_options(parser: argparse.ArgumentParser, *, top_level: bool = False) -> None:
    """``-v/--verbose`` and ``-q/--quiet``, the same on every subcommand and before it.

    ``rimclf -v train ...`` and ``rimclf train ... -v`` both work: the subcommands' options
    default to "not given" (``argparse.SUPPRESS``), so they never undo the top-level ones.
    """
    default = False if top_level else argparse.SUPPRESS
    group = parser if top_level else parser.add_argument_group("output")
    group.add_argument("-v", "--verbose", action="store_true", default=default,
                       help="also print rimclf's debugging messages and the epoch table of each training")
    group.add_argument("-q", "--quiet", action="store_true", default=default,
                       help="hide progress bars, training summaries and progress messages (results, warnings and "
                            "errors are still printed)")


#: The help of each runtime option (:func:`add_runtime_options`), the same on every subcommand.
RUNTIME_HELP = {
    "out": "output folder, written atomically (complete or not at all)",
    "force": "replace the output folder if it exists (an input is never replaced)",
    "jobs": "processes working in parallel: subjects featurised, phantoms drawn and per-scan outputs written, and, "
            "in cv and benchmark, folds fitted and forest trees grown (on a GPU the folds share it); -1: all cores",
    "cache": "keep per-subject features in DIR and reuse them in later runs with the same settings (default: no "
             "cache; cv and benchmark: OUT/cache, kept by --force)",
    "device": "torch device of the networks: auto (CUDA when present), cpu, cuda, cuda:1 ...",
    "seed": "random seed: folds, networks, samplers, bootstraps and phantoms all follow it",
}
#: The default of ``-j/--jobs`` (``rimclf demo`` asks for all cores, explicitly: see its ``register``).
JOBS = 1
#: The defaults of ``--device`` and ``--seed``.
DEVICE, SEED = "auto", 0


def add_runtime_options(parser: argparse.ArgumentParser, *, out: bool | str = True, out_metavar: str = "OUT",
                        jobs: bool | int = True, cache: bool = True, device: bool = True, seed: bool = True) -> None:
    """``-o/--out``, ``--force``, ``-j/--jobs``, ``--cache``, ``--device``, ``--seed``: one group with
    the same defaults and help (:data:`RUNTIME_HELP`) on every subcommand, which only opts in or out.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser.
    out : bool or str, default=True
        True: a required ``-o/--out`` and ``--force``; a folder name: the same with that folder as
        ``-o``'s default (``rimclf demo``); False: neither (``rimclf phantom OUT`` names its output
        as an argument and adds :func:`add_force_option` itself).
    out_metavar : str, default="OUT"
        How ``-o``'s value is shown (``MODEL`` for ``rimclf train``).
    jobs : bool or int, default=True
        ``-j/--jobs`` with the default :data:`JOBS` (True), with this default (an int), or none (False).
    cache, device, seed : bool, default=True
        Whether the command has ``--cache DIR``, ``--device DEVICE`` (default :data:`DEVICE`) and
        ``--seed S`` (default :data:`SEED`).
    """
    group = parser.add_argument_group("output and runtime (the same on every command)")
    if out is not False:
        default = {} if out is True else {"default": out}
        text = RUNTIME_HELP["out"] + ("" if out is True else f" (default {out})")
        group.add_argument("-o", "--out", required=out is True, metavar=out_metavar, help=text, **default)
        add_force_option(group)
    if jobs is not False:
        default = JOBS if jobs is True else jobs
        group.add_argument("-j", "--jobs", type=int, default=default, metavar="N",
                           help=f"{RUNTIME_HELP['jobs']} (default {default})")
    if cache:
        group.add_argument("--cache", metavar="DIR", help=RUNTIME_HELP["cache"])
    if device:
        group.add_argument("--device", default=DEVICE, metavar="DEVICE", help=f"{RUNTIME_HELP['device']} (default {DEVICE})")
    if seed:
        group.add_argument("--seed", type=int, default=SEED, metavar="S", help=f"{RUNTIME_HELP['seed']} (default {SEED})")


def add_force_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--force`` alone, for a command whose output is not ``-o`` (``rimclf phantom OUT``)."""
    parser.add_argument("--force", action="store_true", help=RUNTIME_HELP["force"])


def add_feature_options(parser: argparse.ArgumentParser, config: ModelConfig = DEFAULT_MODEL) -> None:
    """Radiomics and patch settings (``--region``, ``--patch-shape``, ...), defaults from ``config``."""
    group = parser.add_argument_group("features (LesionFeaturizer)")
    group.add_argument("--feature-set", choices=[format_feature_set(names) for names in feature_sets()],
                       default=format_feature_set(config.feature_set),
                       help=f"tabular features of each lesion, '+'-joined among {', '.join(feature_names(TABULAR))} "
                            f"(rim-profile features, a fitted rim model, pyradiomics; default {format_feature_set(config.feature_set)})")
    group.add_argument("--radiomics-params", dest="radiomics_params", default=config.radiomics_params,
                       metavar="FILE", help="pyradiomics parameter file (default: QSMRim-Net settings)")
    group.add_argument("--region", choices=defaults.REGIONS, default=config.region,
                       help=f"radiomics of the lesion, a ring around it, or both (default {config.region})")
    group.add_argument("--shell-mm", type=float, default=config.shell_mm, metavar="MM",
                       help=f"ring width for --region shell/both (default {config.shell_mm:g})")
    group.add_argument("--patch-size-mm", type=float, default=config.patch_size_mm, metavar="MM",
                       help=f"patch edge in mm (default {config.patch_size_mm:g})")
    group.add_argument("--patch-shape", type=int, default=config.patch_shape, metavar="N",
                       help=f"samples per patch edge (default {config.patch_shape})")
    group.add_argument("--normalize", choices=defaults.NORMALIZATIONS, default=config.normalize,
                       help=f"patch intensity normalisation (default {config.normalize})")
    group.add_argument("--channels", nargs="+", choices=defaults.CHANNELS, default=list(config.channels),
                       metavar="CHANNEL", help=f"patch channels, among {', '.join(defaults.CHANNELS)} "
                                               f"(default {' '.join(config.channels)})")


def add_network_options(parser: argparse.ArgumentParser, config: ModelConfig = DEFAULT_MODEL) -> None:
    """Network and training settings (``--depth``, ``--epochs``, ...), defaults from ``config``."""
    group = parser.add_argument_group("network (QSMRimNetClassifier)")
    group.add_argument("--depth", type=int, choices=defaults.DEPTHS, default=config.depth,
                       help=f"ResNet depth (default {config.depth}; the paper's is 18)")
    group.add_argument("--width", type=int, default=config.width, metavar="N",
                       help=f"ResNet base width (default {config.width}; the paper's is 64)")
    group.add_argument("--epochs", type=int, dest="max_epochs", default=config.max_epochs, metavar="N",
                       help=f"training epochs (default {config.max_epochs})")
    group.add_argument("--batch-size", type=int, default=config.batch_size, metavar="N",
                       help=f"lesions per batch (default {config.batch_size})")
    group.add_argument("--lr", type=float, default=config.lr,
                       help=f"learning rate of AdamW, cosine schedule (default {config.lr:g})")
    group.add_argument("--imbalance", choices=defaults.IMBALANCE_CHOICES, default=config.imbalance,
                       help=f"class-imbalance strategy (default {config.imbalance})")
    group.add_argument("--blend", choices=defaults.BLENDS, default=config.blend,
                       help="average the network's rim+ probability with that of a logistic regression on the same "
                            f"tabular features, or not (default {config.blend}; 'none' with --branches patches)")
    group.add_argument("--branches", choices=defaults.BRANCHES, default=config.branches,
                       help=f"inputs of the network: CNN on patches and MLP on the tabular features ('both'), "
                            f"or one of them (default {config.branches})")
    group.add_argument("--image", choices=defaults.IMAGE_INPUTS, default=config.image,
                       help=f"what the image branch reads: cubic patches through a 3D ResNet, or surface maps (depth x "
                            f"direction around each lesion) through a small encoder (default {config.image})")
    group.add_argument("--image-weights", choices=defaults.IMAGE_WEIGHTS, default=config.image_weights,
                       help=f"how the surface-map encoder starts: random weights, the pretrained ones shipped with rimclf "
                            f"(then trained on this cohort), or those kept fixed (default {config.image_weights})")
    group.add_argument("--fusion", choices=defaults.FUSIONS, default=config.fusion,
                       help=f"how the CNN and MLP vectors are combined (default {config.fusion})")
    group.add_argument("--augment", choices=defaults.AUGMENTATIONS, default=config.augment,
                       help=f"training-time augmentation of the patches (default {config.augment})")


def add_threshold_options(parser: argparse.ArgumentParser, config: ModelConfig = DEFAULT_MODEL, *, fixed: bool = True) -> None:
    """Decision-threshold settings, defaults from ``config`` (``fixed``: also ``--threshold P``)."""
    group = parser.add_argument_group("decision threshold")
    group.add_argument("--target-specificity", type=float, default=config.target_specificity, metavar="S",
                       help=f"choose the threshold for this specificity (default {config.target_specificity:g})")
    group.add_argument("--threshold-cv", type=int, default=config.threshold_cv, metavar="K",
                       help=f"subject-grouped CV folds whose out-of-fold probabilities set the threshold (default "
                            f"{config.threshold_cv}; K extra trainings). 0: in-sample probabilities, cheaper but optimistic")
    group.add_argument("--operating-point", choices=OPERATING_POINTS, default=config.operating_point,
                       help=f"how the threshold is set on the calibrated out-of-fold probabilities: --target-specificity, "
                            f"--target-sensitivity, the largest F1, or as many lesions called rim+ as are rim+ (count: "
                            f"per-patient counts) (default {config.operating_point})")
    group.add_argument("--target-sensitivity", type=float, default=config.target_sensitivity, metavar="S",
                       help=f"sensitivity of --operating-point sensitivity (default {config.target_sensitivity:g})")
    group.add_argument("--calibration", type=lambda text: None if text == "none" else text, choices=(*CALIBRATIONS, None),
                       default=config.calibration, metavar="{" + ",".join((*CALIBRATIONS, "none")) + "}",
                       help=f"calibrate the probabilities on the out-of-fold probabilities (default {config.calibration}; "
                            "none: the classifier's own)")
    if fixed:
        group.add_argument("--threshold", type=float, metavar="P", help="use this fixed probability threshold instead")


def add_cohort_options(parser: argparse.ArgumentParser) -> None:
    """How a cohort is read (:class:`rimclf.cohort.CohortOptions`), the same on every command that reads one."""
    group = parser.add_argument_group("cohort (which files and scans are read; see docs/cohort.md)")
    group.add_argument("--participant-label", nargs="+", default=None, metavar="LABEL",
                       help="read only these participants (with or without 'sub-'), as BIDS Apps do")
    group.add_argument("--session-label", nargs="+", default=None, metavar="LABEL",
                       help="read only these sessions (with or without 'ses-')")
    group.add_argument("--strict", action="store_true",
                       help="a scan missing a required file is an error (default: skipped with a warning and listed "
                            "in the outputs)")
    for kind, what in (("qsm", "QSM (*_Chimap)"), ("flair", "FLAIR"), ("mask", "lesion masks")):
        group.add_argument(f"--{kind}-pipeline", metavar="PIPELINE",
                           help=f"read the {what} from COHORT/derivatives/PIPELINE, or 'raw' for the raw dataset "
                                "(needed only when several places hold them)")
    group.add_argument("--mask-desc", metavar="DESC",
                       help="the desc- of the lesion masks (default: masks whose desc- or label- contains 'lesion')")
    group.add_argument("--bids-filter", dest="bids_filters", action="append", default=None, metavar="KIND:ENTITY=VALUE",
                       help="a BIDS entity filter, KIND qsm, flair or mask (e.g. qsm:acquisition=gre, mask:space=orig); "
                            "repeatable")
    group.add_argument("--min-voxels", type=int, default=defaults.MIN_VOXELS, metavar="N",
                       help=f"leave out smaller lesions (default {defaults.MIN_VOXELS})")
    group.add_argument("--qsm-unit", choices=defaults.QSM_UNIT_CHOICES, default=defaults.QSM_UNIT,
                       help=f"unit of the QSM files (default {defaults.QSM_UNIT}: the 'Units' of each QSM's JSON "
                            "sidecar, else ppm as BIDS defines Chimap; ppb/ppm override the sidecars)")
    group.add_argument("--connectivity", type=int, choices=defaults.CONNECTIVITIES, default=defaults.CONNECTIVITY,
                       help=f"splits binary masks into lesions (default {defaults.CONNECTIVITY})")


def add_benchmark_options(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``benchmark`` and ``cv``: cohort, output, settings (defaults from ``BenchmarkSettings``)."""
    from rimclf.benchmark import BenchmarkSettings  # its module imports nothing heavy

    full, quick = BenchmarkSettings.full(), BenchmarkSettings.quick()
    parser.add_argument("cohort", help="cohort directory (BIDS-like) or manifest CSV/TSV, with rims.tsv labels")
    add_runtime_options(parser)
    parser.add_argument("--quick", action="store_true",
                        help=f"quick settings: {quick.n_splits} folds x {quick.n_repeats} repeat, {quick.n_estimators} trees, "
                             f"{quick.n_boot} bootstrap resamples ({quick.max_epochs} epochs for the imbalance methods)")
    for option, name, metavar, text in (
        ("--n-splits", "n_splits", "K", "folds per repeat"),
        ("--n-repeats", "n_repeats", "R", "repeats over new shuffles"),
        ("--n-boot", "n_boot", "B", "subject bootstrap resamples"),
    ):
        parser.add_argument(option, type=int, dest=name, metavar=metavar,
                            help=f"{text} (default {getattr(full, name)}; quick {getattr(quick, name)})")
    parser.add_argument("--epochs", type=int, dest="max_epochs", metavar="E",
                        help=f"training epochs of every network (default: the ablation's networks train as the default "
                             f"model, {DEFAULT_MODEL.max_epochs} epochs; the imbalance benchmark's {full.max_epochs}, "
                             f"quick {quick.max_epochs})")
    add_cohort_options(parser)


def drop_default_cache(args: argparse.Namespace) -> None:
    """``--cache OUT/cache`` of cv and benchmark is their default said aloud: treat it as not given,
    so that it is not refused as lying inside ``OUT`` (a ``--force`` run carries ``OUT/cache`` over)."""
    import os

    if args.cache and args.out and os.path.realpath(os.path.expanduser(args.cache)) == os.path.realpath(
            os.path.join(os.path.expanduser(args.out), "cache")):
        args.cache = None


def benchmark_options(args: argparse.Namespace) -> dict:
    """The :func:`rimclf.benchmark.run_benchmark` keyword arguments the parsed options give."""
    given = {name: getattr(args, name) for name in ("n_splits", "n_repeats", "max_epochs", "n_boot", "device")}
    return {
        "quick": args.quick, "settings": {name: value for name, value in given.items() if value is not None},
        "random_state": args.seed, "cache": args.cache, "n_jobs": args.jobs, "force": args.force,
        "verbose": not args.quiet, "progress": not args.quiet,
    }


def threshold_settings(args: argparse.Namespace) -> dict:
    """The benchmark settings that :func:`add_threshold_options` (without ``--threshold``) sets:
    each training fold of ``cv``/``benchmark`` is calibrated and thresholded as ``train`` does."""
    names = ("threshold_cv", "calibration", "operating_point", "target_specificity", "target_sensitivity")
    return {name: getattr(args, name) for name in names}


def benchmark_methods(args: argparse.Namespace) -> dict | None:
    """The ``table`` of methods for :func:`rimclf.benchmark.run_benchmark`: None (the ablation as
    it is) without ``--epochs``; with it, the ablation's methods with every network trained for
    that many epochs (their configurations fix ``max_epochs``, so the benchmark settings' value
    alone would not reach them)."""
    epochs = getattr(args, "max_epochs", None)
    if epochs is None:
        return None
    from rimclf.benchmark import ABLATION_METHODS

    return {
        name: dataclasses.replace(
            method, network=tuple((key, epochs if key == "max_epochs" else value) for key, value in method.network)
        )
        for name, method in ABLATION_METHODS.items()
    }


def model_config(args: argparse.Namespace, base: ModelConfig = DEFAULT_MODEL) -> ModelConfig:
    """``base`` with every field the parsed options give (``args.<field>``, unless None)."""
    # an option left unset (None, e.g. `rimclf cv` without --epochs) keeps the base's value
    given = {field.name: getattr(args, field.name) for field in dataclasses.fields(base)
             if getattr(args, field.name, None) is not None}
    if "channels" in given:
        given["channels"] = tuple(given["channels"])
    if "feature_set" in given:
        given["feature_set"] = parse_feature_set(given["feature_set"], "--feature-set")
    return dataclasses.replace(base, **given)


#: The parsed options that make a :class:`rimclf.cohort.CohortOptions` (its field names).
_COHORT_FIELDS = ("min_voxels", "qsm_unit", "connectivity", "qsm_pipeline", "flair_pipeline", "mask_pipeline",
                  "mask_desc", "bids_filters", "participant_label", "session_label", "strict")


def cohort_options(args: argparse.Namespace):
    """The validated :class:`rimclf.cohort.CohortOptions` the parsed options give."""
    from rimclf.cohort import CohortOptions

    given = {name: getattr(args, name) for name in _COHORT_FIELDS if hasattr(args, name)}
    for name in ("bids_filters", "participant_label", "session_label"):
        if name in given:
            given[name] = tuple(given[name] or ())
    return CohortOptions(**given).validated()


def set_log_levels(args: argparse.Namespace) -> None:
    """Log levels of a command: rimclf's own messages at INFO (DEBUG with ``-v``, WARNING with
    ``-q``); every other library's at WARNING whatever the options (``-v`` is for rimclf's debug
    lines, not pyradiomics', pybids' or matplotlib's)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    verbose, quiet = getattr(args, "verbose", False), getattr(args, "quiet", False)
    logging.getLogger("rimclf").setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    # these set their own levels (INFO) on import or use; they stay at WARNING
    for name in ("radiomics", "pykwalify", "bidsschematools", "bids"):
        logging.getLogger(name).setLevel(logging.WARNING)


def training_verbosity(args: argparse.Namespace) -> int:
    """The classifier's ``verbose`` the options give: 0 with ``-q``, 2 (epoch tables) with ``-v``,
    else 1 (a progress bar and one summary line per training)."""
    return 0 if getattr(args, "quiet", False) else 2 if getattr(args, "verbose", False) else 1
