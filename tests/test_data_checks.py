"""The data checks of :mod:`rimclf._data_checks`: one module, pandas never imported by it."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from rimclf import _data_checks
from rimclf._data_checks import check_groups, check_labels, check_lesion_inputs, check_lesion_table
from rimclf.errors import CohortError

MISSING_CASES = [
    np.array([0.0, np.nan, 1.0]),
    np.array([1, None, 0], dtype=object),
    np.array(["01", None, float("nan"), "02"], dtype=object),
    np.array([0, 1, 1]),
    np.array(["2026-01-01", "NaT"], dtype="datetime64[D]"),
]


@pytest.mark.parametrize("values", MISSING_CASES, ids=lambda v: str(v.dtype))
def test_missing_values_without_pandas_are_those_pandas_finds(values: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without pandas loaded, the numpy fallback finds exactly what ``pandas.isna`` finds."""
    expected = pd.isna(values)
    monkeypatch.delitem(sys.modules, "pandas")
    assert _data_checks._pandas() is None
    np.testing.assert_array_equal(_data_checks._is_missing(values), expected)


def test_pandas_missing_labels_and_groups_are_found() -> None:
    labels = pd.array([1, pd.NA, 0], dtype="Int64")
    with pytest.raises(CohortError, match="y_true holds 1 missing label"):
        check_labels(np.asarray(labels, dtype=object))
    with pytest.raises(CohortError, match="groups holds missing values"):
        check_groups(pd.Series(["01", pd.NA, "02"], dtype="string"), 3)


def test_a_lesion_table_is_a_dataframe_with_its_columns() -> None:
    table = pd.DataFrame({"participant_id": ["01"], "lesion_id": [1]})
    assert check_lesion_table(table, ("participant_id", "lesion_id")) is table
    with pytest.raises(CohortError, match=r"lesion table \(pandas.DataFrame\) of rimclf.load_cohort, got dict"):
        check_lesion_table({"participant_id": ["01"]}, ("participant_id",))
    with pytest.raises(CohortError, match=r"lacks column\(s\) \['qsm'\]"):
        check_lesion_table(table, ("participant_id", "lesion_id", "qsm"))
    with pytest.raises(CohortError, match="missing lesion_id"):
        check_lesion_table(table.assign(lesion_id=[np.nan]), ("lesion_id",))


def test_the_dict_of_arrays_takes_its_vocabulary_from_the_caller() -> None:
    X = {"rim": np.ones((3, 2)), "extra": np.zeros((3, 1))}
    inputs, keys = check_lesion_inputs(X, "tabular", None, known=("rim", "extra"), tabular=("extra", "rim"))
    assert keys == ("extra", "rim") and inputs["tabular"].shape == (3, 3)
    with pytest.raises(CohortError, match=r"unknown keys \['extra'\]"):
        check_lesion_inputs(X, "tabular", None, known=("rim",), tabular=("rim",))
    with pytest.raises(CohortError, match="no 'patches' entry"):
        check_lesion_inputs(X, "both", None, known=("rim", "extra", "patches"), tabular=("rim",))

