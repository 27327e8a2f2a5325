"""Model files that are safe to load: JSON settings plus a tensors-only weights file.

A saved :class:`~rimclf.model.RimModel` is a directory::

    MODEL/settings.json   format tag and version, package versions, featurizer settings,
                          classifier parameters and input sizes, decision threshold,
                          radiomics feature names, training summary, SHA-256 of weights.pt
    MODEL/weights.pt      torch.save of a flat dict of tensors: the network's state dict
                          ("module.<name>") and the radiomics standardisation arrays

Loading never runs pickled code: ``settings.json`` is plain JSON whose keys and types are
checked, ``weights.pt`` must match the SHA-256 recorded in the settings (a changed file is
refused before it is read) and is read with ``torch.load(weights_only=True)``, which only
rebuilds tensors and plain containers. No pickle or joblib is involved anywhere.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rimclf._atomic import atomic_output_dir
from rimclf._version import __version__
from rimclf.errors import CohortError, ModelVersionWarning

__all__ = ["FORMAT", "FORMAT_VERSION", "ModelVersionWarning", "load_model", "save_model"]

FORMAT = "rimclf-model"
FORMAT_VERSION = 1
SETTINGS_FILE = "settings.json"
WEIGHTS_FILE = "weights.pt"
_MODULE_PREFIX = "module."
_SCALER_KEYS = ("radiomics_median", "radiomics_mean", "radiomics_scale")

#: classifier parameters that only shape training: not stored (their defaults come back on load)
_TRAINING_ONLY = ("optimizer", "iterator_train", "iterator_valid", "dataset", "train_split", "callbacks", "random_state")
#: object-valued classifier parameters that shape predictions: only their defaults can be saved
_FIXED_OBJECTS = ("module", "criterion")
_SUB_PARAMETER_PREFIXES = ("module", "criterion", "optimizer", "iterator_train", "iterator_valid", "callbacks", "dataset")

_TOP_KEYS = {
    "format": str, "format_version": int, "versions": dict, "weights": dict, "threshold": dict, "model": dict,
    "featurizer": dict, "radiomics_feature_names": (list, type(None)), "classifier": dict, "training": dict,
}
_CLASSIFIER_KEYS = {
    "params": dict, "omitted_params": list, "in_channels": (int, type(None)), "patch_shape": (list, type(None)),
    "n_radiomics": (int, type(None)), "pos_weight": (float, int, type(None)),
}
_MODEL_KEYS = {"target_specificity": (float, int), "threshold_cv": int, "random_state": (int, type(None))}
_FEATURIZER_KEYS = {"radiomics": (dict, type(None)), "patches": (dict, type(None))}
_WEIGHTS_KEYS = {"file": str, "sha256": str}
_TRAINING_KEYS = {"n_subjects": int, "n_lesions": int, "n_rim_pos": int}
_VERSIONED_PACKAGES = ("rimclf", "torch", "pyradiomics", "skorch", "scikit-learn")


def _versions() -> dict[str, str]:
    import radiomics
    import skorch
    import sklearn

    return {
        "rimclf": __version__, "torch": torch.__version__, "pyradiomics": str(radiomics.__version__),
        "skorch": skorch.__version__, "scikit-learn": sklearn.__version__, "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _json_value(value: Any, where: str) -> Any:
    """``value`` as plain JSON (tuples as lists, numpy scalars unwrapped), else CohortError naming ``where``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(float(value)):
            raise CohortError(f"cannot save the model: {where}={value!r} is not a finite number")
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_json_value(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return {key: _json_value(item, f"{where}.{key}") for key, item in value.items()}
    raise CohortError(
        f"cannot save the model: {where}={value!r} is a {type(value).__name__}, which a model file cannot hold "
        "(settings must be numbers, strings, booleans, None, lists or dicts)"
    )


# ----------------------------------------------------------------------------------- saving
def _featurizer_settings(featurizer) -> tuple[dict, list[str] | None]:
    from rimclf.features.radiomics import load_params

    radiomics, patches = featurizer.extractors()
    settings: dict[str, Any] = {"radiomics": None, "patches": None}
    if radiomics is not None:
        params = radiomics.get_params(deep=False)
        params["params"] = load_params(params["params"])  # a parameter file's content, not its path
        settings["radiomics"] = _json_value(params, "featurizer.radiomics")
    if patches is not None:
        settings["patches"] = _json_value(patches.get_params(deep=False), "featurizer.patches")
    names = None if radiomics is None else [str(name) for name in radiomics.get_feature_names_out()]
    return settings, names


def _classifier_settings(classifier) -> tuple[dict, dict[str, torch.Tensor]]:
    defaults = type(classifier)().get_params(deep=False)
    state = classifier.fitted_state()
    params = classifier.get_params(deep=False)
    for name in state["omitted_params"]:
        if name in _FIXED_OBJECTS and params[name] is defaults[name]:
            continue
        if name in _TRAINING_ONLY or name.split("__")[0] in ("optimizer", "iterator_train", "iterator_valid", "callbacks"):
            continue
        raise CohortError(
            f"cannot save the model: classifier parameter {name}={params[name]!r} is an object that shapes "
            "predictions and cannot be stored as JSON (a model file holds only the default network and loss)"
        )
    json_params = {key: value for key, value in state["params"].items() if key not in ("train_split", "callbacks")}
    settings = {
        "params": _json_value(json_params, "classifier.params"),
        "omitted_params": sorted(set(state["omitted_params"]) | ({"callbacks"} if params["callbacks"] else set())),
        **{key: _json_value(state[key], f"classifier.{key}") for key in ("in_channels", "patch_shape", "n_radiomics", "pos_weight")},
    }
    tensors = {_MODULE_PREFIX + key: value.detach().cpu().contiguous() for key, value in state["module_state"].items()}
    for key in _SCALER_KEYS:
        if state[key] is not None:
            tensors[key] = torch.from_numpy(np.ascontiguousarray(state[key], dtype=np.float64))
    return settings, tensors


def save_model(model, path: str | os.PathLike, *, force: bool = False) -> Path:
    """Save a fitted :class:`~rimclf.model.RimModel` to the directory ``path``, atomically.

    Parameters
    ----------
    model : RimModel
        Fitted (e.g. by :func:`rimclf.model.train_model`).
    path : str or path-like
        The model directory to create (``settings.json`` and ``weights.pt``).
    force : bool, default=False
        Replace an existing ``path``; without it an existing ``path`` raises FileExistsError.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    CohortError
        The model is not fitted, or holds a setting a model file cannot represent (an object
        such as a custom network class; training-only objects such as callbacks or an optimizer
        class are not stored and come back as defaults).
    """
    from rimclf.model import RimModel

    if not isinstance(model, RimModel) or not hasattr(model, "classifier_"):
        raise CohortError(f"save_model takes a fitted RimModel (see rimclf.model.train_model); got {type(model).__name__}")
    featurizer, feature_names = _featurizer_settings(model.featurizer_)
    classifier, tensors = _classifier_settings(model.classifier_)
    random_state = model.random_state if isinstance(model.random_state, (int, np.integer)) else None
    settings = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "versions": _versions(),
        "weights": {"file": WEIGHTS_FILE, "sha256": ""},
        "threshold": _json_value(model.threshold_choice_.to_dict(), "threshold"),
        "model": {
            "target_specificity": _json_value(model.target_specificity, "target_specificity"),
            "threshold_cv": int(model.threshold_cv),
            "random_state": None if random_state is None else int(random_state),
        },
        "featurizer": featurizer,
        "radiomics_feature_names": feature_names,
        "classifier": classifier,
        "training": _json_value(model.training_, "training"),
    }
    with atomic_output_dir(path, force=force) as tmp:
        torch.save(tensors, tmp / WEIGHTS_FILE)
        settings["weights"]["sha256"] = _sha256(tmp / WEIGHTS_FILE)
        text = json.dumps(settings, indent=2, allow_nan=False)
        (tmp / SETTINGS_FILE).write_text(text + "\n", encoding="utf-8")
    return Path(path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------- loading
def _check_section(section: object, schema: dict, where: str, *, required: bool = True) -> dict:
    """Keys of ``section`` are known (and all present when ``required``) and of the right JSON type."""
    if not isinstance(section, dict):
        raise CohortError(f"{where} must be a JSON object, got {type(section).__name__}")
    unknown = sorted(set(section) - set(schema))
    if unknown:
        raise CohortError(f"{where} has unknown keys {unknown}; known keys: {sorted(schema)}")
    missing = sorted(set(schema) - set(section))
    if required and missing:
        raise CohortError(f"{where} lacks the keys {missing}")
    for key, kinds in schema.items():
        if key not in section:
            continue
        value = section[key]
        kinds = kinds if isinstance(kinds, tuple) else (kinds,)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            names = " or ".join("null" if kind is type(None) else kind.__name__ for kind in kinds)
            raise CohortError(f"{where}['{key}'] must be {names}, got {value!r}")
    return section


def _read_settings(folder: Path) -> dict:
    if not folder.exists():
        raise CohortError(f"{folder}: no such model directory")
    if not folder.is_dir():
        raise CohortError(f"{folder}: a model is a directory holding {SETTINGS_FILE} and {WEIGHTS_FILE}, not a file")
    path = folder / SETTINGS_FILE
    if not path.is_file():
        raise CohortError(f"{folder}: no {SETTINGS_FILE}; this is not a rimclf model directory")

    def refuse_constant(name: str) -> None:
        raise CohortError(f"{path}: holds {name}, which is not valid JSON")

    try:
        settings = json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CohortError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(settings, dict) or settings.get("format") != FORMAT:
        found = settings.get("format") if isinstance(settings, dict) else type(settings).__name__
        raise CohortError(f"{path}: format is {found!r}, not {FORMAT!r}; this is not a rimclf model file")
    version = settings.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CohortError(f"{path}: format_version must be a positive integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise CohortError(f"{path}: format_version {version} was written by a newer rimclf (this one reads up to {FORMAT_VERSION}); upgrade rimclf")
    _check_section(settings, _TOP_KEYS, str(path))
    _check_section(settings["weights"], _WEIGHTS_KEYS, f"{path} weights")
    _check_section(settings["model"], _MODEL_KEYS, f"{path} model")
    _check_section(settings["featurizer"], _FEATURIZER_KEYS, f"{path} featurizer")
    _check_section(settings["classifier"], _CLASSIFIER_KEYS, f"{path} classifier")
    _check_section(settings["training"], _TRAINING_KEYS, f"{path} training")
    _check_section(settings["versions"], {key: str for key in settings["versions"]}, f"{path} versions")
    if settings["weights"]["file"] != WEIGHTS_FILE:
        raise CohortError(f"{path}: weights file must be {WEIGHTS_FILE!r}, got {settings['weights']['file']!r}")
    return settings


def _read_weights(folder: Path, expected_sha256: str) -> dict[str, torch.Tensor]:
    path = folder / WEIGHTS_FILE
    if not path.is_file():
        raise CohortError(f"{path}: missing; a model directory holds {SETTINGS_FILE} and {WEIGHTS_FILE}")
    found = _sha256(path)
    if found != expected_sha256:
        raise CohortError(
            f"{path}: SHA-256 {found[:16]}... differs from the {expected_sha256[:16]}... recorded in {SETTINGS_FILE}; "
            "the weights were changed or replaced after saving, so they are not loaded"
        )
    try:
        tensors = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for forbidden globals, RuntimeError for broken archives, ...
        raise CohortError(f"{path}: refused: not a tensors-only weights file ({type(exc).__name__}: {str(exc).splitlines()[0][:300]})") from None
    if not isinstance(tensors, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in tensors.items()):
        raise CohortError(f"{path}: must hold a dict of named tensors")
    return tensors


def _build_featurizer(settings: dict, where: str):
    from rimclf.features import LesionFeaturizer, PatchExtractor, RadiomicsExtractor

    parts = {}
    for name, kind in (("radiomics", RadiomicsExtractor), ("patches", PatchExtractor)):
        params = settings["featurizer"][name]
        if params is None:
            parts[name] = None
            continue
        known = set(kind().get_params(deep=False))
        unknown = sorted(set(params) - known)
        if unknown:
            raise CohortError(f"{where} featurizer.{name} has unknown keys {unknown}; known keys: {sorted(known)}")
        params = {key: tuple(value) if isinstance(value, list) else value for key, value in params.items()}
        parts[name] = kind(**params)
    featurizer = LesionFeaturizer(**parts)
    featurizer.extractors()  # validates every setting (CohortError naming the bad one)
    names = settings["radiomics_feature_names"]
    if parts["radiomics"] is not None:
        current = [str(name) for name in parts["radiomics"].get_feature_names_out()]
        if names != current:
            raise CohortError(
                f"{where}: the model was trained on {len(names or [])} radiomics features but these pyradiomics "
                f"settings now give {len(current)} (or other names); the model needs the pyradiomics version it was "
                f"trained with ({settings['versions'].get('pyradiomics', 'unknown')})"
            )
    return featurizer


def _check_classifier_params(params: dict, where: str) -> None:
    from rimclf.classifier import QSMRimNetClassifier

    objects = {*_FIXED_OBJECTS, *(name for name in _TRAINING_ONLY if name != "random_state")}
    known = {name for name in QSMRimNetClassifier().get_params(deep=False) if not name.startswith("_")} - objects
    for name in params:
        prefix = name.split("__")[0]
        if name in known or ("__" in name and prefix in _SUB_PARAMETER_PREFIXES):
            continue
        raise CohortError(f"{where} classifier.params has an unknown or non-JSON parameter {name!r}")


def load_model(path: str | os.PathLike, *, device: str = "auto"):
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
    RimModel
        Fitted: ``featurizer_``, ``classifier_``, ``threshold_``, ``threshold_choice_`` and
        ``training_`` as saved; ``oof_probability_`` is None.

    Raises
    ------
    CohortError
        Missing directory or files, not a rimclf model (format tag), a newer format, unknown
        keys or wrong types in ``settings.json``, ``weights.pt`` changed since saving (SHA-256)
        or not a tensors-only file, weights that do not fit the described network.

    Warns
    -----
    ModelVersionWarning
        The model was saved with other versions of rimclf, torch, pyradiomics, skorch or
        scikit-learn (it is loaded anyway; check its predictions).
    """
    from sklearn.base import clone

    from rimclf.classifier import QSMRimNetClassifier
    from rimclf.model import RimModel
    from rimclf.threshold import THRESHOLD_METHODS, ThresholdChoice

    folder = Path(path).expanduser()
    settings = _read_settings(folder)
    where = str(folder / SETTINGS_FILE)
    tensors = _read_weights(folder, settings["weights"]["sha256"])
    current = _versions()
    changed = [f"{name} {settings['versions'].get(name, 'unknown')} -> {current[name]}"
               for name in _VERSIONED_PACKAGES if settings["versions"].get(name) != current[name]]
    if changed:
        warnings.warn(f"{folder}: model saved with other package versions ({', '.join(changed)}); "
                      "its predictions may differ slightly", ModelVersionWarning, stacklevel=2)

    threshold = settings["threshold"]
    fields = set(ThresholdChoice.__dataclass_fields__)
    if not set(threshold) <= fields or "value" not in threshold or "method" not in threshold:
        raise CohortError(f"{where}: threshold must have keys 'value', 'method' and optionally {sorted(fields - {'value', 'method'})}; got {sorted(threshold)}")
    if threshold["method"] not in THRESHOLD_METHODS:
        raise CohortError(f"{where}: threshold method {threshold['method']!r} is not one of {THRESHOLD_METHODS}")
    for key, value in threshold.items():
        if key != "method" and value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)):
            raise CohortError(f"{where}: threshold['{key}'] must be a finite number, got {value!r}")
    choice = ThresholdChoice(**threshold)

    featurizer = _build_featurizer(settings, where)
    classifier_settings = settings["classifier"]
    _check_classifier_params(classifier_settings["params"], where)
    state = {key: value for key, value in classifier_settings.items() if key != "omitted_params"}
    state["module_state"] = {key[len(_MODULE_PREFIX):]: value for key, value in tensors.items() if key.startswith(_MODULE_PREFIX)}
    extra = sorted(set(tensors) - {key for key in tensors if key.startswith(_MODULE_PREFIX)} - set(_SCALER_KEYS))
    if extra:
        raise CohortError(f"{folder / WEIGHTS_FILE}: unknown tensors {extra[:5]}")
    has_radiomics = classifier_settings["n_radiomics"] is not None
    for key in _SCALER_KEYS:
        if (key in tensors) != has_radiomics:
            raise CohortError(f"{folder / WEIGHTS_FILE}: tensor {key!r} {'missing' if has_radiomics else 'unexpected'}")
        state[key] = tensors[key].numpy() if key in tensors else None
        if has_radiomics and state[key].shape != (classifier_settings["n_radiomics"],):
            raise CohortError(f"{folder / WEIGHTS_FILE}: {key} has shape {tuple(state[key].shape)}, expected ({classifier_settings['n_radiomics']},)")
    try:
        classifier = QSMRimNetClassifier.from_fitted_state(state, device=device)
    except (RuntimeError, TypeError, ValueError, KeyError) as exc:
        raise CohortError(f"{folder}: the weights do not fit the network described in {SETTINGS_FILE} ({str(exc).splitlines()[0][:300]})") from None

    model_settings = settings["model"]
    model = RimModel(
        featurizer=featurizer,
        classifier=clone(classifier),
        target_specificity=model_settings["target_specificity"],
        threshold_cv=model_settings["threshold_cv"],
        threshold=choice.value if choice.method == "fixed" else None,
        random_state=model_settings["random_state"],
    )
    model.featurizer_ = featurizer
    model.classifier_ = classifier
    model.threshold_choice_ = choice
    model.threshold_ = choice.value
    model.oof_probability_ = None
    model.training_ = dict(settings["training"])
    model.classes_ = np.array([0, 1])
    return model
