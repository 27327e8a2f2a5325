"""Two renames that ``os`` lacks: one that never replaces, one that swaps two paths atomically.

On Linux both use ``renameat2(2)`` (glibc >= 2.28, kernel >= 3.15, supported by ext4, XFS,
btrfs, tmpfs and most local file systems). Where it is missing or the file system refuses it
(``EINVAL``, ``ENOSYS``; e.g. some network file systems), :func:`rename_noreplace` falls back to
a check followed by ``os.rename`` (which, for folders, still fails onto a non-empty folder) and
:func:`exchange` reports ``False`` so that the caller uses its own fallback.
"""

from __future__ import annotations

import ctypes
import errno
import os
from functools import cache

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP}


@cache
def _renameat2():
    """libc's ``renameat2`` with its argument types, or None when this libc has none."""
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):  # not glibc >= 2.28, or not Linux
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def _call_renameat2(source: os.PathLike | str, target: os.PathLike | str, flags: int) -> bool:
    """Run ``renameat2``; False when it is unavailable here, an ``OSError`` for any other failure."""
    function = _renameat2()
    if function is None:
        return False
    if function(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), os.fspath(source), None, os.fspath(target))


def rename_noreplace(source: os.PathLike | str, target: os.PathLike | str) -> None:
    """Rename ``source`` to ``target``, failing with :class:`FileExistsError` if ``target`` exists.

    Atomic with ``renameat2(RENAME_NOREPLACE)``. The fallback checks first and then renames:
    another process could create ``target`` in between, but a folder is only ever renamed onto an
    empty one, so no written file is lost.
    """
    if _call_renameat2(source, target, _RENAME_NOREPLACE):
        return
    if os.path.lexists(target):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), os.fspath(target))
    try:
        os.rename(source, target)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), os.fspath(target)) from exc
        raise


def exchange(first: os.PathLike | str, second: os.PathLike | str) -> bool:
    """Swap two existing paths in one atomic step (``renameat2(RENAME_EXCHANGE)``).

    Returns
    -------
    bool
        True when swapped; False when this system or file system cannot (nothing changed).

    Raises
    ------
    OSError
        Any other failure (e.g. one of the paths is missing); nothing changed.
    """
    return _call_renameat2(first, second, _RENAME_EXCHANGE)
