"""Atomic, no-clobber output: nothing half-written is left behind, nothing is overwritten unasked."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rimclf.errors import OutputExistsError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def public_permissions(path: Path) -> None:
    """Give a file made by ``mkstemp`` (0600) or a folder made by ``mkdtemp`` (0700) the
    permissions an ordinary ``open``/``mkdir`` would have given it under the current umask."""
    mode = 0o777 if path.is_dir() else 0o666
    os.chmod(path, mode & ~_current_umask())


def refuse_overwrite(path: str | os.PathLike, *, force: bool) -> None:
    """Raise :class:`~rimclf.errors.OutputExistsError` (a ``FileExistsError``) if ``path``
    exists and ``force`` is false."""
    path = Path(path)
    if path.exists() and not force:
        raise OutputExistsError(f"{path} already exists; use --force (force=True) to overwrite it")


def atomic_write(path: str | os.PathLike, writer: Callable[[Path], object], *, force: bool = False) -> Path:
    """Write one file atomically.

    ``writer`` receives a temporary path in the destination folder (with the same suffix) and
    writes the content there; the temporary file then replaces ``path`` in one rename. If the
    writer fails, the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    refuse_overwrite(path, force=force)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer(tmp)
        public_permissions(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str, *, force: bool = False) -> Path:
    """Write a text file atomically (UTF-8)."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), force=force)


@contextmanager
def atomic_output_dir(out: str | os.PathLike, *, force: bool = False) -> Iterator[Path]:
    """Build an output directory in a temporary sibling and move it into place on success.

    Yields the temporary directory to write into. On success it replaces ``out`` (an existing
    ``out`` is an error unless ``force``); on any exception it is removed and ``out`` is untouched.
    """
    out = Path(out)
    refuse_overwrite(out, force=force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    public_permissions(tmp)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        backup = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
        backup.rmdir()
        os.replace(out, backup)
        os.replace(tmp, out)
        shutil.rmtree(backup, ignore_errors=True) if backup.is_dir() else backup.unlink(missing_ok=True)
    else:
        os.replace(tmp, out)
