"""Search spaces: plain, picklable descriptions of which pipeline parameters to tune, and how.

A search space is either

- a mapping ``{pipeline parameter name: optuna distribution}``, e.g.
  ``{"model__C": FloatDistribution(1e-3, 1e2, log=True)}`` (a list or tuple is shorthand for a
  :class:`~optuna.distributions.CategoricalDistribution`). The same mapping is the
  ``param_distributions`` of :class:`optuna_integration.OptunaSearchCV`; or
- a function ``(trial) -> {pipeline parameter name: value}`` defined at module level (so that
  worker processes can unpickle it), for conditional or derived parameters.

Names are those of ``estimator.set_params``; ``prefix`` puts a space under a pipeline step, e.g.
``network_space(prefix="clf__")`` for ``Pipeline([("features", ...), ("clf", net)])``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from rimclf.errors import ParameterError

SearchSpace = Mapping[str, BaseDistribution] | Callable[[optuna.trial.BaseTrial], Mapping[str, object]]


def _prefixed(prefix: str, space: dict[str, BaseDistribution]) -> dict[str, BaseDistribution]:
    if not isinstance(prefix, str):
        raise ParameterError(f"prefix must be a string such as 'clf__', got {prefix!r}")
    return {f"{prefix}{name}": distribution for name, distribution in space.items()}


def network_space(
    prefix: str = "", *, small: bool = False, branches: str = "both", imbalance: str = "deepsmote"
) -> dict[str, BaseDistribution]:
    """Search space of :class:`rimclf.QSMRimNetClassifier`.

    Parameters
    ----------
    prefix : str, default=""
        Prepended to every name, e.g. ``"clf__"`` when the network is a pipeline step ``clf``.
    small : bool, default=False
        CPU-sized ranges (ResNet-10, narrow widths, few epochs) for a quick study without a GPU.
    branches : {"both", "patches", "tabular"}, default="both"
        The network's branches: without a CNN (``"tabular"``) the ResNet depth and the fusion
        are left out (they would change nothing).
    imbalance : {"deepsmote", "class_weight", "oversample", "none"}, default="deepsmote"
        The network's ``imbalance``: ``smote_k`` (DeepSMOTE's neighbours) is searched only with
        ``"deepsmote"``.

    Returns
    -------
    dict of str to optuna.distributions.BaseDistribution
        ``module__depth``, ``module__width``, ``module__fusion``, ``module__head_dropout``,
        ``module__tabular_dropout``, ``lr``, ``optimizer__weight_decay``, ``batch_size``,
        ``max_epochs`` and ``smote_k``, less those ``branches`` and ``imbalance`` leave out.

    Examples
    --------
    >>> sorted(network_space(small=True))
    ['batch_size', 'lr', 'max_epochs', 'module__depth', 'module__fusion', 'module__head_dropout', 'module__tabular_dropout', 'module__width', 'optimizer__weight_decay', 'smote_k']
    >>> network_space(prefix="clf__")["clf__module__depth"]
    CategoricalDistribution(choices=(10, 18, 34))
    >>> sorted(network_space(small=True, branches="tabular", imbalance="none"))
    ['batch_size', 'lr', 'max_epochs', 'module__head_dropout', 'module__tabular_dropout', 'module__width', 'optimizer__weight_decay']
    """
    if small:
        depths, widths, batch_sizes, epochs = (10,), (4, 8, 16), (16, 32), IntDistribution(2, 10, step=2)
    else:
        depths, widths, batch_sizes = (10, 18, 34), (16, 32, 64), (16, 32, 64)
        epochs = IntDistribution(20, 100, step=10)
    space = {
        "module__depth": CategoricalDistribution(depths),
        "module__width": CategoricalDistribution(widths),
        "module__fusion": CategoricalDistribution(("sum", "concat")),
        "module__head_dropout": FloatDistribution(0.0, 0.6),
        "module__tabular_dropout": FloatDistribution(0.0, 0.5),
        "lr": FloatDistribution(1e-4, 1e-2, log=True),
        "optimizer__weight_decay": FloatDistribution(1e-6, 1e-2, log=True),
        "batch_size": CategoricalDistribution(batch_sizes),
        "max_epochs": epochs,
        "smote_k": IntDistribution(1, 5),
    }
    if branches == "tabular":
        del space["module__depth"], space["module__fusion"]
    if imbalance != "deepsmote":
        del space["smote_k"]
    return _prefixed(prefix, space)


def _sampler_space(sampler: str) -> dict[str, BaseDistribution]:
    # the baselines' "sampler" step is SafeSMOTE only when built with sampler="smote"
    return {"sampler__k_neighbors": IntDistribution(1, 7)} if sampler == "smote" else {}


def random_forest_space(prefix: str = "", *, sampler: str = "smote") -> dict[str, BaseDistribution]:
    """Search space of :func:`rimclf.baselines.make_random_forest`.

    Parameters
    ----------
    prefix : str, default=""
        Prepended to every name.
    sampler : {"smote", "class_weight", "none"}, default="smote"
        The ``sampler`` the pipeline was made with; SMOTE's ``k_neighbors`` is tuned with
        ``"smote"`` only.

    Returns
    -------
    dict of str to optuna.distributions.BaseDistribution

    Examples
    --------
    >>> sorted(random_forest_space())
    ['model__max_depth', 'model__max_features', 'model__min_samples_leaf', 'model__n_estimators', 'sampler__k_neighbors']
    >>> "sampler__k_neighbors" in random_forest_space(sampler="class_weight")   # no SMOTE step to tune
    False
    """
    space = {
        "model__n_estimators": IntDistribution(100, 800, step=100),
        "model__max_depth": CategoricalDistribution((None, 4, 8, 16)),
        "model__min_samples_leaf": IntDistribution(1, 10, log=True),
        "model__max_features": CategoricalDistribution(("sqrt", "log2", 0.3)),
        **_sampler_space(sampler),
    }
    return _prefixed(prefix, space)


def logistic_regression_space(prefix: str = "", *, sampler: str = "smote") -> dict[str, BaseDistribution]:
    """Search space of :func:`rimclf.baselines.make_logistic_regression`.

    Parameters
    ----------
    prefix : str, default=""
        Prepended to every name.
    sampler : {"smote", "class_weight", "none"}, default="smote"
        The ``sampler`` the pipeline was made with.

    Returns
    -------
    dict of str to optuna.distributions.BaseDistribution

    Examples
    --------
    >>> sorted(logistic_regression_space())
    ['model__C', 'sampler__k_neighbors']
    """
    space = {"model__C": FloatDistribution(1e-4, 1e2, log=True), **_sampler_space(sampler)}
    return _prefixed(prefix, space)


def gradient_boosting_space(prefix: str = "", *, sampler: str = "smote") -> dict[str, BaseDistribution]:
    """Search space of :func:`rimclf.baselines.make_gradient_boosting`.

    Parameters
    ----------
    prefix : str, default=""
        Prepended to every name.
    sampler : {"smote", "class_weight", "none"}, default="smote"
        The ``sampler`` the pipeline was made with.

    Returns
    -------
    dict of str to optuna.distributions.BaseDistribution

    Examples
    --------
    >>> sorted(gradient_boosting_space(sampler="none"))
    ['model__l2_regularization', 'model__learning_rate', 'model__max_iter', 'model__max_leaf_nodes', 'model__min_samples_leaf']
    """
    space = {
        "model__learning_rate": FloatDistribution(0.01, 0.3, log=True),
        "model__max_iter": IntDistribution(50, 400, step=50),
        "model__max_leaf_nodes": IntDistribution(4, 63, log=True),
        "model__min_samples_leaf": IntDistribution(5, 40, log=True),
        "model__l2_regularization": FloatDistribution(1e-6, 10.0, log=True),
        **_sampler_space(sampler),
    }
    return _prefixed(prefix, space)


#: Model names of ``rimclf tune --model`` (:data:`rimclf.defaults.TUNING_MODELS`) -> their
#: search-space function.
SPACES: dict[str, Callable[..., dict[str, BaseDistribution]]] = {
    "qsmrimnet": network_space,
    "random_forest": random_forest_space,
    "logistic_regression": logistic_regression_space,
    "gradient_boosting": gradient_boosting_space,
}


def check_space(space: object) -> SearchSpace:
    """Validate a search space and return it with list/tuple shorthands made distributions.

    Raises
    ------
    ParameterError
        When ``space`` is neither a non-empty mapping of distributions nor a callable.
    """
    if callable(space) and not isinstance(space, Mapping):
        return space
    if not isinstance(space, Mapping) or not space:
        raise ParameterError(
            "space must be a non-empty mapping {parameter name: optuna distribution} "
            f"or a function (trial) -> params, got {space!r}"
        )
    checked: dict[str, BaseDistribution] = {}
    for name, distribution in space.items():
        if not isinstance(name, str) or not name:
            raise ParameterError(f"space keys must be parameter names (strings), got {name!r}")
        if isinstance(distribution, (list, tuple)):
            distribution = CategoricalDistribution(tuple(distribution))
        if not isinstance(distribution, BaseDistribution):
            raise ParameterError(
                f"space[{name!r}] must be an optuna distribution (FloatDistribution, IntDistribution, "
                f"CategoricalDistribution) or a list of choices, got {distribution!r}"
            )
        checked[name] = distribution
    return checked


def _suggest(trial: optuna.trial.BaseTrial, name: str, distribution: BaseDistribution) -> object:
    if isinstance(distribution, FloatDistribution):
        return trial.suggest_float(
            name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
        )
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(
            name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
        )
    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    raise ParameterError(f"space[{name!r}]: unsupported distribution {distribution!r}")


def suggest_params(trial: optuna.trial.BaseTrial, space: SearchSpace) -> dict[str, object]:
    """Draw one set of pipeline parameters from ``space`` for ``trial``.

    Parameters
    ----------
    trial : optuna.trial.BaseTrial
        A live trial, or an :class:`optuna.trial.FixedTrial` to rebuild the parameters of a
        finished trial from its ``params``.
    space : mapping or callable
        See the module docstring.

    Returns
    -------
    dict
        ``{pipeline parameter name: value}``, ready for ``estimator.set_params(**params)``.

    Examples
    --------
    >>> import optuna
    >>> space = {"model__C": optuna.distributions.FloatDistribution(1e-3, 10.0, log=True)}
    >>> suggest_params(optuna.trial.FixedTrial({"model__C": 0.5}), space)
    {'model__C': 0.5}
    """
    space = check_space(space)
    if isinstance(space, Mapping):
        return {name: _suggest(trial, name, distribution) for name, distribution in space.items()}
    params = space(trial)
    if not isinstance(params, Mapping):
        raise ParameterError(f"the space function {space!r} must return a dict of parameters, got {params!r}")
    return dict(params)
