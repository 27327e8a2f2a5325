"""The lesion features rimclf knows: one entry per feature extractor, in one place.

Each entry (:class:`Feature`) says what an extractor is called (the key of its output in the
featurizer's ``SliceDict``, and its name in a feature set), whether it yields a **tabular**
block (one row of numbers per lesion: the input of the network's MLP branch and of the
baselines) or an **image** block (one array per lesion: the CNN branch's input), which class
extracts it, and which :class:`~rimclf.defaults.ModelConfig` fields set its parameters.

Everything that needs the feature vocabulary reads it here:
:class:`~rimclf.features.LesionFeaturizer` and :func:`~rimclf.features.make_featurizer`, the
classifier's inputs, model files, :class:`~rimclf.baselines.SelectFeatures`, the benchmark's
methods and the ``--feature-set`` choices of the command line.

A **feature set** is a tuple of registered tabular names, e.g. ``("rim", "radiomics")``
(:attr:`ModelConfig.feature_set <rimclf.defaults.ModelConfig>`). Its text form
``"rim+radiomics"`` exists only on the command line and in files, read by
:func:`parse_feature_set` and written by :func:`format_feature_set`.

This module is pure Python (it imports no extractor): an entry names its extractor class as
``"module:Class"`` (or holds the class itself), and :mod:`rimclf.features` imports it when a
featurizer is built. A new extractor is one module plus one :func:`register_feature` call (see
``docs/architecture.md``).

Examples
--------
>>> feature_names("tabular")
('rim', 'rim_fit', 'radiomics')
>>> parse_feature_set("radiomics+rim")
('rim', 'radiomics')
>>> format_feature_set(("rim",))
'rim'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import combinations
from types import MappingProxyType

from rimclf.errors import ParameterError

__all__ = [
    "BLOCKS", "FEATURES", "IMAGE", "SEPARATOR", "TABULAR", "Feature", "check_feature_set", "feature_names",
    "feature_sets", "format_feature_set", "get_feature", "parse_feature_set", "register_feature", "unregister_feature",
]

#: The kinds of block an extractor yields.
TABULAR = "tabular"
IMAGE = "image"
BLOCKS = (TABULAR, IMAGE)
#: How a feature set's names are joined in its text form.
SEPARATOR = "+"


@dataclass(frozen=True)
class Feature:
    """One registered feature extractor.

    Attributes
    ----------
    name : str
        Output key and feature-set name (letters, digits and ``_``).
    block : {"tabular", "image"}
        A row of numbers per lesion, or an array per lesion (the CNN's patches).
    extractor : str or type
        The extractor class, or ``"module:Class"`` where to import it from. The class derives
        from ``rimclf.features._base.LesionExtractor`` (``extract_subject``, ``cache_key``,
        ``required_columns``, ``get_feature_names_out``).
    config : mapping of str to str, default={}
        Extractor parameter -> :class:`~rimclf.defaults.ModelConfig` field that sets it in
        :func:`rimclf.features.make_featurizer`.
    description : str, default=""
        A few words for help texts and reports.

    Examples
    --------
    >>> feature = FEATURES["radiomics"]
    >>> feature.block, feature.extractor, dict(feature.config)["region"]
    ('tabular', 'rimclf.features.radiomics:RadiomicsExtractor', 'region')
    """

    name: str
    block: str
    extractor: str | type
    config: Mapping[str, str] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        if not (isinstance(self.name, str) and self.name.replace("_", "").isalnum() and self.name.isascii()):
            raise ParameterError(f"Feature: name={self.name!r} is not valid; it must be letters, digits and '_'")
        if self.block not in BLOCKS:
            raise ParameterError(f"Feature {self.name!r}: block={self.block!r} is not valid; it must be one of {BLOCKS}")
        object.__setattr__(self, "config", MappingProxyType(dict(self.config)))


_FEATURES: dict[str, Feature] = {}
#: The registered features by name, in registration order (the order of outputs and columns).
FEATURES: Mapping[str, Feature] = MappingProxyType(_FEATURES)


def register_feature(feature: Feature) -> Feature:
    """Add ``feature`` to the registry (after those already there) and return it.

    Raises
    ------
    ParameterError
        A feature of that name is registered already.

    Examples
    --------
    >>> toy = register_feature(Feature("toy", "tabular", "mypackage.toy:ToyExtractor"))
    >>> feature_names("tabular")
    ('rim', 'rim_fit', 'radiomics', 'toy')
    >>> unregister_feature("toy").name
    'toy'
    """
    if not isinstance(feature, Feature):
        raise ParameterError(f"register_feature: {feature!r} is not a Feature")
    if feature.name in _FEATURES:
        raise ParameterError(f"register_feature: a feature named {feature.name!r} is registered already")
    _FEATURES[feature.name] = feature
    return feature


def unregister_feature(name: str) -> Feature:
    """Remove the feature ``name`` from the registry (e.g. a test's toy extractor) and return it.

    Examples
    --------
    >>> unregister_feature("nothing")
    Traceback (most recent call last):
    ...
    rimclf.errors.ParameterError: feature 'nothing' is not registered; the features are ('rim', 'rim_fit', 'radiomics', 'patches', 'surface_map')
    """
    return _FEATURES.pop(get_feature(name).name)


def get_feature(name: object) -> Feature:
    """The registered feature ``name``, or :class:`ParameterError` listing the registered ones.

    Examples
    --------
    >>> get_feature("patches").block
    'image'
    """
    if not isinstance(name, str) or name not in _FEATURES:
        raise ParameterError(f"feature {name!r} is not registered; the features are {tuple(_FEATURES)}")
    return _FEATURES[name]


def feature_names(block: str | None = None) -> tuple[str, ...]:
    """Registered names (of one ``block``, "tabular" or "image"), in registration order.

    Examples
    --------
    >>> feature_names(), feature_names("image")
    (('rim', 'rim_fit', 'radiomics', 'patches', 'surface_map'), ('patches', 'surface_map'))
    """
    return tuple(name for name, feature in _FEATURES.items() if block is None or feature.block == block)


def check_feature_set(value: object, name: str = "feature_set") -> tuple[str, ...]:
    """``value`` as a feature set: registered tabular names, each once, in registry order.

    Raises :class:`ParameterError` naming ``name`` for a string (use :func:`parse_feature_set`),
    an empty set, an unknown or image name, or a repeated one.

    Examples
    --------
    >>> check_feature_set(["radiomics", "rim"])
    ('rim', 'radiomics')
    >>> check_feature_set(("patches",))
    Traceback (most recent call last):
    ...
    rimclf.errors.ParameterError: feature_set=('patches',) is not valid: ['patches'] not among the tabular features ('rim', 'rim_fit', 'radiomics')
    """
    tabular = feature_names(TABULAR)
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ParameterError(
            f"{name}={value!r} is not valid; it must be a tuple of tabular feature names among {tabular}, "
            f"e.g. {tabular[:1]} (parse the text form 'a+b' with parse_feature_set)"
        )
    names = tuple(value)
    unknown = [item for item in names if item not in tabular]
    if not names or unknown or len(set(names)) != len(names):
        problem = "it is empty" if not names else f"{unknown} not among" if unknown else "a name repeats; choose among"
        raise ParameterError(f"{name}={names!r} is not valid: {problem} the tabular features {tabular}")
    return tuple(item for item in tabular if item in names)


def parse_feature_set(text: str, name: str = "feature_set") -> tuple[str, ...]:
    """The feature set of its text form ``"rim+radiomics"`` (command line, files).

    Examples
    --------
    >>> parse_feature_set("rim+radiomics")
    ('rim', 'radiomics')
    """
    if not isinstance(text, str):
        raise ParameterError(f"{name}={text!r} is not valid; it must be text such as 'rim+radiomics'")
    return check_feature_set(tuple(part for part in text.split(SEPARATOR)), name)


def format_feature_set(names: Iterable[str]) -> str:
    """The text form of a feature set.

    Examples
    --------
    >>> format_feature_set(("radiomics", "rim"))
    'rim+radiomics'
    """
    return SEPARATOR.join(check_feature_set(names))


def feature_sets() -> tuple[tuple[str, ...], ...]:
    """Every feature set of the registered tabular features (singles first, registry order).

    Examples
    --------
    >>> [format_feature_set(names) for names in feature_sets()]
    ['rim', 'rim_fit', 'radiomics', 'rim+rim_fit', 'rim+radiomics', 'rim_fit+radiomics', 'rim+rim_fit+radiomics']
    """
    tabular = feature_names(TABULAR)
    return tuple(combo for size in range(1, len(tabular) + 1) for combo in combinations(tabular, size))


# ------------------------------------------------------------------------- the registry
register_feature(Feature(
    "rim", TABULAR, "rimclf.features.rim_profile:RimProfileExtractor",
    description="rim-profile features (the QSM at the lesion edge against its core and surroundings)",
))
register_feature(Feature(
    "rim_fit", TABULAR, "rimclf.features.rim_fit:RimFitExtractor",
    description="a rim model fitted to the QSM across the lesion edge: core, surround, rim height and its t-value",
))
register_feature(Feature(
    "radiomics", TABULAR, "rimclf.features.radiomics:RadiomicsExtractor",
    config={"params": "radiomics_params", "region": "region", "shell_mm": "shell_mm"},
    description="pyradiomics features of the lesion and/or its shell",
))
register_feature(Feature(
    "patches", IMAGE, "rimclf.features.patches:PatchExtractor",
    config={"size_mm": "patch_size_mm", "shape": "patch_shape", "channels": "channels", "normalize": "normalize"},
    description="QSM/FLAIR/mask/distance cubes around each lesion (the CNN branch's input)",
))
register_feature(Feature(
    "surface_map", IMAGE, "rimclf.features.surface_map:SurfaceMapExtractor",
    description="the lesion surface unwrapped: referenced QSM by depth (mm) x direction (the surface-map branch's input)",
))
