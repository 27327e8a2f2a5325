"""The methods the imbalance benchmark compares, and how each one's estimator is built.

This module imports nothing heavy at import time, so the command line can list the method
names without loading torch or scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass

from rimclf.errors import ParameterError

#: What a method is trained on: the network's patches with radiomics (of the lesion and its ring,
#: or of the lesion only: ``BenchmarkSettings.network_radiomics``), lesion radiomics, or lesion
#: radiomics plus the radiomics of a peri-lesional ring.
FEATURE_SETS = ("patches+radiomics", "lesion", "lesion+shell")

#: The method every other one is compared with.
REFERENCE = "qsmrimnet_deepsmote"


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
    features : {"patches+radiomics", "lesion", "lesion+shell"}
    imbalance : {"deepsmote", "smote", "class_weight", "oversample", "none"}
        ``"smote"`` is input-level SMOTE: :class:`~rimclf.baselines.SliceDictSMOTE` before the
        network (trained with ``imbalance="none"``), imblearn SMOTE in the radiomics pipelines.
    """

    name: str
    label: str
    model: str
    features: str
    imbalance: str

    @property
    def family(self) -> str:
        """``"network"`` for QSMRim-Net variants, ``"radiomics"`` for the radiomics baselines."""
        return "network" if self.model == "qsmrimnet" else "radiomics"

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

        config = settings.model_config(imbalance="none" if self.imbalance == "smote" else self.imbalance)
        net = make_classifier(config, device=settings.device, random_state=random_state)
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

#: Every benchmarked method by name, in table order: the reference first, then the other network
#: variants, then the radiomics baselines.
METHODS: dict[str, Method] = {
    method.name: method
    for method in [
        *(_method(*_NET, imbalance, _IMBALANCE_LABELS[imbalance])
          for imbalance in ("deepsmote", "smote", "class_weight", "oversample", "none")),
        *(_method("random_forest", "rf", "Random forest", features, imbalance, _IMBALANCE_LABELS[imbalance])
          for features in ("lesion", "lesion+shell") for imbalance in ("smote", "class_weight", "none")),
        *(_method("logistic_regression", "logreg", "Logistic regression", "lesion", imbalance, _IMBALANCE_LABELS[imbalance])
          for imbalance in ("smote", "class_weight")),
        # gradient boosting with SMOTE only: with class weights it trains about 8x slower
        _method("gradient_boosting", "gboost", "Gradient boosting", "lesion", "smote", "SMOTE"),
    ]
}


def resolve_methods(methods: object) -> list[Method]:
    """The :class:`Method` objects for ``methods`` (None: all), in the order given."""
    if methods is None:
        return list(METHODS.values())
    if isinstance(methods, str):
        methods = [methods]
    try:
        names = list(methods)
    except TypeError:
        raise ParameterError(f"methods must be None or a list of method names, got {methods!r}") from None
    resolved = []
    for name in names:
        if isinstance(name, Method):
            resolved.append(name)
        elif name in METHODS:
            resolved.append(METHODS[name])
        else:
            raise ParameterError(f"unknown method {name!r}; choose from {list(METHODS)}")
    if not resolved:
        raise ParameterError("methods is empty; give at least one method name")
    if len({method.name for method in resolved}) != len(resolved):
        raise ParameterError(f"methods lists a method twice: {[method.name for method in resolved]}")
    return resolved
