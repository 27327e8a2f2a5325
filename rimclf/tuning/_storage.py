"""Where a study lives: a journal file on one host, or any Optuna RDB URL for many machines."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import time
import warnings
from pathlib import Path

import optuna

from rimclf._atomic import check_writable_parent, safe_child
from rimclf.errors import OutputError, ParameterError

#: Seconds between the heartbeats that a running trial writes to an RDB storage, and how long
#: without one before another worker marks the trial failed (its machine died or was killed).
HEARTBEAT_INTERVAL_S = 60
HEARTBEAT_GRACE_PERIOD_S = 180

_SQLITE_MAGIC = b"SQLite format 3\x00"
# Tries at opening an RDB storage whose tables other workers are creating at the same time.
_CREATE_ATTEMPTS = 5
#: Seconds to wait for a database server before calling it unreachable.
CONNECT_TIMEOUT_S = 10
# Drivers that take ``connect_timeout`` (seconds) as a connect argument.
_TIMEOUT_DRIVERS = {"psycopg2", "psycopg", "pymysql", "mysqldb"}
# A journal whose last line stays incomplete this long was left so by a writer that died.
_PARTIAL_LINE_WAIT_S = 1.0


def default_storage_path(study_name: str) -> Path:
    """The journal file used when no storage is given: ``<study_name>.journal`` in the cwd.

    Raises
    ------
    OutputError
        If ``study_name`` would lead out of the current directory (``/``, ``..``).
    """
    return safe_child(Path.cwd(), f"{study_name}.journal")


def is_rdb_url(storage: object) -> bool:
    """Whether ``storage`` is a database URL (``dialect[+driver]://...``) rather than a file path."""
    return isinstance(storage, str) and "://" in storage


def storage_inputs(storage: object = None, *, study_name: str = "rimclf") -> dict[str, Path | None]:
    """The files a storage keeps its studies in, which no output may replace: ``{what: path or None}``.

    A journal file (a path, or ``None`` for the default), or the database file of an SQLite URL
    (``sqlite:///relative.db`` from the current folder, as SQLite opens it, or
    ``sqlite:////absolute.db``). Other databases, ``sqlite://`` / ``:memory:``, ``file:`` URIs, unparsable URLs
    (:func:`check_storage` names those) and Optuna storage objects name no file here.

    Examples
    --------
    >>> storage_inputs("sqlite:////data/study.db")
    {'the study journal': None, 'the study database': PosixPath('/data/study.db')}
    >>> storage_inputs("postgresql+psycopg2://rimclf:PASSWORD@db-host:5432/rimclf")
    {'the study journal': None, 'the study database': None}
    """
    if storage is None:
        storage = default_storage_path(study_name)
    journal = database = None
    if is_rdb_url(storage):
        database = _sqlite_file(storage)
    elif isinstance(storage, (str, os.PathLike)) and os.fspath(storage):
        journal = Path(storage).expanduser()
    return {"the study journal": journal, "the study database": database}


def _sqlite_file(url: str) -> Path | None:
    """The database file of an SQLite URL; None for another database, an in-memory one or a bad URL."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return None
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)  # as SQLite opens it: no ~ expansion


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

    Examples
    --------
    >>> import tempfile
    >>> folder = tempfile.TemporaryDirectory()
    >>> type(open_storage(f"{folder.name}/study.journal")).__name__      # a journal file: one host
    'JournalStorage'
    >>> open_storage("postgresql+psycopg2://rimclf:PASSWORD@db-host:5432/rimclf")  # doctest: +SKIP
    >>> folder.cleanup()
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
    check_journal(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"storage={str(path)!r}: its folder cannot be created ({exc.strerror or exc})") from exc
    backend = optuna.storages.journal.JournalFileBackend(str(path))
    return optuna.storages.JournalStorage(backend)


def check_storage(storage: object = None, *, study_name: str = "rimclf") -> None:
    """Check, before any featurisation or trial, that a study storage can be used.

    - a journal file (a path, or ``None`` for the default): see :func:`check_journal`;
    - an RDB URL: it parses, SQLAlchemy has its dialect and its driver is installed; an SQLite
      database's folder exists and is writable and an existing file is an SQLite database; any
      other database answers a connection within :data:`CONNECT_TIMEOUT_S` seconds;
    - an Optuna storage object: nothing to check.

    Raises
    ------
    OutputError
        Naming the URL (password hidden) or path, and what is wrong.

    Examples
    --------
    >>> import tempfile
    >>> folder = tempfile.TemporaryDirectory()
    >>> check_storage(f"{folder.name}/study.journal")       # usable: nothing happens
    >>> check_storage("postgresql+psycopg2://rimclf:PASSWORD@db-host:5432/rimclf")  # doctest: +SKIP
    Traceback (most recent call last):
    ...
    rimclf.errors.OutputError: ...
    >>> folder.cleanup()
    """
    if isinstance(storage, optuna.storages.BaseStorage):
        return
    if storage is None:
        storage = default_storage_path(study_name)
    if is_rdb_url(storage):
        _check_rdb_url(storage)
    elif isinstance(storage, (str, os.PathLike)):
        check_journal(Path(storage).expanduser())


def _check_rdb_url(url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
    from sqlalchemy.pool import NullPool

    shown = describe_storage(url)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise OutputError(
            f"storage={shown!r} is not a database URL ({exc}); use e.g. sqlite:///study.db or "
            "postgresql+psycopg2://user:password@host:5432/db"
        ) from None
    try:
        dialect = parsed.get_dialect()
    except NoSuchModuleError:
        raise OutputError(
            f"storage={shown!r}: SQLAlchemy has no database dialect {parsed.drivername!r} "
            "(e.g. sqlite, postgresql, postgresql+psycopg2, mysql+pymysql)"
        ) from None
    try:
        dialect.import_dbapi() if hasattr(dialect, "import_dbapi") else dialect.dbapi()
    except ImportError as exc:
        raise OutputError(f"storage={shown!r}: its database driver is not installed ({exc})") from None
    if parsed.get_backend_name() == "sqlite":
        _check_sqlite(parsed.database, shown)
        return
    connect_args = {"connect_timeout": CONNECT_TIMEOUT_S} if parsed.get_driver_name() in _TIMEOUT_DRIVERS else {}
    engine = create_engine(parsed, connect_args=connect_args, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        raise OutputError(f"storage={shown!r}: cannot connect to the database ({_driver_message(exc)})") from None
    finally:
        engine.dispose()


def _driver_message(exc: BaseException) -> str:
    """The driver's own message, first line (SQLAlchemy's wrapper adds SQL and links)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _check_sqlite(database: str | None, shown: str) -> None:
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database).expanduser()
    if not path.exists():
        if not path.parent.is_dir():
            raise OutputError(f"storage={shown!r}: the folder {path.parent} does not exist (SQLite does not create it)")
        if not os.access(path.parent, os.W_OK | os.X_OK):
            raise OutputError(f"storage={shown!r}: the folder {path.parent} is not writable")
        return
    if not path.is_file() or not os.access(path, os.R_OK | os.W_OK):
        raise OutputError(f"storage={shown!r}: {path} is not a readable and writable file")
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise OutputError(f"storage={shown!r}: {path} is not a usable SQLite database ({exc})") from None


def check_journal(path: Path) -> None:
    """Check that ``path`` can serve as an Optuna journal file, reading an existing one in full.

    Every complete line must be UTF-8 JSON describing an Optuna operation that replays on the
    lines before it; a last line without its newline is accepted only while another process is
    still writing it. A journal that fails is neither used nor appended to.

    Raises
    ------
    OutputError
        ``path`` is a folder or an SQLite database (the ``storage`` value is wrong), cannot be
        created, read or written, or a line is malformed (its number is given).
    """
    if path.is_dir():
        raise OutputError(f"storage={str(path)!r} is a directory; give a journal file path inside it")
    check_writable_parent(path)
    if not path.exists():
        return
    if not os.access(path, os.R_OK | os.W_OK):
        raise OutputError(f"{path}: the journal is not readable and writable by this user")
    data = _read_journal(path)
    if data.startswith(_SQLITE_MAGIC):
        raise OutputError(
            f"storage={str(path)!r} is an SQLite database, not a journal file; "
            f"pass the URL 'sqlite:///{path.resolve()}' to use it"
        )
    if data and not data.endswith(b"\n"):
        time.sleep(_PARTIAL_LINE_WAIT_S)  # a concurrent append, or the remains of a dead writer?
        data = _read_journal(path)
    *lines, partial = data.split(b"\n")
    if partial:
        raise _journal_error(path, len(lines) + 1, "is incomplete (a writer died while appending it?)")
    _check_journal_lines(path, lines)


def _read_journal(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise OutputError(f"{path}: the journal cannot be read ({exc.strerror or exc})") from None


def _journal_error(path: Path, number: int, problem: str) -> OutputError:
    return OutputError(
        f"{path}: line {number} of this Optuna journal {problem}; the journal is damaged and was "
        "left untouched: repair or remove that line, or use another --storage"
    )


def _check_journal_lines(path: Path, lines: list[bytes]) -> None:
    replay = _replayer()
    for number, line in enumerate(lines, start=1):
        try:
            log = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise _journal_error(path, number, f"is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except ValueError as exc:
            raise _journal_error(path, number, f"is not JSON ({exc})") from None
        if not isinstance(log, dict) or not isinstance(log.get("op_code"), int):
            raise _journal_error(path, number, "is not an Optuna journal operation (no integer op_code)")
        if replay is not None:
            try:
                replay.apply_logs([log])
            except Exception as exc:  # Optuna's replay asserts, or fails on missing keys
                raise _journal_error(
                    path, number, f"holds an operation that does not replay (op_code {log['op_code']}: "
                    f"{type(exc).__name__}: {exc})"
                ) from None


def _replayer():
    """Optuna's own journal replay (a private class: None if a later Optuna moved it)."""
    try:
        from optuna.storages.journal._storage import JournalStorageReplayResult

        return JournalStorageReplayResult("rimclf-check-")
    except (ImportError, TypeError):  # pragma: no cover - another Optuna layout
        return None


def _open_rdb(url: str) -> optuna.storages.RDBStorage:
    """Open an RDB storage, surviving workers that create its tables at the same moment.

    On an empty database every worker creates Optuna's tables; PostgreSQL's ``CREATE TABLE`` is
    not atomic against a concurrent one, so all but one worker may get a unique-key violation
    (``pg_type_typname_nsp_index``). The tables exist by then: trying again succeeds.
    """
    from sqlalchemy.exc import IntegrityError, ProgrammingError, SQLAlchemyError

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
        except (SQLAlchemyError, ValueError) as exc:  # unparsable URL, unknown dialect, unreachable server
            _check_rdb_url(url)  # says which, naming the URL
            raise OutputError(f"storage={describe_storage(url)!r} cannot be opened ({_driver_message(exc)})") from None
    raise AssertionError("unreachable")  # pragma: no cover


def describe_storage(storage: object) -> str:
    """A printable description of a storage, with any database password hidden.

    Examples
    --------
    >>> describe_storage("postgresql+psycopg2://rimclf:secret@db-host:5432/rimclf")
    'postgresql+psycopg2://rimclf:***@db-host:5432/rimclf'
    """
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
