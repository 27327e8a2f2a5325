"""The per-subject feature cache: numbers and JSON only, so that reading it can never run code.

One entry per cache key (a SHA-256 hex digest, see ``featurizer._cache_key``) in the cache folder:

``<key>.npz``
    The subject's arrays (``radiomics``, ``patches``; float32 or float64), written by
    :func:`numpy.lib.format.write_array` into an uncompressed zip with fixed timestamps, so that
    the same features always give the same bytes. Read with ``allow_pickle=False``.
``<key>.json``
    ``{"format": "rimclf-feature-cache", "version": 1, "key": ..., "npz_sha256": ...,
    "arrays": {name: {"dtype": ..., "shape": [...]}}, "notes": [{"category": ..., "message": ...}]}``:
    the SHA-256 of the ``.npz`` bytes and the warnings the extraction issued, each a category
    name from a fixed list (:data:`NOTE_CATEGORIES`) and a message.

Both files are written to a temporary name in the folder and renamed into place (``.npz`` first,
``.json`` last), so a concurrent reader (another joblib or Dask worker) sees a complete entry or
none. When the ``.json`` cannot be written (a full disk), the ``.npz`` is removed again; an
``.npz`` left without its ``.json`` by a worker killed in between is removed after a day. On reading, an entry that is incomplete, does not parse, fails its hash, holds other
arrays, dtypes or shapes than expected, or names an unknown warning category is *not used*: the
caller recomputes it (with a :class:`~rimclf.errors.DataWarning` naming the entry) and overwrites
it. A pickle placed in the folder is never loaded.

What the cache cannot do is tell right numbers from wrong ones written consistently by someone
who can write to the folder: share a cache folder only with people you would share the data with.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from rimclf._atomic import public_permissions
from rimclf._records import file_sha256
from rimclf.errors import DataWarning, ModelVersionWarning, RimclfWarning
from rimclf.features._subject import Note

FORMAT = "rimclf-feature-cache"
FORMAT_VERSION = 1
#: Warning categories a cache entry may name, by name; any other warning is stored under the
#: nearest of these it derives from (at worst ``Warning``).
NOTE_CATEGORIES: dict[str, type[Warning]] = {
    cls.__name__: cls
    for cls in (
        DataWarning, ModelVersionWarning, RimclfWarning,
        UserWarning, RuntimeWarning, DeprecationWarning, FutureWarning, Warning,
    )
}
_ALLOWED_DTYPES = ("float32", "float64")
_NPY_HEADER_ROOM = 4096  # bytes an .npy header may take besides the data
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
#: A temporary file of the cache folder older than this (s) was left by a worker that died.
STALE_TEMPORARY_S = 24 * 3600


class CorruptEntry(Exception):
    """A cache entry that exists but cannot be trusted (the message says why)."""


def _category_name(category: type[Warning]) -> str:
    for cls in category.__mro__:
        if cls.__name__ in NOTE_CATEGORIES and NOTE_CATEGORIES[cls.__name__] is cls:
            return cls.__name__
    return "Warning"


class FeatureCache:
    """Read and write entries of one cache folder (see the module docstring).

    Parameters
    ----------
    folder : str or path-like
        Created when missing.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)

    def remove_stale_temporaries(self, max_age_s: float = STALE_TEMPORARY_S) -> None:
        """Remove temporary files, and ``.npz`` files without their ``.json``, older than
        ``max_age_s`` (left by workers killed mid-write)."""
        now = time.time()
        try:  # the cache's own names only: --cache may be a folder that holds the user's files too
            candidates = [p for p in self.folder.iterdir()
                          if (p.name.startswith(".") and p.name.endswith(".tmp") and _KEY.fullmatch(p.name[1:65]))
                          or (p.suffix == ".npz" and _KEY.fullmatch(p.stem) and not p.with_suffix(".json").exists())]
        except OSError:
            return
        for path in candidates:
            try:
                if now - path.stat().st_mtime > max_age_s:
                    path.unlink()
            except OSError:
                pass

    def paths(self, key: str) -> tuple[Path, Path]:
        """The ``(npz, json)`` paths of an entry."""
        return self.folder / f"{key}.npz", self.folder / f"{key}.json"

    def load(self, key: str, expected: dict[str, tuple[int, ...]]) -> tuple[dict[str, np.ndarray], list[Note]] | None:
        """The entry's arrays and notes, or None when there is no entry (no ``.json`` yet).

        Parameters
        ----------
        key : str
        expected : dict
            ``{array name: shape}``: exactly these arrays, with these shapes, must be present.

        Raises
        ------
        CorruptEntry
            The entry's ``.json`` exists but the entry is incomplete, damaged or foreign.
        """
        npz_path, json_path = self.paths(key)
        if not json_path.exists():  # an ``.npz`` alone is an entry being written (or whose writer died)
            return None
        metadata = self._metadata(key, json_path, expected)
        try:
            digest = file_sha256(npz_path)
        except OSError as exc:
            raise CorruptEntry(f"{npz_path.name} cannot be read ({exc.strerror or exc})") from exc
        if digest != metadata["npz_sha256"]:
            raise CorruptEntry(f"{npz_path.name} does not match the SHA-256 recorded in {json_path.name}")
        arrays = self._arrays(npz_path, metadata["arrays"], expected)
        notes = [(NOTE_CATEGORIES[note["category"]], note["message"]) for note in metadata["notes"]]
        return arrays, notes

    def _metadata(self, key: str, json_path: Path, expected: dict[str, tuple[int, ...]]) -> dict:
        try:
            metadata = json.loads(json_path.read_text(encoding="utf-8"), parse_constant=_refuse_constant)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise CorruptEntry(f"{json_path.name} is not readable JSON ({exc})") from exc
        if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
            raise CorruptEntry(f"{json_path.name} is not a rimclf feature-cache entry")
        if metadata.get("version") != FORMAT_VERSION or metadata.get("key") != key:
            raise CorruptEntry(f"{json_path.name} has another format version or key")
        digest, arrays, notes = metadata.get("npz_sha256"), metadata.get("arrays"), metadata.get("notes")
        if not isinstance(digest, str) or not isinstance(arrays, dict) or not isinstance(notes, list):
            raise CorruptEntry(f"{json_path.name} lacks npz_sha256, arrays or notes")
        if set(arrays) != set(expected):
            raise CorruptEntry(f"{json_path.name} lists arrays {sorted(arrays)}, expected {sorted(expected)}")
        for name, spec in arrays.items():
            if not isinstance(spec, dict) or spec.get("dtype") not in _ALLOWED_DTYPES or spec.get("shape") != list(expected[name]):
                raise CorruptEntry(f"{json_path.name}: array {name!r} is {spec}, expected float of shape {list(expected[name])}")
        for note in notes:
            if (
                not isinstance(note, dict) or set(note) != {"category", "message"}
                or note["category"] not in NOTE_CATEGORIES or not isinstance(note["message"], str)
            ):
                raise CorruptEntry(f"{json_path.name} has a note that is not a known warning: {str(note)[:200]}")
        return metadata

    def _arrays(self, npz_path: Path, specs: dict, expected: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
        try:
            with zipfile.ZipFile(npz_path) as archive:
                members = {info.filename: info for info in archive.infolist()}
                if set(members) != {f"{name}.npy" for name in expected}:
                    raise CorruptEntry(f"{npz_path.name} holds {sorted(members)}, expected {sorted(expected)}")
                for name, shape in expected.items():  # no decompression bomb: sizes checked before reading
                    limit = int(np.prod(shape, dtype=np.int64)) * 8 + _NPY_HEADER_ROOM
                    if members[f"{name}.npy"].file_size > limit:
                        raise CorruptEntry(f"{npz_path.name}: {name}.npy is larger than its shape allows")
            with np.load(npz_path, allow_pickle=False) as content:
                arrays = {name: content[name] for name in expected}
        except CorruptEntry:
            raise
        except Exception as exc:  # zipfile, numpy and OS errors of a damaged file
            raise CorruptEntry(f"{npz_path.name} cannot be read ({type(exc).__name__}: {exc})") from exc
        for name, array in arrays.items():
            if str(array.dtype) != specs[name]["dtype"] or array.shape != tuple(expected[name]):
                raise CorruptEntry(f"{npz_path.name}: {name} is {array.dtype} {array.shape}, not as recorded")
        return arrays

    def save(self, key: str, arrays: dict[str, np.ndarray], notes: list[Note]) -> None:
        """Write an entry atomically (``.npz`` then ``.json``, each via a temporary file and a rename)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        npz_path, json_path = self.paths(key)
        arrays = {name: np.ascontiguousarray(array) for name, array in sorted(arrays.items())}
        _write_atomically(npz_path, lambda tmp: _write_npz(tmp, arrays))
        metadata = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "key": key,
            "npz_sha256": file_sha256(npz_path),
            "arrays": {name: {"dtype": str(array.dtype), "shape": list(array.shape)} for name, array in arrays.items()},
            "notes": [{"category": _category_name(category), "message": str(message)} for category, message in notes],
        }
        text = json.dumps(metadata, indent=1, allow_nan=False) + "\n"
        try:
            _write_atomically(json_path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        except BaseException:  # e.g. a full disk: no array file is left without the entry that names it
            npz_path.unlink(missing_ok=True)
            raise


#: a cache key (a SHA-256 hex digest): the name of every file the cache writes
_KEY = re.compile(r"[0-9a-f]{64}")


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An uncompressed ``.npz`` whose bytes depend on the arrays only (fixed member timestamps)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            if array.dtype.hasobject:
                raise TypeError(f"{name}: object arrays are not cached")
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            with archive.open(info, "w", force_zip64=True) as handle:
                np.lib.format.write_array(handle, array, allow_pickle=False)


def _write_atomically(path: Path, writer) -> None:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        writer(tmp)
        public_permissions(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def warn_corrupt(entry: Path, reason: str, notes: list[Note]) -> None:
    """Record (as a note, issued in the caller's process) that an entry was recomputed."""
    notes.append((DataWarning, f"feature cache entry {entry} was not used: {reason}; recomputed and overwritten"))
