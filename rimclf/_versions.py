"""Installed package versions, recorded next to results so that a number can be traced to its software."""

from __future__ import annotations

import platform
from collections.abc import Iterable
from importlib import metadata


def installed_versions(names: Iterable[str]) -> dict[str, str]:
    """Python's version and each named distribution's installed version ("not installed" when absent)."""
    found = {"python": platform.python_version()}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found
