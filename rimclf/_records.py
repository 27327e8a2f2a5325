"""What rimclf records beside its results: package versions, plain JSON values, file digests.

Model files, feature exports, phantom cohorts, benchmark and tuning results all write a JSON
record so that a number can be traced to its software, settings and inputs; these are the
helpers they share.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
from collections.abc import Iterable
from pathlib import Path
from importlib import metadata
from numbers import Integral, Real
from typing import Any

import numpy as np

from rimclf._version import __version__


def installed_versions(names: Iterable[str]) -> dict[str, str]:
    """Python's version and each named distribution's installed version ("not installed" when absent).

    ``"rimclf"`` is this package's own ``__version__`` (also right in a source checkout that is
    not installed).
    """
    found = {"python": platform.python_version()}
    for name in names:
        if name == "rimclf":
            found[name] = __version__
            continue
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def json_value(value: Any, where: str = "value", *, finite: bool = True) -> Any:
    """``value`` as plain JSON types: numpy scalars unwrapped, tuples as lists, str-keyed dicts.

    Parameters
    ----------
    value : object
    where : str, default="value"
        Names the value in error messages (items are named ``where[i]`` and ``where.key``).
    finite : bool, default=True
        Refuse NaN and infinite floats, which strict JSON cannot hold.

    Raises
    ------
    TypeError
        ``value`` holds an object that is not a number, string, boolean, None, list, tuple or
        str-keyed dict (e.g. a class, a callback, a RandomState).
    ValueError
        ``finite`` and ``value`` holds a NaN or infinite float.
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        if finite and not math.isfinite(float(value)):
            raise ValueError(f"{where}={value!r} is not a finite number")
        return float(value)
    if isinstance(value, (list, tuple)):
        return [json_value(item, f"{where}[{i}]", finite=finite) for i, item in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return {key: json_value(item, f"{where}.{key}", finite=finite) for key, item in value.items()}
    raise TypeError(
        f"{where}={value!r} is a {type(value).__name__}; JSON holds numbers, strings, booleans, None, "
        "lists and dicts only"
    )


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (hex), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json(path: Path, content: dict) -> None:
    """Write ``content`` as indented JSON (values JSON cannot hold as ``str``), its folder made first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2, default=str) + "\n", encoding="utf-8")
