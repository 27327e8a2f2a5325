"""Worker processes that end when the rimclf process that started them is killed.

A joblib (loky) worker whose parent was killed with ``kill -9`` finishes its current subject and
then waits up to five minutes for work that never comes; a tuning worker would even run all its
remaining trials. :func:`exit_with_parent` starts, once per worker process, a daemon thread that
checks every second whether the starting process still exists (the worker's parent pid changes
when it dies) and ends the worker at once when it does not.
"""

from __future__ import annotations

import os
import threading
import time

#: Seconds between two looks at the parent process.
CHECK_INTERVAL_S = 1.0

_watched: int | None = None
_WATCH_LOCK = threading.Lock()


def _watch(parent: int) -> None:
    while True:
        time.sleep(CHECK_INTERVAL_S)
        if os.getppid() != parent:
            os._exit(1)  # no cleanup: the parent that would collect anything is gone


def exit_with_parent(parent: int | None = None) -> None:
    """End this process as soon as its parent ``parent`` (default: the current one) is gone.

    With ``parent`` given and already gone (this process was re-parented), end it now. Call it
    in worker processes only, never in the main process (a rimclf run whose shell
    closed must go on). Idempotent.
    """
    global _watched
    if parent is not None and os.getppid() != int(parent):
        os._exit(1)  # the parent died before this worker got going
    parent = os.getppid() if parent is None else int(parent)
    with _WATCH_LOCK:
        if _watched is not None or parent <= 1:
            return
        _watched = parent
        threading.Thread(target=_watch, args=(parent,), name="rimclf-exit-with-parent", daemon=True).start()


def in_loky_worker() -> bool:
    """Whether this process is a joblib/loky worker (rather than the main process or a thread)."""
    try:
        from joblib.externals.loky import process_executor
    except ImportError:  # pragma: no cover
        return False
    return process_executor._CURRENT_DEPTH > 0
