"""The methods the benchmarks compare, and how each one's estimator and inputs are built.

Two method tables share one :class:`Method` type:

- :data:`ABLATION_METHODS` (``rimclf benchmark``, ``benchmarks/bench_ablation.py``): the default
  model (:data:`rimclf.defaults.DEFAULT_MODEL`, the reference) against the same model with one part
  changed or added (radiomics, a CNN branch and its augmentation, normalisation and distance
  channel, DeepSMOTE or class weights, the logistic blend left out) and against radiomics and rim-feature baselines (the rim
  features are the default model's tabular features: rim profile and rim fit);
- :data:`METHODS` (``benchmarks/bench_imbalance.py``): the imbalance benchmark of QSMRim-Net on
  patches and radiomics with DeepSMOTE (its reference), input-level SMOTE, class weights,
  oversampling or nothing, and radiomics baselines.

A method's ``features`` names its inputs as ``+``-joined parts:

============  ======================================================================
part          input
============  ======================================================================
``rim``       rim-profile features (:class:`~rimclf.features.RimProfileExtractor`)
``rim_fit``   rim-fit features (:class:`~rimclf.features.RimFitExtractor`)
``lesion``    pyradiomics features of the lesion
``shell``     pyradiomics features of a ring ``shell_mm`` wide around it
``radiomics`` the network's radiomics of the imbalance benchmark (``network_radiomics``)
``patches``   patches for the CNN branch (their settings are the method's configuration's)
============  ======================================================================

This module imports nothing heavy at import time, so the command line can list the method
names without loading torch or scikit-learn.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from rimclf._validation import check_param
from rimclf.defaults import DEFAULT_MODEL, ModelConfig
from rimclf.errors import ParameterError
from rimclf.feature_registry import feature_names

#: The radiomics regions a baseline's ``features`` may name instead of "radiomics".
RADIOMICS_REGIONS = ("lesion", "shell")
#: The reference of the imbalance benchmark (:data:`METHODS`).
REFERENCE = "qsmrimnet_deepsmote"
#: The reference of the ablation (:data:`ABLATION_METHODS`): the default model.
ABLATION_REFERENCE = "default"
#: Patch channels a CNN variant may use: all are extracted once, each method takes its own.
ALL_CHANNELS = ("qsm", "flair", "mask", "distance")


@dataclass(frozen=True)
class Method:
    """One benchmarked method: a model, the features it sees and its imbalance handling.

    Attributes
    ----------
    name : str
        Identifier used in the output files (``method`` column).
    label : str
        Human-readable name for tables and figures.
    model : {"qsmrimnet", "random_forest", "logistic_regression", "gradient_boosting"}
    features : str
        Its inputs, ``+``-joined names of :mod:`rimclf.feature_registry` (or the radiomics
        regions "lesion" and "shell" of :data:`RADIOMICS_REGIONS` in place of "radiomics").
    imbalance : {"deepsmote", "smote", "class_weight", "oversample", "none"}
        ``"smote"`` is input-level SMOTE: :class:`~rimclf.baselines.SliceDictSMOTE` before the
        network (trained with ``imbalance="none"``), imblearn SMOTE in the baseline pipelines.
    network : tuple of (str, object), default=()
        For ``model="qsmrimnet"``: :class:`~rimclf.defaults.ModelConfig` fields that differ from
        the benchmark's network settings (e.g. ``(("augment", "flips"),)``); ``branches`` follows
        from ``features``.

    Examples
    --------
    >>> from rimclf.benchmark import ABLATION_METHODS, BenchmarkSettings
    >>> method = ABLATION_METHODS["rf_rim"]
    >>> method.model, method.features, method.imbalance, method.family
    ('random_forest', 'rim+rim_fit', 'class_weight', 'baseline')
    >>> ABLATION_METHODS["net_fused"].parts
    ('patches', 'rim', 'rim_fit')
    >>> estimator = method.make_estimator(BenchmarkSettings.quick(), random_state=0)   # an unfitted pipeline
    >>> estimator[-1].n_estimators
    200

    A method of your own:

    >>> mine = Method("rf_rim_smote", "random forest on rim features, SMOTE", "random_forest", "rim", "smote")
    """

    name: str
    label: str
    model: str
    features: str
    imbalance: str
    network: tuple[tuple[str, object], ...] = ()

    def __post_init__(self) -> None:
        known = (*feature_names(), *RADIOMICS_REGIONS)
        unknown = sorted(set(self.parts) - set(known))
        if unknown or not self.parts:
            raise ParameterError(f"method {self.name!r}: features={self.features!r} must join parts of {known}")

    @property
    def parts(self) -> tuple[str, ...]:
        """The parts of ``features``."""
        return tuple(part for part in self.features.split("+") if part)

    @property
    def family(self) -> str:
        """``"network"`` for QSMRim-Net variants, ``"baseline"`` for the other models."""
        return "network" if self.model == "qsmrimnet" else "baseline"

    @property
    def uses_patches(self) -> bool:
        return "patches" in self.parts

    @property
    def tabular_parts(self) -> tuple[str, ...]:
        return tuple(part for part in self.parts if part != "patches")

    def config(self, settings) -> ModelConfig:
        """The network configuration of a ``qsmrimnet`` method under ``settings``."""
        branches = "both" if self.uses_patches and self.tabular_parts else "patches" if self.uses_patches else "tabular"
        changes = {"branches": branches, "imbalance": "none" if self.imbalance == "smote" else self.imbalance}
        return settings.model_config(**{**changes, **dict(self.network)})

    def fold_record(self, estimator) -> dict:
        """What :func:`~rimclf.benchmark.cross_validate_method` records of a fitted estimator in
        ``folds.tsv`` beside sizes and times (nothing here; another method class may add, e.g.,
        the training loss)."""
        return {}

    def make_estimator(self, settings, random_state: int):
        """A fresh, unfitted estimator (an sklearn/imblearn estimator or pipeline).

        Parameters
        ----------
        settings : BenchmarkSettings
        random_state : int
            Seeds the model and its sampler.
        """
        if self.model == "qsmrimnet":
            return self._make_network(settings, random_state)
        from rimclf import baselines

        sampler = self.imbalance
        common = {"k_neighbors": settings.smote_k, "random_state": random_state, "select_radiomics": False}
        if self.model == "random_forest":
            return baselines.make_random_forest(sampler, n_estimators=settings.n_estimators, n_jobs=1, **common)
        if self.model == "logistic_regression":
            return baselines.make_logistic_regression(sampler, **common)
        return baselines.make_gradient_boosting(sampler, **common)

    def _make_network(self, settings, random_state: int):
        from imblearn.pipeline import Pipeline

        from rimclf.baselines import SliceDictSMOTE
        from rimclf.classifier import make_classifier

        net = make_classifier(self.config(settings), device=settings.device, random_state=random_state)
        if self.imbalance != "smote":
            return net
        sampler = SliceDictSMOTE(k_neighbors=settings.smote_k, random_state=random_state)
        return Pipeline([("smote", sampler), ("net", net)])


def _method(model: str, short: str, model_label: str, features: str, imbalance: str, imbalance_label: str) -> Method:
    feature_tag = {"patches+radiomics": "", "lesion": "_lesion", "lesion+shell": "_lesion_shell"}[features]
    feature_label = {"patches+radiomics": "", "lesion": " (lesion)", "lesion+shell": " (lesion+shell)"}[features]
    return Method(f"{short}{feature_tag}_{imbalance}", f"{model_label}{feature_label}, {imbalance_label}", model, features, imbalance)


_NET = ("qsmrimnet", "qsmrimnet", "QSMRim-Net", "patches+radiomics")
_IMBALANCE_LABELS = {
    "deepsmote": "DeepSMOTE", "smote": "SMOTE", "class_weight": "class weight",
    "oversample": "oversampling", "none": "no correction",
}
#: The imbalance benchmark's network: QSMRim-Net on 3-channel patches and radiomics (its settings
#: come from ``BenchmarkSettings``), as before rim-profile features existed.
_IMBALANCE_NETWORK = (
    ("channels", ("qsm", "flair", "mask")), ("normalize", "nawm"), ("augment", "none"), ("fusion", "sum"),
    ("blend", "none"),
)

#: Every method of the imbalance benchmark by name, in table order: the reference first, then the
#: other network variants, then the radiomics baselines.
METHODS: dict[str, Method] = {
    method.name: method
    for method in [
        *(dataclasses.replace(_method(*_NET, imbalance, _IMBALANCE_LABELS[imbalance]), network=_IMBALANCE_NETWORK)
          for imbalance in ("deepsmote", "smote", "class_weight", "oversample", "none")),
        *(_method("random_forest", "rf", "Random forest", features, imbalance, _IMBALANCE_LABELS[imbalance])
          for features in ("lesion", "lesion+shell") for imbalance in ("smote", "class_weight", "none")),
        *(_method("logistic_regression", "logreg", "Logistic regression", "lesion", imbalance, _IMBALANCE_LABELS[imbalance])
          for imbalance in ("smote", "class_weight")),
        # gradient boosting with SMOTE only: with class weights it trains about 8x slower
        _method("gradient_boosting", "gboost", "Gradient boosting", "lesion", "smote", "SMOTE"),
    ]
}


def _features_of(config: ModelConfig) -> str:
    """The ``features`` of the method that trains ``config``."""
    regions = {"lesion": ["lesion"], "shell": ["shell"], "both": ["lesion", "shell"]}[config.region]
    tabular = [part for name in config.feature_set for part in (regions if name == "radiomics" else [name])]
    parts = [] if config.branches == "patches" else tabular
    return "+".join(((config.image,) if config.branches != "tabular" else ()) + tuple(parts))


def _ablation_methods(config: ModelConfig) -> dict[str, Method]:
    """The default model, each one-part change of it, and the baselines (see the module docs)."""

    def network(name: str, label: str, **changes: object) -> Method:
        changed = dataclasses.replace(config, **changes)
        fields = ("normalize", "channels", "augment", "fusion", "patch_size_mm", "patch_shape", "depth", "width",
                  "max_epochs", "lr", "batch_size", "smote_k", "blend")
        return Method(name, label, "qsmrimnet", _features_of(changed), changed.imbalance,
                      tuple((field, getattr(changed, field)) for field in fields))

    tabular = {"branches": "tabular"}
    fused = {"branches": "both"}
    # the baselines on "rim features" see what the default model's MLP sees (rim profile and rim fit)
    default_features = _features_of(dataclasses.replace(config, **tabular))
    methods = [
        network("default", "default model", ),
        network("net_rim_no_blend", "network: rim features, no logistic blend", **tabular, blend="none"),
        network("net_radiomics", "network: radiomics (lesion+shell) instead of rim features", **tabular,
                feature_set=("radiomics",), region="both"),
        network("net_rim_radiomics", "network: rim features + radiomics (lesion+shell)", **tabular,
                feature_set=(*config.feature_set, "radiomics"), region="both"),
        network("net_rim_deepsmote", "network: rim features, DeepSMOTE", **tabular, imbalance="deepsmote"),
        network("net_rim_class_weight", "network: rim features, class weight", **tabular, imbalance="class_weight"),
        network("net_rim_none", "network: rim features, no imbalance correction", **tabular, imbalance="none"),
        network("net_fused", "network: rim features + CNN (flips+rotations, ring, distance)", **fused),
        network("net_cnn", "network: CNN only (flips+rotations, ring, distance)", branches="patches", blend="none"),
        network("net_fused_no_augment", "network: rim + CNN, no augmentation", **fused, augment="none"),
        network("net_fused_flips", "network: rim + CNN, flips and turns only", **fused, augment="flips"),
        network("net_fused_nawm", "network: rim + CNN, NAWM-normalised patches", **fused, normalize="nawm"),
        network("net_fused_no_distance", "network: rim + CNN, no distance channel", **fused,
                channels=tuple(c for c in config.channels if c != "distance")),
        Method("logreg_rim", "logistic regression on rim features, class weight", "logistic_regression",
               default_features, "class_weight"),
        Method("rf_rim", "random forest on rim features, class weight", "random_forest", default_features,
               "class_weight"),
        Method("rf_lesion_shell", "random forest on lesion+shell radiomics, class weight", "random_forest",
               "lesion+shell", "class_weight"),
        Method("rf_lesion", "random forest on lesion radiomics, class weight", "random_forest", "lesion",
               "class_weight"),
    ]
    unique, seen = [], set()
    for method in methods:  # a variant equal to the default (e.g. its own imbalance) is left out
        key = (method.model, method.features, method.imbalance, method.network)
        if method.name == "default" or key not in seen:
            unique.append(method)
            seen.add(key)
    return {method.name: method for method in unique}


#: The ablation: the default model (reference) and its variants and baselines, in table order.
ABLATION_METHODS: dict[str, Method] = _ablation_methods(DEFAULT_MODEL)


def resolve_methods(methods: object, table: dict[str, Method] | None = None) -> list[Method]:
    """The :class:`Method` objects for ``methods`` (None: all of ``table``), in the order given.

    ``table`` defaults to :data:`METHODS`; names are looked up there, then in the other table.
    """
    table = METHODS if table is None else table
    if methods is None:
        return list(table.values())
    if isinstance(methods, str):
        methods = [methods]
    try:
        names = list(methods)
    except TypeError:
        raise ParameterError(f"methods={methods!r} is not valid; it must be None or a list of method names") from None
    known = {**ABLATION_METHODS, **METHODS, **table}
    resolved = []
    for name in names:
        if isinstance(name, Method):
            resolved.append(name)
        else:
            resolved.append(known[check_param(name, "methods", [_Known(known)])])
    if not resolved:
        raise ParameterError("methods=[] is not valid; give at least one method name")
    if len({method.name for method in resolved}) != len(resolved):
        raise ParameterError(f"methods lists a method twice: {[method.name for method in resolved]}")
    return resolved


class _Known:
    def __init__(self, known: dict) -> None:
        self.known = known

    def accepts(self, value: object) -> bool:
        return isinstance(value, str) and value in self.known

    def __str__(self) -> str:
        return f"one of {list(self.known)}"
