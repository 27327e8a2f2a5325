"""A run's scan store: each scan's arrays written once to a scratch folder and read back from there.

``rimclf predict`` needs a scan's lesion labels (on the QSM grid, a mask on another grid resampled
onto it) three times: to list the lesions (:func:`rimclf.load_cohort`), to extract features and
to write the label image and probability map; and the QSM and FLAIR twice: for features and for
the montage. Reading a ``.nii.gz`` means unpacking it, and resampling a whole-brain binary mask
takes seconds, so the predict workflow opens a :class:`ScanStore` for the run
(:func:`scan_store`): whoever reads a scan's array first (the cohort loader the labels, a feature
worker the QSM and FLAIR) also writes it there, and later readers (feature workers, output
workers, in any process) take it from there. Memory does not grow with the number of scans:
the arrays live on disk, one scan's at a time in a worker's memory.

The store is a private temporary folder (``tempfile.mkdtemp``, mode 0700, under ``TMPDIR``),
removed when the run ends, also on an error or Ctrl-C. Each entry is two uncompressed ``.npy``
files, ``<name>.affine.npy`` and ``<name>.npy`` (written under temporary names and renamed,
affine first, so that an entry is complete or absent), read with ``allow_pickle=False``. The
name is a digest of what the array depends on: its kind, the files' paths, sizes, modification
times and inodes, and the reading settings (the QSM unit, the mask's connectivity), so that a
file changed during the run is read again. An entry that cannot be written (a full disk, less
than :data:`MIN_FREE_BYTES` left, a Dask worker on another machine) is simply not stored, and one
that cannot be read back as expected is read from the NIfTI file again: the store saves reading
time, it never changes a result.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

#: An entry is not written when it would leave less free space than this on the store's disk.
MIN_FREE_BYTES = 1 << 30

_ACTIVE: list[ScanStore] = []


@dataclass(frozen=True)
class ScanStore:
    """A scratch folder of scans' arrays (see the module docstring); picklable, so it travels
    to worker processes with their tasks.

    Parameters
    ----------
    folder : str
        The store's folder (:func:`scan_store` makes and removes it).
    volumes : bool, default=True
        Also keep QSM and FLAIR volumes (the montages need them); lesion labels are always kept.

    Examples
    --------
    >>> import numpy as np
    >>> with scan_store() as store:
    ...     affine = np.eye(4)
    ...     first = store.array("labels", [], {"demo": 1}, lambda: (np.ones((2, 2, 2), np.int32), affine))
    ...     again = store.array("labels", [], {"demo": 1}, lambda: None)   # not called: taken from the store
    >>> int(again[0].sum()), again[0].dtype
    (8, dtype('int32'))
    """

    folder: str
    volumes: bool = True

    def _name(self, kind: str, paths: list, settings: dict) -> str | None:
        files = []
        for path in paths:
            try:
                stat = os.stat(path)
            except OSError:
                return None
            files.append([os.path.abspath(os.fspath(path)), stat.st_size, stat.st_mtime_ns, stat.st_ino])
        text = json.dumps([kind, files, settings], sort_keys=True, default=str)
        return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:32]}"

    def get(self, kind: str, paths: list, settings: dict) -> tuple[np.ndarray, np.ndarray] | None:
        """The stored ``(array, affine)`` of this kind, files and settings, or None.

        The array is memory-mapped read-only (the montage samples a few planes of it).
        """
        name = self._name(kind, paths, settings)
        if name is None:
            return None
        data_path = Path(self.folder, f"{name}.npy")
        try:
            affine = np.load(Path(self.folder, f"{name}.affine.npy"), allow_pickle=False)
            data = np.load(data_path, allow_pickle=False, mmap_mode="r")
        except (OSError, ValueError, EOFError):
            return None
        if affine.shape != (4, 4) or affine.dtype != np.float64 or data.ndim != 3 or data.dtype.kind not in "iuf":
            return None
        return np.asarray(data), affine

    def put(self, kind: str, paths: list, settings: dict, data: np.ndarray, affine: np.ndarray) -> bool:
        """Store ``(data, affine)``; False when it was not stored (see the module docstring)."""
        name = self._name(kind, paths, settings)
        if name is None:
            return False
        data = np.ascontiguousarray(data)
        try:
            if shutil.disk_usage(self.folder).free - data.nbytes < MIN_FREE_BYTES:
                logger.debug("scan store %s: %s not stored (disk nearly full)", self.folder, name)
                return False
            _write_npy(Path(self.folder, f"{name}.affine.npy"), np.asarray(affine, dtype=np.float64))
            _write_npy(Path(self.folder, f"{name}.npy"), data)
        except OSError as exc:
            logger.debug("scan store %s: %s not stored (%s)", self.folder, name, exc)
            return False
        return True

    def array(
        self, kind: str, paths: list, settings: dict, read: Callable[[], tuple[np.ndarray, np.ndarray]], *,
        keep: bool = True, dtype: np.dtype | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(array, affine)`` from the store, else ``read()`` (and stored when ``keep``).

        ``dtype``: the dtype the array is stored in (e.g. uint16 labels) and given back in
        (read's own dtype; an array from the store is converted back to it).
        """
        stored = self.get(kind, paths, settings)
        if stored is not None:
            data, affine = stored
            return (np.array(data, dtype=dtype) if dtype is not None else data), affine
        data, affine = read()
        if keep:
            self.put(kind, paths, settings, data if dtype is None else compact_labels(data), affine)
        return data, affine


def compact_labels(labels: np.ndarray) -> np.ndarray:
    """Labels in the smallest unsigned type that holds them (masks have at most 65535 labels)."""
    return labels.astype(np.uint16) if labels.size and 0 <= labels.min() and labels.max() <= 65535 else labels


def _write_npy(path: Path, array: np.ndarray) -> None:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.lib.format.write_array(handle, array, allow_pickle=False)
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def active_store() -> ScanStore | None:
    """The store of the run in progress in this process (:func:`scan_store`), or None.

    Examples
    --------
    >>> active_store() is None
    True
    >>> with scan_store(volumes=False) as store:
    ...     active_store() is store
    True
    """
    return _ACTIVE[-1] if _ACTIVE else None


@contextmanager
def scan_store(*, volumes: bool = True) -> Iterator[ScanStore]:
    """Open a :class:`ScanStore` in a new temporary folder for the ``with`` block, and remove it after.

    While it is open, :func:`rimclf.load_cohort` stores the lesion labels it reads, and the
    featurizer and ``rimclf.outputs`` take their arrays from it (see the module docstring).

    Parameters
    ----------
    volumes : bool, default=True
        Also keep the QSM and FLAIR that feature workers read (for montages); else labels only.

    Examples
    --------
    >>> import os
    >>> with scan_store() as store:
    ...     os.path.isdir(store.folder)
    True
    >>> os.path.exists(store.folder)          # removed with the block, also on an error
    False
    """
    folder = tempfile.mkdtemp(prefix="rimclf-scans-")
    store = ScanStore(folder, volumes=volumes)
    _ACTIVE.append(store)
    try:
        yield store
    finally:
        _ACTIVE.remove(store)
        shutil.rmtree(folder, ignore_errors=True)
