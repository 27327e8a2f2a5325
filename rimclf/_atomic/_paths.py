"""Output paths: names from the data kept inside their folder, locations checked writable before any work."""

from __future__ import annotations

import os
from pathlib import Path

from rimclf.errors import OutputError


def safe_child(folder: str | os.PathLike, *names: str) -> Path:
    """``folder / name / ...``, refusing names that would lead outside ``folder``.

    Each name must be a single relative path component: not empty, not ``.`` or ``..``, without
    a path separator or NUL; and the result, symbolic links resolved, must lie inside ``folder``.

    Raises
    ------
    OutputError
        Naming the folder and the offending name.
    """
    folder = Path(folder)
    path = folder
    for name in names:
        text = str(name)
        if text in ("", ".", "..") or "/" in text or "\0" in text or (os.altsep and os.altsep in text) or os.sep in text:
            raise OutputError(f"{folder}: refused to write {text!r}: a name from the data must be one plain path component")
        path = path / text
    resolved_folder = folder.resolve()
    if not path.resolve().is_relative_to(resolved_folder):
        raise OutputError(f"{folder}: refused to write {path}: it resolves to {path.resolve()}, outside the output folder")
    return path


def check_writable_parent(path: str | os.PathLike) -> Path:
    """Check, before any work, that ``path`` (a file or folder to be created) can be created.

    Its nearest existing ancestor must be a folder this process may write into; the folders in
    between are created later by the writer.

    Returns
    -------
    pathlib.Path
        That nearest existing ancestor.

    Raises
    ------
    OutputError
        Naming ``path`` and the ancestor that is missing, not a folder or not writable.
    """
    path = Path(path).expanduser().absolute()
    ancestor = path.parent
    while not os.path.lexists(ancestor) and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputError(f"{path}: cannot be created: {ancestor} is not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        reason = "is on a read-only file system" if _read_only(ancestor) else "is not writable by this user"
        raise OutputError(f"{path}: cannot be created: {ancestor} {reason}")
    return ancestor


def _read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:  # pragma: no cover - statvfs unsupported
        return False
