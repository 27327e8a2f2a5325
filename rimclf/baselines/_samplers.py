"""SMOTE samplers for imblearn pipelines: fold-safe SMOTE, and SMOTE on a SliceDict of inputs.

Both are samplers (``fit_resample``, no ``transform``), so :class:`imblearn.pipeline.Pipeline`
runs them during ``fit`` only and skips them in ``predict``/``predict_proba``/``transform``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
from imblearn.over_sampling import SMOTE
from skorch.helper import SliceDict
from sklearn.base import BaseEstimator
from sklearn.neighbors import NearestNeighbors
from sklearn.utils import check_random_state

from rimclf._data_checks import check_float_arrays
from rimclf._validation import Interval, Options, Types, is_int, validate_params
from rimclf.errors import DataWarning, ParameterError

# Synthetic rows are written in chunks so that patch tensors need little temporary memory.
_CHUNK_ROWS = 256


def _warn_small_minority(n_minority: int, k_neighbors: int) -> int:
    """Return the usable number of neighbours (0 = skip SMOTE) and warn when it is reduced."""
    if n_minority > k_neighbors:
        return k_neighbors
    if n_minority < 2:
        warnings.warn(
            f"SMOTE skipped: the training data hold {n_minority} rim+ row(s), "
            "at least 2 are needed",
            DataWarning,
            stacklevel=3,
        )
        return 0
    warnings.warn(
        f"SMOTE uses k_neighbors={n_minority - 1} instead of {k_neighbors}: "
        f"the training data hold only {n_minority} rim+ rows",
        DataWarning,
        stacklevel=3,
    )
    return n_minority - 1


class SafeSMOTE(SMOTE):
    """:class:`imblearn.over_sampling.SMOTE` that survives folds with very few minority rows.

    Plain SMOTE raises when a training fold holds ``k_neighbors`` or fewer minority rows, which
    happens in grouped cross-validation of a small cohort. SafeSMOTE then uses
    ``k = n_minority - 1`` neighbours, or returns the data unchanged when fewer than two minority
    rows remain, and warns (:class:`~rimclf.errors.DataWarning`) in both cases.

    Parameters
    ----------
    sampling_strategy : float, str, dict or callable, default="auto"
        As in SMOTE.
    random_state : int, RandomState instance or None, default=None
        As in SMOTE.
    k_neighbors : int or object, default=5
        As in SMOTE; the fallback applies to an integer only.

    Examples
    --------
    >>> import warnings
    >>> import numpy as np
    >>> X, y = np.random.default_rng(0).normal(size=(12, 3)), np.array([1, 1, 1] + [0] * 9)
    >>> with warnings.catch_warnings(record=True) as caught:      # 3 rim+ rows: k lowered to 2
    ...     warnings.simplefilter("always")
    ...     X_res, y_res = SafeSMOTE(k_neighbors=5, random_state=0).fit_resample(X, y)
    >>> int(y_res.sum()), len(y_res)
    (9, 18)
    >>> print(caught[0].message)
    SMOTE uses k_neighbors=2 instead of 5: the training data hold only 3 rim+ rows
    """

    def _fit_resample(self, X, y):
        targets = [label for label, n_new in self.sampling_strategy_.items() if n_new > 0]
        if not targets or not is_int(self.k_neighbors):
            return super()._fit_resample(X, y)
        n_minority = min(int(np.sum(y == label)) for label in targets)
        k_neighbors = _warn_small_minority(n_minority, int(self.k_neighbors))
        if k_neighbors == self.k_neighbors:
            return super()._fit_resample(X, y)
        if k_neighbors == 0:
            return X.copy(), y.copy()
        reduced = SMOTE(
            sampling_strategy=self.sampling_strategy,
            k_neighbors=k_neighbors,
            random_state=self.random_state,
        )
        return reduced.fit_resample(X, y)


class SliceDictSMOTE(BaseEstimator):
    """SMOTE on a ``SliceDict`` of several inputs (patch tensors and radiomics), jointly.

    For each synthetic row a rim+ row ``a`` is drawn uniformly, then one of its ``k_neighbors``
    nearest rim+ neighbours ``b``, and ``λ ~ U(0, 1)``; EVERY entry of the SliceDict gets
    ``a + λ (b - a)`` with the same ``a``, ``b`` and ``λ``, so a synthetic lesion's patches and
    radiomics describe the same (interpolated) lesion. Neighbours are searched in the
    ``neighbor_key`` entry (radiomics by default), standardised with the mean and standard
    deviation of all rows (NaN counted as the mean): compact, informative features, where
    Euclidean distance between flattened patches would mostly measure position and noise.

    A sampler for :class:`imblearn.pipeline.Pipeline`: it runs in ``fit`` only, so validation and
    test rows are never resampled. Memory: every synthetic row is a full patch tensor, so with
    ~4 % rim+ balancing nearly doubles the training inputs (DeepSMOTE in the network avoids this).

    Parameters
    ----------
    k_neighbors : int, default=5
        Rim+ neighbours to choose from; lowered to ``n_rim+ - 1`` with a
        :class:`~rimclf.errors.DataWarning` when a training fold holds fewer rim+ rows, and no
        rows are made when it holds fewer than two.
    sampling_strategy : "auto" or float, default="auto"
        ``"auto"``: make rim+ as many as rim-. A float ``r`` in (0, 1]: make
        ``int(r * n_rim-) - n_rim+`` rows (none if that is not positive), as imblearn.
    neighbor_key : str, default="radiomics"
        Entry used for the neighbour search (flattened if it has more than two dimensions).
    random_state : int, RandomState instance or None, default=None
        Seeds the choice of rows, neighbours and λ.

    Attributes
    ----------
    n_synthetic_ : int
        Rows made by the last :meth:`fit_resample`.
    k_neighbors_ : int
        Neighbours actually used (0 when SMOTE was skipped).

    Examples
    --------
    >>> import numpy as np
    >>> from skorch.helper import SliceDict
    >>> rng = np.random.default_rng(0)
    >>> X = SliceDict(radiomics=rng.normal(size=(12, 4)).astype(np.float32),
    ...               patches=rng.normal(size=(12, 1, 4, 4, 4)).astype(np.float32))
    >>> y = np.array([1, 1, 1] + [0] * 9)
    >>> smote = SliceDictSMOTE(k_neighbors=2, random_state=0)
    >>> X_res, y_res = smote.fit_resample(X, y)
    >>> X_res["patches"].shape, int(y_res.sum()), smote.n_synthetic_
    ((18, 1, 4, 4, 4), 9, 6)

    Before the network, in an imblearn pipeline (it resamples during ``fit`` only):

    >>> from imblearn.pipeline import Pipeline
    >>> from rimclf import QSMRimNetClassifier
    >>> net = Pipeline([("smote", SliceDictSMOTE(random_state=0)),
    ...                 ("net", QSMRimNetClassifier(imbalance="none", module__branches="both"))])
    """

    def __init__(
        self, k_neighbors: int = 5, *, sampling_strategy: str | float = "auto",
        neighbor_key: str = "radiomics", random_state: object = None,
    ) -> None:
        self.k_neighbors = k_neighbors
        self.sampling_strategy = sampling_strategy
        self.neighbor_key = neighbor_key
        self.random_state = random_state

    _parameter_constraints = {
        "k_neighbors": [Interval(int, 1)],
        "sampling_strategy": [Options("auto"), Interval(float, 0, 1, closed="right")],
        "neighbor_key": [Types(str, description="a key of X")],
    }

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False  # X is a SliceDict of arrays (patches and tabular features)
        tags.input_tags.dict = True
        tags.input_tags.allow_nan = True
        tags.target_tags.required = True
        return tags

    def fit(self, X: Mapping, y: object) -> SliceDictSMOTE:
        """Resample and discard the result (sampler API); return ``self``."""
        self.fit_resample(X, y)
        return self

    def fit_resample(self, X: Mapping, y: object) -> tuple[SliceDict, np.ndarray]:
        """Return the inputs with synthetic rim+ rows appended after the original rows.

        Parameters
        ----------
        X : SliceDict or dict of array-like, each of shape (n_lesions, ...)
            Floating-point inputs, e.g. ``patches`` (n, C, D, H, W) and ``radiomics`` (n, F).
        y : array-like of shape (n_lesions,)
            Labels 0/1 (1 = rim+).

        Returns
        -------
        X_resampled : SliceDict
            Same keys and dtypes, ``n_lesions + n_synthetic_`` rows, originals first.
        y_resampled : numpy.ndarray
            ``y`` followed by ``n_synthetic_`` ones, in ``y``'s dtype.
        """
        validate_params(self)
        arrays, labels = self._check_inputs(X, y)
        n_new = self._n_to_make(labels)
        positives = np.flatnonzero(labels == 1)
        self.k_neighbors_ = _warn_small_minority(positives.size, self.k_neighbors) if n_new else 0
        if self.k_neighbors_ == 0:
            n_new = 0
        self.n_synthetic_ = n_new
        y_resampled = np.concatenate([labels, np.ones(n_new, dtype=labels.dtype)])
        if n_new == 0:
            return SliceDict(**{key: array.copy() for key, array in arrays.items()}), y_resampled
        rng = check_random_state(self.random_state)
        neighbors = self._rim_neighbors(arrays[self.neighbor_key], positives)
        base = rng.randint(0, positives.size, size=n_new)
        partner = neighbors[base, rng.randint(0, self.k_neighbors_, size=n_new)]
        gaps = rng.uniform(size=n_new)
        resampled = {
            key: _interpolate(array, positives[base], partner, gaps)
            for key, array in arrays.items()
        }
        return SliceDict(**resampled), y_resampled

    def _check_inputs(self, X: object, y: object) -> tuple[dict[str, np.ndarray], np.ndarray]:
        arrays, labels = check_float_arrays(X, y, "for a plain feature matrix use SafeSMOTE")
        if self.neighbor_key not in arrays:
            raise ParameterError(
                f"neighbor_key={self.neighbor_key!r} is not a key of X ({sorted(arrays)})"
            )
        return arrays, labels

    def _n_to_make(self, labels: np.ndarray) -> int:
        n_positive = int(np.sum(labels == 1))
        n_negative = labels.size - n_positive
        strategy = self.sampling_strategy
        if strategy == "auto":
            return max(0, n_negative - n_positive)
        return max(0, int(strategy * n_negative) - n_positive)

    def _rim_neighbors(self, features: np.ndarray, positives: np.ndarray) -> np.ndarray:
        """Indices (into the full arrays) of each rim+ row's nearest rim+ rows, self excluded."""
        flat = features.reshape(features.shape[0], -1).astype(np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
            center = np.nan_to_num(np.nanmean(flat, axis=0))
            scale = np.nan_to_num(np.nanstd(flat, axis=0))
        scale[scale == 0] = 1.0
        standardized = np.nan_to_num((flat[positives] - center) / scale)
        search = NearestNeighbors(n_neighbors=self.k_neighbors_ + 1).fit(standardized)
        nearest = search.kneighbors(standardized, return_distance=False)[:, 1:]
        return positives[nearest]


def _interpolate(
    array: np.ndarray, base: np.ndarray, partner: np.ndarray, gaps: np.ndarray
) -> np.ndarray:
    """``array`` with rows ``array[base] + gaps * (array[partner] - array[base])`` appended."""
    n_rows = array.shape[0]
    resampled = np.empty((n_rows + base.size, *array.shape[1:]), dtype=array.dtype)
    resampled[:n_rows] = array
    weights = gaps.astype(array.dtype).reshape(-1, *([1] * (array.ndim - 1)))
    for start in range(0, base.size, _CHUNK_ROWS):
        rows = slice(start, start + _CHUNK_ROWS)
        origin = array[base[rows]]
        resampled[n_rows + start : n_rows + start + origin.shape[0]] = origin + weights[rows] * (
            array[partner[rows]] - origin
        )
    return resampled
