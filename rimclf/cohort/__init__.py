"""The input contract: read a cohort from disk into a lesion table.

A cohort is either a BIDS dataset (raw data and any derivative datasets)::

    COHORT/
      participants.tsv                                  participant_id [, site, age, ...] (optional)
      rims.tsv                                          participant_id [, session], lesion_id, rim (0/1)
      sub-<s>/[ses-<t>/]anat/sub-<s>[_ses-<t>]_FLAIR.nii[.gz]      T2-FLAIR, registered to the QSM
      [derivatives/<qsm-pipeline>/]sub-<s>/[ses-<t>/]anat/sub-<s>[_ses-<t>][_acq-..]_Chimap.nii[.gz]
                                                        QSM (+ .json sidecars: "Units", BIDS inheritance)
      [derivatives/<lesion-pipeline>/]sub-<s>/[ses-<t>/]anat/sub-<s>[_ses-<t>]_desc-<..lesion..>_{mask,dseg}.nii[.gz]
                                                        lesion masks, instance labels 1..K or binary, on the QSM grid
                                                        or on the grid of an image registered to it (resampled onto
                                                        the QSM grid: :mod:`rimclf.cohort._resample`)

found by BIDS queries with pybids (:mod:`rimclf._bids`: which files count, and the
``CohortOptions`` that choose between several), or a manifest CSV/TSV with columns
``participant_id, [session,] qsm, flair, mask`` (paths relative to
the manifest; rows of one participant with different sessions are fine, a repeated
(participant, session) is an error), with an optional ``rims.tsv`` beside it. The rim labels are
``rims=`` when given, else ``COHORT/rims.tsv``, else ``rims.tsv`` of the derivatives pipeline the
masks came from (where the phantom keeps them).

Every setting of the reading is one frozen :class:`CohortOptions`. A scan missing a required file
(QSM, mask, and FLAIR unless ``require_flair=False``) is skipped with one
:class:`~rimclf.errors.DataWarning` line and listed in ``table.attrs["scans"]``
(:func:`cohort_scans`); ``strict=True`` makes it an error.

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
values contradict its unit (the 1st-99th percentile of brain voxels beyond
+-:data:`PPM_SUSPICION_LIMIT` for ppm, within it for ppb) is a
:class:`~rimclf.errors.CohortError` saying how to declare the unit (:func:`read_qsm`).

What is read
------------
:func:`load_cohort` reads the lesion masks in full (it needs every lesion's voxels) but only the
*headers* of QSM and FLAIR (shape, affine, dimensionality) and the sidecars, so a 60-subject
cohort loads in seconds. The voxel-level checks of the QSM and FLAIR (NaN/Inf inside the brain,
a QSM whose values contradict its unit) run when the features are extracted, which reads each
volume once anyway, or up front with ``check_data=True``. While a run's scan store is open
(:func:`scan_store`, :mod:`rimclf.cohort._store`), :func:`load_cohort` puts each scan's lesion
labels (resampled when the mask lies on another grid) there, so that the features and the
outputs of the run neither read nor resample the mask again.

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

import numpy as np
import pandas as pd
from scipy import ndimage

from rimclf._bids import scan_name
from rimclf._nifti import (
    load_header,
    read_labels,
    read_volume,
    spatial_shape,
)
from rimclf._validation import check_choice, check_path
from rimclf.cohort._learning import MIN_LESIONS_PER_CLASS, LabelledLesions, labelled_lesions, summarize_cohort
from rimclf.cohort._options import FILE_KINDS, CohortOptions
from rimclf.cohort._resample import describe_grid, labels_on_qsm_grid
from rimclf.cohort._store import ScanStore, active_store, compact_labels, scan_store
from rimclf.cohort._tables import (
    _MISSING,
    LESION_KEY,
    check_participant_label,
    check_session_label,
    read_rims,
    scans_from_directory,
    scans_from_manifest,
    warn_dropped_rim_positive,
)
from rimclf.cohort._units import PPM_SUSPICION_LIMIT, check_qsm_unit, read_qsm
from rimclf.defaults import CONNECTIVITIES
from rimclf.errors import CohortError, DataWarning, ParameterError

__all__ = [
    "FILE_KINDS", "CohortOptions", "LESION_KEY", "cohort_scans", "MIN_LESIONS_PER_CLASS", "PPM_SUSPICION_LIMIT", "TABLE_COLUMNS", "LabelledLesions",
    "SCAN_COLUMNS",
    "check_participant_label", "check_qsm_unit", "check_session_label", "labelled_lesions", "load_cohort",
    "read_lesion_labels", "read_qsm", "summarize_cohort", "ScanStore", "active_store", "scan_store",
]

logger = logging.getLogger(__name__)

#: Columns of the lesion table, in order. ``session`` is the BIDS session label without ``ses-``,
#: or ``""`` without sessions; ``qsm_unit`` the resolved unit of the QSM file ("ppb" or "ppm");
#: ``mask_grid`` "qsm" for a mask on the QSM grid, "resampled" for one carried onto it from its own
#: grid, which ``mask_source_grid`` describes (e.g. "182x218x182 at 1x1x1 mm").
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
    "mask_grid",
    "mask_source_grid",
]
#: The columns of :data:`TABLE_COLUMNS` shared by every lesion of a scan (its files and how its mask
#: was read); ``table.attrs["scans"]`` gives them for a read scan that has no lesion rows.
SCAN_COLUMNS = ("qsm", "flair", "mask", "connectivity", "qsm_unit", "mask_grid", "mask_source_grid")

_CONNECTIVITY_RANK = dict(zip(CONNECTIVITIES, (1, 2, 3)))  # 6: faces, 18: + edges, 26: + corners


def _structure(connectivity: int) -> np.ndarray:
    return ndimage.generate_binary_structure(3, _CONNECTIVITY_RANK[connectivity])


def _check_connectivity(connectivity: object) -> int:
    return int(check_choice(connectivity, "connectivity", CONNECTIVITIES))


def _is_binary(labels: np.ndarray) -> bool:
    """0/1; or one nonzero value over several separate regions (a binary mask exported as 0/255, say),
    which cannot be one lesion's instance label."""
    if labels.max(initial=0) <= 1:
        return True
    nonzero = labels[labels > 0]
    if nonzero.min() != nonzero.max():
        return False
    return ndimage.label(labels > 0, structure=_structure(26))[1] > 1


def _warn_split_labels(labels: np.ndarray, connectivity: int, mask_path: Path) -> None:
    """A :class:`DataWarning` when instance labels each cover several separate regions: the values of
    a class map (1 = one kind of lesion, 2 = another) read as lesion ids would merge many lesions."""
    structure = _structure(connectivity)
    split = {}
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is not None:
            n_regions = ndimage.label(labels[box] == index, structure=structure)[1]
            if n_regions > 1:
                split[index] = n_regions
    if split:
        first = next(iter(split))
        warnings.warn(f"{mask_path}: label(s) {', '.join(map(str, list(split)[:10]))}{' ...' if len(split) > 10 else ''} "
                      f"each cover several separate regions (label {first}: {split[first]}), and each label is read as one "
                      "lesion; if the values are classes rather than lesion ids, binarise the mask (0/1) and rimclf splits "
                      "it into lesions", DataWarning, stacklevel=4)


def read_lesion_labels(
    mask_path: str | os.PathLike, connectivity: int, qsm: str | os.PathLike | None = None, *,
    store: ScanStore | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Read a lesion mask as instance labels, exactly as :func:`load_cohort` numbers the lesions.

    Parameters
    ----------
    mask_path : str or path-like
        The lesion mask.
    connectivity : {0, 6, 18, 26}
        0: the mask already holds instance labels 1..K. 6/18/26: it is binary and lesions are its
        connected components under that connectivity (the ``connectivity`` column of the table).
    qsm : str or path-like, optional
        The QSM whose grid the labels are wanted on (the ``qsm`` column of the table). A mask on
        another grid is then resampled onto it as :func:`load_cohort` does (instance labels by
        nearest neighbour; a binary mask by its partial-volume fraction, before the split into
        lesions). Without it, the labels stay on the mask's own grid.
    store : ScanStore, optional
        With ``qsm``: take the labels from this run's store when :func:`load_cohort` or an
        earlier reader put them there, else read them and put them there
        (:mod:`rimclf.cohort._store`), so that a scan's mask is read and resampled once per run.

    Returns
    -------
    labels : ndarray of int32, shape (X, Y, Z)
    affine : ndarray of shape (4, 4)
        The affine of the labels' grid (the QSM's when resampled).

    Examples
    --------
    >>> import tempfile
    >>> import nibabel as nib
    >>> import numpy as np
    >>> folder = tempfile.TemporaryDirectory()
    >>> mask = np.zeros((8, 8, 8), dtype=np.uint8)
    >>> mask[1:3, 1:3, 1:3] = 1                 # two separate blobs in a binary mask
    >>> mask[5:7, 5:7, 5:7] = 1
    >>> path = f"{folder.name}/sub-01_desc-lesions_mask.nii.gz"
    >>> nib.save(nib.Nifti1Image(mask, np.eye(4)), path)
    >>> labels, affine = read_lesion_labels(path, connectivity=26)
    >>> np.unique(labels).tolist()              # lesion_id 1 and 2
    [0, 1, 2]
    >>> folder.cleanup()
    """
    if store is not None and qsm is not None:
        return store.array("labels", [mask_path, qsm], {"connectivity": int(connectivity)},
                           lambda: read_lesion_labels(mask_path, connectivity, qsm), dtype=np.int32)
    labels, affine = read_labels(mask_path)
    if qsm is not None:
        header = load_header(qsm)
        qsm_affine = np.asarray(header.affine, dtype=float)
        labels, resampling = labels_on_qsm_grid(labels, affine, spatial_shape(header), qsm_affine,
                                                binary=bool(connectivity), mask_path=mask_path, qsm_path=qsm)
        affine = qsm_affine if resampling else affine
    if connectivity:
        labels, _ = ndimage.label(labels > 0, structure=_structure(_check_connectivity(connectivity)))
        labels = labels.astype(np.int32)
    return labels, affine


def _world_bounds(shape: tuple[int, int, int], affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    corners = np.array([[i, j, k, 1.0] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1) for k in (0, shape[2] - 1)])
    world = corners @ np.asarray(affine).T
    return world[:, :3].min(axis=0), world[:, :3].max(axis=0)


def _check_flair_overlap(qsm_path: Path, qsm, flair_path: Path) -> None:
    flair = load_header(flair_path)
    qsm_low, qsm_high = _world_bounds(spatial_shape(qsm), np.asarray(qsm.affine))
    flair_low, flair_high = _world_bounds(spatial_shape(flair), np.asarray(flair.affine))
    if np.any(flair_high < qsm_low) or np.any(flair_low > qsm_high):
        raise CohortError(
            f"{flair_path.name}: its field of view does not overlap {qsm_path.name} in world space; "
            "the FLAIR must be registered to the QSM"
        )


def _subject_lesions(subject: pd.Series, *, connectivity: int,
                     min_voxels: int) -> tuple[pd.DataFrame, set[int], int, dict[str, object]]:
    """One scan's lesion rows, all its mask's lesion ids, how many were too small, and its
    :data:`SCAN_COLUMNS` (also for a scan without lesion rows)."""
    qsm_path, mask_path = Path(subject["qsm"]), Path(subject["mask"])
    flair_path = Path(subject["flair"]) if subject["flair"] else None
    qsm = load_header(qsm_path)
    labels, mask_affine = read_labels(mask_path)
    qsm_shape = spatial_shape(qsm)
    binary, mask_source_grid = _is_binary(labels), describe_grid(labels.shape, mask_affine)
    if not binary:
        _warn_split_labels(labels, connectivity, mask_path)
    labels, resampling = labels_on_qsm_grid(labels, mask_affine, qsm_shape, np.asarray(qsm.affine), binary=binary,
                                             mask_path=mask_path, qsm_path=qsm_path, warn=True)
    if resampling:
        logger.info(resampling)
    if flair_path is not None:
        _check_flair_overlap(qsm_path, qsm, flair_path)
    used_connectivity = 0
    if binary:
        labels, _ = ndimage.label(labels > 0, structure=_structure(connectivity))
        used_connectivity = connectivity
    store = active_store()
    if store is not None:  # the features and outputs of this run read the labels from there (read_lesion_labels)
        store.put("labels", [mask_path, qsm_path], {"connectivity": int(used_connectivity)}, compact_labels(labels),
                  np.asarray(qsm.affine, dtype=float) if resampling else mask_affine)
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
    scan = {
        "qsm": str(qsm_path),
        "flair": str(flair_path) if flair_path is not None else "",
        "mask": str(mask_path),
        "connectivity": used_connectivity,
        "qsm_unit": subject["qsm_unit"],
        "mask_grid": "resampled" if resampling else "qsm",
        "mask_source_grid": mask_source_grid,
    }
    lesions = pd.DataFrame(
        {
            "participant_id": subject["participant_id"],
            "session": subject["session"],
            "lesion_id": keep,
            "n_voxels": counts[keep].astype(int) if keep.size else np.zeros(0, dtype=int),
            "volume_mm3": counts[keep] * voxel_volume if keep.size else np.zeros(0),
            "centroid_x": centroids[:, 0],
            "centroid_y": centroids[:, 1],
            "centroid_z": centroids[:, 2],
            **scan,
        }
    )
    return lesions, all_ids, n_small, scan


def load_cohort(
    path: str | os.PathLike,
    options: CohortOptions | None = None,
    *,
    rims: str | os.PathLike | None = None,
    check_data: bool = False,
    **option_fields: object,
) -> pd.DataFrame:
    """Read a cohort into a lesion table, one row per lesion.

    Parameters
    ----------
    path : str or path-like
        A BIDS cohort directory (with or without sessions; QSM, FLAIR and lesion masks raw or in
        any dataset under ``derivatives/``, found by BIDS queries: :mod:`rimclf._bids`) or a
        manifest ``.csv``/``.tsv`` with columns ``participant_id, [session,] qsm, flair, mask``
        (paths relative to the manifest).
    options : CohortOptions, optional
        How to read it: lesion filtering (``min_voxels``, ``connectivity``), ``qsm_unit``, which
        files (``qsm_pipeline``, ``flair_pipeline``, ``mask_pipeline``, ``mask_desc``,
        ``bids_filters``), which scans (``participant_label``, ``session_label``) and
        ``strict``. Default: ``CohortOptions()``.
    rims : str or path-like, optional
        Rim labels (``participant_id, [session,] lesion_id, rim``). Default: ``rims.tsv`` in the
        cohort directory, else in the derivatives pipeline the masks came from (or beside the
        manifest), when it exists; without one every ``rim`` is ``<NA>``. Rows of scans that are
        not selected or skipped are ignored.
    check_data : bool, default=False
        Also read every QSM and FLAIR in full now to check for NaN/Inf inside the brain and a
        QSM whose values contradict its unit (otherwise these checks run during feature
        extraction).
    **option_fields
        Fields of :class:`CohortOptions` that replace those of ``options``
        (``load_cohort(path, min_voxels=3)``).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`TABLE_COLUMNS`: ``participant_id`` (without "sub-"), ``session`` (without
        "ses-"; ``""`` without sessions), ``lesion_id`` (instance label), ``qsm``/``flair``/``mask``
        (absolute paths; ``flair`` is ``""`` for a scan without FLAIR when
        ``require_flair=False``), ``n_voxels``, ``volume_mm3``, ``centroid_x/y/z`` (world mm, from
        the affine), ``rim`` (Int64, <NA> when unlabeled), ``connectivity`` (0 for instance masks,
        else the connectivity used to split a binary mask), ``qsm_unit`` ("ppm" or "ppb", as
        resolved), ``mask_grid`` ("qsm", or "resampled" for a mask on another grid, carried onto
        the QSM grid with one log line) and ``mask_source_grid`` (the mask file's grid, e.g.
        "182x218x182 at 1x1x1 mm"). Sorted by participant, session, then lesion.
        ``table.attrs["scans"]`` lists every scan read or skipped (:func:`cohort_scans`), so a
        scan with an empty mask (no rows) or a skipped one still reaches the outputs; a read scan
        without rows also carries its :data:`SCAN_COLUMNS` (its files), for its empty maps.

    Warns
    -----
    DataWarning
        One line per skipped scan (a scan missing a required file), naming it and what is missing.

    Raises
    ------
    CohortError
        For every bad input file or table, naming the scan, the file and the problem: among them
        a participant or session label that is not letters and digits, a repeated
        (participant, session), a damaged ``.nii.gz``, a mask label above
        :data:`rimclf._nifti.MAX_LABEL`, a sidecar ``Units`` other than ppm/ppb, several
        candidate files of one kind that no option chooses, a lesion mask whose field of view
        does not overlap the QSM's, every selected scan missing a file (with ``strict``, any
        scan), and with
        ``check_data`` a QSM whose values contradict its unit.
    ParameterError
        For a bad option (``min_voxels``, ``connectivity``, ``qsm_unit``, a label, a filter).

    Examples
    --------
    >>> import rimclf
    >>> from rimclf.cohort import CohortOptions
    >>> table = rimclf.load_cohort("COHORT")                   # doctest: +SKIP
    >>> table = rimclf.load_cohort("COHORT", CohortOptions(participant_label=("01",), qsm_pipeline="qsmxt"))  # doctest: +SKIP
    >>> table = rimclf.load_cohort("manifest.csv", qsm_unit="ppb", check_data=True)  # doctest: +SKIP
    >>> table[["participant_id", "session", "lesion_id", "volume_mm3", "rim"]].head(2)  # doctest: +SKIP
      participant_id session  lesion_id  volume_mm3  rim
    0            001                  1       412.5    0
    1            001                  2        96.0    0

    A phantom cohort reads the same way (:func:`rimclf.phantom.make_phantom_cohort`):

    >>> from rimclf.phantom import make_phantom_cohort
    >>> table = rimclf.load_cohort(make_phantom_cohort("phantom", n_subjects=4))  # doctest: +SKIP
    """
    path = check_path(path, "path", what="a cohort folder or manifest (CSV/TSV)", owner="load_cohort")
    if options is not None and not isinstance(options, CohortOptions):
        raise ParameterError(f"options={options!r} is not valid; it must be a rimclf.cohort.CohortOptions")
    options = (options or CohortOptions()).replace(**option_fields).validated()
    root = Path(path).expanduser().resolve()
    if root.is_dir():
        subjects, skipped, default_rims = scans_from_directory(root, options)
    elif root.is_file():
        subjects, skipped, default_rims = scans_from_manifest(root, options)
    else:
        raise CohortError(f"{root}: no such cohort directory or manifest file")
    duplicated = subjects.duplicated(["participant_id", "session"])
    if duplicated.any():
        first = subjects[duplicated].iloc[0]
        which = f"participant sub-{first['participant_id']}" + (f" session ses-{first['session']}" if first["session"] else "")
        raise CohortError(f"{root}: {which} is listed twice")
    if subjects.empty and skipped:  # every command would go on with nothing, and report success
        reasons = "; ".join(f"{scan_name(scan['participant_id'], scan['session'])}: {scan['reason']}" for scan in skipped[:3])
        more = f" (and {len(skipped) - 3} more)" if len(skipped) > 3 else ""
        hint = ""
        if any(scan["reason"].startswith(_MISSING["mask"]) for scan in skipped):
            hint = ("; masks are found by 'lesion' in their desc- or label- entity: name another with --mask-desc DESC "
                    "(mask_desc=) or --bids-filter mask:ENTITY=VALUE, and their pipeline with --mask-pipeline "
                    "(docs/cohort.md); --strict says where each scan was searched")
        raise CohortError(f"{root}: none of its {len(skipped)} selected scan(s) has every required file: "
                          f"{reasons}{more}{hint}")

    tables, lesion_ids, without_rows, n_small = [], {}, {}, 0
    for _, subject in subjects.iterrows():
        name = scan_name(subject["participant_id"], subject["session"])
        try:
            lesions, ids, small, scan = _subject_lesions(subject, connectivity=options.connectivity,
                                                         min_voxels=options.min_voxels)
            if check_data:
                read_qsm(subject["qsm"], subject["qsm_unit"])
                if subject["flair"]:
                    read_volume(subject["flair"])
        except CohortError as exc:
            if name in str(exc):
                raise
            raise CohortError(f"{name}: {exc}") from exc
        tables.append(lesions)
        lesion_ids[(subject["participant_id"], subject["session"])] = ids
        if lesions.empty:  # its outputs (empty maps) still need its files
            without_rows[(subject["participant_id"], subject["session"])] = scan
        n_small += small
    if n_small:
        logger.info("left out %d lesion(s) smaller than min_voxels=%d", n_small, options.min_voxels)
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=[c for c in TABLE_COLUMNS if c != "rim"])

    rims_path = Path(rims) if rims is not None else default_rims
    if rims is not None and not rims_path.is_file():
        raise CohortError(f"{rims_path}: rims file not found")
    if rims_path is not None and rims_path.is_file():
        skipped_keys = {(scan["participant_id"], scan["session"]) for scan in skipped}

        def ignored(key: tuple[str, str]) -> bool:
            return key not in lesion_ids and (
                key in skipped_keys
                or bool(options.participant_label and key[0] not in options.participant_label)
                or bool(options.session_label and key[1] not in options.session_label)
            )

        labels = read_rims(rims_path, lesion_ids, ignored)
        warn_dropped_rim_positive(labels, table, rims_path, options.min_voxels)
        table = table.merge(labels, on=LESION_KEY, how="left")
    else:
        table["rim"] = pd.array([pd.NA] * len(table), dtype="Int64")
    table["rim"] = table["rim"].astype("Int64")
    for column in ("lesion_id", "n_voxels", "connectivity"):
        table[column] = table[column].astype(int)
    for column in ("volume_mm3", "centroid_x", "centroid_y", "centroid_z"):
        table[column] = table[column].astype(float)
    table = table.sort_values(LESION_KEY, kind="stable").reset_index(drop=True)[TABLE_COLUMNS]
    read = [{"participant_id": p, "session": t, "status": "read", "reason": "", **without_rows.get((p, t), {})}
            for p, t in lesion_ids]
    listed = read + [{**scan, "status": "skipped"} for scan in skipped]
    table.attrs["scans"] = sorted(listed, key=lambda scan: (scan["participant_id"], scan["session"]))
    return table


def cohort_scans(table: pd.DataFrame) -> pd.DataFrame | None:
    """Every scan :func:`load_cohort` read or skipped, from ``table.attrs["scans"]``; None when absent.

    Columns ``participant_id``, ``session`` (labels without prefixes), ``status`` ("read" or
    "skipped") and ``reason`` (what a skipped scan lacks; ``""`` for a read one). A read scan
    with an empty mask has no row in the lesion table but one here.

    Examples
    --------
    >>> import tempfile
    >>> import rimclf
    >>> from rimclf.phantom import make_phantom_cohort
    >>> folder = tempfile.TemporaryDirectory()
    >>> table = rimclf.load_cohort(make_phantom_cohort(f"{folder.name}/phantom", n_subjects=2, shape=(48, 56, 32)))
    >>> cohort_scans(table)[["participant_id", "status"]].to_dict("list")
    {'participant_id': ['001', '002'], 'status': ['read', 'read']}
    >>> folder.cleanup()
    """
    scans = table.attrs.get("scans") if isinstance(table, pd.DataFrame) else None
    if scans is None:
        return None
    return pd.DataFrame(list(scans), columns=["participant_id", "session", "status", "reason"])
