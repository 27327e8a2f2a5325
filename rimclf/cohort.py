"""The input contract: read a cohort from disk into a lesion table.

A cohort is either a BIDS-like directory::

    COHORT/
      participants.tsv                                  participant_id [, site, age, ...]
      rims.tsv                                          participant_id, lesion_id, rim (0/1)
      sub-<label>/anat/sub-<label>_Chimap.nii.gz        QSM in ppb
      sub-<label>/anat/sub-<label>_FLAIR.nii.gz         T2-FLAIR, registered to the QSM
      sub-<label>/anat/sub-<label>_desc-lesions_mask.nii.gz   lesion labels on the QSM grid

or a manifest CSV/TSV with columns ``participant_id, qsm, flair, mask`` (paths relative to the
manifest), with an optional ``rims.tsv`` beside it.

Participant labels name output files (``sub-<label>/...``), so they are BIDS labels: letters and
digits only (``[A-Za-z0-9]+``) after an optional ``sub-`` prefix. Anything else (``-``, ``_``,
``/``, ``..``, spaces) is a :class:`~rimclf.errors.CohortError` naming the file and line.

What is read
------------
:func:`load_cohort` reads the lesion masks in full (it needs every lesion's voxels) but only the
*headers* of QSM and FLAIR (shape, affine, dimensionality), so a 40-subject cohort loads in seconds.
The voxel-level checks of the QSM and FLAIR (NaN/Inf inside the brain, a QSM that looks like ppm)
run when the features are extracted, which reads each volume once anyway, or up front with
``check_data=True``.

What is learnt from
-------------------
:func:`labelled_lesions` is the one rule by which training (:class:`rimclf.RimModel`), tuning
and the benchmark keep the lesions they learn from: those with a rim label.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import ndimage

from rimclf._nifti import (
    AFFINE_TOLERANCE_MM,
    load_header,
    read_labels,
    read_volume,
    spatial_shape,
)
from rimclf._validation import check_choice, check_int
from rimclf.defaults import CONNECTIVITIES, CONNECTIVITY, MIN_VOXELS, QSM_UNIT, QSM_UNITS
from rimclf.errors import CohortError, DataWarning, QSMUnitWarning

logger = logging.getLogger(__name__)

#: Columns of the lesion table, in order.
TABLE_COLUMNS = [
    "participant_id",
    "lesion_id",
    "qsm",
    "flair",
    "mask",
    "n_voxels",
    "volume_mm3",
    "centroid_x",
    "centroid_y",
    "centroid_z",
    "rim",
    "connectivity",
    "qsm_unit",
]

_SUFFIXES = {"qsm": "Chimap", "flair": "FLAIR", "mask": "desc-lesions_mask"}
_CONNECTIVITY_RANK = dict(zip(CONNECTIVITIES, (1, 2, 3)))  # 6: faces, 18: + edges, 26: + corners
#: A "ppb" QSM whose 1st-99th percentile range of nonzero voxels stays within this is probably ppm.
PPM_SUSPICION_LIMIT = 2.0


#: A participant label (BIDS): letters and digits, nothing that could lead elsewhere in a path.
_LABEL = re.compile(r"[A-Za-z0-9]+")


def _strip_sub(label: object) -> str:
    text = str(label).strip()
    return text[4:] if text.startswith("sub-") else text


def check_participant_label(value: object, where: str) -> str:
    """``value`` without its ``sub-`` prefix, checked to be a BIDS label (it names output files)."""
    label = _strip_sub(value)
    if not _LABEL.fullmatch(label):
        raise CohortError(
            f"{where}: participant_id {str(value)!r} is not a valid label: after an optional 'sub-' "
            "prefix it must be letters and digits only ([A-Za-z0-9]+, as in BIDS), since it names "
            "output files"
        )
    return label


def _table_labels(table: pd.DataFrame, path: Path) -> list[str]:
    """The checked participant labels of a table's ``participant_id`` column (line 1 is the header)."""
    return [check_participant_label(value, f"{path}: line {row + 2}") for row, value in enumerate(table["participant_id"])]


def _read_table(path: Path) -> pd.DataFrame:
    sep = "," if path.suffix.lower() == ".csv" else "\t"
    try:
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise CohortError(f"{path}: cannot be read as a {'CSV' if sep == ',' else 'TSV'} table ({exc})") from exc


def _require_columns(table: pd.DataFrame, columns: list[str], path: Path) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise CohortError(f"{path}: missing column(s) {missing}; found {list(table.columns)}")


def _subjects_from_directory(root: Path) -> tuple[pd.DataFrame, Path]:
    participants = root / "participants.tsv"
    if participants.is_file():
        table = _read_table(participants)
        _require_columns(table, ["participant_id"], participants)
        labels = _table_labels(table, participants)
    else:
        labels = sorted(check_participant_label(p.name, f"{root}: folder {p.name}") for p in root.glob("sub-*") if p.is_dir())
        if not labels:
            raise CohortError(f"{root}: no participants.tsv and no sub-* folders; not a rimclf cohort directory")
    rows = []
    for label in labels:
        anat = root / f"sub-{label}" / "anat"
        rows.append(
            {
                "participant_id": label,
                **{kind: str(anat / f"sub-{label}_{suffix}.nii.gz") for kind, suffix in _SUFFIXES.items()},
            }
        )
    return pd.DataFrame(rows, columns=["participant_id", "qsm", "flair", "mask"]), root / "rims.tsv"


def _subjects_from_manifest(manifest: Path) -> tuple[pd.DataFrame, Path]:
    table = _read_table(manifest)
    _require_columns(table, ["participant_id", "qsm", "flair", "mask"], manifest)
    subjects = pd.DataFrame({"participant_id": _table_labels(table, manifest)})
    for kind in ("qsm", "flair", "mask"):
        paths = []
        for value in table[kind]:
            if not value:
                raise CohortError(f"{manifest}: empty '{kind}' path for a participant")
            path = Path(value)
            paths.append(str(path if path.is_absolute() else (manifest.parent / path).resolve()))
        subjects[kind] = paths
    return subjects, manifest.parent / "rims.tsv"


def _structure(connectivity: int) -> np.ndarray:
    return ndimage.generate_binary_structure(3, _CONNECTIVITY_RANK[connectivity])


def _check_connectivity(connectivity: object) -> int:
    return int(check_choice(connectivity, "connectivity", CONNECTIVITIES))


def _is_binary(labels: np.ndarray) -> bool:
    return bool(labels.max(initial=0) <= 1)


def read_lesion_labels(mask_path: str | os.PathLike, connectivity: int) -> tuple[np.ndarray, np.ndarray]:
    """Read a lesion mask as instance labels, exactly as :func:`load_cohort` numbers the lesions.

    Parameters
    ----------
    mask_path : str or path-like
        The lesion mask.
    connectivity : {0, 6, 18, 26}
        0: the mask already holds instance labels 1..K. 6/18/26: it is binary and lesions are its
        connected components under that connectivity (the ``connectivity`` column of the table).

    Returns
    -------
    labels : ndarray of int32, shape (X, Y, Z)
    affine : ndarray of shape (4, 4)
    """
    labels, affine = read_labels(mask_path)
    if connectivity:
        labels, _ = ndimage.label(labels > 0, structure=_structure(_check_connectivity(connectivity)))
        labels = labels.astype(np.int32)
    return labels, affine


def read_qsm(path: str | os.PathLike, unit: str = QSM_UNIT) -> tuple[np.ndarray, np.ndarray]:
    """Read a QSM volume in ppb.

    Parameters
    ----------
    path : str or path-like
    unit : {"ppb", "ppm"}, default="ppb"
        The unit the file is stored in; "ppm" is multiplied by 1000.

    Warns
    -----
    QSMUnitWarning
        When ``unit="ppb"`` but the 1st-99th percentile range of the nonzero voxels lies within
        ±2, which is typical of a map in ppm: the radiomics bin width (25) assumes ppb.
    """
    check_choice(unit, "qsm_unit", QSM_UNITS)
    data, affine = read_volume(path)
    if unit == "ppm":
        return data * np.float32(1000.0), affine
    nonzero = data[data != 0]
    if nonzero.size:
        low, high = np.percentile(nonzero, [1, 99])
        if max(abs(low), abs(high)) < PPM_SUSPICION_LIMIT:
            warnings.warn(
                f"{path}: QSM values span only [{low:.3g}, {high:.3g}] (1st-99th percentile), "
                "which looks like ppm; rimclf expects ppb (radiomics bin width 25 ppb). "
                "Pass qsm_unit='ppm' to convert.",
                QSMUnitWarning,
                stacklevel=2,
            )
    return data, affine


def _world_bounds(shape: tuple[int, int, int], affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    corners = np.array([[i, j, k, 1.0] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1) for k in (0, shape[2] - 1)])
    world = corners @ np.asarray(affine).T
    return world[:, :3].min(axis=0), world[:, :3].max(axis=0)


def _subject_lesions(subject: pd.Series, *, connectivity: int, min_voxels: int) -> tuple[pd.DataFrame, set[int], int]:
    qsm_path, flair_path, mask_path = Path(subject["qsm"]), Path(subject["flair"]), Path(subject["mask"])
    qsm = load_header(qsm_path)
    flair = load_header(flair_path)
    labels, mask_affine = read_labels(mask_path)
    qsm_shape = spatial_shape(qsm)
    if labels.shape != qsm_shape:
        raise CohortError(
            f"{mask_path.name}: shape {labels.shape} differs from {qsm_path.name} {qsm_shape}; "
            "the lesion mask must be on the QSM grid"
        )
    affine_gap = float(np.abs(mask_affine - np.asarray(qsm.affine)).max())
    if affine_gap > AFFINE_TOLERANCE_MM:
        raise CohortError(
            f"{mask_path.name}: affine differs from {qsm_path.name} by {affine_gap:.3g} mm; "
            "the lesion mask must be on the QSM grid"
        )
    qsm_low, qsm_high = _world_bounds(qsm_shape, np.asarray(qsm.affine))
    flair_low, flair_high = _world_bounds(spatial_shape(flair), np.asarray(flair.affine))
    if np.any(flair_high < qsm_low) or np.any(flair_low > qsm_high):
        raise CohortError(
            f"{flair_path.name}: its field of view does not overlap {qsm_path.name} in world space; "
            "the FLAIR must be registered to the QSM"
        )
    used_connectivity = 0
    if _is_binary(labels):
        labels, _ = ndimage.label(labels > 0, structure=_structure(connectivity))
        used_connectivity = connectivity
    counts = np.bincount(labels.ravel())
    all_ids = {int(i) for i in np.flatnonzero(counts) if i > 0}
    keep = np.array(sorted(i for i in all_ids if counts[i] >= min_voxels), dtype=int)
    n_small = len(all_ids) - len(keep)
    if keep.size:
        index = list(keep)
        centroids_vox = np.array(ndimage.center_of_mass(np.ones(labels.shape, dtype=np.uint8), labels, index))
        affine = np.asarray(qsm.affine, dtype=float)
        centroids = centroids_vox @ affine[:3, :3].T + affine[:3, 3]
    else:
        centroids = np.zeros((0, 3))
    voxel_volume = float(abs(np.linalg.det(np.asarray(qsm.affine)[:3, :3])))
    lesions = pd.DataFrame(
        {
            "participant_id": subject["participant_id"],
            "lesion_id": keep,
            "qsm": str(qsm_path),
            "flair": str(flair_path),
            "mask": str(mask_path),
            "n_voxels": counts[keep].astype(int) if keep.size else np.zeros(0, dtype=int),
            "volume_mm3": counts[keep] * voxel_volume if keep.size else np.zeros(0),
            "centroid_x": centroids[:, 0],
            "centroid_y": centroids[:, 1],
            "centroid_z": centroids[:, 2],
            "connectivity": used_connectivity,
        }
    )
    return lesions, all_ids, n_small


def _read_rims(path: Path, lesion_ids: dict[str, set[int]]) -> pd.DataFrame:
    table = _read_table(path)
    _require_columns(table, ["participant_id", "lesion_id", "rim"], path)
    table["participant_id"] = pd.Series([_strip_sub(p) for p in table["participant_id"]], index=table.index, dtype=object)
    try:
        table["lesion_id"] = table["lesion_id"].astype(int)
    except ValueError as exc:
        raise CohortError(f"{path}: lesion_id must be integers ({exc})") from exc
    bad_rim = ~table["rim"].isin(["0", "1", ""])
    if bad_rim.any():
        raise CohortError(f"{path}: rim must be 0 or 1 (or empty for unlabeled), got {table['rim'][bad_rim].iloc[0]!r}")
    duplicated = table.duplicated(["participant_id", "lesion_id"])
    if duplicated.any():
        row = table[duplicated].iloc[0]
        raise CohortError(f"{path}: lesion sub-{row['participant_id']} {row['lesion_id']} is listed more than once")
    for row in table.itertuples(index=False):
        if row.participant_id not in lesion_ids:
            raise CohortError(f"{path}: participant sub-{row.participant_id} is not in the cohort")
        if row.lesion_id not in lesion_ids[row.participant_id]:
            raise CohortError(
                f"{path}: lesion {row.lesion_id} of sub-{row.participant_id} does not exist in its mask "
                f"(labels present: {sorted(lesion_ids[row.participant_id])[:20]})"
            )
    return pd.DataFrame(
        {
            "participant_id": pd.array(table["participant_id"].tolist(), dtype=object),
            "lesion_id": table["lesion_id"].to_numpy(dtype=int),
            "rim": pd.array([int(v) if v else pd.NA for v in table["rim"]], dtype="Int64"),
        }
    )


def _warn_dropped_rim_positive(labels: pd.DataFrame, table: pd.DataFrame, rims_path: Path, min_voxels: int) -> None:
    """A :class:`DataWarning` when ``min_voxels`` left out lesions that ``rims_path`` labels rim+."""
    kept = set(zip(table["participant_id"], table["lesion_id"].astype(int)))
    positive = labels[labels["rim"].fillna(0).astype(int) == 1]
    dropped = [(p, int(i)) for p, i in zip(positive["participant_id"], positive["lesion_id"]) if (p, int(i)) not in kept]
    if dropped:
        examples = ", ".join(f"sub-{p} lesion {i}" for p, i in dropped[:5])
        warnings.warn(
            f"{rims_path}: {len(dropped)} rim+ lesion(s) left out because they have fewer than "
            f"min_voxels={min_voxels} voxels ({examples}{', ...' if len(dropped) > 5 else ''}); "
            "lower min_voxels (--min-voxels) to keep them",
            DataWarning,
            stacklevel=3,
        )


def load_cohort(
    path: str | os.PathLike,
    *,
    min_voxels: int = MIN_VOXELS,
    connectivity: int = CONNECTIVITY,
    qsm_unit: str = QSM_UNIT,
    rims: str | os.PathLike | None = None,
    check_data: bool = False,
) -> pd.DataFrame:
    """Read a cohort into a lesion table, one row per lesion.

    Parameters
    ----------
    path : str or path-like
        A BIDS-like cohort directory or a manifest ``.csv``/``.tsv`` with columns
        ``participant_id, qsm, flair, mask`` (paths relative to the manifest).
    min_voxels : int, default=8
        Lesions with fewer voxels are left out (their count is logged): pyradiomics cannot
        compute shape features of tiny masks. Leaving out a lesion that ``rims`` labels rim+
        issues a :class:`~rimclf.errors.DataWarning` with their count.
    connectivity : {6, 18, 26}, default=26
        Connectivity used to split a binary (0/1) mask into lesions.
    qsm_unit : {"ppb", "ppm"}, default="ppb"
        Unit of the QSM files; recorded in the table, "ppm" is converted when volumes are read.
    rims : str or path-like, optional
        Rim labels (``participant_id, lesion_id, rim``). Default: ``rims.tsv`` in the cohort
        directory (or beside the manifest) when it exists; without it every ``rim`` is ``<NA>``.
    check_data : bool, default=False
        Also read every QSM and FLAIR in full now to check for NaN/Inf inside the brain and a
        QSM that looks like ppm (otherwise these checks run during feature extraction).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`TABLE_COLUMNS`: ``participant_id`` (without "sub-"), ``lesion_id`` (instance
        label), ``qsm``/``flair``/``mask`` (absolute paths), ``n_voxels``, ``volume_mm3``,
        ``centroid_x/y/z`` (world mm, from the affine), ``rim`` (Int64, <NA> when unlabeled),
        ``connectivity`` (0 for instance masks, else the connectivity used to split a binary mask),
        ``qsm_unit``. Sorted by participant then lesion.

    Raises
    ------
    CohortError
        For every bad input file or table, naming the file and the problem: among them a
        participant label that is not letters and digits, a damaged ``.nii.gz``, a mask label
        above :data:`rimclf._nifti.MAX_LABEL`.
    ParameterError
        For a bad ``min_voxels``, ``connectivity`` or ``qsm_unit``.
    """
    check_int(min_voxels, "min_voxels", min=1)
    connectivity = _check_connectivity(connectivity)
    check_choice(qsm_unit, "qsm_unit", QSM_UNITS)
    root = Path(path).expanduser().resolve()
    if root.is_dir():
        subjects, default_rims = _subjects_from_directory(root)
    elif root.is_file():
        subjects, default_rims = _subjects_from_manifest(root)
    else:
        raise CohortError(f"{root}: no such cohort directory or manifest file")
    duplicated = subjects["participant_id"].duplicated()
    if duplicated.any():
        raise CohortError(f"{root}: participant sub-{subjects['participant_id'][duplicated].iloc[0]} is listed twice")

    tables, lesion_ids, n_small = [], {}, 0
    for _, subject in subjects.iterrows():
        lesions, ids, small = _subject_lesions(subject, connectivity=connectivity, min_voxels=min_voxels)
        tables.append(lesions)
        lesion_ids[subject["participant_id"]] = ids
        n_small += small
        if check_data:
            read_qsm(subject["qsm"], qsm_unit)
            read_volume(subject["flair"])
    if n_small:
        logger.info("left out %d lesion(s) smaller than min_voxels=%d", n_small, min_voxels)
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=TABLE_COLUMNS)

    rims_path = Path(rims) if rims is not None else default_rims
    if rims is not None and not rims_path.is_file():
        raise CohortError(f"{rims_path}: rims file not found")
    if rims_path.is_file():
        labels = _read_rims(rims_path, lesion_ids)
        _warn_dropped_rim_positive(labels, table, rims_path, min_voxels)
        table = table.merge(labels, on=["participant_id", "lesion_id"], how="left")
    else:
        table["rim"] = pd.array([pd.NA] * len(table), dtype="Int64")
    table["rim"] = table["rim"].astype("Int64")
    table["qsm_unit"] = qsm_unit
    table["lesion_id"] = table["lesion_id"].astype(int)
    table["n_voxels"] = table["n_voxels"].astype(int)
    table["connectivity"] = table["connectivity"].astype(int)
    for column in ("volume_mm3", "centroid_x", "centroid_y", "centroid_z"):
        table[column] = table[column].astype(float)
    table = table.sort_values(["participant_id", "lesion_id"], kind="stable").reset_index(drop=True)
    return table[TABLE_COLUMNS]


def summarize_cohort(table: pd.DataFrame) -> pd.DataFrame:
    """Per-subject lesion and rim+ counts of a lesion table, with a total row.

    Returns
    -------
    pandas.DataFrame
        Columns ``participant_id, n_lesions, n_rim_pos, n_rim_neg, n_unlabeled``.
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
    """The labelled lesions of a lesion table (see :func:`labelled_lesions`)."""

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
