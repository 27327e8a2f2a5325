"""Model files that are safe to load: JSON settings plus a tensors-only weights file.

A saved model is a directory::

    MODEL/settings.json   format tag and version, kind, package versions, featurizer settings,
                          classifier parameters and input sizes, decision threshold,
                          radiomics feature names, training summary, SHA-256 of weights.pt,
                          settings_sha256 (of all the other keys, format version 4 on)
    MODEL/weights.pt      torch.save of a flat dict of tensors: the network's state dict
                          ("module.<name>") and the radiomics standardisation arrays

Three kinds of fitted objects are saved (``settings.json``'s ``"kind"``), and :func:`load_model`
returns an object of the kind saved:

- ``"rim_model"``: a :class:`~rimclf.RimModel` (featurizer, network and threshold), what
  ``rimclf train`` writes and ``rimclf predict`` reads;
- ``"classifier"``: a :class:`~rimclf.QSMRimNetClassifier` alone (only its ``"classifier"``
  section and weights);
- ``"pipeline"``: a scikit-learn or imbalanced-learn ``Pipeline`` of a
  :class:`~rimclf.features.LesionFeaturizer` and a final :class:`~rimclf.QSMRimNetClassifier`
  (step names kept). Pipelines with other steps, such as the baselines of
  :mod:`rimclf.baselines` (random forests and other scikit-learn models), are refused: their
  fitted state is not described by JSON and tensors here, and storing it would take pickle.

Loading never runs pickled code: ``settings.json`` is plain JSON whose keys and types are
checked, ``weights.pt`` must match the SHA-256 recorded in the settings (a changed file is
refused before it is read) and is read with ``torch.load(weights_only=True)``, which only
rebuilds tensors and plain containers. No pickle or joblib is involved anywhere. Before any
tensor is read, :mod:`rimclf._model_checks` checks the settings against an allow-list with
ranges (runtime settings such as ``iterator_valid__*`` are refused), against their
``settings_sha256`` (a guard against accidental edits, not against a forger), and the size and
zip layout of ``weights.pt`` against the network the settings describe, so that memory stays
bounded (``docs/saved_models.md``, "What is refused, and why").

The model's content comes from :meth:`RimModel.fitted_state` and goes back through
:meth:`RimModel.from_fitted_state`; this module only turns that state into files and back, and
checks every key, type and byte on the way in. Problems with a model directory raise
:class:`~rimclf.errors.ModelFileError`.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rimclf._atomic import atomic_output_dir
from rimclf._atomic._inputs import MODEL_FORMAT, MODEL_SETTINGS_FILE
from rimclf._model_checks import (
    CLASSIFIER_PARAMETERS,
    MAX_SETTINGS_BYTES,
    RUNTIME_PARAMETERS,
    check_classifier_parameter,
    check_featurizer_matches,
    check_settings_ranges,
    check_tensors,
    expected_tensors,
    read_at_most,
    read_weights,
    settings_digest,
)
from rimclf._records import file_sha256, installed_versions, json_value
from rimclf._validation import check_path, is_int
from rimclf.defaults import CALIBRATIONS, OPERATING_POINTS
from rimclf.errors import ModelFileError, ModelVersionWarning, ParameterError, printable
from rimclf.feature_registry import FEATURES, TABULAR, feature_names
from rimclf.rim_model import RimModel
from rimclf.calibration import Calibration
from rimclf.threshold import ThresholdChoice

__all__ = ["FORMAT", "FORMAT_VERSION", "ModelVersionWarning", "load_model", "save_model"]

FORMAT = MODEL_FORMAT
#: 2: rim-profile features ("featurizer.rim") and the tabular entries the network joins
#: ("classifier.feature_keys"); version-1 files read as having neither.
#: 3: "kind" ("rim_model", "classifier" or "pipeline"); files of versions 1 and 2 are RimModels.
#: 4: "settings_sha256" (the settings' own SHA-256, see rimclf._model_checks.settings_digest);
#: files of versions 1-3 have none and load after the same checks of every key and range.
#: 5: the network's MLP input is "tabular" (``module__branches="tabular"``, ``tabular_encoder``
#: weights), the featurizer's keys those of :mod:`rimclf.feature_registry`; older files are read
#: with "radiomics" mapped to "tabular" (:func:`_tabular_names_of_v4`).
#: 6: a RimModel's "calibration" (rimclf.calibration.Calibration.to_dict(), or null) and the model's
#: "operating_point", "target_sensitivity" and "calibration"; files of versions 1-5 read as uncalibrated
#: models whose threshold was chosen for a specificity.
#: 7: a RimModel's "ensemble" (null, or one entry per threshold-CV fold model of a fold ensemble, whose
#: tensors weights.pt holds as "ensemble.<i>.<name>") and the model's "ensemble" (true or false); files of
#: versions 1-6 read as models without one.
#: 8: the classifier's "blend" parameter and, with blend "logistic", the tensors "blend_coef" and
#: "blend_intercept" (float64, shapes (n_radiomics,) and (1,)); files of versions 1-7 read as blend "none".
FORMAT_VERSION = 8
#: what a model directory can hold (``settings.json``'s "kind")
KINDS = ("rim_model", "classifier", "pipeline")
#: Pipeline classes a "pipeline" model file may name (module and class)
_PIPELINE_CLASSES = ("sklearn.pipeline.Pipeline", "imblearn.pipeline.Pipeline")
SETTINGS_FILE = MODEL_SETTINGS_FILE
WEIGHTS_FILE = "weights.pt"
_MODULE_PREFIX = "module."
_SCALER_KEYS = ("radiomics_median", "radiomics_mean", "radiomics_scale")
#: the logistic blend's tensors (``QSMRimNetClassifier(blend="logistic")``): coefficients, intercept
_BLEND_KEYS = ("blend_coef", "blend_intercept")

#: classifier parameters that only shape training: not stored (their defaults come back on load)
_TRAINING_ONLY = ("optimizer", "iterator_train", "iterator_valid", "dataset", "train_split", "callbacks", "random_state")
#: object-valued classifier parameters that shape predictions: only their defaults can be saved
_FIXED_OBJECTS = ("module", "criterion")
_SUB_PARAMETER_PREFIXES = ("module", "criterion", "optimizer", "iterator_train", "iterator_valid", "callbacks", "dataset")

_TOP_KEYS = {
    "format": str, "format_version": int, "kind": str, "versions": dict, "weights": dict, "threshold": dict, "model": dict,
    "featurizer": dict, "radiomics_feature_names": (list, type(None)), "classifier": dict, "training": dict,
    "calibration": (dict, type(None)), "ensemble": (list, type(None)),
}
#: the top-level keys of each kind of model file (those of a "rim_model" are _TOP_KEYS)
_KIND_TOP_KEYS = {
    "rim_model": _TOP_KEYS,
    "classifier": {"format": str, "format_version": int, "kind": str, "versions": dict, "weights": dict, "classifier": dict},
    "pipeline": {
        "format": str, "format_version": int, "kind": str, "versions": dict, "weights": dict, "pipeline": dict,
        "featurizer": (dict, type(None)), "radiomics_feature_names": (list, type(None)), "classifier": dict,
    },
}
_PIPELINE_KEYS = {"class": str, "steps": list}
_STEP_KEYS = {"name": str, "kind": str}
_CLASSIFIER_KEYS = {
    "params": dict, "omitted_params": list, "in_channels": (int, type(None)), "patch_shape": (list, type(None)),
    "n_radiomics": (int, type(None)), "feature_keys": (list, type(None)), "pos_weight": (float, int, type(None)),
}
_MODEL_KEYS = {"target_specificity": (float, int), "threshold_cv": int, "random_state": (int, type(None)),
               "operating_point": str, "target_sensitivity": (float, int), "calibration": (str, type(None)),
               "ensemble": bool}
#: what a RimModel file of format version < 6 holds in place of the keys version 6 added
_BEFORE_CALIBRATION = {"operating_point": "specificity", "target_sensitivity": 0.8, "calibration": None}
_WEIGHTS_KEYS = {"file": str, "sha256": str}
#: what a RimModel file holds of each member of its fold ensemble (its tensors are in weights.pt)
_MEMBER_KEYS = {"pos_weight": (float, int, type(None))}
#: prefix of the tensors of the fold ensemble's member ``i`` in weights.pt
_MEMBER_PREFIX = "ensemble.{}."
_TRAINING_KEYS = {"n_subjects": int, "n_lesions": int, "n_rim_pos": int, "skipped_scans": list}
_VERSIONED_PACKAGES = ("rimclf", "torch", "pyradiomics", "skorch", "scikit-learn")


def _model_versions() -> dict[str, str]:
    return installed_versions((*_VERSIONED_PACKAGES, "numpy"))


def _same_version(saved: str | None, current: str) -> bool:
    """pyradiomics calls itself "v3.0.1" as a module and "3.0.1" as a distribution."""
    return saved is not None and saved.removeprefix("v") == current.removeprefix("v")


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none), at most 300 characters."""
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__


def _json(value: Any, where: str) -> Any:
    """``value`` as plain JSON, or :class:`ModelFileError` saying why the model cannot be saved."""
    try:
        return json_value(value, where)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"cannot save the model: {exc}") from None


# ----------------------------------------------------------------------------------- saving
def _featurizer_settings(featurizer) -> tuple[dict, list[str] | None]:
    from rimclf.features.radiomics import load_params

    extractors = featurizer.extractors()
    settings: dict[str, Any] = {name: None for name in FEATURES}
    for name, extractor in extractors.items():
        params = extractor.get_params(deep=False)
        if name == "radiomics":
            params["params"] = load_params(params["params"])  # a parameter file's content, not its path
        settings[name] = _json(params, f"featurizer.{name}")
    radiomics = extractors.get("radiomics")
    names = None if radiomics is None else [str(name) for name in radiomics.get_feature_names_out()]
    return settings, names


def _classifier_settings(classifier, state: dict) -> tuple[dict, dict[str, torch.Tensor]]:
    defaults = type(classifier)().get_params(deep=False)
    params = classifier.get_params(deep=False)
    for name in state["omitted_params"]:
        if name in _FIXED_OBJECTS and params[name] is defaults[name]:
            continue
        if name in _TRAINING_ONLY or name.split("__")[0] in ("optimizer", "iterator_train", "iterator_valid", "callbacks"):
            continue
        raise ModelFileError(
            f"cannot save the model: classifier parameter {name}={params[name]!r} is an object that shapes "
            "predictions and cannot be stored as JSON (a model file holds only the default network and loss)"
        )
    json_params, dropped = {}, set()
    for key, value in state["params"].items():
        if key in ("train_split", "callbacks"):
            continue
        if key in RUNTIME_PARAMETERS or (key not in CLASSIFIER_PARAMETERS and key.split("__")[0] in _SUB_PARAMETER_PREFIXES[1:]):
            dropped.add(key)  # runtime and training-only settings: not part of the model
            continue
        check_classifier_parameter(key, value, "cannot save the model:")
        json_params[key] = value
    settings = {
        "params": _json(json_params, "classifier.params"),
        "omitted_params": sorted(set(state["omitted_params"]) | dropped
                                 | ({"callbacks"} if params["callbacks"] else set())),
        **{key: _json(state[key], f"classifier.{key}") for key in ("in_channels", "patch_shape", "n_radiomics", "feature_keys", "pos_weight")},
    }
    tensors = {_MODULE_PREFIX + key: value.detach().cpu().contiguous() for key, value in state["module_state"].items()}
    for key in (*_SCALER_KEYS, *_BLEND_KEYS):
        if state.get(key) is not None:
            tensors[key] = torch.from_numpy(np.ascontiguousarray(state[key], dtype=np.float64))
    return settings, tensors


def save_model(model: Any, path: str | os.PathLike, *, force: bool = False) -> Path:
    """Save a fitted model to the directory ``path``, atomically, without pickle.

    Parameters
    ----------
    model : RimModel, QSMRimNetClassifier or Pipeline
        Fitted: a :class:`~rimclf.RimModel` (e.g. from :func:`rimclf.workflows.train_model`), a
        :class:`~rimclf.QSMRimNetClassifier` alone, or a scikit-learn / imbalanced-learn
        ``Pipeline`` whose steps are a :class:`~rimclf.features.LesionFeaturizer` (optional) and a
        final ``QSMRimNetClassifier``. :func:`load_model` gives back an object of the same kind.
    path : str or path-like
        The model directory to create (``settings.json`` and ``weights.pt``).
    force : bool, default=False
        Replace an existing ``path``; without it an existing ``path`` raises OutputExistsError (a FileExistsError).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ParameterError
        ``model`` is not one of these, or is not fitted.
    ModelFileError
        The model holds a setting a model file cannot represent (an object such as a custom
        network class; training-only objects such as callbacks or an optimizer class are not
        stored and come back as defaults), or a pipeline has a step other than a
        LesionFeaturizer and a final QSMRimNetClassifier (e.g. a baseline's scikit-learn model,
        which only pickle could store).

    Examples
    --------
    >>> net = QSMRimNetClassifier(module__branches="tabular").fit(X, y)  # doctest: +SKIP
    >>> save_model(net, "net")  # doctest: +SKIP
    >>> load_model("net").predict_proba(X)  # doctest: +SKIP
    """
    from sklearn.pipeline import Pipeline

    from rimclf.classifier import QSMRimNetClassifier

    if isinstance(model, QSMRimNetClassifier):
        settings, tensors = _classifier_file(model)
    elif isinstance(model, Pipeline):
        settings, tensors = _pipeline_file(model)
    elif isinstance(model, RimModel) and hasattr(model, "classifier_"):
        settings, tensors = _rim_model_file(model)
    else:
        what = "an unfitted RimModel" if isinstance(model, RimModel) else type(model).__name__
        raise ParameterError(
            "save_model takes a fitted RimModel (see rimclf.workflows.train_model), a fitted QSMRimNetClassifier or "
            f"a fitted Pipeline(LesionFeaturizer, QSMRimNetClassifier); got {what}"
        )
    with atomic_output_dir(path, force=force) as tmp:
        torch.save(tensors, tmp / WEIGHTS_FILE)
        settings["weights"]["sha256"] = file_sha256(tmp / WEIGHTS_FILE)
        settings["settings_sha256"] = settings_digest(settings)
        text = json.dumps(settings, indent=2, allow_nan=False)
        (tmp / SETTINGS_FILE).write_text(text + "\n", encoding="utf-8")
    return Path(path)


def _header(kind: str) -> dict:
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind, "versions": _model_versions(),
            "weights": {"file": WEIGHTS_FILE, "sha256": ""}}


def _fitted_classifier_state(net) -> dict:
    if not hasattr(net, "feature_keys_") or not getattr(net, "initialized_", False):
        raise ParameterError(f"save_model takes a fitted {type(net).__name__}; this one is not fitted (call fit first)")
    return net.fitted_state()


def _classifier_file(net) -> tuple[dict, dict[str, torch.Tensor]]:
    classifier, tensors = _classifier_settings(net, _fitted_classifier_state(net))
    return {**_header("classifier"), "classifier": classifier}, tensors


def _pipeline_file(pipeline) -> tuple[dict, dict[str, torch.Tensor]]:
    from rimclf.classifier import QSMRimNetClassifier
    from rimclf.features import LesionFeaturizer

    cls = f"{type(pipeline).__module__}.{type(pipeline).__qualname__}"
    if cls not in _PIPELINE_CLASSES:
        raise ModelFileError(f"cannot save the model: {cls} is not one of the pipeline classes a model file holds {_PIPELINE_CLASSES}")
    steps = [(name, step) for name, step in pipeline.steps if step is not None and step != "passthrough"]
    kinds = [("featurizer" if isinstance(step, LesionFeaturizer) else "classifier" if isinstance(step, QSMRimNetClassifier)
              else None) for _, step in steps]
    if kinds not in (["classifier"], ["featurizer", "classifier"]):
        others = [f"{name!r} ({type(step).__name__})" for (name, step), kind in zip(steps, kinds) if kind is None]
        detail = f"its step(s) {', '.join(others)} cannot be stored" if others else "its steps are in another order"
        raise ModelFileError(
            f"cannot save the model: a model file holds a Pipeline of a LesionFeaturizer and a final QSMRimNetClassifier "
            f"only; {detail}. Other fitted scikit-learn steps (e.g. the baselines' models) would need pickle, which "
            "rimclf model files never use"
        )
    featurizer, feature_names = (None, None)
    if kinds[0] == "featurizer":
        featurizer, feature_names = _featurizer_settings(steps[0][1])
    classifier, tensors = _classifier_settings(steps[-1][1], _fitted_classifier_state(steps[-1][1]))
    settings = {
        **_header("pipeline"),
        "pipeline": {"class": cls, "steps": [{"name": name, "kind": kind} for (name, _), kind in zip(steps, kinds)]},
        "featurizer": featurizer,
        "radiomics_feature_names": feature_names,
        "classifier": classifier,
    }
    return settings, tensors


def _rim_model_file(model: RimModel) -> tuple[dict, dict[str, torch.Tensor]]:
    state = model.fitted_state()
    featurizer, feature_names = _featurizer_settings(state["featurizer"])
    classifier, tensors = _classifier_settings(model.classifier_, state["classifier"])
    settings = {
        **_header("rim_model"),
        "threshold": _json(state["threshold"].to_dict(), "threshold"),
        "calibration": None if state["calibration"] is None else _json(state["calibration"].to_dict(), "calibration"),
        "model": _json(state["params"], "model"),
        "featurizer": featurizer,
        "radiomics_feature_names": feature_names,
        "classifier": classifier,
        "training": _json(state["training"], "training"),
        "ensemble": None,
    }
    if state["params"]["ensemble"]:
        settings["ensemble"] = []
        for index, (member, member_state) in enumerate(zip(model.ensemble_, state["ensemble"])):
            section, member_tensors = _classifier_settings(member, member_state)
            settings["ensemble"].append({"pos_weight": section["pos_weight"]})
            tensors.update({_MEMBER_PREFIX.format(index) + key: value for key, value in member_tensors.items()})
    return settings, tensors


# ---------------------------------------------------------------------------------- loading
def _check_section(section: object, schema: dict, where: str, *, required: bool = True) -> dict:
    """Keys of ``section`` are known (and all present when ``required``) and of the right JSON type."""
    if not isinstance(section, dict):
        raise ModelFileError(f"{where} must be a JSON object, got {type(section).__name__}")
    unknown = sorted(set(section) - set(schema))
    if unknown:
        raise ModelFileError(f"{where} has unknown keys {unknown}; known keys: {sorted(schema)}")
    missing = sorted(set(schema) - set(section))
    if required and missing:
        raise ModelFileError(f"{where} lacks the keys {missing}")
    for key, kinds in schema.items():
        if key not in section:
            continue
        value = section[key]
        kinds = kinds if isinstance(kinds, tuple) else (kinds,)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            names = " or ".join("null" if kind is type(None) else kind.__name__ for kind in kinds)
            raise ModelFileError(f"{where}['{key}'] must be {names}, got {value!r}")
    return section


def _check_device(device: object) -> None:
    """A device name torch knows and this machine has ("auto" always passes)."""
    from rimclf.classifier.device import resolve_device

    resolve_device(device)


def _read_settings(folder: Path) -> dict:
    if not folder.exists():
        raise ModelFileError(f"{folder}: no such model directory")
    if not folder.is_dir():
        raise ModelFileError(f"{folder}: a model is a directory holding {SETTINGS_FILE} and {WEIGHTS_FILE}, not a file")
    path = folder / SETTINGS_FILE
    if not path.is_file():
        raise ModelFileError(f"{folder}: no {SETTINGS_FILE}; this is not a rimclf model directory")

    def refuse_constant(name: str) -> None:
        raise ModelFileError(f"{path}: holds {name}, which is not valid JSON")

    raw = read_at_most(path, MAX_SETTINGS_BYTES)
    if len(raw) > MAX_SETTINGS_BYTES:
        raise ModelFileError(f"{path}: larger than {MAX_SETTINGS_BYTES // 2**20} MiB; not a rimclf model's settings")
    try:
        settings = json.loads(raw.decode("utf-8"), parse_constant=refuse_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: not valid JSON ({printable(exc)})") from None
    except RecursionError:
        raise ModelFileError(f"{path}: not valid settings (nested too deeply)") from None
    if not isinstance(settings, dict) or settings.get("format") != FORMAT:
        found = settings.get("format") if isinstance(settings, dict) else type(settings).__name__
        raise ModelFileError(f"{path}: format is {printable(found, 100)!r}, not {FORMAT!r}; this is not a rimclf model file")
    version = settings.get("format_version")
    if not is_int(version) or version < 1:
        raise ModelFileError(f"{path}: format_version must be a positive integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{path}: format_version {version} was written by a newer rimclf (this one reads up to {FORMAT_VERSION}); upgrade rimclf")
    _check_digest(settings, version, path)
    if version < 3:
        if "kind" in settings:
            raise ModelFileError(f"{path}: format_version {version} files have no 'kind'; this file was changed")
        settings["kind"] = "rim_model"
    if version < 6 and settings.get("kind") == "rim_model":
        if "calibration" in settings:
            raise ModelFileError(f"{path}: format_version {version} files have no 'calibration'; this file was changed")
        settings["calibration"] = None
        if isinstance(settings.get("model"), dict):
            for key, value in _BEFORE_CALIBRATION.items():
                settings["model"].setdefault(key, value)
    if version < 7 and settings.get("kind") == "rim_model":
        if "ensemble" in settings:
            raise ModelFileError(f"{path}: format_version {version} files have no 'ensemble'; this file was changed")
        settings["ensemble"] = None
        if isinstance(settings.get("model"), dict):
            settings["model"].setdefault("ensemble", False)
    kind = settings.get("kind")
    if kind not in KINDS:
        raise ModelFileError(f"{path}: kind must be one of {KINDS}, got {kind!r}")
    _check_section(settings, _KIND_TOP_KEYS[kind], str(path))
    if version == 1:
        for section, key in (("featurizer", "rim"), ("classifier", "feature_keys")):
            if isinstance(settings[section], dict):
                settings[section].setdefault(key, None)
    if version < 5:
        _tabular_names_of_v4(settings)
    _check_section(settings["weights"], _WEIGHTS_KEYS, f"{path} weights")
    if kind == "rim_model":
        _check_section(settings["model"], _MODEL_KEYS, f"{path} model")
        if settings["model"]["operating_point"] not in OPERATING_POINTS or settings["model"]["calibration"] not in (None, *CALIBRATIONS):
            raise ModelFileError(f"{path}: model.operating_point must be one of {OPERATING_POINTS} and model.calibration one "
                                 f"of {CALIBRATIONS} or null")
        if isinstance(settings["training"], dict):
            settings["training"].setdefault("skipped_scans", [])  # models saved before it was recorded
        _check_section(settings["training"], _TRAINING_KEYS, f"{path} training")
        _check_ensemble(settings, str(path))
    if kind == "pipeline":
        _check_pipeline(settings["pipeline"], settings["featurizer"] is not None, str(path))
    if settings.get("featurizer") is not None:
        _check_section(settings["featurizer"], {name: (dict, type(None)) for name in FEATURES}, f"{path} featurizer",
                       required=False)
    _check_section(settings["classifier"], _CLASSIFIER_KEYS, f"{path} classifier")
    feature_keys = settings["classifier"]["feature_keys"]
    tabular = feature_names(TABULAR)
    if feature_keys is not None and (not feature_keys or not set(feature_keys) <= set(tabular)):
        raise ModelFileError(f"{path}: classifier.feature_keys must list registered tabular features {tabular}, got {feature_keys!r}")
    _check_section(settings["versions"], {key: str for key in settings["versions"]}, f"{path} versions")
    if settings["weights"]["file"] != WEIGHTS_FILE:
        raise ModelFileError(f"{path}: weights file must be {WEIGHTS_FILE!r}, got {settings['weights']['file']!r}")
    check_settings_ranges(settings, str(path))
    return settings


def _check_ensemble(settings: dict, where: str) -> None:
    """A fold ensemble (``model.ensemble``) has one member per threshold-CV fold, and no model else has any."""
    members, model = settings["ensemble"], settings["model"]
    if not model["ensemble"]:
        if members is not None:
            raise ModelFileError(f"{where}: ensemble must be null for a model with model.ensemble false")
        return
    if members is None or model["threshold_cv"] < 2 or len(members) != model["threshold_cv"]:
        raise ModelFileError(f"{where}: a fold ensemble (model.ensemble true) holds one member per threshold-CV fold "
                             f"(threshold_cv={model['threshold_cv']!r}), got {'none' if members is None else len(members)}")
    for index, member in enumerate(members):
        _check_section(member, _MEMBER_KEYS, f"{where} ensemble[{index}]")


def _tabular_names_of_v4(settings: dict) -> None:
    """Files before version 5 called the network's MLP input "radiomics": read them with today's names."""
    classifier = settings.get("classifier")
    params = classifier.get("params") if isinstance(classifier, dict) else None
    if isinstance(params, dict):
        if params.get("module__branches") == "radiomics":
            params["module__branches"] = "tabular"
        if "module__n_radiomics" in params:
            params["module__n_tabular"] = params.pop("module__n_radiomics")
        if "module__radiomics_dropout" in params:
            params["module__tabular_dropout"] = params.pop("module__radiomics_dropout")


def _check_digest(settings: dict, version: int, path: Path) -> None:
    """``settings_sha256`` matches the settings (then it is removed); required from format version 4.

    It tells a settings file changed after saving (a hand edit, a damaged copy) from the one
    saved; it is no signature: whoever can edit the file can also recompute it."""
    recorded = settings.pop("settings_sha256", None)
    if recorded is None and version < 4:
        return
    if recorded is None:
        raise ModelFileError(f"{path}: lacks settings_sha256 (written since format version 4); the file was changed")
    if recorded != settings_digest(settings):
        raise ModelFileError(
            f"{path}: the settings differ from the settings_sha256 recorded when the model was saved; the file was "
            "edited or damaged after saving, so the model is not loaded (save it again from its source, or retrain)"
        )


def _check_pipeline(section: object, has_featurizer: bool, where: str) -> None:
    """A "pipeline" section: an allowed class, and steps a featurizer (when saved) and a classifier."""
    _check_section(section, _PIPELINE_KEYS, f"{where} pipeline")
    if section["class"] not in _PIPELINE_CLASSES:
        raise ModelFileError(f"{where}: pipeline class must be one of {_PIPELINE_CLASSES}, got {section['class']!r}")
    steps = section["steps"]
    for index, step in enumerate(steps):
        _check_section(step, _STEP_KEYS, f"{where} pipeline.steps[{index}]")
    expected = ["featurizer", "classifier"] if has_featurizer else ["classifier"]
    if [step["kind"] for step in steps] != expected:
        raise ModelFileError(f"{where}: pipeline steps must be of the kinds {expected}, got {[step['kind'] for step in steps]}")
    names = [step["name"] for step in steps]
    if len(set(names)) != len(names) or not all(name and "__" not in name for name in names):
        raise ModelFileError(f"{where}: pipeline step names must be distinct, non-empty and without '__', got {names}")


def _read_weights(folder: Path, expected_sha256: str, layout: dict) -> dict[str, torch.Tensor]:
    path = folder / WEIGHTS_FILE
    if not path.is_file():
        raise ModelFileError(f"{path}: missing; a model directory holds {SETTINGS_FILE} and {WEIGHTS_FILE}")
    tensors = read_weights(path, expected_sha256, layout)
    check_tensors(path, tensors, layout)
    return tensors


def _build_featurizer(settings: dict, where: str):
    from rimclf.features import LesionFeaturizer
    from rimclf.features.featurizer import extractor_class

    parts = {}
    for name, feature in FEATURES.items():
        params = settings["featurizer"].get(name)  # no "rim" in files written before rim features
        if params is None:
            continue
        kind = extractor_class(feature)
        known = set(kind().get_params(deep=False))
        unknown = sorted(set(params) - known)
        if unknown:
            raise ModelFileError(f"{where} featurizer.{name} has unknown keys {unknown}; known keys: {sorted(known)}")
        params = {key: tuple(value) if isinstance(value, list) else value for key, value in params.items()}
        if name == "radiomics" and isinstance(params.get("params"), str) and params["params"] != "qsmrim":
            raise ModelFileError(
                f"{where} featurizer.radiomics.params is {params['params']!r}; a model file holds its pyradiomics "
                "settings themselves (or 'qsmrim', the packaged ones), never a path to read elsewhere"
            )
        parts[name] = kind(**params)
    featurizer = LesionFeaturizer(list(parts.items()))
    try:
        featurizer.extractors()  # validates every setting (ParameterError naming the bad one)
    except ValueError as exc:
        raise ModelFileError(f"{where} featurizer: {exc}") from None
    names = settings.get("radiomics_feature_names")
    if "radiomics" in parts:
        current = [str(name) for name in parts["radiomics"].get_feature_names_out()]
        if names != current:
            raise ModelFileError(
                f"{where}: the model was trained on {len(names or [])} radiomics features but these pyradiomics "
                f"settings now give {len(current)} (or other names); the model needs the pyradiomics version it was "
                f"trained with ({settings['versions'].get('pyradiomics', 'unknown')})"
            )
    return featurizer


def _rename_module_key(key: str, old: str, new: str) -> str:
    """A weights key with the network's submodule ``old`` (prefix of its name) called ``new``."""
    prefix = _MODULE_PREFIX + old
    return _MODULE_PREFIX + new + key[len(prefix):] if key.startswith(prefix) else key


def _validate_classifier(params: dict, where: str) -> None:
    """The saved classifier parameters pass the estimator's own checks (ModelFileError naming the file)."""
    from rimclf.classifier import QSMRimNetClassifier

    try:
        QSMRimNetClassifier(**params)._check_params()
    except (ParameterError, TypeError) as exc:
        raise ModelFileError(f"{where} classifier.params: {exc}") from None


def _checked_classifier_state(settings: dict, folder: Path, featurizer, *, n_members: int = 0):
    """The classifier's fitted state, every setting checked before ``weights.pt`` is read with
    bounded memory (see :mod:`rimclf._model_checks`); with ``n_members``, also the states of the
    fold ensemble's members (the same network, their own tensors), as ``(state, member_states)``."""
    from rimclf.classifier import QSMRimNetClassifier

    where = str(folder / SETTINGS_FILE)
    # the saved device is only a name (load_model's device replaces it): not resolved here
    _validate_classifier({**settings["classifier"]["params"], "device": "cpu"}, where)
    if featurizer is not None:
        check_featurizer_matches(featurizer, settings["classifier"], where)
    described = {key: value for key, value in settings["classifier"].items() if key != "omitted_params"}
    try:
        layout = expected_tensors(QSMRimNetClassifier, described)
    except ModelFileError as exc:
        raise ModelFileError(f"{where}: {exc}") from None
    renamed = settings["format_version"] < 5  # the MLP's weights were "radiomics_encoder.*" before version 5
    if renamed:
        layout = {_rename_module_key(key, "tabular_encoder.", "radiomics_encoder."): value for key, value in layout.items()}
    single = dict(layout)
    for index in range(n_members):  # the members' tensors, under their prefix
        layout.update({_MEMBER_PREFIX.format(index) + key: value for key, value in single.items()})
    tensors = _read_weights(folder, settings["weights"]["sha256"], layout)
    if renamed:
        tensors = {_rename_module_key(key, "radiomics_encoder.", "tabular_encoder."): value for key, value in tensors.items()}
    own = {key: value for key, value in tensors.items() if not key.startswith("ensemble.")}
    state = _classifier_state(settings["classifier"], own, folder / WEIGHTS_FILE)
    if not n_members:
        return state
    members = []
    for index, member in enumerate(settings["ensemble"]):
        prefix = _MEMBER_PREFIX.format(index)
        member_tensors = {key[len(prefix):]: value for key, value in tensors.items() if key.startswith(prefix)}
        members.append(_classifier_state({**settings["classifier"], "pos_weight": member["pos_weight"]}, member_tensors,
                                         folder / WEIGHTS_FILE))
    return state, members


def load_model(path: str | os.PathLike, *, device: str = "auto") -> Any:
    """Load a model saved by :func:`save_model`; it predicts exactly like the saved one.

    Parameters
    ----------
    path : str or path-like
        The model directory.
    device : str, default="auto"
        Device of the network (``"auto"``: CUDA when available, else CPU), whatever the model
        was trained on.

    Returns
    -------
    RimModel, QSMRimNetClassifier or Pipeline
        What was saved (``settings.json``'s ``"kind"``; files of format versions 1 and 2 hold
        RimModels). A RimModel is fitted with ``featurizer_``, ``classifier_``, ``threshold_``,
        ``threshold_choice_`` and ``training_`` as saved and ``oof_probability_`` None; a
        QSMRimNetClassifier (alone or as a pipeline's last step) with its fitted preprocessing and
        network, an empty ``history_`` and a fresh optimizer.

    Raises
    ------
    ModelFileError
        Missing directory or files, not a rimclf model (format tag), a newer format, unknown
        keys or wrong types in ``settings.json``, ``weights.pt`` changed since saving (SHA-256)
        or not a tensors-only file, weights that do not fit the described network.

    Warns
    -----
    ModelVersionWarning
        The model was saved with other versions of rimclf, torch, pyradiomics, skorch or
        scikit-learn (it is loaded anyway; check its predictions).

    Examples
    --------
    >>> import rimclf
    >>> model = rimclf.load_model("model")                    # doctest: +SKIP
    >>> model = rimclf.load_model("model", device="cpu")      # doctest: +SKIP
    >>> probability = model.predict_proba(rimclf.load_cohort("NEW_COHORT"))[:, 1]  # doctest: +SKIP
    """
    folder = Path(check_path(path, "path", what="a model folder", owner="load_model")).expanduser()
    _check_device(device)  # a device that is not there is said so, before reading the weights
    settings = _read_settings(folder)
    where = str(folder / SETTINGS_FILE)
    current = _model_versions()
    # pyradiomics is optional (rimclf[radiomics]): its absence is no version change (a model that
    # needs it says so when its features are checked)
    changed = [f"{name} {printable(settings['versions'].get(name, 'unknown'), 40)} -> {current[name]}"
               for name in _VERSIONED_PACKAGES if not _same_version(settings["versions"].get(name), current[name])
               and not (name == "pyradiomics" and current[name] == "not installed")]
    if changed:
        warnings.warn(f"{folder}: model saved with other package versions ({', '.join(changed)}); "
                      "its predictions may differ slightly", ModelVersionWarning, stacklevel=2)
    kind = settings["kind"]
    if kind != "rim_model":
        return _load_classifier_or_pipeline(settings, folder, device)
    try:
        choice = ThresholdChoice.from_dict(settings["threshold"])
        calibration = None if settings["calibration"] is None else Calibration.from_dict(settings["calibration"])
    except ParameterError as exc:
        raise ModelFileError(f"{where}: {exc}") from None
    featurizer = _build_featurizer(settings, where)
    members = []
    if settings["ensemble"]:
        classifier, members = _checked_classifier_state(settings, folder, featurizer, n_members=len(settings["ensemble"]))
    else:
        classifier = _checked_classifier_state(settings, folder, featurizer)
    state = {
        "params": settings["model"],
        "featurizer": featurizer,
        "classifier": classifier,
        "ensemble": members,
        "threshold": choice,
        "calibration": calibration,
        "training": settings["training"],
    }
    try:
        model = RimModel.from_fitted_state(state, device=device)
    except (RuntimeError, TypeError, ValueError, KeyError) as exc:
        raise ModelFileError(f"{folder}: the weights do not fit the network described in {SETTINGS_FILE} ({_first_line(exc)})") from None
    # what rimclf predict records in its dataset_description.json: which model made the predictions
    model.model_identity_ = {"format_version": settings["format_version"], "weights_sha256": settings["weights"]["sha256"]}
    return model


def _load_classifier_or_pipeline(settings: dict, folder: Path, device: str):
    """The QSMRimNetClassifier or Pipeline of a "classifier" or "pipeline" model file."""
    from rimclf.classifier import QSMRimNetClassifier

    where = str(folder / SETTINGS_FILE)
    featurizer = _build_featurizer(settings, where) if settings.get("featurizer") is not None else None
    state = _checked_classifier_state(settings, folder, featurizer)
    try:
        net = QSMRimNetClassifier.from_fitted_state(state, device=device)
    except (RuntimeError, TypeError, ValueError, KeyError) as exc:
        raise ModelFileError(f"{folder}: the weights do not fit the network described in {SETTINGS_FILE} ({_first_line(exc)})") from None
    if settings["kind"] == "classifier":
        return net
    if settings["pipeline"]["class"] == "imblearn.pipeline.Pipeline":
        from imblearn.pipeline import Pipeline
    else:
        from sklearn.pipeline import Pipeline
    parts = {"featurizer": featurizer, "classifier": net}
    return Pipeline([(step["name"], parts[step["kind"]]) for step in settings["pipeline"]["steps"]])


def _classifier_state(settings: dict, tensors: dict[str, torch.Tensor], weights_path: Path) -> dict:
    """The classifier's fitted state (see ``QSMRimNetClassifier.fitted_state``) from its settings and tensors."""
    state = {key: value for key, value in settings.items() if key != "omitted_params"}
    state["module_state"] = {key[len(_MODULE_PREFIX):]: value for key, value in tensors.items() if key.startswith(_MODULE_PREFIX)}
    extra = sorted(set(tensors) - {key for key in tensors if key.startswith(_MODULE_PREFIX)} - set(_SCALER_KEYS) - set(_BLEND_KEYS))
    if extra:
        raise ModelFileError(f"{weights_path}: unknown tensors {extra[:5]}")
    has_radiomics = settings["n_radiomics"] is not None
    for key in _SCALER_KEYS:
        if (key in tensors) != has_radiomics:
            raise ModelFileError(f"{weights_path}: tensor {key!r} {'missing' if has_radiomics else 'unexpected'}")
        state[key] = tensors[key].numpy() if key in tensors else None
        if has_radiomics and state[key].shape != (settings["n_radiomics"],):
            raise ModelFileError(f"{weights_path}: {key} has shape {tuple(state[key].shape)}, expected ({settings['n_radiomics']},)")
        if has_radiomics and not np.isfinite(state[key]).all():
            raise ModelFileError(f"{weights_path}: {key} must be finite")
    if has_radiomics and not (state["radiomics_scale"] > 0).all():
        raise ModelFileError(f"{weights_path}: radiomics_scale must be finite and positive (a scale of 0 divides by zero)")
    has_blend = has_radiomics and settings["params"].get("blend") == "logistic"
    for key, shape in zip(_BLEND_KEYS, ((settings["n_radiomics"],), (1,))):
        if (key in tensors) != has_blend:
            raise ModelFileError(f"{weights_path}: tensor {key!r} {'missing' if has_blend else 'unexpected'}")
        state[key] = tensors[key].numpy() if key in tensors else None
        if has_blend and (state[key].shape != shape or not np.isfinite(state[key]).all()):
            raise ModelFileError(f"{weights_path}: {key} must hold {shape[0]} finite numbers")
    return state
