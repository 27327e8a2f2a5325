"""Atomic, exclusive output: nothing half-written, nothing overwritten unasked, never a missing folder.

Guarantees of :func:`atomic_output_dir` (every output folder rimclf writes)
--------------------------------------------------------------------------
- **Complete or absent.** The folder is built in a hidden sibling
  ``.<name>.rimclf-tmp.<host>.<pid>.<ns>.<token>`` and renamed into place when complete; any error
  removes it (and the missing parent folders it created) and leaves ``out`` as it was.
- **Exclusive.** Without ``force`` the final rename never replaces anything
  (``renameat2(RENAME_NOREPLACE)``): if ``out`` appeared meanwhile, this writer fails with
  :class:`FileExistsError` ("already exists"). A second process that starts writing an ``out``
  that a live process is writing fails at once (:class:`~rimclf.errors.OutputError`); when both
  start together, the earlier one wins. :func:`reserve_output_dir` (or the decorator :func:`reserving_output`) takes that
  claim up front, so a long command (training, tuning) fails before its work rather than after.
- **Never missing.** ``force`` swaps the new folder and the old one in one
  ``renameat2(RENAME_EXCHANGE)``. Where that is unavailable the old folder is first moved aside to
  ``.<name>.rimclf-old.<host>.<pid>.<ns>``; a process killed between the two renames leaves it
  there, and the next rimclf call that checks ``out`` (any writer into it) restores it.
- **No litter.** Temporary and set-aside folders of dead processes on this host (their pid is in
  the name) are removed by the next writer beside them. Those of other hosts (a shared file
  system) are left alone, since their liveness cannot be checked; "host" means host name, boot
  and pid namespace, so containers sharing a host name never remove each other's live folders.
- **Clear environment errors.** An ``OSError`` while writing (disk full, read-only file system,
  permission denied, quota) and ``torch.save``'s disk-full ``RuntimeError`` become an
  :class:`~rimclf.errors.OutputError` naming ``out``.

:func:`safe_child` keeps file names taken from data (participant ids) inside their folder;
:func:`check_writable_parent` checks, before any work, that an output can be created at all
(both in :mod:`rimclf._atomic._paths`). The sibling names and the clean-up after dead processes live in
:mod:`rimclf._atomic._siblings`, the two renames in :mod:`rimclf._atomic._rename`.
"""

from __future__ import annotations

import atexit
import errno
import functools
import inspect
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rimclf._atomic._inputs import check_output_location, cohort_inputs, is_rimclf_output, known_inputs
from rimclf._atomic._paths import check_writable_parent, safe_child
from rimclf._atomic._rename import exchange, rename_noreplace
from rimclf._atomic._siblings import (
    _busy_error,
    _live_writers,
    _remove,
    _sibling_path,
    parse_sibling,
    recover_output,
)
from rimclf.errors import OutputError, OutputExistsError, RimclfError

__all__ = [
    "atomic_output_dir",
    "atomic_write",
    "atomic_write_text",
    "check_output_location",
    "check_writable_parent",
    "known_inputs",
    "cohort_inputs",
    "copy_tree_linked",
    "is_rimclf_output",
    "output_reservation",
    "public_permissions",
    "recover_output",
    "refuse_overwrite",
    "release_output_dir",
    "reserve_output_dir",
    "reserving_output",
    "safe_child",
]

def copy_tree_linked(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Copy the folder ``source`` to ``target`` (which must not exist), hard-linking its files where
    the file system allows and copying them where it does not.

    For carrying a feature cache or a phantom cohort from an output being replaced (``--force``)
    into its successor: their writers replace files by renaming, never in place, so nothing
    written into ``target`` later can change ``source`` through a shared link.
    """

    def link_or_copy(file: str, destination: str) -> None:
        try:
            os.link(file, destination)
        except OSError:  # another file system, or links not supported
            shutil.copy2(file, destination)

    shutil.copytree(source, target, symlinks=True, copy_function=link_or_copy)


_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EIO}

@dataclass
class _Claim:
    """This process's temporary folder for an output, and the missing parent folders it created."""

    tmp: Path
    created: list[Path]

    def give_up(self) -> None:
        """Remove the temporary folder, and the parents it created if they stayed empty."""
        _remove(self.tmp)
        for folder in self.created:  # deepest first
            try:
                folder.rmdir()
            except OSError:
                break


_RESERVED: dict[str, _Claim] = {}
_RESERVED_LOCK = threading.Lock()


def _current_umask() -> int:
    """The process umask, read without changing it where Linux allows (``os.umask`` alone would
    set it for a moment, racing with other threads creating files)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _RESERVED_LOCK:
        mask = os.umask(0)
        os.umask(mask)
    return mask


def public_permissions(path: Path) -> None:
    """Give a file made by ``mkstemp`` (0600) or a folder made by ``mkdtemp`` (0700) the
    permissions an ordinary ``open``/``mkdir`` would have given it under the current umask."""
    mode = 0o777 if path.is_dir() else 0o666
    os.chmod(path, mode & ~_current_umask())


# -- checks and reservations ----------------------------------------------------------------------


def refuse_overwrite(path: str | os.PathLike, *, force: bool) -> None:
    """Check, before any work, that ``path`` may be written.

    Refuses an empty ``path`` and the current folder or a folder above it
    (:func:`check_output_location`), recovers ``path`` after a dead writer
    (:func:`recover_output`), checks that it can be created (:func:`check_writable_parent`) and
    that no other live process is writing it.

    Raises
    ------
    ParameterError
        If ``path`` is empty.
    OutputExistsError
        If ``path`` exists and ``force`` is false (a :class:`FileExistsError`).
    OutputError
        If it cannot be created, or another process is writing it.
    """
    check_output_location(path)
    path = Path(path)
    recover_output(path)
    check_writable_parent(path)
    writers = _live_writers(path)
    if writers:
        raise _busy_error(path, writers[0])
    if os.path.lexists(path) and not force:
        raise OutputExistsError(f"{path} already exists; use --force (force=True) to overwrite it")


def _claim(out: Path) -> _Claim:
    """Create this process's temporary folder for ``out``; fail if an earlier live writer has one."""
    missing = []
    parent = Path(os.path.abspath(out)).parent
    while not os.path.lexists(parent) and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = _sibling_path(out, "tmp")
        os.mkdir(tmp)
    except OSError as exc:
        raise OutputError(f"{out}: cannot be created: {exc.strerror or exc}") from exc
    claim = _Claim(tmp, missing)
    earlier = _live_writers(out, before=parse_sibling(tmp))
    if earlier:
        claim.give_up()
        raise _busy_error(out, earlier[0])
    return claim


def reserve_output_dir(out: str | os.PathLike, *, force: bool = False) -> Path:
    """Check and claim the output folder ``out`` before a long computation that ends up writing it.

    Runs :func:`refuse_overwrite`, then creates this process's temporary folder for ``out`` now,
    so that another process starting to write the same ``out`` fails at once instead of after its
    work. :func:`atomic_output_dir` later fills that folder. The claim ends with
    :func:`atomic_output_dir`, :func:`release_output_dir`, or when the process exits (a dead
    process's claim is cleaned up by the next writer). Prefer :func:`reserving_output` or
    :func:`output_reservation`, which release it when the work fails.

    Returns
    -------
    pathlib.Path
        ``out``.
    """
    out = Path(out)
    refuse_overwrite(out, force=force)
    _check_folder_target(out)
    key = os.path.abspath(out)
    with _RESERVED_LOCK:
        if key not in _RESERVED or not _RESERVED[key].tmp.is_dir():
            _RESERVED[key] = _claim(out)
    return out


def release_output_dir(out: str | os.PathLike) -> None:
    """Give up this process's claim on ``out`` (no-op when :func:`atomic_output_dir` used it)."""
    with _RESERVED_LOCK:
        claim = _RESERVED.pop(os.path.abspath(out), None)
    if claim is not None:
        claim.give_up()


@contextmanager
def output_reservation(out: str | os.PathLike, *, force: bool = False) -> Iterator[Path]:
    """Claim ``out`` (:func:`reserve_output_dir`) for the duration of a ``with`` block."""
    out = reserve_output_dir(out, force=force)
    try:
        yield out
    finally:
        release_output_dir(out)


def reserving_output(
    parameter: str = "out", *, force_parameter: str = "force",
    inputs: Callable[[dict], Mapping[str, object]] | None = None,
) -> Callable:
    """Decorate a function that ends up writing the output folder given as its ``parameter``.

    Before the function runs, the folder is checked and claimed (:func:`reserve_output_dir`,
    with the function's ``force_parameter``): an existing folder without ``force``, a location
    that cannot be written or another process writing the same folder fail at once, before any
    long computation. ``inputs``, given the function's arguments by name, returns what the
    function reads (``{what: path or paths}``; default :func:`known_inputs`: the arguments
    ``cohort``, ``model``, ``qsm``/``flair``/``mask``, ``cache``/``memory`` and featurizers'
    caches); an output that is, contains or lies inside one of them is refused first
    (:func:`check_output_location`). The claim is given up when the
    function returns or raises; a ``None`` folder means "no output" and nothing is claimed.
    """

    def decorate(function: Callable) -> Callable:
        signature = inspect.signature(function)

        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            out = bound.arguments.get(parameter)
            if out is None:
                return function(*args, **kwargs)
            check_output_location(out, (inputs or known_inputs)(bound.arguments), name=parameter)
            with output_reservation(out, force=bool(bound.arguments.get(force_parameter, False))):
                return function(*args, **kwargs)

        return wrapper

    return decorate


def _take_reservation(out: Path) -> _Claim:
    with _RESERVED_LOCK:
        claim = _RESERVED.pop(os.path.abspath(out), None)
    return claim if claim is not None and claim.tmp.is_dir() else _claim(out)


@atexit.register
def _release_reservations() -> None:
    with _RESERVED_LOCK:
        for claim in _RESERVED.values():
            sibling = parse_sibling(claim.tmp)
            if sibling is not None and sibling.ours:  # not a forked child's copy of the parent's claims
                claim.give_up()
        _RESERVED.clear()


def _check_folder_target(out: Path) -> None:
    if os.path.lexists(out) and not out.is_dir():
        raise OutputError(f"{out} exists and is not a folder; rimclf writes an output folder there")


# -- writing --------------------------------------------------------------------------------------


def _output_error(exc: BaseException, out: Path, tmp: Path) -> OutputError | None:
    """The :class:`OutputError` an environment fault while writing ``out`` becomes; None for other errors."""
    if isinstance(exc, (RimclfError, FileExistsError)):
        return None
    if isinstance(exc, OSError) and exc.errno in _WRITE_ERRNOS:
        filename = exc.filename
        if filename is not None and not Path(os.path.abspath(filename)).is_relative_to(os.path.abspath(out.parent)):
            return None  # e.g. an unreadable input file: not the output's fault
        reason = exc.strerror or str(exc)
    elif isinstance(exc, RuntimeError) and ("inline_container" in str(exc) or "PytorchStreamWriter" in str(exc)):
        reason = f"torch.save failed ({(str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]}): is the disk full?"
    else:
        return None
    return OutputError(f"{out}: cannot be written: {reason}; nothing was written (temporary {tmp.name} removed)")


def _publish(tmp: Path, out: Path, *, force: bool) -> None:
    """Move the complete ``tmp`` to ``out``: never replacing without ``force``, never leaving ``out`` missing."""
    try:
        rename_noreplace(tmp, out)
        return
    except FileExistsError:
        if not force:
            raise OutputExistsError(
                f"{out} already exists: another process created it while this one was working; "
                "nothing was replaced (use --force to replace it)"
            ) from None
    _check_folder_target(out)
    if exchange(tmp, out):  # tmp now holds the previous out
        _remove(tmp)
        return
    old = _sibling_path(out, "old")
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    _remove(old)


@contextmanager
def atomic_output_dir(out: str | os.PathLike, *, force: bool = False) -> Iterator[Path]:
    """Build an output folder in a temporary sibling and move it into place when complete.

    Yields the temporary folder to write into (the one :func:`reserve_output_dir` claimed, if
    it did). See the module docstring for the guarantees.

    Raises
    ------
    FileExistsError
        ``out`` exists (now, or when the writing is done) and ``force`` is false.
    OutputError
        Another process is writing ``out``, or the file system refused the writing.
    """
    out = Path(out)
    refuse_overwrite(out, force=force)
    _check_folder_target(out)
    claim = _take_reservation(out)
    tmp = claim.tmp
    try:
        yield tmp
        _publish(tmp, out, force=force)
    except BaseException as exc:
        claim.give_up()
        error = _output_error(exc, out, tmp)
        if error is not None:
            raise error from exc
        raise


def atomic_write(path: str | os.PathLike, writer: Callable[[Path], object], *, force: bool = False) -> Path:
    """Write one file atomically.

    ``writer`` receives a temporary path in the destination folder (with the same suffix) and
    writes the content there; the temporary file then takes the place of ``path`` in one rename
    (without ``force``, a rename that fails if ``path`` appeared meanwhile). If the writer fails,
    the temporary file is removed and ``path`` is untouched; file-system faults become
    :class:`~rimclf.errors.OutputError`.
    """
    path = Path(path)
    refuse_overwrite(path, force=force)
    suffix = "".join(path.suffixes)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix, dir=path.parent)
    except OSError as exc:
        raise OutputError(f"{path}: cannot be created: {exc.strerror or exc}") from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer(tmp)
        public_permissions(tmp)
        if force:
            os.replace(tmp, path)
        else:
            try:
                rename_noreplace(tmp, path)
            except FileExistsError:
                raise OutputExistsError(f"{path} already exists: another process created it meanwhile; use --force") from None
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        error = _output_error(exc, path, tmp)
        if error is not None:
            raise error from exc
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str, *, force: bool = False) -> Path:
    """Write a text file atomically (UTF-8)."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), force=force)
