"""Temporary and set-aside siblings of an output folder, named after the process that made them.

``.<name>.rimclf-tmp.<host>.<pid>.<ns>.<token>`` is a folder being written (or claimed) by process
``pid`` of host ``host`` (a hash of its name, boot id and pid namespace: see
:func:`_machine_identity`) since ``ns`` (ns since the epoch);
``.<name>.rimclf-old.<host>.<pid>.<ns>.<token>`` is the previous ``<name>`` that a ``--force``
replace set aside. The names let a later run tell the leftovers of dead processes (removed, or
restored) from the work of live ones (left alone, and reported to a second writer).
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import socket
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from rimclf._atomic._rename import rename_noreplace
from rimclf.errors import OutputError, RimclfWarning



def _machine_identity() -> str:
    """What tells this process's pid space apart from every other one that may share a folder.

    The host name alone does not: containers often share one (or all are called ``localhost``),
    and a process of one container is invisible to another, so a live writer there would look
    dead here and its temporary folder would be removed. The boot id (one per kernel boot) and
    the pid namespace (one per container) are added where Linux gives them; two processes whose
    identities differ treat each other's folders as another host's: left alone.
    """
    parts = [socket.gethostname()]
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as boot:
            parts.append(boot.read().strip())
    except OSError:
        pass
    try:
        parts.append(os.readlink("/proc/self/ns/pid"))
    except OSError:
        pass
    return "\0".join(parts)


_HOST = hashlib.sha1(_machine_identity().encode()).hexdigest()[:8]


def host_key() -> str:
    """This host's (and container's) short key, as in the siblings' names."""
    return _HOST


def process_alive(host: str, pid: int) -> bool | None:
    """Whether process ``pid`` of host ``host`` (a :func:`host_key`) runs: None when that host is
    another one, whose processes cannot be seen from here."""
    return _pid_alive(pid) if host == _HOST else None
_SIBLING = re.compile(
    r"^\.(?P<name>.+)\.rimclf-(?P<kind>tmp|old)\.(?P<host>[0-9a-f]{8})\.(?P<pid>\d+)\.(?P<ns>\d+)(?:\.[0-9a-f]+)?$"
)


@dataclass(frozen=True)
class _Sibling:
    path: Path
    kind: str
    host: str
    pid: int
    ns: int

    @property
    def ours(self) -> bool:
        return self.host == _HOST and self.pid == os.getpid()

    @property
    def dead(self) -> bool:
        """Left by a process of this host that no longer runs."""
        return self.host == _HOST and not _pid_alive(self.pid)

    def describe(self) -> str:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.ns / 1e9))
        where = "this host" if self.host == _HOST else f"host #{self.host}"
        return f"process {self.pid} on {where}, since {started} ({self.path.name})"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _siblings(out: Path) -> list[_Sibling]:
    prefix = f".{out.name}.rimclf-"
    try:
        entries = [entry.name for entry in os.scandir(out.parent) if entry.name.startswith(prefix)]
    except OSError:
        return []
    found = []
    for name in entries:
        match = _SIBLING.match(name)
        if match and match["name"] == out.name:
            found.append(_Sibling(out.parent / name, match["kind"], match["host"], int(match["pid"]), int(match["ns"])))
    return sorted(found, key=lambda s: (s.ns, s.path.name))


def _sibling_path(out: Path, kind: str) -> Path:
    return out.parent / f".{out.name}.rimclf-{kind}.{_HOST}.{os.getpid()}.{time.time_ns()}.{secrets.token_hex(3)}"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except OSError:
            pass


def recover_output(out: str | os.PathLike) -> None:
    """Clean up after writers of ``out`` that died: restore a set-aside ``out``, remove temporaries.

    A ``force`` replace killed between its two renames leaves ``out`` missing and the previous
    folder set aside: it is renamed back (with a warning). Other leftovers of dead processes of
    this host are removed. Best effort: what cannot be removed stays.
    """
    out = Path(out)
    stale = [s for s in _siblings(out) if s.dead]
    set_aside = [s for s in stale if s.kind == "old"]
    if set_aside and not os.path.lexists(out):
        newest = set_aside[-1]
        try:
            rename_noreplace(newest.path, out)
        except OSError:
            pass
        else:
            stale.remove(newest)
            warnings.warn(
                f"{out}: restored the previous folder, which an interrupted --force replace "
                f"({newest.describe()}) had left set aside",
                RimclfWarning,
                stacklevel=3,
            )
    for sibling in stale:
        _remove(sibling.path)


def _live_writers(out: Path, *, before: _Sibling | None = None) -> list[_Sibling]:
    """Temporary folders of ``out`` owned by other live processes (started before ``before``)."""
    writers = [s for s in _siblings(out) if s.kind == "tmp" and not s.ours and not s.dead]
    if before is not None:
        writers = [s for s in writers if (s.ns, s.path.name) < (before.ns, before.path.name)]
    return writers


def _busy_error(out: Path, writer: _Sibling) -> OutputError:
    hint = "" if writer.host == _HOST else f"; if that process is gone, remove {writer.path}"
    return OutputError(
        f"{out} is already being written by another rimclf process ({writer.describe()}); "
        f"wait for it to finish or choose another output folder{hint}"
    )


def parse_sibling(path: Path) -> _Sibling | None:
    """The sibling a path names, or None."""
    match = _SIBLING.match(path.name)
    if match is None:
        return None
    return _Sibling(path, match["kind"], match["host"], int(match["pid"]), int(match["ns"]))
