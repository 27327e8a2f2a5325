"""Baseline pipelines on the tabular features (rim-profile and/or radiomics): random forest,
logistic regression, gradient boosting."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from imblearn.pipeline import Pipeline
from scipy.sparse import issparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted, validate_data

from rimclf.baselines._samplers import SafeSMOTE
from rimclf._validation import Options, Types, check_choice, validate_params
from rimclf.defaults import SAMPLERS
from rimclf.feature_registry import TABULAR, check_feature_set, feature_names
from rimclf.errors import ParameterError



def _is_mapping(X: object) -> bool:
    """A dict of entries (a DOK sparse matrix is a dict too, but a matrix to pass through)."""
    return isinstance(X, Mapping) and not issparse(X)


class SelectFeatures(TransformerMixin, BaseEstimator):
    """Take the tabular features out of the featurizer's ``SliceDict``; pass arrays through.

    Lets a baseline follow ``LesionFeaturizer`` in a pipeline: the entries of ``feature_set``
    (tabular names of :mod:`rimclf.feature_registry`, e.g. ``("rim", "radiomics")``) are joined
    column-wise in registry order, rim-profile features first, as
    :class:`~rimclf.classifier.QSMRimNetClassifier` joins them. ``transform`` needs no fit;
    ``fit`` learns the names of the columns passed on, for :meth:`get_feature_names_out`.

    Parameters
    ----------
    feature_set : tuple of str or None, default=None
        Entries to take; None: every tabular entry the mapping holds.

    Attributes
    ----------
    feature_names_ : numpy.ndarray of str
        After ``fit`` on a mapping: the names of the columns ``transform`` returns, from the
        ``feature_names`` of a :class:`~rimclf.features.LesionFeatures` (what
        ``LesionFeaturizer`` returns), else ``"<entry>_<i>"``.
    n_features_in_ : int
        After ``fit`` on an array: its number of columns (``feature_names_in_`` for a DataFrame).

    Examples
    --------
    >>> import numpy as np
    >>> X = {"rim": np.ones((2, 3)), "radiomics": np.zeros((2, 4)), "patches": np.zeros((2, 1, 8, 8, 8))}
    >>> SelectFeatures().transform(X).shape
    (2, 7)
    >>> SelectFeatures(feature_set=("rim",)).transform(X).shape
    (2, 3)
    """

    def __init__(self, feature_set: tuple[str, ...] | None = None) -> None:
        self.feature_set = feature_set

    #: the names themselves are checked against the registry (``check_feature_set``)
    _parameter_constraints = {
        "feature_set": [Options(None), Types(tuple, list, description="a tuple of tabular feature names")],
    }

    def fit(self, X: object, y: object = None) -> SelectFeatures:
        """Learn the names of the columns passed on (see :meth:`get_feature_names_out`); return ``self``."""
        if _is_mapping(X):
            keys = self._keys(X)
            known = getattr(X, "feature_names", None) or {}
            widths = {key: int(np.prod(np.shape(X[key])[1:])) for key in X}
            names = []
            for key in keys:
                given = known.get(key)
                named = given is not None and len(given) == widths[key]
                names.extend(given if named else [f"{key}_{i}" for i in range(widths[key])])
            self.feature_names_ = np.asarray(names, dtype=object)
            # what get_feature_names_out needs to cut the featurizer's names out of input_features
            self._split = None if all(key in known for key in keys) else (keys, widths)
        else:
            validate_data(self, X, reset=True, skip_check_array=True)
        return self

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Names of the columns ``transform`` returns.

        After ``fit`` on a mapping: the featurizer's names of the selected entries (see
        ``feature_names_``); when the mapping carried no names but ``input_features`` lists every
        tabular column (rim-profile then radiomics, as ``LesionFeaturizer.get_feature_names_out``
        gives them in a pipeline), the selected part of ``input_features``. After ``fit`` on an
        array: ``input_features``, the DataFrame's columns, or ``x0, x1, ...`` (arrays pass through).
        """
        check_is_fitted(self, ["feature_names_", "n_features_in_"], all_or_any=any)
        if not hasattr(self, "feature_names_"):
            return _check_feature_names_in(self, input_features)
        if input_features is not None and self._split is not None:
            keys, widths = self._split
            tabular = [key for key in feature_names(TABULAR) if key in widths]
            if set(keys) <= set(tabular) and len(input_features) == sum(widths[key] for key in tabular):
                names = np.asarray(input_features, dtype=object)
                starts = dict(zip(tabular, np.cumsum([0, *(widths[key] for key in tabular)])))
                return np.concatenate([names[starts[key]:starts[key] + widths[key]] for key in keys])
        return self.feature_names_.copy()

    def _keys(self, X: Mapping) -> list[str]:
        validate_params(self)
        if self.feature_set is None:
            keys = [key for key in feature_names(TABULAR) if key in X]
        else:
            keys = list(check_feature_set(self.feature_set, f"{type(self).__name__}: feature_set"))
        missing = [key for key in keys if key not in X]
        if missing or not keys:
            raise ParameterError(
                f"X has no {(missing or ['rim or radiomics'])[0]!r} entry (keys: {sorted(X)}); "
                f"feature_set={self.feature_set!r} needs it"
            )
        return keys

    def transform(self, X: object) -> object:
        """The joined tabular entries of a mapping, or ``X`` itself otherwise."""
        if _is_mapping(X):
            parts = [np.asarray(X[key]) for key in self._keys(X)]
            return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
        return X

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False  # transform is stateless
        tags.input_tags.dict = True  # the featurizer's SliceDict; arrays pass through untouched
        tags.input_tags.allow_nan = True
        tags.input_tags.sparse = True  # passed through untouched too
        tags.no_validation = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def _check_sampler(sampler: object) -> str:
    return check_choice(sampler, "sampler", SAMPLERS)


def _make_pipeline(
    model: BaseEstimator, sampler: str, k_neighbors: int, random_state: object,
    select_radiomics: bool, feature_set: tuple[str, ...] | None,
) -> Pipeline:
    smote = SafeSMOTE(k_neighbors=k_neighbors, random_state=random_state)
    steps = [("select", SelectFeatures(feature_set))] if select_radiomics else []
    steps += [
        ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
        ("scale", StandardScaler()),
        ("sampler", smote if sampler == "smote" else "passthrough"),
        ("model", model),
    ]
    return Pipeline(steps)


def _model_params(sampler: str, defaults: dict, params: dict) -> dict:
    merged = dict(defaults)
    if sampler == "class_weight":
        merged["class_weight"] = "balanced"
    merged.update(params)  # explicit keyword arguments win
    return merged


_SHARED_DOC = """Parameters
    ----------
    sampler : {"smote", "class_weight", "none"}, default="smote"
        Imbalance handling: :class:`SafeSMOTE` on the training folds, ``class_weight="balanced"``
        in the model, or nothing.
    k_neighbors : int, default=5
        SMOTE neighbours (lowered automatically in folds with few rim+ lesions).
    random_state : int, RandomState instance or None, default=None
        Seeds SMOTE and the model.
    select_radiomics : bool, default=True
        Prepend :class:`SelectFeatures`, so the pipeline takes the featurizer's ``SliceDict``
        as well as a plain feature matrix.
    feature_set : tuple of str or None, default=None
        The tabular entries of the ``SliceDict`` the model uses (None: all it holds).
    **params
        Keyword arguments of the model; they override the defaults above.

    Returns
    -------
    imblearn.pipeline.Pipeline"""


def _shared_doc(factory):
    """Fill the parameters and returns that every baseline factory shares into its docstring."""
    if factory.__doc__:  # None under python -OO
        factory.__doc__ = factory.__doc__.replace("{shared}", _SHARED_DOC)
    return factory


@_shared_doc
def make_random_forest(
    sampler: str = "smote", *, k_neighbors: int = 5, random_state: object = None,
    select_radiomics: bool = True, feature_set: tuple[str, ...] | None = None, **params: object,
) -> Pipeline:
    """Random forest on the tabular features (rim-profile and/or radiomics), as in APRL (500 trees).

    {shared}

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 5))                        # 60 lesions, 5 features
    >>> y = (X[:, 0] + rng.normal(size=60) > 1.2).astype(int)
    >>> forest = make_random_forest("class_weight", n_estimators=50, random_state=0).fit(X, y)
    >>> [name for name, _ in forest.steps]
    ['select', 'impute', 'scale', 'sampler', 'model']
    >>> forest.predict_proba(X[:2]).shape
    (2, 2)

    After the featurizer, on the rim-profile features of a lesion table:

    >>> from sklearn.pipeline import Pipeline
    >>> from rimclf.features import make_featurizer
    >>> model = Pipeline([("features", make_featurizer()),
    ...                   ("forest", make_random_forest("class_weight", feature_set=("rim",), random_state=0))])
    >>> model.fit(table, table["rim"].astype(int))          # doctest: +SKIP
    """
    sampler = _check_sampler(sampler)
    model = RandomForestClassifier(
        **_model_params(sampler, {"n_estimators": 500, "random_state": random_state}, params)
    )
    return _make_pipeline(model, sampler, k_neighbors, random_state, select_radiomics, feature_set)


@_shared_doc
def make_logistic_regression(
    sampler: str = "smote", *, k_neighbors: int = 5, random_state: object = None,
    select_radiomics: bool = True, feature_set: tuple[str, ...] | None = None, **params: object,
) -> Pipeline:
    """L2-penalised logistic regression on the standardised tabular features (rim-profile and/or radiomics).

    {shared}

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 5))                        # 60 lesions, 5 features
    >>> y = (X[:, 0] + rng.normal(size=60) > 1.2).astype(int)
    >>> model = make_logistic_regression("smote", k_neighbors=3, random_state=0).fit(X, y)
    >>> model.set_params(model__C=0.1).fit(X, y).predict(X[:3])
    array([0, 1, 0])
    """
    sampler = _check_sampler(sampler)
    defaults = {"C": 1.0, "max_iter": 5000, "random_state": random_state}
    model = LogisticRegression(**_model_params(sampler, defaults, params))
    return _make_pipeline(model, sampler, k_neighbors, random_state, select_radiomics, feature_set)


@_shared_doc
def make_gradient_boosting(
    sampler: str = "smote", *, k_neighbors: int = 5, random_state: object = None,
    select_radiomics: bool = True, feature_set: tuple[str, ...] | None = None, **params: object,
) -> Pipeline:
    """Histogram gradient boosting (:class:`~sklearn.ensemble.HistGradientBoostingClassifier`).

    {shared}

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 5))                        # 60 lesions, 5 features
    >>> y = (X[:, 0] + rng.normal(size=60) > 1.2).astype(int)
    >>> model = make_gradient_boosting("none", max_iter=50, random_state=0).fit(X, y)
    >>> model[-1].n_iter_
    50
    """
    sampler = _check_sampler(sampler)
    model = HistGradientBoostingClassifier(
        **_model_params(sampler, {"random_state": random_state}, params)
    )
    return _make_pipeline(model, sampler, k_neighbors, random_state, select_radiomics, feature_set)

