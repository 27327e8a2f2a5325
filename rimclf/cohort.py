"""The input contract: read a cohort from disk into a lesion table.

A cohort is either a BIDS dataset (raw data, lesion masks raw or in any derivatives pipeline)::

    COHORT/
      participants.tsv                                  participant_id [, site, age, ...] (optional)
      rims.tsv                                          participant_id [, session], lesion_id, rim (0/1)
      sub-<s>/[ses-<t>/]anat/sub-<s>[_ses-<t>]_Chimap.nii[.gz]   QSM (+ optional .json sidecar: "Units")
      sub-<s>/[ses-<t>/]anat/sub-<s>[_ses-<t>]_FLAIR.nii[.gz]    T2-FLAIR, registered to the QSM
      lesion masks, instance labels 1..K (or binary 0/1) on the QSM grid, either raw or derived:
      sub-<s>/[ses-<t>/]anat/sub-<s>[_ses-<t>]_desc-lesions_{mask,dseg}.nii[.gz]
      derivatives/<pipeline>/sub-<s>/[ses-<t>/]anat/sub-<s>[_ses-<t>]_desc-lesions_{mask,dseg}.nii[.gz]

found with pybids (:mod:`rimclf._bids`; several pipelines holding masks need ``derivatives=``), or
a manifest CSV/TSV with columns ``participant_id, [session,] qsm, flair, mask`` (paths relative to
the manifest; rows of one participant with different sessions are fine, a repeated
(participant, session) is an error), with an optional ``rims.tsv`` beside it. The rim labels are
``rims=`` when given, else ``COHORT/rims.tsv``, else ``rims.tsv`` of the derivatives pipeline the
masks came from (where the phantom keeps them).

Participant and session labels name output files (``sub-<s>[_ses-<t>]...``), so they are BIDS
labels: letters and digits only (``[A-Za-z0-9]+``) after an optional ``sub-``/``ses-`` prefix.
Anything else (``-``, ``_``, ``/``, ``..``, spaces) is a :class:`~rimclf.errors.CohortError`
naming the file and line.

Sessions
--------
A lesion is identified by ``(participant_id, session, lesion_id)``. The ``session`` column holds
the BIDS session label without ``ses-``, or the empty string ``""`` for a dataset (or manifest
row) without sessions: a plain string, so that grouping, merging and sorting never drop it, as
they would a missing value. Subject-grouped cross-validation still groups by ``participant_id``,
so the sessions of one subject never straddle folds.

QSM units
---------
rimclf computes in ppb (the radiomics bin width of 25 assumes ppb) and converts when it reads a
QSM. The unit of each QSM is, in order: ``qsm_unit="ppm"``/``"ppb"`` when given (it overrides
everything, e.g. for a manifest without sidecars); else the ``Units`` of the QSM's JSON sidecar
(``"ppm"`` or ``"ppb"``; for a BIDS directory with BIDS inheritance, so a dataset-level
``Chimap.json`` serves every subject; for a manifest the ``.json`` beside the file); else ppm,
the BIDS unit of ``Chimap``. The ``qsm_unit`` column records the unit so resolved. A QSM whose
values contradict its unit (the 1st-99th percentile of nonzero voxels beyond
+-:data:`PPM_SUSPICION_LIMIT` for ppm, within it for ppb) is a
:class:`~rimclf.errors.CohortError` saying how to declare the unit (:func:`read_qsm`).

What is read
------------
:func:`load_cohort` reads the lesion masks in full (it needs every lesion's voxels) but only the
*headers* of QSM and FLAIR (shape, affine, dimensionality) and the sidecars, so a 60-subject
cohort loads in seconds. The voxel-level checks of the QSM and FLAIR (NaN/Inf inside the brain,
a QSM whose values contradict its unit) run when the features are extracted, which reads each
volume once anyway, or up front with ``check_data=True``.

What is learnt from
-------------------
:func:`labelled_lesions` is the one rule by which training (:class:`rimclf.RimModel`), tuning
and the benchmark keep the lesions they learn from: those with a rim label.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import ndimage

from rimclf._bids import check_label, find_scans, read_sidecar, scan_name, sidecar_path, subject_folders
from rimclf._nifti import (
    AFFINE_TOLERANCE_MM,
    load_header,
    read_labels,
    read_volume,
    spatial_shape,
)
from rimclf._validation import check_choice, check_int
from rimclf.defaults import CONNECTIVITIES, CONNECTIVITY, MIN_VOXELS, QSM_UNIT, QSM_UNIT_CHOICES, QSM_UNITS
from rimclf.errors import CohortError, DataWarning

logger = logging.getLogger(__name__)

#: Columns of the lesion table, in order. ``session`` is the BIDS session label without ``ses-``,
#: or ``""`` without sessions; ``qsm_unit`` the resolved unit of the QSM file ("ppb" or "ppm").
TABLE_COLUMNS = [
    "participant_id",
    "session",
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
#: What identifies a lesion in the table, in ``rims.tsv`` and in every output.
LESION_KEY = ["participant_id", "session", "lesion_id"]

_CONNECTIVITY_RANK = dict(zip(CONNECTIVITIES, (1, 2, 3)))  # 6: faces, 18: + edges, 26: + corners
#: A QSM whose 1st-99th percentile range of nonzero voxels stays within +-this is in ppm; one
#: reaching beyond it is in ppb (brain susceptibility spans about +-0.3 ppm, i.e. +-300 ppb).
PPM_SUSPICION_LIMIT = 2.0
_SCAN_COLUMNS = ["participant_id", "session", "qsm", "flair", "mask", "qsm_unit"]


def check_participant_label(value: object, where: str) -> str:
    """``value`` without its ``sub-`` prefix, checked to be a BIDS label (it names output files)."""
    return check_label(value, where)


def check_session_label(value: object, where: str) -> str:
    """``value`` without its ``ses-`` prefix, checked to be a BIDS label; ``""`` (no session) stays ``""``."""
    if pd.isna(value) or str(value).strip() in ("", "n/a"):
        return ""
    return check_label(value, where, entity="session", prefix="ses-")


def _strip_sub(label: object) -> str:
    text = str(label).strip()
    return text[4:] if text.startswith("sub-") else text


def _table_labels(table: pd.DataFrame, path: Path) -> list[str]:
    """The checked participant labels of a table's ``participant_id`` column (line 1 is the header)."""
    return [check_participant_label(value, f"{path}: line {row + 2}") for row, value in enumerate(table["participant_id"])]


def _table_sessions(table: pd.DataFrame, path: Path) -> list[str]:
    """The checked session labels of a table's optional ``session`` column (``""`` without)."""
    if "session" not in table.columns:
        return [""] * len(table)
    return [check_session_label(value, f"{path}: line {row + 2}") for row, value in enumerate(table["session"])]


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


def _unit(requested: str, declared: object, where: str) -> str:
    """The QSM unit: ``requested`` unless "auto", else the sidecar's ``declared`` Units, else ppm (BIDS)."""
    if requested != "auto":
        return requested
    if declared is None:
        return "ppm"
    unit = str(declared).strip().lower()
    if unit not in QSM_UNITS:
        raise CohortError(
            f"{where}: \"Units\": {declared!r} is not a QSM unit rimclf reads; write \"ppm\" (the BIDS unit of "
            "Chimap) or \"ppb\", or pass qsm_unit='ppm'/'ppb' (--qsm-unit) to override it"
        )
    return unit


def _expected(scan, kind: str, root: Path, derivatives: str | None) -> str:
    """A scan's file of ``kind``, or a CohortError naming where it was looked for."""
    path = getattr(scan, kind)
    if path is not None:
        return path
    name = scan_name(scan.participant_id, scan.session)
    anat = Path(scan.qsm).parent
    if kind == "flair":
        raise CohortError(f"{anat / (name + '_FLAIR.nii.gz')}: file not found (nor {name}_FLAIR.nii)")
    where = (
        f"in derivatives/{derivatives}/{anat.relative_to(root)} (derivatives={derivatives!r})"
        if derivatives
        else f"in {anat} and in derivatives/<pipeline>/{anat.relative_to(root)}"
    )
    raise CohortError(
        f"{name}: no lesion mask found: looked for {name}[_<entities>]_desc-lesions_mask.nii[.gz] or "
        f"..._desc-lesions_dseg.nii[.gz] {where}"
    )


def _subjects_from_directory(root: Path, qsm_unit: str, derivatives: str | None) -> tuple[pd.DataFrame, Path | None]:
    participants = root / "participants.tsv"
    if participants.is_file():
        table = _read_table(participants)
        _require_columns(table, ["participant_id"], participants)
        labels = _table_labels(table, participants)
        duplicated = pd.Series(labels).duplicated()
        if duplicated.any():
            raise CohortError(f"{participants}: participant sub-{pd.Series(labels)[duplicated].iloc[0]} is listed twice")
    else:
        labels = subject_folders(root)
        if not labels:
            raise CohortError(f"{root}: no participants.tsv and no sub-* folders; not a rimclf cohort directory")
    found = find_scans(root, labels, derivatives=derivatives)
    rows = []
    for scan in found.scans:
        if not Path(scan.qsm).exists():
            raise CohortError(f"{scan.qsm}: file not found (nor .nii; no *_Chimap.nii[.gz] for {scan_name(scan.participant_id, scan.session)})")
        rows.append(
            {
                "participant_id": scan.participant_id,
                "session": scan.session,
                "qsm": scan.qsm,
                "flair": _expected(scan, "flair", root, derivatives),
                "mask": _expected(scan, "mask", root, derivatives),
                "qsm_unit": _unit(qsm_unit, scan.qsm_units, f"the JSON sidecar(s) of {Path(scan.qsm).name}"),
            }
        )
    rims = root / "rims.tsv"
    if not rims.is_file() and found.pipeline:
        rims = root / "derivatives" / found.pipeline / "rims.tsv"
    return pd.DataFrame(rows, columns=_SCAN_COLUMNS), rims


def _subjects_from_manifest(manifest: Path, qsm_unit: str) -> tuple[pd.DataFrame, Path]:
    table = _read_table(manifest)
    _require_columns(table, ["participant_id", "qsm", "flair", "mask"], manifest)
    subjects = pd.DataFrame({"participant_id": _table_labels(table, manifest), "session": _table_sessions(table, manifest)})
    for kind in ("qsm", "flair", "mask"):
        paths = []
        for value in table[kind]:
            if not value:
                raise CohortError(f"{manifest}: empty '{kind}' path for a participant")
            path = Path(value)
            paths.append(str(path if path.is_absolute() else (manifest.parent / path).resolve()))
        subjects[kind] = paths
    subjects["qsm_unit"] = [
        _unit(qsm_unit, read_sidecar(path).get("Units") if qsm_unit == "auto" else None, str(sidecar_path(path)))
        for path in subjects["qsm"]
    ]
    return subjects[_SCAN_COLUMNS], manifest.parent / "rims.tsv"


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


def _file_unit(path: str | os.PathLike, unit: str | None) -> str:
    """``unit``, or for "auto"/None the ``Units`` of the sidecar beside ``path``, else ppm (BIDS)."""
    unit = "auto" if unit is None else unit
    check_choice(unit, "qsm_unit", QSM_UNIT_CHOICES)
    return _unit(unit, read_sidecar(path).get("Units") if unit == "auto" else None, str(sidecar_path(path)))


def check_qsm_unit(data: np.ndarray, unit: str, path: str | os.PathLike) -> None:
    """Raise a :class:`CohortError` when a QSM's values contradict its unit, saying how to declare it.

    The 1st-99th percentile range of the nonzero voxels within +-:data:`PPM_SUSPICION_LIMIT` is
    ppm, beyond it ppb (brain susceptibility spans about +-0.3 ppm).
    """
    nonzero = data[data != 0]
    if not nonzero.size:
        return
    low, high = (float(v) for v in np.percentile(nonzero, [1, 99]))
    looks = "ppm" if max(abs(low), abs(high)) < PPM_SUSPICION_LIMIT else "ppb"
    if looks == unit:
        return
    sidecar = sidecar_path(path)
    try:
        declared = read_sidecar(path).get("Units")
    except CohortError:
        declared = None
    if declared is not None and str(declared).strip().lower() == unit:
        source = f"'Units' in {sidecar.name}"
    elif unit == "ppm":
        source = "the BIDS default for Chimap: no 'Units' in its sidecar"
    else:
        source = f"qsm_unit='{unit}' or a dataset-level sidecar"
    raise CohortError(
        f"{path}: QSM values span {low:.3g}..{high:.3g} (1st-99th percentile of nonzero voxels), which is "
        f"{looks}, but its unit is {unit} ({source}); declare the unit: add \"Units\": \"{looks}\" to "
        f"{sidecar.name} or pass qsm_unit='{looks}' (--qsm-unit {looks})"
    )


def read_qsm(path: str | os.PathLike, unit: str | None = QSM_UNIT) -> tuple[np.ndarray, np.ndarray]:
    """Read a QSM volume in ppb, checking that its values fit its unit.

    Parameters
    ----------
    path : str or path-like
    unit : {"auto", "ppb", "ppm"} or None, default="auto"
        The unit the file is stored in ("ppm" is multiplied by 1000). "auto" (or None): the
        ``Units`` of the JSON sidecar beside the file, else ppm, the BIDS unit of ``Chimap``
        (:func:`load_cohort` resolves BIDS inheritance and records the unit in the table).

    Raises
    ------
    CohortError
        When the values contradict the unit (:func:`check_qsm_unit`), e.g. a ppb map read as
        ppm; the message says how to declare the unit.
    """
    unit = _file_unit(path, unit)
    data, affine = read_volume(path)
    check_qsm_unit(data, unit, path)
    if unit == "ppm":
        return data * np.float32(1000.0), affine
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
            "session": subject["session"],
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
            "qsm_unit": subject["qsm_unit"],
        }
    )
    return lesions, all_ids, n_small


def _read_rims(path: Path, lesion_ids: dict[tuple[str, str], set[int]]) -> pd.DataFrame:
    table = _read_table(path)
    _require_columns(table, ["participant_id", "lesion_id", "rim"], path)
    table["participant_id"] = pd.Series(
        [_strip_sub(p) for p in table["participant_id"]], index=table.index, dtype=object
    )
    table["session"] = pd.Series(_table_sessions(table, path), index=table.index, dtype=object)
    try:
        table["lesion_id"] = table["lesion_id"].astype(int)
    except ValueError as exc:
        raise CohortError(f"{path}: lesion_id must be integers ({exc})") from exc
    bad_rim = ~table["rim"].isin(["0", "1", ""])
    if bad_rim.any():
        raise CohortError(f"{path}: rim must be 0 or 1 (or empty for unlabeled), got {table['rim'][bad_rim].iloc[0]!r}")
    duplicated = table.duplicated(LESION_KEY)
    if duplicated.any():
        row = table[duplicated].iloc[0]
        raise CohortError(
            f"{path}: lesion {scan_name(row['participant_id'], row['session'])} {row['lesion_id']} is listed more than once"
        )
    sessions: dict[str, list[str]] = {}
    for participant, session in lesion_ids:
        sessions.setdefault(participant, []).append(session)
    for row in table.itertuples(index=False):
        if row.participant_id not in sessions:
            raise CohortError(f"{path}: participant sub-{row.participant_id} is not in the cohort")
        key = (row.participant_id, row.session)
        if key not in lesion_ids:
            known = ", ".join(f"ses-{s}" if s else "no session" for s in sorted(sessions[row.participant_id]))
            hint = "; add a 'session' column" if not row.session else ""
            raise CohortError(
                f"{path}: sub-{row.participant_id} {'ses-' + row.session if row.session else 'without a session'} "
                f"is not in the cohort (it has {known}){hint}"
            )
        if row.lesion_id not in lesion_ids[key]:
            raise CohortError(
                f"{path}: lesion {row.lesion_id} of {scan_name(*key)} does not exist in its mask "
                f"(labels present: {sorted(lesion_ids[key])[:20]})"
            )
    return pd.DataFrame(
        {
            "participant_id": pd.array(table["participant_id"].tolist(), dtype=object),
            "session": pd.array(table["session"].tolist(), dtype=object),
            "lesion_id": table["lesion_id"].to_numpy(dtype=int),
            "rim": pd.array([int(v) if v else pd.NA for v in table["rim"]], dtype="Int64"),
        }
    )


def _warn_dropped_rim_positive(labels: pd.DataFrame, table: pd.DataFrame, rims_path: Path, min_voxels: int) -> None:
    """A :class:`DataWarning` when ``min_voxels`` left out lesions that ``rims_path`` labels rim+."""
    kept = set(zip(table["participant_id"], table["session"], table["lesion_id"].astype(int)))
    positive = labels[labels["rim"].fillna(0).astype(int) == 1]
    dropped = [
        (p, s, int(i)) for p, s, i in zip(positive["participant_id"], positive["session"], positive["lesion_id"])
        if (p, s, int(i)) not in kept
    ]
    if dropped:
        examples = ", ".join(f"{scan_name(p, s)} lesion {i}" for p, s, i in dropped[:5])
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
    qsm_unit: str | None = QSM_UNIT,
    rims: str | os.PathLike | None = None,
    derivatives: str | None = None,
    check_data: bool = False,
) -> pd.DataFrame:
    """Read a cohort into a lesion table, one row per lesion.

    Parameters
    ----------
    path : str or path-like
        A BIDS cohort directory (with or without sessions; lesion masks raw or in
        ``derivatives/<pipeline>/``) or a manifest ``.csv``/``.tsv`` with columns
        ``participant_id, [session,] qsm, flair, mask`` (paths relative to the manifest).
    min_voxels : int, default=8
        Lesions with fewer voxels are left out (their count is logged): pyradiomics cannot
        compute shape features of tiny masks. Leaving out a lesion that ``rims`` labels rim+
        issues a :class:`~rimclf.errors.DataWarning` with their count.
    connectivity : {6, 18, 26}, default=26
        Connectivity used to split a binary (0/1) mask into lesions.
    qsm_unit : {"auto", "ppm", "ppb"} or None, default="auto"
        Unit of the QSM files. "auto" (or None): each QSM's JSON sidecar ``Units`` (BIDS
        inheritance), else ppm, the BIDS unit of ``Chimap``. "ppm"/"ppb" override the sidecars.
        Recorded per row in ``qsm_unit``; "ppm" is converted to ppb when volumes are read.
    rims : str or path-like, optional
        Rim labels (``participant_id, [session,] lesion_id, rim``). Default: ``rims.tsv`` in the
        cohort directory, else in the derivatives pipeline the masks came from (or beside the
        manifest), when it exists; without one every ``rim`` is ``<NA>``.
    derivatives : str, optional
        The pipeline (folder under ``COHORT/derivatives/``) to read lesion masks from; needed
        when masks of a scan are found in more than one place.
    check_data : bool, default=False
        Also read every QSM and FLAIR in full now to check for NaN/Inf inside the brain and a
        QSM whose values contradict its unit (otherwise these checks run during feature
        extraction).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`TABLE_COLUMNS`: ``participant_id`` (without "sub-"), ``session`` (without
        "ses-"; ``""`` without sessions), ``lesion_id`` (instance label), ``qsm``/``flair``/``mask``
        (absolute paths), ``n_voxels``, ``volume_mm3``, ``centroid_x/y/z`` (world mm, from the
        affine), ``rim`` (Int64, <NA> when unlabeled), ``connectivity`` (0 for instance masks,
        else the connectivity used to split a binary mask), ``qsm_unit`` ("ppm" or "ppb", as
        resolved). Sorted by participant, session, then lesion.

    Raises
    ------
    CohortError
        For every bad input file or table, naming the file and the problem: among them a
        participant or session label that is not letters and digits, a repeated
        (participant, session), a damaged ``.nii.gz``, a mask label above
        :data:`rimclf._nifti.MAX_LABEL`, a sidecar ``Units`` other than ppm/ppb, lesion masks in
        several derivatives pipelines without ``derivatives=``, and with ``check_data`` a QSM
        whose values contradict its unit.
    ParameterError
        For a bad ``min_voxels``, ``connectivity`` or ``qsm_unit``.
    """
    check_int(min_voxels, "min_voxels", min=1)
    connectivity = _check_connectivity(connectivity)
    qsm_unit = "auto" if qsm_unit is None else qsm_unit
    check_choice(qsm_unit, "qsm_unit", QSM_UNIT_CHOICES)
    root = Path(path).expanduser().resolve()
    if root.is_dir():
        subjects, default_rims = _subjects_from_directory(root, qsm_unit, derivatives)
    elif root.is_file():
        subjects, default_rims = _subjects_from_manifest(root, qsm_unit)
    else:
        raise CohortError(f"{root}: no such cohort directory or manifest file")
    duplicated = subjects.duplicated(["participant_id", "session"])
    if duplicated.any():
        first = subjects[duplicated].iloc[0]
        which = f"participant sub-{first['participant_id']}" + (f" session ses-{first['session']}" if first["session"] else "")
        raise CohortError(f"{root}: {which} is listed twice")

    tables, lesion_ids, n_small = [], {}, 0
    for _, subject in subjects.iterrows():
        lesions, ids, small = _subject_lesions(subject, connectivity=connectivity, min_voxels=min_voxels)
        tables.append(lesions)
        lesion_ids[(subject["participant_id"], subject["session"])] = ids
        n_small += small
        if check_data:
            read_qsm(subject["qsm"], subject["qsm_unit"])
            read_volume(subject["flair"])
    if n_small:
        logger.info("left out %d lesion(s) smaller than min_voxels=%d", n_small, min_voxels)
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=TABLE_COLUMNS)

    rims_path = Path(rims) if rims is not None else default_rims
    if rims is not None and not rims_path.is_file():
        raise CohortError(f"{rims_path}: rims file not found")
    if rims_path is not None and rims_path.is_file():
        labels = _read_rims(rims_path, lesion_ids)
        _warn_dropped_rim_positive(labels, table, rims_path, min_voxels)
        table = table.merge(labels, on=LESION_KEY, how="left")
    else:
        table["rim"] = pd.array([pd.NA] * len(table), dtype="Int64")
    table["rim"] = table["rim"].astype("Int64")
    for column in ("lesion_id", "n_voxels", "connectivity"):
        table[column] = table[column].astype(int)
    for column in ("volume_mm3", "centroid_x", "centroid_y", "centroid_z"):
        table[column] = table[column].astype(float)
    table = table.sort_values(LESION_KEY, kind="stable").reset_index(drop=True)
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
