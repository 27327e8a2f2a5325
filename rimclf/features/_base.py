"""The one base of the lesion feature extractors: ``fit``, ``transform``, tags and output shape.

An extractor (registered in :mod:`rimclf.feature_registry`) derives from
:class:`LesionExtractor` and writes four methods:

- ``_validate()``: check the parameters (raise :class:`~rimclf.errors.ParameterError`);
- ``required_columns()``: the lesion-table columns it reads;
- ``cache_key()``: the settings its output depends on besides the files (JSON);
- ``extract_subject(volumes, notes)``: the rows of one subject's distinct lesions;

and, for a tabular block, ``get_feature_names_out()`` (its columns). The base gives the rest:
a stateless ``fit`` that checks, a ``transform`` over the lesion table subject by subject,
the sklearn tags of a transformer of lesion tables, and :meth:`output_shape`.
:class:`~rimclf.features.LesionFeaturizer` adds parallelism and caching around
``extract_subject``.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from rimclf._data_checks import check_lesion_table
from rimclf.features._subject import (
    CENTROID_COLUMNS,
    Note,
    SubjectVolumes,
    emit_notes,
    group_by_subject,
)


class LesionExtractor(TransformerMixin, BaseEstimator, metaclass=ABCMeta):
    """Base of the extractors: the lesion table in, one block of features per lesion out."""

    #: value of a lesion's row before (or without) extraction, and the output dtype
    _fill = np.nan
    _dtype = np.float64

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.two_d_array = False  # X is the lesion table (a DataFrame of paths and ids)
        tags.input_tags.string = True
        return tags

    @abstractmethod
    def _validate(self) -> None:
        """Check the parameters (raise :class:`~rimclf.errors.ParameterError`)."""

    @abstractmethod
    def required_columns(self) -> tuple[str, ...]:
        """Lesion-table columns this extractor reads."""

    @abstractmethod
    def cache_key(self) -> dict:
        """The settings the output depends on besides the files."""

    @abstractmethod
    def extract_subject(self, volumes: SubjectVolumes, notes: list[Note]) -> np.ndarray:
        """The rows of the subject's distinct lesions (``volumes.task.lesion_ids``)."""

    def output_shape(self) -> tuple[int, ...]:
        """The shape of one lesion's output: ``(n_features,)`` for a tabular block."""
        return (len(self.get_feature_names_out()),)

    def fit(self, X=None, y=None):
        """Check the parameters (and the table's columns when given). Nothing is learnt."""
        self._validate()
        if X is not None:
            check_lesion_table(X, self.required_columns())
        return self

    def transform(self, X) -> np.ndarray:
        """The features of every row of the lesion table, in table order, shape ``(n, *output_shape())``.

        Subjects are processed one after the other; :class:`~rimclf.features.LesionFeaturizer`
        adds parallelism and caching.
        """
        self._validate()
        columns = self.required_columns()
        table = check_lesion_table(X, columns)
        out = np.full((len(table), *self.output_shape()), self._fill, dtype=self._dtype)
        notes: list[Note] = []
        subjects = group_by_subject(
            table, with_flair="flair" in columns, with_centroids=set(CENTROID_COLUMNS) <= set(columns)
        )
        for task, rows, lesion_index in subjects:
            out[rows] = self.extract_subject(SubjectVolumes(task, notes), notes)[lesion_index]
        emit_notes(notes)
        return out
