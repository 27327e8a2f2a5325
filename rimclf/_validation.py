"""Parameter checks, one way for the whole package.

In the spirit of scikit-learn's ``_parameter_constraints`` / ``validate_params``: an estimator
declares beside its ``__init__`` what each parameter accepts, as a list of constraints of which
one must hold, and checks them all in ``fit`` (constructors only store)::

    _parameter_constraints = {
        "imbalance": [Options(*IMBALANCE_CHOICES)],
        "smote_k": [Interval(int, 1)],
        "min_positives": [Options("auto"), Interval(int, 0)],
    }

    def fit(self, X, y):
        validate_params(self)

Functions check their arguments with :func:`check_param` (or :func:`check_int`,
:func:`check_real`, :func:`check_choice`, :func:`check_bool`). A value that fits no constraint
raises :class:`~rimclf.errors.ParameterError` (a ``ValueError``) that repeats the name and the
value and says what is allowed::

    QSMRimNetClassifier: smote_k=0 is not valid; it must be a positive integer

Pure Python, so that every layer (``rimclf.nn`` included) may use it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from numbers import Integral, Real
from typing import Any

from rimclf.errors import ParameterError

__all__ = [
    "N_JOBS",
    "SIZE_LIMITS",
    "Bools",
    "Interval",
    "Options",
    "RandomStates",
    "Types",
    "check_bool",
    "check_choice",
    "check_int",
    "check_model_config",
    "check_n_jobs",
    "check_param",
    "check_path",
    "check_real",
    "check_threshold_settings",
    "is_int",
    "is_real",
    "validate_params",
]


def is_int(value: object) -> bool:
    """An integer (Python or numpy), not a bool."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def is_real(value: object) -> bool:
    """A real number (Python or numpy, integers included), not a bool."""
    return isinstance(value, Real) and not isinstance(value, bool)


class Interval:
    """Integers (``kind=int``) or finite real numbers (``kind=float``) between two bounds.

    ``None`` leaves a side open-ended; ``closed`` says which bounds belong to the interval
    (``"both"``, ``"left"``, ``"right"`` or ``"neither"``).
    """

    def __init__(self, kind: type, low: float | None = None, high: float | None = None, *, closed: str = "both") -> None:
        if kind not in (int, float) or closed not in ("both", "left", "right", "neither"):
            raise TypeError(f"Interval({kind!r}, closed={closed!r}): kind is int or float")
        self.kind, self.low, self.high, self.closed = kind, low, high, closed

    def accepts(self, value: object) -> bool:
        if not (is_int(value) if self.kind is int else is_real(value) and math.isfinite(float(value))):
            return False
        if self.low is not None:
            if value < self.low or (value == self.low and self.closed in ("right", "neither")):
                return False
        if self.high is not None:
            if value > self.high or (value == self.high and self.closed in ("left", "neither")):
                return False
        return True

    def __str__(self) -> str:
        noun = "an integer" if self.kind is int else "a number"
        low_in = self.closed in ("both", "left")
        high_in = self.closed in ("both", "right")
        if self.low is not None and self.high is not None:
            return f"{noun} in {'[' if low_in else '('}{self.low:g}, {self.high:g}{']' if high_in else ')'}"
        if self.low is not None:
            if self.low == (1 if self.kind is int else 0) and low_in is (self.kind is int):
                return "a positive integer" if self.kind is int else "a positive number"
            return f"{noun} {'>=' if low_in else '>'} {self.low:g}"
        if self.high is not None:
            return f"{noun} {'<=' if high_in else '<'} {self.high:g}"
        return noun


class Options:
    """One of the given values (``True`` and ``1`` are told apart, and so are ``False`` and ``0``)."""

    def __init__(self, *choices: object) -> None:
        self.choices = choices

    def accepts(self, value: object) -> bool:
        for choice in self.choices:
            if isinstance(choice, bool) or isinstance(value, bool) or choice is None or value is None:
                if value is choice:
                    return True
            elif (
                type(value) is type(choice)
                or (isinstance(value, str) and isinstance(choice, str))
                or (is_real(value) and is_real(choice))
            ):
                if value == choice:
                    return True
        return False

    def __str__(self) -> str:
        if len(self.choices) == 1:
            return repr(self.choices[0])
        return f"one of {self.choices!r}"


class Types:
    """An instance of one of ``types``, described as ``description`` (e.g. "a folder path")."""

    def __init__(self, *types: type, description: str) -> None:
        self.types, self.description = types, description

    def accepts(self, value: object) -> bool:
        return isinstance(value, self.types)

    def __str__(self) -> str:
        return self.description


class Bools:
    """True or False, Python's or numpy's."""

    def accepts(self, value: object) -> bool:
        return type(value).__name__ in ("bool", "bool_")  # bool, numpy.bool (numpy.bool_ before 2.0)

    def __str__(self) -> str:
        return "True or False"


class RandomStates:
    """What scikit-learn's ``check_random_state`` takes: None, a seed in ``[0, 2**32 - 1]``, or a
    numpy ``RandomState`` (told by its type, so that this module needs no numpy)."""

    def accepts(self, value: object) -> bool:
        if value is None:
            return True
        if is_int(value):
            return 0 <= value <= 2**32 - 1
        kind = type(value)
        return kind.__name__ == "RandomState" and kind.__module__.startswith("numpy.")

    def __str__(self) -> str:
        return "None, an integer in [0, 4294967295] or a numpy RandomState"


Constraint = "Interval | Options | Types | Bools | RandomStates"


def _describe(constraints: Iterable[Constraint]) -> str:
    parts = [str(constraint) for constraint in constraints]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]


def check_param(
    value: Any, name: str, constraints: Iterable[Constraint], *, owner: str = "", hint: str = ""
) -> Any:
    """Return ``value`` when one of ``constraints`` accepts it, else raise :class:`ParameterError`.

    The message reads ``"{owner}: {name}={value!r} is not valid; it must be {allowed}; {hint}"``
    (without the owner or the hint when they are empty).
    """
    constraints = list(constraints)
    if any(constraint.accepts(value) for constraint in constraints):
        return value
    message = f"{name}={value!r} is not valid; it must be {_describe(constraints)}"
    message = f"{owner}: {message}" if owner else message
    raise ParameterError(f"{message}; {hint}" if hint else message)


def check_int(
    value: Any, name: str, *, min: int | None = None, max: int | None = None,  # noqa: A002
    owner: str = "", hint: str = "",
) -> int:
    """``value`` as an ``int`` when it is an integer in ``[min, max]``, else :class:`ParameterError`."""
    return int(check_param(value, name, [Interval(int, min, max)], owner=owner, hint=hint))


def check_real(
    value: Any, name: str, *, min: float | None = None, max: float | None = None,  # noqa: A002
    closed: str = "both", owner: str = "", hint: str = "",
) -> float:
    """``value`` as a ``float`` when it is a finite number in the interval, else :class:`ParameterError`."""
    return float(check_param(value, name, [Interval(float, min, max, closed=closed)], owner=owner, hint=hint))


def check_choice(value: Any, name: str, choices: Iterable[object], *, owner: str = "", hint: str = "") -> Any:
    """``value`` when it is one of ``choices``, else :class:`ParameterError` listing them."""
    return check_param(value, name, [Options(*choices)], owner=owner, hint=hint)


def check_bool(value: Any, name: str, *, owner: str = "") -> bool:
    """``value`` as a ``bool`` when it is True or False (numpy's too), else :class:`ParameterError`."""
    return bool(check_param(value, name, [Bools()], owner=owner))


def check_path(value: Any, name: str, *, what: str = "a file or folder", owner: str = "") -> str:
    """``value`` as a ``str`` path when it is a non-empty ``str`` or ``os.PathLike``, else
    :class:`ParameterError` (``load_cohort(123)`` reads ``path=123 is not valid; it must be the
    path (str or os.PathLike) of a cohort folder or manifest``)."""
    import os

    text = os.fspath(value) if isinstance(value, (str, os.PathLike)) else None
    if not isinstance(text, str) or not text.strip():
        shown = (f"<{type(value).__module__}.{type(value).__name__} of shape {value.shape}>" if hasattr(value, "shape")
                 else repr(value))
        message = f"{name}={shown} is not valid; it must be the path (str or os.PathLike) of {what}"
        raise ParameterError(f"{owner}: {message}" if owner else message)
    return text


#: ``n_jobs`` as joblib takes it: None (one job unless a joblib context says otherwise), a
#: positive count, or -1 for all cores (-2 all but one, ...).
N_JOBS = (Options(None), Interval(int, 1), Interval(int, None, -1))


def check_n_jobs(value: Any, *, owner: str = "") -> int | None:
    """``value`` when it is a valid joblib ``n_jobs`` (see :data:`N_JOBS`), else :class:`ParameterError`."""
    return check_param(value, "n_jobs", N_JOBS, owner=owner, hint="-1 uses all cores")


def validate_params(obj: object, constraints: Mapping[str, Iterable[Constraint]] | None = None) -> None:
    """Check ``obj``'s parameters against ``constraints`` (default: ``obj._parameter_constraints``).

    Each ``name`` is read as ``getattr(obj, name)``; the first value no constraint accepts
    raises :class:`ParameterError` naming the class.
    """
    if constraints is None:
        constraints = type(obj)._parameter_constraints
    for name, allowed in constraints.items():
        check_param(getattr(obj, name), name, allowed, owner=type(obj).__name__)


#: Upper bounds of the sizes a model may have, so that a typo cannot ask for all the memory of the
#: machine (``width=1e8`` would need ~128 GB, ``patch_shape=100000`` petabytes). Each is far
#: above any useful value: the paper's network has ``width=64``, rimclf's default 8; patches of
#: 16-32 samples per edge over 24-32 mm. docs/network.md lists them.
SIZE_LIMITS: dict[str, float] = {
    "width": 256,  # ResNet base width: 16x the paper's weights at 256 (~0.5 G parameters)
    "patch_shape": 96,  # samples per patch edge: 96^3 x 4 channels = 14 MB per lesion
    "patch_size_mm": 200.0,  # patch edge: about a whole brain
    "shell_mm": 20.0,  # ring around a lesion for the shell radiomics
    "max_epochs": 100_000,
    "batch_size": 100_000,
}


def check_model_config(config: Any, *, owner: str = "") -> Any:
    """Check every field of a :class:`~rimclf.defaults.ModelConfig` before any work.

    The command line (``train``, ``extract``, ``tune``, ``demo``) and the library functions that
    take a ``config`` call this once, before a cohort is featurised; the estimators check the
    same values again when they fit. Sizes are bounded by :data:`SIZE_LIMITS`.

    Raises
    ------
    ParameterError
        Naming the first field out of range, its value and the valid range.

    Examples
    --------
    >>> from dataclasses import replace
    >>> from rimclf.defaults import DEFAULT_MODEL
    >>> check_model_config(replace(DEFAULT_MODEL, width=0))
    Traceback (most recent call last):
    ...
    rimclf.errors.ParameterError: width=0 is not valid; it must be an integer in [1, 256]
    """
    from rimclf import defaults

    limits = SIZE_LIMITS
    choices = {
        "region": defaults.REGIONS, "normalize": defaults.NORMALIZATIONS,
        "depth": defaults.DEPTHS, "fusion": defaults.FUSIONS, "branches": defaults.BRANCHES,
        "augment": defaults.AUGMENTATIONS, "imbalance": defaults.IMBALANCE_CHOICES,
        "image": defaults.IMAGE_INPUTS, "image_weights": defaults.IMAGE_WEIGHTS, "blend": defaults.BLENDS,
    }
    for name, allowed in choices.items():
        check_choice(getattr(config, name), name, allowed, owner=owner)
    if config.image_weights != "random" and (config.image != "surface_map" or config.branches == "tabular" or config.width != 8):
        message = (f"image_weights={config.image_weights!r} is not valid with image={config.image!r}, branches="
                   f"{config.branches!r}, width={config.width}; the pretrained weights are those of the surface-map "
                   "encoder of width 8 (image='surface_map', branches='both' or 'patches', width=8)")
        raise ParameterError(f"{owner}: {message}" if owner else message)
    if config.blend == "logistic" and config.branches == "patches":
        message = ("blend='logistic' is not valid with branches='patches': the blend is a logistic regression on the "
                   "tabular features, which branches='patches' leaves out; set blend='none' (--blend none)")
        raise ParameterError(f"{owner}: {message}" if owner else message)
    # the names themselves are the feature registry's, checked by make_featurizer (check_feature_set)
    check_param(config.feature_set, "feature_set", [Types(tuple, description="a tuple of tabular feature names")],
                owner=owner, hint="e.g. ('rim',) or ('rim', 'radiomics')")
    channels = config.channels
    if not isinstance(channels, tuple) or not channels or not all(Options(*defaults.CHANNELS).accepts(c) for c in channels):
        message = f"channels={channels!r} is not valid; it must be a non-empty tuple of {', '.join(map(repr, defaults.CHANNELS))}"
        raise ParameterError(f"{owner}: {message}" if owner else message)
    check_real(config.shell_mm, "shell_mm", min=0.0, max=limits["shell_mm"], closed="right", owner=owner)
    check_real(config.patch_size_mm, "patch_size_mm", min=0.0, max=limits["patch_size_mm"], closed="right", owner=owner)
    check_int(config.patch_shape, "patch_shape", min=1, max=int(limits["patch_shape"]), owner=owner)
    check_int(config.width, "width", min=1, max=int(limits["width"]), owner=owner)
    check_int(config.max_epochs, "max_epochs", min=1, max=int(limits["max_epochs"]), owner=owner)
    check_param(config.batch_size, "batch_size", [Interval(int, 2, limits["batch_size"]), Options(-1)], owner=owner,
                hint="-1 is the whole training set in one batch")
    check_real(config.lr, "lr", min=0.0, max=10.0, closed="right", owner=owner)  # AdamW diverges far below 10
    check_int(config.smote_k, "smote_k", min=1, max=100, owner=owner)
    check_threshold_settings(config.target_specificity, config.threshold_cv, owner=owner)
    return config


def check_threshold_settings(
    target_specificity: Any, threshold_cv: Any, threshold: Any = None, *, n_subjects: int | None = None,
    owner: str = "",
) -> None:
    """Check the decision-threshold settings of a training before any work.

    ``threshold`` (a fixed probability) must lie in [0, 1]; ``target_specificity`` in (0, 1);
    ``threshold_cv`` is 0 (in-sample) or a number of folds from 2 to ``n_subjects`` (when known:
    each fold holds out whole subjects).

    Examples
    --------
    >>> check_threshold_settings(0.9, 5, 2.0)
    Traceback (most recent call last):
    ...
    rimclf.errors.ParameterError: threshold=2.0 is not valid; it must be None or a number in [0, 1]; it is a probability
    """
    check_param(threshold, "threshold", [Options(None), Interval(float, 0, 1)], owner=owner, hint="it is a probability")
    check_real(target_specificity, "target_specificity", min=0.0, max=1.0, closed="neither", owner=owner)
    high = None if n_subjects is None else max(int(n_subjects), 2)
    check_param(threshold_cv, "threshold_cv", [Options(0), Interval(int, 2, high)], owner=owner,
                hint="0 chooses the threshold on in-sample probabilities" + (
                    f"; the cohort has {n_subjects} subject(s) with labelled lesions and each fold holds out whole subjects"
                    if n_subjects is not None else ""))
