"""Where a study lives: a journal file on one host, or any Optuna RDB URL for many machines."""

from __future__ import annotations

import os
import random
import time
import warnings
from pathlib import Path

import optuna

from rimclf.errors import OutputError, ParameterError

#: Seconds between the heartbeats that a running trial writes to an RDB storage, and how long
#: without one before another worker marks the trial failed (its machine died or was killed).
HEARTBEAT_INTERVAL_S = 60
HEARTBEAT_GRACE_PERIOD_S = 180

_SQLITE_MAGIC = b"SQLite format 3\x00"
# Tries at opening an RDB storage whose tables other workers are creating at the same time.
_CREATE_ATTEMPTS = 5


def default_storage_path(study_name: str) -> Path:
    """The journal file used when no storage is given: ``<study_name>.journal`` in the cwd."""
    return Path.cwd() / f"{study_name}.journal"


def is_rdb_url(storage: object) -> bool:
    """Whether ``storage`` is a database URL (``dialect[+driver]://...``) rather than a file path."""
    return isinstance(storage, str) and "://" in storage


def open_storage(storage: object = None, *, study_name: str = "rimclf") -> optuna.storages.BaseStorage:
    """Turn a storage description into an Optuna storage.

    Parameters
    ----------
    storage : str, path-like, optuna.storages.BaseStorage or None, default=None
        - ``None``: a journal file ``<study_name>.journal`` in the current directory;
        - a path: an Optuna journal file (``JournalStorage(JournalFileBackend(path))``), created
          when missing. Several processes on one host (or on hosts sharing a file system with
          working file locks) may use it at once; Optuna recommends it over SQLite for that;
        - a URL containing ``://``: an Optuna RDB storage, e.g.
          ``postgresql+psycopg2://user:password@host:5432/db`` for many machines, or
          ``sqlite:///study.db``. Running trials write a heartbeat, so that a trial whose worker
          died is marked failed by the other workers instead of staying "running" forever;
        - an Optuna storage object: used as is.
    study_name : str, default="rimclf"
        Names the default journal file.

    Returns
    -------
    optuna.storages.BaseStorage
    """
    if isinstance(storage, optuna.storages.BaseStorage):
        return storage
    if storage is None:
        storage = default_storage_path(study_name)
    if is_rdb_url(storage):
        return _open_rdb(storage)
    if not isinstance(storage, (str, os.PathLike)):
        raise ParameterError(
            f"storage must be a journal file path, an Optuna RDB URL or an Optuna storage, got {storage!r}"
        )
    path = Path(storage).expanduser()
    if path.is_dir():
        raise OutputError(f"storage={str(path)!r} is a directory; give a journal file path inside it")
    if path.is_file():
        with path.open("rb") as handle:
            if handle.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC:
                raise OutputError(
                    f"storage={str(path)!r} is an SQLite database, not a journal file; "
                    f"pass the URL 'sqlite:///{path.resolve()}' to use it"
                )
    path.parent.mkdir(parents=True, exist_ok=True)
    backend = optuna.storages.journal.JournalFileBackend(str(path))
    return optuna.storages.JournalStorage(backend)


def _open_rdb(url: str) -> optuna.storages.RDBStorage:
    """Open an RDB storage, surviving workers that create its tables at the same moment.

    On an empty database every worker creates Optuna's tables; PostgreSQL's ``CREATE TABLE`` is
    not atomic against a concurrent one, so all but one worker may get a unique-key violation
    (``pg_type_typname_nsp_index``). The tables exist by then: trying again succeeds.
    """
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    rng = random.Random()
    for attempt in range(_CREATE_ATTEMPTS):
        try:
            with warnings.catch_warnings():  # heartbeats are marked experimental since Optuna 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url, heartbeat_interval=HEARTBEAT_INTERVAL_S, grace_period=HEARTBEAT_GRACE_PERIOD_S
                )
        except ImportError as exc:
            raise OutputError(
                f"storage={describe_storage(url)!r}: its database driver is not installed ({exc})"
            ) from exc
        except (IntegrityError, ProgrammingError):
            if attempt + 1 == _CREATE_ATTEMPTS:
                raise
            time.sleep(rng.uniform(0.1, 0.5) * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


def describe_storage(storage: object) -> str:
    """A printable description of a storage, with any database password hidden."""
    if isinstance(storage, optuna.storages.BaseStorage):
        return type(storage).__name__
    if is_rdb_url(storage):
        from sqlalchemy.engine import make_url

        try:
            return make_url(storage).render_as_string(hide_password=True)
        except Exception:  # an unparsable URL: never print it, it may hold a password
            return storage.split("://", 1)[0] + "://***"
    if storage is None:
        return "journal file (default)"
    return str(Path(storage).expanduser())
