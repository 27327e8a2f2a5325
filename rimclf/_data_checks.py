"""The data checks, in one place: labels, scores and groups, lesion tables, the dict of arrays.

Every function raises :class:`~rimclf.errors.CohortError` (the data, not a setting), naming the
argument and repeating what it found, and returns the checked data:

- **labels, scores, groups** of the metrics (:func:`check_labels`, :func:`check_scores`,
  :func:`check_groups`) and the training labels of the network (:func:`check_fit_labels`);
- **a lesion table** (:func:`check_lesion_table`): a ``pandas.DataFrame`` of
  :func:`rimclf.load_cohort` with the columns a step reads;
- **the dict of arrays** a featurizer makes and the network takes (:func:`check_lesion_inputs`):
  its keys, the ``patches`` image block and the tabular blocks joined into one matrix; and the
  one a sampler interpolates, with its labels (:func:`check_float_arrays`).

This module stands in the base of the package (``docs/architecture.md``): it imports numpy and
:mod:`rimclf.errors` only, so every layer can use it. pandas is never imported here: a
``DataFrame`` or a pandas missing value can only reach these checks once pandas is loaded, so
they look pandas up in ``sys.modules`` (:func:`_pandas`) and need nothing when it is not there.
The vocabulary (which keys are features) is the caller's: the classifier passes the names of
:mod:`rimclf.feature_registry`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from types import ModuleType

import numpy as np

from rimclf.errors import CohortError

#: Smallest patch side (voxels) the ResNet3D handles: below it the feature maps collapse to a
#: single voxel and CPU training was seen to turn non-deterministic (and sometimes NaN).
MIN_PATCH_SIDE = 8
#: The entry of X (an image block of :mod:`rimclf.feature_registry`) that the CNN branch takes.
PATCHES = "patches"


def _pandas() -> ModuleType | None:
    """pandas when it is loaded (a DataFrame or ``pd.NA`` can only exist then), else None."""
    return sys.modules.get("pandas")


def _is_missing(values: np.ndarray) -> np.ndarray:
    """Where ``values`` are missing: ``pandas.isna`` when pandas is loaded; else None and NaN
    (the only missing values that exist without pandas)."""
    pandas = _pandas()
    if pandas is not None:
        return np.asarray(pandas.isna(values), dtype=bool)
    if values.dtype.kind in "fc":
        return np.isnan(values)
    if values.dtype.kind in "mM":
        return np.isnat(values)
    if values.dtype.kind == "O":
        missing = np.frompyfunc(lambda value: value is None or (isinstance(value, float) and value != value), 1, 1)
        return np.asarray(missing(values), dtype=bool)
    return np.zeros(values.shape, dtype=bool)


# ------------------------------------------------------------------ labels, scores, groups
def check_labels(y_true: object, name: str = "y_true", *, both_classes: bool = True) -> np.ndarray:
    """Return binary labels as int64, or raise naming ``name``.

    Examples
    --------
    >>> check_labels([0, 1, 1])
    array([0, 1, 1])
    """
    labels = np.asarray(y_true)
    if labels.ndim != 1:
        raise CohortError(f"{name} must be 1-D, got shape {labels.shape}")
    n_missing = int(_is_missing(labels).sum())
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
    if _is_missing(group_array).any():
        raise CohortError("groups holds missing values; every lesion needs a participant_id")
    return group_array


def check_fit_labels(y: object, n_rows: int) -> np.ndarray:
    """Validate training labels (0/1, bool, or pandas Int64 without missing values) -> float32;
    both classes must be present."""
    if y is None:
        raise CohortError("y is required to fit: one 0/1 rim label per lesion")
    try:
        labels = np.asarray(y, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise CohortError(
            "y holds missing or non-numeric labels (e.g. unlabeled lesions, rim <NA>); "
            "fit on labeled lesions only"
        ) from None
    if labels.shape[0] != n_rows:
        raise CohortError(f"y has {labels.shape[0]} labels for {n_rows} lesions in X")
    if not np.isfinite(labels).all():
        raise CohortError(
            f"y holds {int((~np.isfinite(labels)).sum())} missing labels (NaN/None); "
            "fit on labeled lesions only"
        )
    bad = sorted(set(np.unique(labels).tolist()) - {0.0, 1.0})
    if bad:
        raise CohortError(f"y must hold 0 (rim-) or 1 (rim+) labels only; found {bad[:5]}")
    if np.unique(labels).size < 2:
        raise CohortError(
            f"y holds only class {int(labels[0]) if labels.size else 'none'}; "
            "training needs both rim+ (1) and rim- (0) lesions"
        )
    return labels.astype(np.float32)


# ------------------------------------------------------------------ lesion tables
def check_lesion_table(table: object, columns: Sequence[str]) -> object:
    """Check that ``table`` is a lesion table (a ``pandas.DataFrame`` of :func:`rimclf.load_cohort`)
    holding ``columns`` and a ``lesion_id`` without missing values; return it."""
    pandas = _pandas()
    if pandas is None or not isinstance(table, pandas.DataFrame):
        raise CohortError(
            f"X must be the lesion table (pandas.DataFrame) of rimclf.load_cohort, got {type(table).__name__}"
        )
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise CohortError(
            f"the lesion table lacks column(s) {missing} (it has {list(table.columns)}); "
            "pass the table of rimclf.load_cohort or a subset of its rows"
        )
    if "lesion_id" in table.columns and table["lesion_id"].isna().any():
        raise CohortError("the lesion table has missing lesion_id values")
    return table


# ------------------------------------------------------------------ the dict of arrays
def check_lesion_inputs(
    X: object, branches: str, feature_keys: Sequence[str] | None, *, known: Sequence[str], tabular: Sequence[str],
    image: str = PATCHES,
) -> tuple[dict[str, np.ndarray], tuple[str, ...] | None]:
    """Check a dict of arrays X; return the inputs the network's ``branches`` use, as numpy
    arrays, and the tabular entries joined into its ``"tabular"`` input (None without an MLP branch).

    ``known`` are the keys X may have, ``tabular`` the tabular ones in the order they are joined
    (both from :mod:`rimclf.feature_registry`); ``branches`` (``"both"``, ``"patches"`` or
    ``"tabular"``) has been checked by the caller. ``image`` is the entry the image branch reads
    (``"patches"``: ``(n, C, D, H, W)``; ``"surface_map"``: ``(n, C, depths, directions)``), returned
    as ``"patches"``. Images become C-contiguous float32 (no copy
    when they already are) and must be finite. The tabular entries (``feature_keys``, or every
    ``tabular`` entry present in X when None) are joined column-wise into float64 ``"tabular"``,
    which may hold NaN/inf.

    Raises
    ------
    CohortError
        X is not a mapping, misses a needed key, has an unknown key, wrong dimensions,
        non-finite patches, or inputs of different lengths.
    """
    known = tuple(known)
    if not isinstance(X, Mapping):
        raise CohortError(
            f"X must be a SliceDict or dict with keys among {known} (e.g. from "
            f"LesionFeaturizer.transform); got {type(X).__name__}"
        )
    unknown = sorted(set(X) - set(known))
    if unknown:
        raise CohortError(f"X has unknown keys {unknown}; expected keys among {known}")
    inputs: dict[str, np.ndarray] = {}
    keys = None
    if branches != "tabular":
        inputs["patches"] = _check_patches(X, branches, image)
    if branches != "patches":
        tabular = tuple(tabular)
        keys = tuple(key for key in tabular if key in X) if feature_keys is None else tuple(feature_keys)
        if not keys:
            raise CohortError(
                f"X has no tabular features (any of {tabular}), which module__branches={branches!r} "
                f"needs (keys present: {sorted(X)})"
            )
        missing = [key for key in keys if key not in X]
        if missing:
            raise CohortError(
                f"X has no {missing[0]!r} entry; the estimator was fitted on {list(keys)} (keys present: {sorted(X)})"
            )
        parts = []
        for key in keys:
            value = X[key]
            if hasattr(value, "detach"):  # a torch tensor
                value = value.detach().cpu().numpy()
            array = np.asarray(value, dtype=np.float64)
            if array.ndim != 2:
                raise CohortError(f"X[{key!r}] must have shape (n, n_features), got {array.shape}")
            parts.append(array)
        if len({part.shape[0] for part in parts}) > 1:
            raise CohortError(f"X's entries {list(keys)} have different numbers of rows")
        inputs["tabular"] = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
    lengths = {key: array.shape[0] for key, array in inputs.items()}
    if len(set(lengths.values())) > 1:
        raise CohortError(f"X's entries have different numbers of rows: {lengths}")
    return inputs, keys


def _check_patches(X: Mapping, branches: str, image: str = PATCHES) -> np.ndarray:
    if image not in X:
        raise CohortError(
            f"X has no {image!r} entry, which module__branches={branches!r} with module__image={image!r} needs "
            f"(keys present: {sorted(X)})"
        )
    value = X[image]
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    array = np.ascontiguousarray(value, dtype=np.float32)
    if image != PATCHES:  # surface maps (n, channels, depths, directions)
        if array.ndim != 4:
            raise CohortError(f"X[{image!r}] must have shape (n, channels, depths, directions), got {array.shape}")
    elif array.ndim != 5:
        raise CohortError(f"X['patches'] must have shape (n, channels, D, H, W), got {array.shape}")
    elif min(array.shape[2:]) < MIN_PATCH_SIDE:
        raise CohortError(
            f"X['patches'] has spatial shape {array.shape[2:]}; the ResNet3D needs at least "
            f"{MIN_PATCH_SIDE} voxels per side (PatchExtractor(shape=...))"
        )
    n_bad = int(array.size - np.count_nonzero(np.isfinite(array)))
    if n_bad:
        raise CohortError(f"X[{image!r}] holds {n_bad} NaN/inf values; the network's image input must be finite")
    return array


def check_float_arrays(X: object, y: object, hint: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Check a non-empty dict of floating-point arrays with one row per lesion and its 0/1 labels
    ``y`` (what a sampler interpolates); return them as numpy arrays. ``hint`` ends the message
    when X is not a dict."""
    if not isinstance(X, Mapping) or not X:
        raise CohortError(
            "X must be a SliceDict/dict of arrays (e.g. LesionFeaturizer output), got "
            f"{type(X).__name__}; {hint}"
        )
    arrays = {key: np.asarray(value) for key, value in X.items()}
    n_rows = {key: array.shape[0] if array.ndim else 0 for key, array in arrays.items()}
    if len(set(n_rows.values())) != 1:
        raise CohortError(f"the entries of X hold different numbers of rows: {n_rows}")
    labels = np.asarray(y)
    if labels.ndim != 1 or labels.shape[0] != next(iter(n_rows.values())):
        raise CohortError(
            f"y has shape {labels.shape} but X holds {next(iter(n_rows.values()))} rows"
        )
    if not set(np.unique(labels).tolist()) <= {0, 1}:
        raise CohortError(f"y must hold labels 0/1 (1 = rim+), got {np.unique(labels)[:10]}")
    for key, array in arrays.items():
        if array.dtype.kind != "f":
            raise CohortError(
                f"X[{key!r}] must be floating point to interpolate, got {array.dtype}"
            )
    return arrays, labels
