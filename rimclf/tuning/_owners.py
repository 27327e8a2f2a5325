"""Which process runs a trial: interrupted trials and trials of killed processes end ``FAIL``.

Every trial records in a system attribute the process running it (:data:`OWNER_ATTR`,
``<host key>.<pid>``, the host key of :mod:`rimclf._atomic`, which tells containers apart).
A trial interrupted by Ctrl-C or SIGTERM is marked ``FAIL`` by Optuna and gets
``fail_reason = "interrupted"`` here. A process killed outright (``kill -9``, out of memory)
cannot mark anything: its trial stays ``RUNNING`` in the storage. :func:`fail_stale_trials`,
called when a study is opened again, marks such trials ``FAIL`` when their process is on this
host and no longer runs (trials of other hosts are left alone: their processes cannot be seen).
"""

from __future__ import annotations

import logging
import os

import optuna
from optuna.trial import TrialState

from rimclf._atomic._siblings import host_key, process_alive

#: Trial system attribute: ``<host key>.<pid>`` of the process running the trial.
OWNER_ATTR = "rimclf:owner"
#: Trial system attribute: why rimclf marked the trial FAIL.
REASON_ATTR = "fail_reason"
#: ``fail_reason`` of a trial stopped by Ctrl-C or SIGTERM.
INTERRUPTED = "interrupted"


def owner_key() -> str:
    """``<host key>.<pid>`` of this process."""
    return f"{host_key()}.{os.getpid()}"


def tag_owner(trial: optuna.Trial) -> None:
    """Record in ``trial`` that this process runs it."""
    trial.storage.set_trial_system_attr(trial._trial_id, OWNER_ATTR, owner_key())


def mark_interrupted(trial: optuna.Trial) -> None:
    """Record that ``trial`` was interrupted (Optuna then stores it as ``FAIL``)."""
    try:
        trial.storage.set_trial_system_attr(trial._trial_id, REASON_ATTR, INTERRUPTED)
    except Exception:  # noqa: BLE001 - best effort while stopping; the trial ends FAIL regardless
        pass


def _owner_gone(owner: object) -> bool:
    if not isinstance(owner, str) or "." not in owner:
        return False
    host, _, pid = owner.rpartition(".")
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    return process_alive(host, int(pid)) is False


def fail_stale_trials(study: optuna.Study) -> list[int]:
    """Mark ``FAIL`` the ``RUNNING`` trials whose process (on this host) no longer runs.

    Returns
    -------
    list of int
        Their trial numbers.
    """
    storage = study._storage
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if _owner_gone(trial.system_attrs.get(OWNER_ATTR)):
            storage.set_trial_system_attr(trial._trial_id, REASON_ATTR, "its process ended without finishing it (killed?)")
            if storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
                failed.append(trial.number)
    return failed


class _DropInterruptedTrialLogs(logging.Filter):
    """Optuna logs a failed trial with its traceback; an interrupted one is reported by the
    caller in one line instead."""

    def __init__(self) -> None:
        super().__init__()
        self.interrupted: set[str] = set()  # "Trial N " prefixes of the interrupted trials' records

    def filter(self, record: logging.LogRecord) -> bool:
        exc_info = record.exc_info
        words = record.getMessage().split(" ", 2)
        prefix = " ".join(words[:2]) + " " if len(words) > 2 and words[0] == "Trial" else None
        if exc_info and exc_info[0] is not None and issubclass(exc_info[0], KeyboardInterrupt):
            if prefix:
                self.interrupted.add(prefix)
            return False
        return not (prefix in self.interrupted and record.getMessage().startswith(prefix + "failed with value"))


_FILTER = _DropInterruptedTrialLogs()


def quiet_interrupted_trials() -> None:
    """Keep Optuna from logging the traceback of an interrupted trial (idempotent)."""
    logger = logging.getLogger("optuna.study._optimize")  # where Optuna logs failed trials
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
