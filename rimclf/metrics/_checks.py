"""Input checks shared by the metric functions: errors name the argument and repeat the value.

Labels, scores and groups are data (:class:`~rimclf.errors.CohortError`); a fraction such as
``max_fpr`` is a setting (:class:`~rimclf.errors.ParameterError`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rimclf._validation import check_real
from rimclf.errors import CohortError


def check_labels(y_true: object, name: str = "y_true", *, both_classes: bool = True) -> np.ndarray:
    """Return binary labels as int64, or raise naming ``name``."""
    labels = np.asarray(y_true)
    if labels.ndim != 1:
        raise CohortError(f"{name} must be 1-D, got shape {labels.shape}")
    n_missing = int(pd.isna(labels).sum())
    if n_missing:
        raise CohortError(
            f"{name} holds {n_missing} missing label(s); drop unlabeled lesions first"
        )
    values = set(np.unique(labels).tolist())
    if not values <= {0, 1}:
        shown = sorted(values, key=str)[:10]
        raise CohortError(f"{name} must hold binary labels 0/1 (1 = rim+), got values {shown}")
    if both_classes and len(values) < 2:
        raise CohortError(
            f"{name} holds a single class {sorted(values)}; the metric needs rim+ and rim- lesions"
        )
    return labels.astype(np.int64)


def check_scores(y_score: object, n_samples: int, name: str = "y_score") -> np.ndarray:
    """Return finite float64 scores of length ``n_samples``, or raise naming ``name``."""
    scores = np.asarray(y_score)
    if scores.ndim == 2 and scores.shape[1] == 2:
        raise CohortError(
            f"{name} has shape {scores.shape}: pass the rim+ column only, "
            "e.g. predict_proba(X)[:, 1]"
        )
    if scores.ndim != 1:
        raise CohortError(f"{name} must be 1-D, got shape {scores.shape}")
    if scores.shape[0] != n_samples:
        raise CohortError(f"{name} has {scores.shape[0]} values but y_true has {n_samples}")
    if scores.dtype.kind not in "biuf":
        raise CohortError(f"{name} must be numeric, got dtype {scores.dtype}")
    scores = scores.astype(np.float64)
    n_bad = int((~np.isfinite(scores)).sum())
    if n_bad:
        raise CohortError(f"{name} holds {n_bad} NaN/Inf value(s)")
    return scores


def check_groups(groups: object, n_samples: int) -> np.ndarray:
    """Return subject ids of length ``n_samples`` without missing values."""
    if groups is None:
        raise CohortError("groups is required: pass the participant_id of every lesion")
    group_array = np.asarray(groups)
    if group_array.ndim != 1 or group_array.shape[0] != n_samples:
        raise CohortError(
            f"groups has shape {group_array.shape} but y_true has {n_samples} values"
        )
    if pd.isna(group_array).any():
        raise CohortError("groups holds missing values; every lesion needs a participant_id")
    return group_array


def check_fraction(value: object, name: str, *, low_open: bool) -> float:
    """Return ``value`` as a float in (0, 1] (``low_open``) or [0, 1], or raise naming ``name``."""
    return check_real(value, name, min=0.0, max=1.0, closed="right" if low_open else "both")
