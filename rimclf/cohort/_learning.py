"""What is learnt from: the labelled lesions of a lesion table, and per-subject counts (see :mod:`rimclf.cohort`)."""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
import pandas as pd

from rimclf.errors import CohortError

logger = logging.getLogger("rimclf.cohort")


def summarize_cohort(table: pd.DataFrame) -> pd.DataFrame:
    """Per-subject lesion and rim+ counts of a lesion table, with a total row.

    Returns
    -------
    pandas.DataFrame
        Columns ``participant_id, n_lesions, n_rim_pos, n_rim_neg, n_unlabeled``.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"participant_id": ["01", "01", "02", "02", "03"], "lesion_id": [1, 2, 1, 2, 1],
    ...                       "rim": pd.array([1, 0, 0, pd.NA, 1], dtype="Int64")})
    >>> summarize_cohort(table)
      participant_id  n_lesions  n_rim_pos  n_rim_neg  n_unlabeled
    0             01          2          1          1            0
    1             02          2          0          1            1
    2             03          1          1          0            0
    3          total          5          2          2            1
    """
    rim = table["rim"]
    per = pd.DataFrame(
        {
            "participant_id": table["participant_id"],
            "pos": (rim == 1).fillna(False).astype(int),
            "neg": (rim == 0).fillna(False).astype(int),
            "unl": rim.isna().astype(int),
        }
    )
    summary = per.groupby("participant_id", sort=True).agg(
        n_lesions=("pos", "size"), n_rim_pos=("pos", "sum"), n_rim_neg=("neg", "sum"), n_unlabeled=("unl", "sum")
    )
    total = summary.sum().to_frame("total").T
    return pd.concat([summary, total]).rename_axis("participant_id").reset_index()


#: Fewest rim+ and fewest rim- labelled lesions that training, tuning and the benchmark accept.
MIN_LESIONS_PER_CLASS = 2


class LabelledLesions(NamedTuple):
    """The labelled lesions of a lesion table (see :func:`labelled_lesions`).

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"participant_id": ["01", "01", "02", "02", "03"], "lesion_id": [1, 2, 1, 2, 1],
    ...                       "rim": pd.array([1, 0, 0, pd.NA, 1], dtype="Int64")})
    >>> table, y, groups = labelled_lesions(table)    # unpacks like a tuple
    >>> y
    array([1, 0, 0, 1])
    """

    table: pd.DataFrame
    y: np.ndarray
    groups: np.ndarray


def labelled_lesions(table: object, y: object = None, groups: object = None, *, purpose: str = "training") -> LabelledLesions:
    """The lesions to learn from: those with a rim label, with their labels and subjects.

    The one rule of training, tuning and the benchmark: lesions without a rim label (``rim`` is
    ``<NA>``, e.g. absent from ``rims.tsv``) are left out, and their number is logged; every
    label must be 0 or 1; at least :data:`MIN_LESIONS_PER_CLASS` rim+ and as many rim- lesions
    must remain.

    Parameters
    ----------
    table : pandas.DataFrame
        A lesion table of :func:`load_cohort` (or rows of one).
    y : array-like of shape (n_lesions,), optional
        Labels to use instead of the table's ``rim`` column (missing values are unlabelled).
    groups : array-like of shape (n_lesions,), optional
        Subjects to use instead of the table's ``participant_id`` column.
    purpose : str, default="training"
        Names what needs the labels in error messages (e.g. "the benchmark").

    Returns
    -------
    LabelledLesions
        ``(table, y, groups)``: the labelled rows (index reset), their labels (int 0/1) and
        their subjects (str).

    Raises
    ------
    CohortError
        ``table`` is not a lesion table, has no ``rim`` column (and no ``y``), ``y`` or
        ``groups`` do not match its rows, a label is not 0/1, or too few of a class remain.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"participant_id": ["01", "01", "02", "02", "03"], "lesion_id": [1, 2, 1, 2, 1],
    ...                       "rim": pd.array([1, 0, 0, pd.NA, 1], dtype="Int64")})
    >>> labelled = labelled_lesions(table)             # the unlabelled lesion of 02 is left out
    >>> labelled.y, labelled.groups
    (array([1, 0, 0, 1]), array(['01', '01', '02', '03'], dtype='<U2'))
    >>> len(labelled.table)
    4
    """
    if not isinstance(table, pd.DataFrame):
        raise CohortError(f"{purpose} needs the lesion table of rimclf.load_cohort (a pandas DataFrame); got {type(table).__name__}")
    needed = ["participant_id", "lesion_id", *(["rim"] if y is None else [])]
    missing_columns = [column for column in needed if column not in table.columns]
    if missing_columns:
        raise CohortError(f"the lesion table lacks the column(s) {missing_columns}; make it with rimclf.load_cohort (and rims.tsv)")
    labels = table["rim"].to_numpy(dtype=object) if y is None else np.asarray(y, dtype=object).reshape(-1)
    subjects = table["participant_id"].to_numpy() if groups is None else np.asarray(groups)
    for name, values in (("y", labels), ("groups", subjects)):
        if values.shape != (len(table),):
            raise CohortError(f"{name} has shape {values.shape}; it needs one entry per lesion ({len(table)})")
    unlabelled = pd.isna(labels)
    try:
        values = labels[~unlabelled].astype(float)
    except (TypeError, ValueError):
        raise CohortError("rim labels must be 0 or 1 (or missing for unlabelled lesions); found non-numeric ones") from None
    if not np.isin(values, (0.0, 1.0)).all():
        raise CohortError(f"rim labels must be 0 or 1; found {sorted(set(values.tolist()) - {0.0, 1.0})[:5]}")
    n_unlabelled = int(unlabelled.sum())
    if n_unlabelled:
        logger.info("%s: %d unlabelled lesion(s) left out (no rim label)", purpose, n_unlabelled)
    n_positive, n_negative = int(values.sum()), int((values == 0).sum())
    if min(n_positive, n_negative) < MIN_LESIONS_PER_CLASS:
        raise CohortError(
            f"{purpose} needs labelled rim+ and rim- lesions (at least {MIN_LESIONS_PER_CLASS} of each); the table "
            f"has {n_positive} rim+ and {n_negative} rim- labelled lesions ({n_unlabelled} unlabelled)"
        )
    keep = np.flatnonzero(~unlabelled)
    return LabelledLesions(table.iloc[keep].reset_index(drop=True), values.astype(int), subjects[keep].astype(str))
