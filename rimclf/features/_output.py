"""What the lesion transformers return, and their answer to scikit-learn's ``set_output``.

:class:`LesionFeatures` is the ``SliceDict`` that :class:`~rimclf.features.LesionFeaturizer`
returns, knowing the names of its tabular columns, so that a baseline fitted on it can name its
feature importances. :class:`DictOutputMixin` refuses ``set_output(transform="pandas")`` (and
"polars") with a clear message for the transformers whose output is not a table (a dict of
arrays, or 5-D patches), and keeps the global ``sklearn.set_config(transform_output="pandas")``
from touching their output.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from skorch.helper import SliceDict

from rimclf.errors import ParameterError


class LesionFeatures(SliceDict):
    """A :class:`skorch.helper.SliceDict` of lesion features that knows its column names.

    Parameters
    ----------
    feature_names : mapping of str to sequence of str, optional
        Names of the columns of the tabular entries (``"rim"``, ``"radiomics"``).
    **arrays
        The entries, one row per lesion (as ``SliceDict``).

    Attributes
    ----------
    feature_names : dict of str to numpy.ndarray of str
        Selecting rows (``X[train]``, as cross-validation does) and ``copy()`` keep them.
        :class:`rimclf.baselines.SelectFeatures` reads them to name the columns it passes on.

    Examples
    --------
    >>> import numpy as np
    >>> X = LesionFeatures(feature_names={"rim": ["rim_contrast", "rim_coverage"]},
    ...                    rim=np.zeros((4, 2), dtype=np.float32), patches=np.zeros((4, 1, 8, 8, 8), dtype=np.float32))
    >>> X.shape                                          # rows, as sklearn sees them
    (4,)
    >>> X[[0, 2]]["patches"].shape                       # rows are selected in every entry
    (2, 1, 8, 8, 8)
    >>> X[[0, 2]].feature_names["rim"].tolist()          # and keep their column names
    ['rim_contrast', 'rim_coverage']
    """

    def __init__(self, feature_names: Mapping | None = None, **arrays) -> None:
        super().__init__(**arrays)
        self.feature_names = {key: np.asarray(names, dtype=object) for key, names in (feature_names or {}).items()}

    def __getitem__(self, item):
        if isinstance(item, str):
            return super().__getitem__(item)
        rows = super().__getitem__(item)
        rows.feature_names = self.feature_names
        return rows

    def copy(self) -> LesionFeatures:
        return type(self)(feature_names=self.feature_names, **self)


class DictOutputMixin:
    """``set_output`` for a transformer whose output is no table (declare the class with
    ``auto_wrap_output_keys=None`` so that scikit-learn never wraps its ``transform``).

    ``set_output(transform="default")`` (or None) is accepted and changes nothing; "pandas" and
    "polars" raise :class:`~rimclf.errors.ParameterError` saying why and what to use instead.
    """

    #: what ``transform`` returns, and what to use for a DataFrame (set by each class)
    _output_description = "a dict of arrays"
    _table_alternative = "RimProfileExtractor or RadiomicsExtractor, which support set_output(transform='pandas')"

    def set_output(self, *, transform: str | None = None):
        """Accept ``transform="default"`` or None; refuse a DataFrame container.

        Parameters
        ----------
        transform : {"default"} or None, default=None

        Returns
        -------
        self

        Raises
        ------
        ParameterError
            ``transform`` is "pandas", "polars" or another container.
        """
        if transform is None or (isinstance(transform, str) and transform == "default"):
            return self
        raise ParameterError(
            f"{type(self).__name__}.set_output(transform={transform!r}) is not supported: transform returns "
            f"{self._output_description}, which has no DataFrame form; use {self._table_alternative}"
        )
