"""Inputs are sacred: an output may not be, contain or lie inside anything a command reads.

``--force`` replaces the output folder as a whole, so an output that is (or holds) the cohort,
the model, a feature cache or a study journal would delete it; and an output inside one of them
changes it (a prediction written into the cohort makes it unreadable, a model written inside
another model's folder corrupts it). :func:`check_output_location` refuses such outputs, with or
without ``force``, before any work; it also refuses an empty path and the current folder or any
folder above it, which ``--force`` would otherwise replace under the user's feet.

Pure Python (a manifest is read with :mod:`csv`), so that every layer and the command line use
the same check.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from rimclf.errors import OutputError, ParameterError

__all__ = ["check_output_location", "cohort_inputs", "known_inputs"]

#: manifest columns holding file paths (relative to the manifest's folder)
_MANIFEST_PATH_COLUMNS = ("qsm", "flair", "mask", "rims")
PathLike = "str | os.PathLike"


def _real(path: str | os.PathLike) -> Path:
    return Path(os.path.realpath(os.path.expanduser(os.fspath(path))))


def cohort_inputs(cohort: object) -> list[Path]:
    """The paths a cohort given as a path consists of: its folder, or a manifest and the files it lists.

    Anything else (a table, a missing path, an unreadable manifest) gives what can be told
    (``[]`` for a table); reading the cohort later reports its own errors.
    """
    if not isinstance(cohort, (str, os.PathLike)) or not os.fspath(cohort):
        return []
    path = Path(os.path.expanduser(os.fspath(cohort)))
    if not path.is_file():
        return [path]
    found = [path]
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            sample = handle.read(65536)
            handle.seek(0)
            delimiter = "\t" if "\t" in sample.splitlines()[0] else ","
            for row in csv.DictReader(handle, delimiter=delimiter):
                for column in _MANIFEST_PATH_COLUMNS:
                    value = (row.get(column) or "").strip()
                    if value:
                        found.append(path.parent / os.path.expanduser(value))
    except (OSError, UnicodeDecodeError, csv.Error, IndexError):
        pass
    return found


def _cache_folder(memory: object) -> object:
    """The folder of a feature cache given as a path or a ``joblib.Memory``."""
    return getattr(memory, "location", memory)


def known_inputs(arguments: dict) -> dict[str, object]:
    """What a function reads, from its arguments by their rimclf names.

    ``cohort`` (a folder, or a manifest and the files it lists), ``model`` (when a path),
    ``qsm``/``flair``/``mask`` (one subject's files), ``cache``/``memory`` and the ``memory`` of a
    ``featurizer`` or of a fitted ``model``'s ``featurizer_`` (the feature cache). The default
    inputs of :func:`rimclf._atomic.reserving_output`.
    """
    model = arguments.get("model")
    featurizers = [arguments.get("featurizer"), getattr(model, "featurizer_", None)]
    caches = [arguments.get("cache"), arguments.get("memory"), *(getattr(f, "memory", None) for f in featurizers)]
    return {
        "the cohort": cohort_inputs(arguments.get("cohort")),
        "the model": model if isinstance(model, (str, os.PathLike)) else None,
        "an input image": [arguments.get(name) for name in ("qsm", "flair", "mask")],
        "the feature cache": [_cache_folder(cache) for cache in caches if cache is not None],
    }


def _flatten(paths: object) -> list[Path]:
    if paths is None:
        return []
    if isinstance(paths, (str, os.PathLike)):
        return [Path(paths)] if os.fspath(paths) else []
    if isinstance(paths, Iterable):
        return [Path(p) for p in paths if isinstance(p, (str, os.PathLike)) and os.fspath(p)]
    return []


def check_output_location(
    out: str | os.PathLike, inputs: Mapping[str, object] | None = None, *, name: str = "out"
) -> None:
    """Refuse, before any work, an output that would destroy or change an input.

    Parameters
    ----------
    out : str or path-like
        The output file or folder.
    inputs : mapping, optional
        ``{what: path or paths}`` read by the command, e.g. ``{"the cohort": cohort_inputs(c),
        "the model": model_dir, "the feature cache": cache}``; None values are skipped.
    name : str
        The option's name in messages (``out`` in the library, ``-o`` on the command line).

    Raises
    ------
    ParameterError
        ``out`` is empty.
    OutputError
        ``out`` is the current folder or a folder above it; or it is an input, contains one, or
        lies inside an input folder. The message names both and says that nothing was written.
    """
    if not isinstance(out, (str, os.PathLike)) or not os.fspath(out).strip():
        raise ParameterError(f"{name}={out!r} is not valid; it must be the path of an output folder or file")
    target = _real(out)
    here = _real(os.getcwd())
    if here == target or here.is_relative_to(target):
        where = "the current folder" if here == target else f"a folder above the current folder ({here})"
        raise OutputError(
            f"{name}={os.fspath(out)!r} is {where}; rimclf writes (and with --force replaces) the output folder "
            "as a whole, so choose a new folder"
        )
    for what, paths in (inputs or {}).items():
        for path in _flatten(paths):
            source = _real(path)
            if target == source:
                relation = "is"
            elif source.is_relative_to(target):
                relation = "contains"
            elif target.is_relative_to(source) and source.is_dir():
                relation = "lies inside"
            else:
                continue
            raise OutputError(
                f"{name}={os.fspath(out)!r} {relation} {what} ({path}); outputs may never be, contain or lie inside "
                "an input (--force would replace it): choose an output folder elsewhere"
            )
