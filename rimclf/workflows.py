"""Train and predict workflows: what ``rimclf train`` and ``rimclf predict`` run.

:func:`train_model` fits a :class:`~rimclf.RimModel` on a labelled cohort (and saves it);
:func:`predict_cohort` applies one to a cohort and writes what :mod:`rimclf.outputs`
describes; :func:`predict_subject` does the same for one subject given by its three files, which
:func:`subject_table` turns into a lesion table without a manifest written by hand.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd
from sklearn.utils.validation import check_is_fitted

from rimclf._atomic import check_output_location, known_inputs, refuse_overwrite, reserving_output
from rimclf._bids import check_label
from rimclf._validation import SIZE_LIMITS, check_int, check_path, check_real, check_threshold_settings
from rimclf.defaults import DEFAULT_MODEL, MONTAGE_LESIONS
from rimclf.errors import ParameterError
from rimclf.rim_model import RimModel

__all__ = ["predict_cohort", "predict_subject", "subject_table", "train_model"]


def _as_table(cohort: object, options=None) -> pd.DataFrame:
    from rimclf.cohort import load_cohort

    if isinstance(cohort, pd.DataFrame):
        return cohort
    check_path(cohort, "cohort", what="a cohort folder or manifest, or a lesion table (pandas.DataFrame)")
    return load_cohort(cohort, options)


def _needs_flair(featurizer) -> bool:
    """Whether the featurizer reads the FLAIR (scans without one are then incomplete); None: the default model's."""
    if featurizer is None:
        from rimclf.features import make_featurizer

        featurizer = make_featurizer()
    try:
        extractors = featurizer._validate()  # the extractors the featurizer runs
        columns = {column for extractor in extractors.values() for column in extractor.required_columns()}
    except (AttributeError, TypeError, ValueError):
        return True  # unknown: keep the safe rule
    return "flair" in columns


def _cohort_options(cohort_options, **changes):
    from rimclf.cohort import CohortOptions

    if cohort_options is None:
        cohort_options = CohortOptions()
    elif not isinstance(cohort_options, CohortOptions):
        raise ParameterError(f"cohort_options={cohort_options!r} is not valid; it must be a rimclf.cohort.CohortOptions")
    return cohort_options.replace(**changes) if changes else cohort_options


def _as_model(model: object, device: str = "auto") -> RimModel:
    """``model`` itself, or the model saved in the folder ``model`` names (:func:`rimclf.load_model`)."""
    if isinstance(model, (str, os.PathLike)):
        from rimclf.model_files import load_model

        model = load_model(model, device=device)
    if not isinstance(model, RimModel):
        raise ParameterError(
            f"model={repr(model)[:60]} (a {type(model).__name__}) is not valid; it must be "
            "a fitted RimModel (rimclf.load_model or train_model) or the path of a model folder written by "
            "'rimclf train'"
        )
    return model


def _check_sizes(featurizer: object, classifier: object) -> None:
    """Network and patch sizes within :data:`rimclf._validation.SIZE_LIMITS`, and the
    estimators' own parameter checks, before a cohort is read."""
    check_size = {"width": lambda v, n: check_int(v, n, min=1, max=int(SIZE_LIMITS["width"])),
                  "shape": lambda v, n: check_int(v, n, min=1, max=int(SIZE_LIMITS["patch_shape"])),
                  "size_mm": lambda v, n: check_real(v, n, min=0, max=SIZE_LIMITS["patch_size_mm"], closed="right"),
                  "shell_mm": lambda v, n: check_real(v, n, min=0, max=SIZE_LIMITS["shell_mm"], closed="right")}
    if hasattr(classifier, "_check_params"):
        classifier._check_params()  # epochs, batch size, learning rate, device, ...
        width = classifier.get_params_for("module").get("width")
        if width is not None:
            check_size["width"](width, "module__width")
    extractors = featurizer.extractors() if hasattr(featurizer, "extractors") else {}  # each checked
    for extractor in extractors.values():
        for parameter in ("shape", "size_mm", "shell_mm"):
            value = getattr(extractor, parameter, None)
            if value is None or (parameter == "shell_mm" and getattr(extractor, "region", "lesion") == "lesion"):
                continue
            for item in value if isinstance(value, (tuple, list)) else [value]:
                check_size[parameter](item, f"{type(extractor).__name__}.{parameter}")


def _check_out(out: object) -> None:
    if out is None:
        raise ParameterError("out=None is not valid; it must be the path of the output folder")


@reserving_output("out")  # an input, exists, unwritable, or being written: fail before training
def train_model(
    cohort: str | os.PathLike | pd.DataFrame,
    *,
    featurizer=None,
    classifier=None,
    target_specificity: float = DEFAULT_MODEL.target_specificity,
    threshold_cv: int = DEFAULT_MODEL.threshold_cv,
    threshold: float | None = None,
    random_state=None,
    operating_point: str = DEFAULT_MODEL.operating_point,
    target_sensitivity: float = DEFAULT_MODEL.target_sensitivity,
    calibration: str | None = DEFAULT_MODEL.calibration,
    ensemble: bool = False,
    out: str | os.PathLike | None = None,
    force: bool = False,
    cohort_options=None,
) -> RimModel:
    """Train a :class:`RimModel` on a labelled cohort (and save it when ``out`` is given).

    Parameters
    ----------
    cohort : str, path-like or pandas.DataFrame
        Cohort directory or manifest (read with :func:`rimclf.load_cohort`) or a lesion table.
        Every lesion needs a rim label.
    featurizer, classifier, target_specificity, threshold_cv, threshold, random_state, operating_point, target_sensitivity, calibration, ensemble
        See :class:`RimModel`.
    out : str or path-like, optional
        Save the model there with :func:`rimclf.save_model`, and beside its files the reliability
        diagram of the threshold CV's out-of-fold probabilities, calibrated and the network's own
        (``OUT/reliability.png``, :data:`RELIABILITY_FILE`; with ``threshold_cv >= 2``; loading
        reads only ``settings.json`` and ``weights.pt``); an existing ``out`` is refused
        before any work unless ``force``, and so is one that is, holds or lies inside the cohort
        or the feature cache (with or without ``force``).
    force : bool, default=False
    cohort_options : rimclf.cohort.CohortOptions, optional
        How :func:`rimclf.load_cohort` reads ``cohort`` when it is a path (scans missing a file
        are skipped with a warning unless ``strict``).

    Returns
    -------
    RimModel
        Fitted.

    Examples
    --------
    >>> from dataclasses import replace
    >>> from rimclf.classifier import make_classifier
    >>> from rimclf.defaults import DEFAULT_MODEL
    >>> from rimclf.workflows import train_model
    >>> model = train_model("COHORT", random_state=0, out="model")      # doctest: +SKIP
    >>> print(model.threshold_choice_.describe())                       # doctest: +SKIP
    >>> config = replace(DEFAULT_MODEL, imbalance="class_weight")
    >>> model = train_model("COHORT", classifier=make_classifier(config, random_state=0),
    ...                     threshold_cv=3, out="model-cw", force=True)  # doctest: +SKIP
    """
    from rimclf.cohort import scan_store

    check_threshold_settings(target_specificity, threshold_cv, threshold)
    _check_sizes(featurizer, classifier)
    model = RimModel(featurizer, classifier, target_specificity=target_specificity, threshold_cv=threshold_cv,
                     threshold=threshold, random_state=random_state, operating_point=operating_point,
                     target_sensitivity=target_sensitivity, calibration=calibration, ensemble=ensemble)
    model._check_params()  # e.g. ensemble=True without the threshold CV: before the cohort is read
    with scan_store(volumes=False):  # the masks load_cohort read (and resampled) serve the features
        table = _as_table(cohort, _cohort_options(cohort_options, require_flair=_needs_flair(featurizer)))
        if threshold is None and "participant_id" in table:  # the folds hold out whole subjects
            from rimclf.cohort import labelled_lesions

            # the subjects with labelled lesions (no lesion to learn from, e.g. every scan skipped: that error)
            subjects = labelled_lesions(table).groups
            check_threshold_settings(target_specificity, threshold_cv, n_subjects=len(set(subjects)))
        model.fit(table)
    if out is not None:
        from rimclf.model_files import save_model

        save_model(model, out, force=force)
        write_reliability(model, Path(out) / RELIABILITY_FILE)
    return model


#: the reliability diagram ``rimclf train`` writes into the model folder (``load_model`` ignores it)
RELIABILITY_FILE = "reliability.png"


def write_reliability(model: RimModel, path: str | os.PathLike) -> Path | None:
    """Save the reliability diagram of a fitted model's out-of-fold probabilities (PNG): the
    calibrated ones and the network's own, as :func:`rimclf.calibration.reliability_figure` draws
    them. None (nothing written) for a model without them (``threshold_cv=0``, a fixed threshold, a loaded model).

    Examples
    --------
    >>> from rimclf.workflows import train_model, write_reliability
    >>> model = train_model("COHORT", random_state=0)                      # doctest: +SKIP
    >>> write_reliability(model, "reliability.png")                        # doctest: +SKIP
    """
    from rimclf._atomic import atomic_write
    from rimclf.calibration import reliability_figure

    network = getattr(model, "oof_network_probability_", None)
    if network is None:
        return None
    y = model.oof_labels_
    curves = {"calibrated (out of fold)": (y, model.oof_probability_)} if model.calibration_ is not None else {}
    curves["network's own (out of fold)"] = (y, network)
    fig = reliability_figure(curves, title=f"threshold CV: {len(y)} lesions, {int(y.sum())} rim+")
    return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))


def subject_table(
    qsm: str | os.PathLike,
    flair: str | os.PathLike,
    mask: str | os.PathLike,
    *,
    participant_id: str = "01",
    cohort_options=None,
) -> pd.DataFrame:
    """The lesion table of one subject given by its QSM, FLAIR and lesion mask files.

    Equivalent to :func:`rimclf.load_cohort` on a one-row manifest (it writes one to a temporary
    folder and reads it), with the same checks and error messages. ``rim`` is ``<NA>``.
    ``cohort_options`` (a :class:`rimclf.cohort.CohortOptions`) gives ``min_voxels``,
    ``connectivity`` and ``qsm_unit``; a missing file is an error (``strict``), not a skip.

    Examples
    --------
    >>> import tempfile
    >>> from rimclf.phantom import make_phantom_cohort
    >>> folder = tempfile.TemporaryDirectory()
    >>> cohort = make_phantom_cohort(f"{folder.name}/phantom", n_subjects=2, random_state=0, shape=(48, 56, 32))
    >>> from pathlib import Path
    >>> anat = Path(cohort) / "sub-001" / "anat"
    >>> mask = next(Path(cohort, "derivatives", "phantom").rglob("sub-001_desc-lesions_dseg.nii.gz"))
    >>> table = subject_table(anat / "sub-001_Chimap.nii.gz", anat / "sub-001_FLAIR.nii.gz", mask, participant_id="7")
    >>> len(table), table["participant_id"].iloc[0], bool(table["rim"].isna().all())
    (13, '7', True)
    >>> folder.cleanup()
    """
    check_label(participant_id, "subject_table")  # the error names the argument, not the temporary manifest
    with tempfile.TemporaryDirectory(prefix="rimclf-subject-") as folder:
        manifest = Path(folder) / "manifest.tsv"
        paths = {kind: str(Path(path).expanduser().resolve()) for kind, path in (("qsm", qsm), ("flair", flair), ("mask", mask))}
        pd.DataFrame([{"participant_id": str(participant_id), **paths}]).to_csv(manifest, sep="\t", index=False)
        # one subject, three files: nothing to select, and a missing file is an error, not a skip
        options = _cohort_options(cohort_options, participant_label=(), session_label=(), strict=True)
        return _as_table(manifest, options)


@reserving_output("out")  # an input, exists, ...: fail before predicting
def predict_cohort(
    model: RimModel,
    cohort: str | os.PathLike | pd.DataFrame,
    out: str | os.PathLike,
    *,
    force: bool = False,
    n_jobs: int | None = None,
    memory=None,
    montage: bool = True,
    montage_lesions: int = MONTAGE_LESIONS,
    cohort_options=None,
) -> dict[str, Path]:
    """Predict every lesion of a cohort and write the outputs of :func:`rimclf.outputs.write_prediction_outputs`.

    Parameters
    ----------
    model : RimModel, str or path-like
        Fitted (e.g. from :func:`rimclf.load_model`), or the folder of a model written by
        ``rimclf train`` / :func:`rimclf.save_model`, loaded with ``device="auto"``.
    cohort : str, path-like or pandas.DataFrame
        Cohort directory, manifest or lesion table (:func:`subject_table` for one subject).
    out : str or path-like
        Output folder, a BIDS derivative (``dataset_description.json``, ``lesions.tsv``,
        ``subjects.tsv``, per-scan probability map, lesion-label image and montage; see
        :mod:`rimclf.outputs`), written atomically; an existing one is refused before any work
        unless ``force``. Never an input: a folder that is, holds or lies inside the cohort, the
        model or the feature cache is refused, with or without ``force``.
    n_jobs, memory
        Feature extraction in parallel over subjects, and its cache (see ``LesionFeaturizer``);
        None keeps the model's featurizer settings. The per-scan files (maps and montages) are
        written by as many worker processes, with a progress bar over the scans when the model's
        featurizer shows one (its ``progress``).
    montage : bool, default=True
        Draw the per-subject PNG montages.
    montage_lesions : int, default=12
        The most probable lesions a montage shows, besides every lesion called rim+; 0: no montages.
    cohort_options : rimclf.cohort.CohortOptions, optional
        How :func:`rimclf.load_cohort` reads ``cohort`` when it is a path. A scan missing a
        required file is skipped with a warning (unless ``strict``) and listed in
        ``subjects.tsv`` with the reason; a scan without FLAIR is complete when the model's
        features do not read the FLAIR.

    Returns
    -------
    dict
        ``{"lesions": path, "subjects": path, "maps": folder, "description": path}``.

    Notes
    -----
    Each scan's files are read once: the run keeps the arrays it has read in a temporary scan
    store on disk (:mod:`rimclf.cohort._store`; removed at the end, also on an error), so the
    lesion mask (resampled onto the QSM grid when it lies on another grid) read by
    :func:`rimclf.load_cohort` serves the features and the label images, and the QSM and FLAIR
    read for the features serve the montages. With a warm feature cache (``memory``) the
    features read nothing, and the montages read the QSM and FLAIR instead: still once.

    Examples
    --------
    >>> import rimclf
    >>> from rimclf.workflows import predict_cohort, subject_table
    >>> model = rimclf.load_model("model")                                # doctest: +SKIP
    >>> paths = predict_cohort(model, "NEW_COHORT", "predictions", n_jobs=2)  # doctest: +SKIP
    >>> paths["lesions"]                                                  # doctest: +SKIP
    PosixPath('predictions/lesions.tsv')
    >>> predict_cohort(model, subject_table("q.nii.gz", "f.nii.gz", "m.nii.gz"), "out-01")  # doctest: +SKIP
    """
    return _predict(model, cohort, out, force=force, n_jobs=n_jobs, memory=memory, montage=montage,
                    montage_lesions=montage_lesions, cohort_options=cohort_options)


def _predict(model, cohort, out, *, montage: bool, montage_lesions: int, whole_table: bool = False,
             **options) -> dict[str, Path]:
    """:func:`predict_cohort`; ``whole_table``: a lesion table given as such lists every scan it was read from
    (``attrs["scans"]``: :func:`subject_table`'s one scan, also without lesions), not a subset of its rows."""
    from rimclf.cohort import scan_store

    _check_out(out)
    model = _as_model(model)
    check_is_fitted(model, "classifier_")
    check_int(montage_lesions, "montage_lesions", min=0, owner="predict_cohort", hint="0 draws no montage")  # before any work
    with scan_store(volumes=montage and montage_lesions > 0):  # each scan's files read (and resampled) once
        return _predict_and_write(model, cohort, out, montage=montage, montage_lesions=montage_lesions,
                                  whole_table=whole_table, **options)


def _predict_and_write(model: RimModel, cohort, out, *, force: bool, n_jobs, memory, montage: bool, montage_lesions: int,
                       cohort_options, whole_table: bool) -> dict[str, Path]:
    """:func:`predict_cohort` after its checks, inside the run's scan store."""
    from rimclf.outputs import write_prediction_outputs

    table = _as_table(cohort, _cohort_options(cohort_options, require_flair=_needs_flair(getattr(model, "featurizer_", None))))
    runtime = {name: value for name, value in (("n_jobs", n_jobs), ("memory", memory)) if value is not None}
    probability = model.predict_proba(table, **runtime)[:, 1]
    choice = getattr(model, "threshold_choice_", None)
    model_info = {"threshold_choice": choice.to_dict()} if choice is not None else None
    if model_info is not None:
        calibration = getattr(model, "calibration_", None)
        model_info["calibration"] = None if calibration is None else calibration.to_dict()
    source = None if isinstance(cohort, pd.DataFrame) else cohort
    scans = None if isinstance(cohort, pd.DataFrame) and not whole_table else table.attrs.get("scans")
    featurizer = model.featurizer_
    return write_prediction_outputs(out, table, probability, model.threshold_, montage=montage,
                                    max_montage_lesions=montage_lesions, force=force, model_info=model_info,
                                    source=source, scans=scans, model_identity=getattr(model, "model_identity_", None),
                                    n_jobs=featurizer.n_jobs if n_jobs is None else n_jobs,
                                    progress=bool(getattr(featurizer, "progress", False)))


def predict_subject(
    model: RimModel,
    qsm: str | os.PathLike,
    flair: str | os.PathLike,
    mask: str | os.PathLike,
    out: str | os.PathLike,
    *,
    participant_id: str = "01",
    force: bool = False,
    n_jobs: int | None = None,
    memory=None,
    montage: bool = True,
    montage_lesions: int = MONTAGE_LESIONS,
    cohort_options=None,
) -> dict[str, Path]:
    """:func:`predict_cohort` for one subject given by its QSM, FLAIR and lesion mask files.

    An existing ``out`` is refused (unless ``force``) before the files are read; the other
    parameters are those of :func:`subject_table` and :func:`predict_cohort`.

    Examples
    --------
    >>> import rimclf
    >>> from rimclf.workflows import predict_subject
    >>> model = rimclf.load_model("model")                                # doctest: +SKIP
    >>> predict_subject(model, "qsm.nii.gz", "flair_reg.nii.gz", "lesions.nii.gz", "out-07",
    ...                 participant_id="07")                              # doctest: +SKIP
    """
    _check_out(out)
    check_output_location(out, known_inputs({"model": model, "qsm": qsm, "flair": flair, "mask": mask, "memory": memory}))
    refuse_overwrite(out, force=force)
    model = _as_model(model)
    table = subject_table(qsm, flair, mask, participant_id=participant_id, cohort_options=cohort_options)
    return _predict(model, table, out, force=force, n_jobs=n_jobs, memory=memory, montage=montage,
                    montage_lesions=montage_lesions, cohort_options=None, whole_table=True)  # a mask without lesions: a row of 0s
