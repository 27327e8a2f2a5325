"""One subject's volumes, read once and shared by the extractors; the lesion table grouped by subject.

A "subject" here is a scan: a participant, or one session of a participant (``session`` column of
the lesion table; ``""`` or no column without sessions), since each session has its own files.

The extractors never call :func:`warnings.warn` themselves while a subject is processed: they
append ``(category, message)`` notes to a list that travels back with the results (from a
joblib worker process, or from the cache) and is re-issued in the caller's process.
"""

from __future__ import annotations

import os
import re
import threading
import warnings
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TypeVar

import numpy as np
import pandas as pd
from scipy import ndimage

from rimclf._records import file_sha256
from rimclf._nifti import brain_support, load_header, read_volume, voxel_sizes
from rimclf.cohort import ScanStore, active_store, read_lesion_labels, read_qsm
from rimclf.errors import CohortError

#: A warning to issue in the caller's process: (category, message).
Note = tuple[type[Warning], str]

#: Columns every extractor needs; the others are asked for by the extractor that uses them.
BASE_COLUMNS = ("participant_id", "lesion_id", "qsm", "mask", "connectivity", "qsm_unit")
CENTROID_COLUMNS = ("centroid_x", "centroid_y", "centroid_z")

_WARNINGS_LOCK = threading.Lock()

#: Bytes of arrays that :meth:`SubjectVolumes.shared` keeps per subject at most; a result beyond
#: is handed out without being kept (the next extractor that asks computes it again).
SHARED_BYTES = 256 * 2**20

_T = TypeVar("_T")


@dataclass(frozen=True)
class SubjectTask:
    """What one subject's extraction needs from the lesion table (one entry per distinct lesion)."""

    participant_id: str
    qsm: str
    flair: str | None
    mask: str
    qsm_unit: str
    connectivity: int
    lesion_ids: np.ndarray
    centroids_mm: np.ndarray = field(repr=False)
    session: str = ""  # the BIDS session label, "" without sessions
    store: ScanStore | None = field(default=None, repr=False)  # the run's scan store (rimclf.cohort.scan_store)

    @property
    def name(self) -> str:
        """``sub-<participant>[_ses-<session>]``, for messages."""
        return f"sub-{self.participant_id}" + (f"_ses-{self.session}" if self.session else "")


def group_by_subject(
    table: pd.DataFrame, *, with_flair: bool, with_centroids: bool
) -> list[tuple[SubjectTask, np.ndarray, np.ndarray]]:
    """Split the table into per-subject (per participant and session) tasks.

    Returns
    -------
    list of (task, rows, lesion_index)
        ``rows`` are the positions (``iloc``) of the subject's rows in ``table``, and
        ``lesion_index[r]`` the index of row ``rows[r]``'s lesion in ``task.lesion_ids``, so that
        results computed once per distinct lesion go back to every row in table order.
    """
    participant_ids = table["participant_id"].astype(str).to_numpy()
    sessions = table["session"].fillna("").astype(str).to_numpy() if "session" in table else np.full(len(table), "")
    scans = np.char.add(np.char.add(participant_ids.astype(str), "\0"), sessions.astype(str))
    lesion_ids = table["lesion_id"].to_numpy().astype(np.int64)
    columns = {name: table[name].to_numpy() for name in ("qsm", "mask", "qsm_unit", "connectivity")}
    flairs = table["flair"].to_numpy() if with_flair else None
    centroids = table[list(CENTROID_COLUMNS)].to_numpy(dtype=float) if with_centroids else None
    order = np.argsort(scans, kind="stable")
    boundaries = np.flatnonzero(scans[order][1:] != scans[order][:-1]) + 1
    tasks = []
    for rows in np.split(order, boundaries) if len(order) else []:
        first = rows[0]
        _check_one_scan(rows, {**columns, **({"flair": flairs} if flairs is not None else {})},
                        participant_ids[first], sessions[first])
        unique_ids, first_rows, lesion_index = np.unique(lesion_ids[rows], return_index=True, return_inverse=True)
        task = SubjectTask(
            participant_id=str(participant_ids[first]),
            qsm=str(columns["qsm"][first]),
            flair=str(flairs[first]) if flairs is not None else None,
            mask=str(columns["mask"][first]),
            qsm_unit=str(columns["qsm_unit"][first]),
            connectivity=int(columns["connectivity"][first]),
            lesion_ids=unique_ids,
            centroids_mm=centroids[rows][first_rows] if centroids is not None else np.zeros((len(unique_ids), 3)),
            session=str(sessions[first]),
            store=active_store(),
        )
        tasks.append((task, rows, lesion_index.ravel()))
    tasks.sort(key=lambda item: item[1][0])  # subjects in order of first appearance
    return tasks


def _check_one_scan(rows: np.ndarray, columns: dict[str, np.ndarray], participant_id: str, session: str) -> None:
    """Refuse rows of one participant and session that name more than one file (or unit, or
    connectivity): they are two scans, e.g. two cohorts' tables concatenated, each with its own
    sub-001, and reading the first one's files for all would give the others wrong features."""
    for column, values in columns.items():
        distinct = list(dict.fromkeys(str(value) for value in values[rows]))
        if len(distinct) > 1:
            name = f"sub-{participant_id}" + (f"_ses-{session}" if session else "")
            shown = ", ".join(repr(value) for value in distinct[:3]) + (" ..." if len(distinct) > 3 else "")
            raise CohortError(
                f"the lesion table gives {name} {len(distinct)} different {column!r} values ({shown}): the rows of one "
                "participant and session must come from one scan. Tables of several cohorts that reuse participant "
                "ids need distinct ones (e.g. prefix each cohort's participant_id) before they are concatenated"
            )


def _read_noting(notes: list[Note], reader, *args):
    """Call a reader, turning the warnings it issues into notes (thread-safe)."""
    with _WARNINGS_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = reader(*args)
    notes.extend((w.category, str(w.message)) for w in caught)
    return result


class SubjectVolumes:
    """The QSM, FLAIR and lesion labels of one subject, each read on first use and then kept.

    QSM in ppb via :func:`rimclf.cohort.read_qsm` (a unit its values contradict is an error), FLAIR via
    :func:`rimclf._nifti.read_volume`, labels via :func:`rimclf.cohort.read_lesion_labels`, so
    that lesion ids are those of the table. With the run's scan store in the task
    (:mod:`rimclf.cohort._store`), the labels come from it (as ``load_cohort`` put them there) and
    the QSM and FLAIR read here go into it, for the run's montages.

    Results that several extractors derive alike from the volumes are computed once per subject
    through :meth:`shared`.
    """

    def __init__(self, task: SubjectTask, notes: list[Note]) -> None:
        self.task = task
        self.notes = notes
        self._shared: dict[Hashable, object] = {}
        self._shared_bytes = 0

    def shared(self, key: Hashable, compute: Callable[[], _T]) -> _T:
        """``compute()``, computed on the first call with this ``key`` and then kept for this subject.

        The extractors of a featurizer share one ``SubjectVolumes`` per subject, so what each
        would derive alike from the volumes (the ring referencing's normal-appearing tissue and
        each lesion's signed distances, :mod:`rimclf.features._referencing`) is computed once.
        ``key`` must hold everything the result depends on besides the volumes. Arrays in the
        result are made read-only (a caller changing them in place would change them for the
        next), and at most :data:`SHARED_BYTES` of them are kept per subject: a result beyond is
        returned without being kept.
        """
        if key in self._shared:
            return self._shared[key]  # type: ignore[return-value]
        value = compute()
        arrays = [item for item in (value if isinstance(value, tuple) else (value,)) if isinstance(item, np.ndarray)]
        for array in arrays:
            array.setflags(write=False)
        size = sum(array.nbytes for array in arrays)
        if self._shared_bytes + size <= SHARED_BYTES:
            self._shared[key] = value
            self._shared_bytes += size
        return value

    def _kept(self, kind: str, path: str, settings: dict, read: tuple[np.ndarray, np.ndarray]):
        """A volume just read, also put in the run's scan store when it keeps volumes (the montages read it there)."""
        store = self.task.store
        if store is not None and store.volumes:
            store.put(kind, [path], settings, *read)
        return read

    @cached_property
    def _qsm(self) -> tuple[np.ndarray, np.ndarray]:
        read = _read_noting(self.notes, read_qsm, self.task.qsm, self.task.qsm_unit)
        return self._kept("qsm", self.task.qsm, {"unit": self.task.qsm_unit}, read)

    @property
    def qsm(self) -> np.ndarray:
        """QSM in ppb, float32, shape (X, Y, Z)."""
        return self._qsm[0]

    @property
    def affine(self) -> np.ndarray:
        """The QSM's voxel-to-world (RAS mm) affine, shared by the lesion mask."""
        return self._qsm[1]

    @cached_property
    def spacing_mm(self) -> np.ndarray:
        """Voxel edge lengths of the QSM grid as its header stores them (pixdim).

        SimpleITK, hence pyradiomics reading the file, uses these; they equal the affine's column
        norms up to float32 rounding (which would show in shape features of rotated grids).
        """
        zooms = np.asarray(load_header(self.task.qsm).header.get_zooms()[:3], dtype=float)
        return zooms if np.all(zooms > 0) else voxel_sizes(self.affine)

    @cached_property
    def _flair(self) -> tuple[np.ndarray, np.ndarray]:
        if self.task.flair is None:
            raise CohortError("the lesion table has no 'flair' column")
        return self._kept("flair", self.task.flair, {}, _read_noting(self.notes, read_volume, self.task.flair))

    @property
    def flair(self) -> np.ndarray:
        return self._flair[0]

    @property
    def flair_affine(self) -> np.ndarray:
        return self._flair[1]

    @cached_property
    def labels(self) -> np.ndarray:
        """Lesion instance labels on the QSM grid (int32; a mask on another grid resampled onto it)."""
        labels, _ = _read_noting(self.notes, lambda *args: read_lesion_labels(*args, store=self.task.store),
                                 self.task.mask, self.task.connectivity, self.task.qsm)
        if labels.shape != self.qsm.shape:
            raise CohortError(
                f"{self.task.mask}: shape {labels.shape} differs from the QSM's {self.qsm.shape}; "
                "the lesion mask must be on the QSM grid"
            )
        counts = np.bincount(labels.ravel(), minlength=int(self.task.lesion_ids.max(initial=0)) + 1)
        present = counts[self.task.lesion_ids] > 0
        if not present.all():
            raise CohortError(
                f"{self.task.mask}: lesion(s) {self.task.lesion_ids[~present].tolist()} of "
                f"{self.task.name} are in the table but not in the mask; "
                "was the mask changed after load_cohort?"
            )
        return labels

    @cached_property
    def support(self) -> np.ndarray:
        """Voxels with QSM data: the brain (:func:`rimclf._nifti.brain_support`), whose background
        ``read_qsm`` has set to 0 (so it is not looked for again)."""
        return brain_support(self.qsm, 0.0)

    @cached_property
    def flair_shares_qsm_grid(self) -> bool:
        return self.flair.shape == self.qsm.shape and bool(np.allclose(self.flair_affine, self.affine, atol=1e-3))

    @cached_property
    def flair_on_qsm_grid(self) -> np.ndarray:
        """The FLAIR on the QSM grid: itself when the grids match, else trilinear resampling in world space."""
        if self.flair_shares_qsm_grid:
            return self.flair
        points = grid_points_world(self.qsm.shape, self.affine)
        values = sample_world(self.flair, self.flair_affine, points, order=1)
        return values.reshape(self.qsm.shape)


def grid_points_world(shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    """World coordinates (n, 3) of the voxel centres of a grid, in C order."""
    index = np.indices(shape, dtype=float).reshape(3, -1)
    return (affine[:3, :3] @ index).T + affine[:3, 3]


def world_to_voxel(affine: np.ndarray, points_mm: np.ndarray) -> np.ndarray:
    """Continuous voxel coordinates (3, n) of world points (n, 3) on a grid with this affine."""
    inverse = np.linalg.inv(affine)
    return inverse[:3, :3] @ np.asarray(points_mm, dtype=float).T + inverse[:3, 3:4]


def sample_world(
    data: np.ndarray, affine: np.ndarray, points_mm: np.ndarray, *, order: int, return_inside: bool = False
):
    """Sample a volume at world points: trilinear (``order=1``) or nearest (``order=0``).

    A point inside the volume's extent (voxel coordinates within ``-0.5 .. n - 0.5``) takes the
    interpolated value, with edge voxels extended over their outer half; a point outside is 0.
    With ``return_inside``, also returns the boolean "inside the volume" of each point.
    """
    voxel = world_to_voxel(affine, points_mm)
    shape = np.array(data.shape, dtype=float)[:, None]
    inside = ((voxel >= -0.5) & (voxel <= shape - 0.5)).all(axis=0)
    values = ndimage.map_coordinates(data, voxel, order=order, mode="nearest", prefilter=False)
    values[~inside] = 0
    return (values, inside) if return_inside else values


_FINGERPRINTS: dict[tuple, str] = {}


def remembered_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, remembered for as long as its (size, mtime_ns, inode) stay the same."""
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise CohortError(f"{path}: cannot be read ({exc.strerror})") from exc
    key = (os.fspath(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    digest = _FINGERPRINTS.get(key)
    if digest is None:
        digest = _FINGERPRINTS[key] = file_sha256(path)
    return digest


#: Notes of one kind about the lesions of one scan issued one by one up to this many; more are
#: issued as one line with their count and the first few lesions (a scan with thousands of tiny
#: lesions would otherwise print a line per lesion).
MAX_LESION_NOTES = 3
#: A note about one lesion: ``"sub-<id> lesion <n>[ shell]: <text>"`` (as the extractors write them).
_LESION_NOTE = re.compile(r"(?P<scan>sub-\S+?) lesion (?P<lesion>\d+)(?P<region>[^:]*): (?P<text>.*)", re.DOTALL)
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def summarise_notes(notes: list[Note]) -> list[Note]:
    """``notes`` with repeated per-lesion notes of one scan summarised.

    Notes about single lesions (``"sub-01 lesion 7: ..."``) are grouped by category, scan, region
    and text (numbers aside: "only 7 voxels" and "only 9 voxels" are one kind). A group of at most
    :data:`MAX_LESION_NOTES` notes is kept as it is; a larger one becomes one note, where the
    group's first note stood, that gives the count, the first note in full and the next lesions.

    Examples
    --------
    >>> from rimclf.errors import DataWarning
    >>> notes = [(DataWarning, f"sub-01 lesion {i}: the lesion has no voxel; its features are NaN") for i in range(1, 101)]
    >>> [message for _, message in summarise_notes(notes)]
    ['sub-01: 100 lesions with this warning, e.g. lesion 1: the lesion has no voxel; its features are NaN (also lesions 2, 3 and 97 more)']
    """
    groups: dict[tuple, list[tuple[str, str]]] = {}
    order: list[tuple | Note] = []
    for category, message in notes:
        match = _LESION_NOTE.fullmatch(message)
        if match is None:
            order.append((category, message))
            continue
        key = (category, match["scan"], match["region"], _NUMBER.sub("#", match["text"]))
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append((match["lesion"], message))
    out: list[Note] = []
    for item in order:
        if item not in groups:
            out.append(item)  # type: ignore[arg-type]
            continue
        category, scan, region, _ = item
        group = groups[item]
        if len(group) <= MAX_LESION_NOTES:
            out.extend((category, message) for _, message in group)
            continue
        first = _LESION_NOTE.fullmatch(group[0][1])
        shown = [lesion for lesion, _ in group[1:MAX_LESION_NOTES]]
        where = f" ({region.strip()})" if region.strip() else ""
        out.append((category, f"{scan}: {len(group):,} lesions with this warning{where}, e.g. lesion {first['lesion']}"
                              f"{region}: {first['text']} (also lesions {', '.join(shown)} and "
                              f"{len(group) - 1 - len(shown):,} more)"))
    return out


def emit_notes(notes: list[Note], stacklevel: int = 3) -> None:
    """Issue collected notes as warnings in the caller's process, repeated per-lesion notes
    summarised (:func:`summarise_notes`)."""
    for category, message in summarise_notes(notes):
        warnings.warn(message, category, stacklevel=stacklevel)
