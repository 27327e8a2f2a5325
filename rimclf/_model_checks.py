"""What a model file may hold, checked before anything in it is used or any tensor is read.

:mod:`rimclf.model_files` reads a model directory in this order, and this module holds the
checks of each step:

1. ``settings.json``, at most :data:`MAX_SETTINGS_BYTES`, plain JSON; its ``settings_sha256``
   (format version 4 on) must match the settings (:func:`settings_digest`);
2. an allow-list of the classifier parameters a file may carry, each with its type and range
   (:data:`CLASSIFIER_PARAMETERS`): runtime settings (``iterator_valid__*``, ``dataset__*``,
   ``criterion__*``, ``torch_load_kwargs``, ``compile``, ...) are refused, and so are negative or
   zero sizes and counts (:func:`check_settings_ranges`);
3. the tensors the described network needs, computed without memory on torch's meta device
   (:func:`expected_tensors`), their bytes against :data:`~rimclf.defaults.MAX_WEIGHTS_BYTES`;
4. ``weights.pt`` read once, at most the described bytes plus a small allowance, its SHA-256
   checked on those bytes, its zip archive inspected (:func:`check_weights_archive`: stored
   entries only, sizes consistent with the file) before ``torch.load(weights_only=True)`` sees
   it, and the loaded tensors compared name by name, shape and dtype with the description.

So a small file cannot make rimclf allocate more than the network it describes, which the
limits of :mod:`rimclf.defaults` bound.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

import torch

from rimclf._atomic._inputs import MAX_SETTINGS_BYTES
from rimclf._validation import Bools, Interval, Options, check_param
from rimclf.defaults import (
    AMP_CHOICES,
    AUGMENTATIONS,
    BLENDS,
    BRANCHES,
    CALIBRATIONS,
    DATA_ON_DEVICE_CHOICES,
    DEFAULT_MODEL,
    DEPTHS,
    FUSIONS,
    IMAGE_INPUTS,
    IMAGE_WEIGHTS,
    IMBALANCE_CHOICES,
    MAX_IN_CHANNELS,
    MAX_PATCH_SHAPE,
    MAX_TABULAR_FEATURES,
    MAX_WEIGHTS_BYTES,
    MAX_WIDTH,
    OPERATING_POINTS,
)
from rimclf.errors import ModelFileError, ParameterError, printable
from rimclf._tensor_files import read_at_most
from rimclf.classifier.state import load_tensor_dict

#: Bytes ``weights.pt`` may hold besides the tensors (zip headers, the pickled dict of names).
WEIGHTS_ALLOWANCE = 4 * 2**20
#: Largest count (subjects, lesions, epochs, batch size, CV folds) a model file may state.
MAX_COUNT = 10**9
_MAX_SEED = 2**32 - 1
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d{1,3})?")

#: Every classifier parameter a model file may carry (``classifier.params``), with what it may be.
#: Anything else, notably sub-parameters of the data loaders, dataset, loss, optimizer and
#: callbacks, is refused on loading and left out (as ``omitted_params``) on saving: it steers
#: the runtime or only training, not what the network predicts.
CLASSIFIER_PARAMETERS: dict[str, list] = {
    "lr": [Interval(float, 0, None, closed="neither")],
    "max_epochs": [Interval(int, 0, MAX_COUNT)],
    "batch_size": [Interval(int, 2, MAX_COUNT), Options(-1)],
    "predict_nonlinearity": [Options("auto", None)],
    "warm_start": [Bools()],
    "verbose": [Interval(int, 0, 1000)],
    "device": [Options("auto", "cpu", "cuda", "mps")],  # a CUDA index is accepted too (see below)
    "compile": [Options(False)],
    "use_caching": [Options("auto", True, False)],
    "torch_load_kwargs": [Options(None)],
    "threshold": [Interval(float, 0, 1)],
    "imbalance": [Options(*IMBALANCE_CHOICES)],
    "blend": [Options(*BLENDS)],
    "smote_k": [Interval(int, 1, 1000)],
    "min_positives": [Options("auto"), Interval(int, 0, MAX_COUNT)],
    "image_weights": [Options(*IMAGE_WEIGHTS)],
    "amp": [Options(*AMP_CHOICES)],
    "data_on_device": [Options(*DATA_ON_DEVICE_CHOICES)],
    "random_state": [Options(None), Interval(int, 0, _MAX_SEED)],
    "module__depth": [Options(*DEPTHS)],
    "module__width": [Interval(int, 1, MAX_WIDTH)],
    "module__fusion": [Options(*FUSIONS)],
    "module__branches": [Options(*BRANCHES)],
    "module__augment": [Options(*AUGMENTATIONS)],
    "module__image": [Options(*IMAGE_INPUTS)],
    "module__tabular_dropout": [Interval(float, 0, 1, closed="left")],
    "module__head_dropout": [Interval(float, 0, 1, closed="left")],
    "module__smote_seed": [Options(None), Interval(int, 0, _MAX_SEED)],
    "module__in_channels": [Interval(int, 1, MAX_IN_CHANNELS)],
    "module__n_tabular": [Interval(int, 1, MAX_TABULAR_FEATURES)],
}
#: Parameters of the running process, not of the model: never saved, defaults on loading.
RUNTIME_PARAMETERS = ("compile", "torch_load_kwargs")

_SIZES = {
    "in_channels": [Options(None), Interval(int, 1, MAX_IN_CHANNELS)],
    "n_radiomics": [Options(None), Interval(int, 1, MAX_TABULAR_FEATURES)],
    "pos_weight": [Options(None), Interval(float, 0, None, closed="neither")],
}
_MODEL_RANGES = {
    "target_specificity": [Interval(float, 0, 1, closed="neither")],
    "threshold_cv": [Options(0), Interval(int, 2, 1000)],
    "random_state": [Options(None), Interval(int, 0, _MAX_SEED)],
    "operating_point": [Options(*OPERATING_POINTS)],
    "target_sensitivity": [Interval(float, 0, 1, closed="right")],
    "calibration": [Options(None, *CALIBRATIONS)],
}
_TRAINING_RANGES = {
    "n_subjects": [Interval(int, 1, MAX_COUNT)],
    "n_lesions": [Interval(int, 1, MAX_COUNT)],
    "n_rim_pos": [Interval(int, 0, MAX_COUNT)],
}



def _refuse(where: str, exc: ParameterError) -> ModelFileError:
    return ModelFileError(f"{where}: {exc}")


def check_classifier_parameter(name: str, value: Any, where: str) -> None:
    """``name=value`` is on the allow-list and in its range, else :class:`ModelFileError`."""
    if name not in CLASSIFIER_PARAMETERS:
        prefix = name.split("__")[0]
        why = (f"{prefix}__* settings steer the runtime or only training and are never read from a model file"
               if "__" in name and prefix != "module" else "a model file may carry only the parameters listed in "
               "docs/saved_models.md")
        raise ModelFileError(f"{where} classifier.params has an unknown or non-JSON parameter {printable(name)!r}; "
                             f"refused: {why}")
    if name == "device" and isinstance(value, str) and _DEVICE.fullmatch(value):
        return
    try:
        check_param(value, name, CLASSIFIER_PARAMETERS[name])
    except ParameterError as exc:
        raise _refuse(f"{where} classifier.params", exc) from None


def check_settings_ranges(settings: dict, where: str) -> None:
    """Sizes, counts and names in ``settings`` (keys and JSON types already checked) are in range."""
    classifier = settings["classifier"]
    for name, value in classifier["params"].items():
        check_classifier_parameter(name, value, where)
    for name, rules in _SIZES.items():
        _in_range(classifier[name], name, rules, f"{where} classifier")
    patch_shape = classifier["patch_shape"]
    n_sides = 2 if classifier["params"].get("module__image") == "surface_map" else 3  # depths x directions
    if patch_shape is not None and (len(patch_shape) != n_sides or not all(
            Interval(int, 1, MAX_PATCH_SHAPE if n_sides == 3 else 4096).accepts(side) for side in patch_shape)):
        raise ModelFileError(f"{where} classifier: patch_shape={printable(patch_shape)} is not valid; it must be "
                             f"{'three' if n_sides == 3 else 'two'} integers in [1, {MAX_PATCH_SHAPE if n_sides == 3 else 4096}]")
    branches = classifier["params"].get("module__branches", DEFAULT_MODEL.branches)
    needs_patches, needs_tabular = branches != "tabular", branches != "patches"  # branches checked above
    if needs_patches != (classifier["in_channels"] is not None) or needs_patches != (patch_shape is not None):
        raise ModelFileError(f"{where} classifier: module__branches={branches!r} "
                             f"{'needs' if needs_patches else 'has no'} in_channels and patch_shape")
    if needs_tabular != (classifier["n_radiomics"] is not None):
        raise ModelFileError(f"{where} classifier: module__branches={branches!r} "
                             f"{'needs' if needs_tabular else 'has no'} n_radiomics")
    for parameter, name in (("in_channels", "in_channels"), ("n_tabular", "n_radiomics")):
        given = classifier["params"].get(f"module__{parameter}")
        if given is not None and given != classifier[name]:
            raise ModelFileError(f"{where} classifier: module__{parameter}={given!r} differs from {name}={classifier[name]!r}")
    omitted = classifier["omitted_params"]
    if len(omitted) > 100 or not all(isinstance(name, str) and len(name) < 200 for name in omitted):
        raise ModelFileError(f"{where} classifier: omitted_params must be a short list of parameter names")
    for section, ranges in (("model", _MODEL_RANGES), ("training", _TRAINING_RANGES)):
        for name, rules in ranges.items() if isinstance(settings.get(section), dict) else ():
            _in_range(settings[section][name], name, rules, f"{where} {section}")
    training = settings.get("training")
    skipped = training.get("skipped_scans", []) if isinstance(training, dict) else []
    if len(skipped) > 100_000 or not all(isinstance(scan, str) and len(scan) <= 500 for scan in skipped):
        raise ModelFileError(f"{where} training: skipped_scans must be a list of short texts (scan: reason)")
    if isinstance(training, dict) and training["n_rim_pos"] > training["n_lesions"]:
        raise ModelFileError(f"{where} training: n_rim_pos={training['n_rim_pos']} exceeds n_lesions={training['n_lesions']}")
    threshold = settings.get("threshold")
    if isinstance(threshold, dict) and threshold.get("n_splits") is not None:
        _in_range(threshold["n_splits"], "n_splits", [Interval(int, 2, 1000)], f"{where} threshold")
    versions = settings["versions"]
    if len(versions) > 50 or not all(len(key) <= 100 and len(value) <= 100 for key, value in versions.items()):
        raise ModelFileError(f"{where} versions: at most 50 package names and versions of at most 100 characters")
    names = settings.get("radiomics_feature_names")
    if names is not None and (len(names) > MAX_TABULAR_FEATURES or not all(isinstance(n, str) and len(n) <= 300 for n in names)):
        raise ModelFileError(f"{where}: radiomics_feature_names must be at most {MAX_TABULAR_FEATURES} names (strings)")
    _check_featurizer_sizes(settings.get("featurizer"), where)


def _check_featurizer_sizes(featurizer: dict | None, where: str) -> None:
    """The memory-driving featurizer settings (patch grid and size, rim-profile directions) are bounded."""
    patches = (featurizer or {}).get("patches")
    if isinstance(patches, dict):
        shape = patches.get("shape")
        sides = shape if isinstance(shape, list) else [shape]
        if not all(Interval(int, 1, MAX_PATCH_SHAPE).accepts(side) for side in sides):
            raise ModelFileError(f"{where} featurizer.patches: shape={printable(shape)} is not valid; it must be "
                                 f"an integer (or three) in [1, {MAX_PATCH_SHAPE}]")
        size = patches.get("size_mm")
        sizes = size if isinstance(size, list) else [size]
        if not all(Interval(float, 0, 1000, closed="right").accepts(side) for side in sizes):
            raise ModelFileError(f"{where} featurizer.patches: size_mm={printable(size)} is not valid; it must be "
                                 "a number (or three) in (0, 1000] mm")
    for name in ("rim", "surface_map"):
        entry = (featurizer or {}).get(name)
        for key in ("n_directions", "n_depths"):
            if isinstance(entry, dict) and key in entry:
                _in_range(entry[key], key, [Interval(int, 1, 4096)], f"{where} featurizer.{name}")


def check_featurizer_matches(featurizer, classifier: dict, where: str) -> None:
    """The network's input sizes are those the saved featurizer gives (refused before any extraction)."""
    try:
        shapes = featurizer.get_output_shapes()
    except (ParameterError, ValueError) as exc:
        raise ModelFileError(f"{where} featurizer: {exc}") from None
    patches = shapes.get(classifier["params"].get("module__image", "patches"))
    if classifier["in_channels"] is not None:
        if patches is None or [classifier["in_channels"], *classifier["patch_shape"]] != list(patches):
            raise ModelFileError(f"{where}: the network takes patches of shape {[classifier['in_channels'], *classifier['patch_shape']]} "
                                 f"but the featurizer gives {list(patches) if patches else 'none'}")
    if classifier["n_radiomics"] is not None:
        keys = classifier["feature_keys"] or ["radiomics"]
        given = sum(shapes[key][0] for key in keys if key in shapes)
        if not set(keys) <= set(shapes) or given != classifier["n_radiomics"]:
            raise ModelFileError(f"{where}: the network takes {classifier['n_radiomics']} tabular features ({', '.join(keys)}) "
                                 f"but the featurizer gives {given}")


def _in_range(value: Any, name: str, rules: list, where: str) -> None:
    try:
        check_param(value, name, rules)
    except ParameterError as exc:
        raise _refuse(where, exc) from None


# ---------------------------------------------------------------------------------- digest
def settings_digest(settings: dict) -> str:
    """SHA-256 (hex) of the canonical JSON of ``settings`` without its ``"settings_sha256"``.

    Canonical: keys sorted, no spaces, ASCII only, so that the digest does not depend on how the
    file was indented. The settings hold the SHA-256 of ``weights.pt``, so the digest covers
    the weights too.

    Examples
    --------
    >>> settings_digest({"b": 1, "a": [1.5, None]}) == settings_digest({"a": [1.5, None], "b": 1, "settings_sha256": "x"})
    True
    """
    body = {key: value for key, value in settings.items() if key != "settings_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


# --------------------------------------------------------------------------------- weights
def expected_tensors(classifier_cls, state: dict) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Name, shape and dtype of every tensor ``weights.pt`` must hold for the described network.

    ``state`` is the classifier's fitted state without tensors (parameters and input sizes,
    already in range). The network is built on the meta device (no memory).
    """
    try:
        layout = {f"module.{key}": value for key, value in classifier_cls.module_state_layout(state).items()}
    except (ParameterError, TypeError, ValueError) as exc:
        raise ModelFileError(f"the network described cannot be built ({printable(exc)})") from None
    if state["n_radiomics"] is not None:
        for key in ("radiomics_median", "radiomics_mean", "radiomics_scale"):
            layout[key] = ((state["n_radiomics"],), torch.float64)
        if state["params"].get("blend") == "logistic":
            layout["blend_coef"] = ((state["n_radiomics"],), torch.float64)
            layout["blend_intercept"] = ((1,), torch.float64)
    return layout


def tensor_bytes(layout: dict[str, tuple[tuple[int, ...], torch.dtype]]) -> int:
    """Bytes of the tensors of ``layout``."""
    return sum(math.prod(shape) * dtype.itemsize for shape, dtype in layout.values())


def read_weights(path: Path, expected_sha256: str, layout: dict[str, tuple[tuple[int, ...], torch.dtype]]) -> dict[str, torch.Tensor]:
    """The tensors of ``weights.pt``, read with bounded memory (see the module docstring).

    Raises
    ------
    ModelFileError
        Too large for the network described, changed since saving (SHA-256), not an archive as
        ``torch.save`` writes it, not tensors only, or tensors other than ``layout``'s.
    """
    needed = tensor_bytes(layout)
    if needed > MAX_WEIGHTS_BYTES:
        raise ModelFileError(f"{path}: the network described needs {needed / 2**30:.2f} GiB of weights, more than "
                             f"the {MAX_WEIGHTS_BYTES / 2**30:g} GiB a model file may hold; refused")
    limit = needed + WEIGHTS_ALLOWANCE
    data = read_at_most(path, limit)
    if len(data) > limit:
        raise ModelFileError(f"{path}: larger than the {needed:,} bytes of tensors the network described needs "
                             f"(plus {WEIGHTS_ALLOWANCE // 2**20} MiB); refused without reading it")
    found = hashlib.sha256(data).hexdigest()
    if found != expected_sha256:
        raise ModelFileError(
            f"{path}: SHA-256 {found[:16]}... differs from the {printable(expected_sha256[:16])}... recorded in settings.json; "
            "the weights were changed or replaced after saving, so they are not loaded"
        )
    tensors = load_tensor_dict(path, data)
    return tensors


def check_tensors(path: Path, tensors: dict[str, torch.Tensor], layout: dict[str, tuple[tuple[int, ...], torch.dtype]]) -> None:
    """The loaded tensors are exactly those of ``layout`` (names, shapes, dtypes)."""
    extra = sorted(set(tensors) - set(layout))
    if extra:
        raise ModelFileError(f"{path}: unknown tensors {[printable(name, 100) for name in extra[:5]]}")
    missing = sorted(set(layout) - set(tensors))
    if missing:
        raise ModelFileError(f"{path.parent}: the weights do not fit the network described in settings.json "
                             f"(missing tensors {missing[:5]})")
    for name, (shape, dtype) in layout.items():
        tensor = tensors[name]
        if tuple(tensor.shape) != shape or tensor.dtype != dtype:
            raise ModelFileError(f"{path.parent}: the weights do not fit the network described in settings.json "
                                 f"({name} is {str(tensor.dtype).removeprefix('torch.')} {tuple(tensor.shape)}, "
                                 f"expected {str(dtype).removeprefix('torch.')} {shape})")

