"""Atomic output folders: exclusive, never missing under --force, no litter, clear environment errors."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import rimclf._atomic as atomic
import rimclf._atomic._siblings as siblings
from rimclf._atomic import (
    atomic_output_dir,
    atomic_write_text,
    check_writable_parent,
    refuse_overwrite,
    reserve_output_dir,
    safe_child,
)
from rimclf.errors import OutputError, RimclfWarning

HERE = Path(__file__).parent
ROOT = HERE.parent


def worker(out: Path, text: str, *options: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, str(HERE / "atomic_worker.py"), str(out), text, *options],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def write(out: Path, text: str, *, force: bool = False) -> None:
    with atomic_output_dir(out, force=force) as tmp:
        (tmp / "content.txt").write_text(text)


def litter(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".rimclf-" in p.name)


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# -- names from the data stay inside their folder -------------------------------------------------


@pytest.mark.parametrize("name", ["..", "../x", "a/b", "/etc/passwd", "", ".", "sub-01/../../x", "a\0b"])
def test_safe_child_refuses_names_leading_elsewhere(tmp_path: Path, name: str) -> None:
    with pytest.raises(OutputError, match="refused to write"):
        safe_child(tmp_path, name)


def test_safe_child_refuses_a_symlink_out_of_the_folder(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "sub-01").symlink_to(tmp_path)
    with pytest.raises(OutputError, match="outside the output folder"):
        safe_child(tmp_path / "out", "sub-01", "x")
    assert safe_child(tmp_path / "out", "sub-02", "sub-02_map.nii.gz") == tmp_path / "out" / "sub-02" / "sub-02_map.nii.gz"


# -- writable before any work ---------------------------------------------------------------------


def test_check_writable_parent_finds_the_nearest_existing_folder(tmp_path: Path) -> None:
    assert check_writable_parent(tmp_path / "a" / "b" / "out") == tmp_path
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="file is not a folder"):
        check_writable_parent(tmp_path / "file" / "out")


def test_read_only_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as root: a 0555 folder stays writable")
        with pytest.raises(OutputError, match="ro is not writable by this user"):
            refuse_overwrite(folder / "out", force=False)
    finally:
        folder.chmod(0o755)


def test_read_only_file_system_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # simulated: a read-only mount cannot be made without privileges
    real_statvfs = os.statvfs
    monkeypatch.setattr(atomic.os, "access", lambda path, mode: False)
    monkeypatch.setattr(
        atomic.os, "statvfs",
        lambda path: os.statvfs_result((*real_statvfs(path)[:8], os.ST_RDONLY, 255)),
    )
    with pytest.raises(OutputError, match=f"{tmp_path} is on a read-only file system"):
        refuse_overwrite(tmp_path / "out", force=True)


# -- environment faults while writing -------------------------------------------------------------


def test_disk_full_from_numpy_becomes_an_output_error(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(OutputError, match=r"out: cannot be written: No space left on device; nothing was written"):
        with atomic_output_dir(out) as tmp:
            (tmp / "patches.npy").symlink_to("/dev/full")  # a real ENOSPC on write
            np.save(tmp / "patches.npy", np.zeros(100_000))
    assert list(tmp_path.iterdir()) == []


def test_disk_full_from_torch_save_becomes_an_output_error(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    out = tmp_path / "model"
    with pytest.raises(OutputError, match=r"model: cannot be written: torch.save failed .*disk full"):
        with atomic_output_dir(out) as tmp:
            (tmp / "weights.pt").symlink_to("/dev/full")
            torch.save({"w": torch.zeros(1000)}, tmp / "weights.pt")
    assert list(tmp_path.iterdir()) == []


def test_permission_error_inside_the_output_becomes_an_output_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="out: cannot be written: Read-only file system"):
        with atomic_output_dir(tmp_path / "out") as tmp:
            raise OSError(errno.EROFS, "Read-only file system", str(tmp / "x"))
    # an unreadable *input* elsewhere is not the output's fault: it passes unchanged
    with pytest.raises(PermissionError, match="input.nii.gz"):
        with atomic_output_dir(tmp_path / "out"):
            raise PermissionError(errno.EACCES, "Permission denied", "/elsewhere/input.nii.gz")
    assert list(tmp_path.iterdir()) == []


# -- two writers ----------------------------------------------------------------------------------


def test_a_folder_that_appears_while_writing_is_not_replaced(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(FileExistsError, match="already exists: another process created it"):
        with atomic_output_dir(out) as tmp:
            (tmp / "content.txt").write_text("second")
            write(out, "first")  # the other writer finishes first
    assert (out / "content.txt").read_text() == "first"
    assert litter(tmp_path) == []


def test_a_file_that_appears_while_writing_is_not_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "table.tsv"
    real = atomic.public_permissions

    def other_writer_first(tmp: Path) -> None:
        path.write_text("first")
        real(tmp)

    monkeypatch.setattr(atomic, "public_permissions", other_writer_first)
    with pytest.raises(FileExistsError, match="already exists"):
        atomic_write_text(path, "second")
    assert path.read_text() == "first" and [p.name for p in tmp_path.iterdir()] == ["table.tsv"]


def test_a_second_writer_fails_at_once_while_the_first_holds_the_folder(tmp_path: Path) -> None:
    out, go = tmp_path / "out", tmp_path / "go"
    first = worker(out, "first", "--reserve", "--wait-for", str(go))
    try:
        deadline = time.monotonic() + 60
        while not litter(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert litter(tmp_path), first.communicate()
        with pytest.raises(OutputError, match=rf"out is already being written by another rimclf process \(process {first.pid}"):
            reserve_output_dir(out)
        with pytest.raises(OutputError, match="already being written"):
            write(out, "second", force=True)
    finally:
        go.touch()
        stdout, stderr = first.communicate(timeout=60)
    assert stdout.strip() == "ok", stderr
    assert (out / "content.txt").read_text() == "first" and litter(tmp_path) == []
    with pytest.raises(FileExistsError, match="already exists; use --force"):
        refuse_overwrite(out, force=False)


@pytest.mark.slow
@pytest.mark.parametrize("reserve", [False, True])
def test_concurrent_writers_exactly_one_wins(tmp_path: Path, reserve: bool) -> None:
    for round_ in range(3):
        out, go = tmp_path / f"out{round_}", tmp_path / f"go{round_}"
        options = ["--wait-for", str(go), *(["--reserve"] if reserve else [])]
        writers = [worker(out, f"writer {k}", *options) for k in range(3)]
        time.sleep(1.0)
        go.touch()
        results = [w.communicate(timeout=120) for w in writers]
        outputs = [stdout.strip() for stdout, _ in results]
        assert outputs.count("ok") == 1, results
        winner = outputs.index("ok")
        assert all("already" in text for text in outputs if text != "ok"), outputs
        assert (out / "content.txt").read_text() == f"writer {winner}"
    assert litter(tmp_path) == []


# -- --force never leaves OUT missing -------------------------------------------------------------


FAULT_POINTS = ["rename_noreplace", "exchange", "rename", "_remove"]


@pytest.mark.parametrize("with_exchange", [True, False], ids=["exchange", "fallback"])
@pytest.mark.parametrize("fail_at", range(1, 5))
def test_force_replace_with_a_failing_step_keeps_a_complete_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_exchange: bool, fail_at: int
) -> None:
    out = tmp_path / "out"
    write(out, "old")
    if not with_exchange:
        monkeypatch.setattr(atomic, "exchange", lambda first, second: False)
    count = {"n": 0}

    def failing(function):
        def wrapped(*args, **kwargs):
            count["n"] += 1
            if count["n"] == fail_at:
                raise OSError(errno.EIO, "injected fault")
            return function(*args, **kwargs)

        return wrapped

    for name in ("rename_noreplace", "exchange", "_remove"):
        monkeypatch.setattr(atomic, name, failing(getattr(atomic, name)))
    monkeypatch.setattr(atomic.os, "rename", failing(os.rename))
    try:
        write(out, "new", force=True)
    except OSError:
        pass
    monkeypatch.undo()
    assert (out / "content.txt").read_text() in ("old", "new")
    refuse_overwrite(out, force=True)  # the next run cleans up
    assert litter(tmp_path) == []


@pytest.mark.slow
@pytest.mark.parametrize("with_exchange", [True, False], ids=["exchange", "fallback"])
def test_force_replace_killed_at_any_step_never_loses_out(tmp_path: Path, with_exchange: bool) -> None:
    outcomes = set()
    for kill_at in range(1, 8):
        out = tmp_path / f"out{kill_at}"
        write(out, "old")
        options = ["--force", "--kill-at", str(kill_at), *([] if with_exchange else ["--no-exchange"])]
        process = worker(out, "new", *options)
        process.communicate(timeout=120)
        killed = process.returncode == -9
        if killed and not out.exists():
            assert not with_exchange, "with RENAME_EXCHANGE, OUT is never missing"
        with pytest.warns(RimclfWarning, match="restored the previous folder") if killed and not out.exists() else _nothing():
            refuse_overwrite(out, force=True)  # what the next rimclf run does first
        text = (out / "content.txt").read_text()
        assert text in ("old", "new")
        outcomes.add((killed, text))
        assert litter(tmp_path) == []
    assert (True, "old") in outcomes and (False, "new") in outcomes  # the kill did hit, and the run did finish


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# -- leftovers of dead processes --------------------------------------------------------------------


def test_leftovers_of_dead_processes_are_removed_and_live_or_foreign_ones_kept(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write(out, "current")
    pid = dead_pid()
    stale = [tmp_path / f".out.rimclf-tmp.{siblings._HOST}.{pid}.1.aa", tmp_path / f".out.rimclf-old.{siblings._HOST}.{pid}.2"]
    foreign = tmp_path / f".out.rimclf-tmp.0badc0de.{pid}.3.bb"
    other_output = tmp_path / f".other.rimclf-tmp.{siblings._HOST}.{pid}.4.cc"
    for folder in (*stale, foreign, other_output):
        folder.mkdir()
        (folder / "half-written").write_text("x")
    # another host's writer cannot be checked: it blocks, and the message says what to remove
    with pytest.raises(OutputError, match=f"on host #0badc0de.*if that process is gone, remove {foreign}"):
        write(out, "replaced", force=True)
    assert sorted(litter(tmp_path)) == sorted([foreign.name, other_output.name])
    atomic._remove(foreign)
    write(out, "replaced", force=True)
    assert litter(tmp_path) == [other_output.name] and (out / "content.txt").read_text() == "replaced"


def test_a_missing_out_is_restored_from_the_folder_a_dead_force_run_set_aside(tmp_path: Path) -> None:
    out = tmp_path / "out"
    aside = tmp_path / f".out.rimclf-old.{siblings._HOST}.{dead_pid()}.5"
    aside.mkdir()
    (aside / "content.txt").write_text("previous")
    with pytest.warns(RimclfWarning, match="restored the previous folder"):
        with pytest.raises(FileExistsError, match="already exists"):
            refuse_overwrite(out, force=False)
    assert (out / "content.txt").read_text() == "previous" and litter(tmp_path) == []


def test_a_reservation_is_released_when_the_folder_is_written(tmp_path: Path) -> None:
    out = tmp_path / "out"
    reserve_output_dir(out)
    assert len(litter(tmp_path)) == 1
    reserve_output_dir(out)  # the same process may check again
    assert len(litter(tmp_path)) == 1
    write(out, "done")
    assert litter(tmp_path) == [] and (out / "content.txt").read_text() == "done"


def test_a_failure_removes_the_parent_folders_it_created(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        with atomic_output_dir(tmp_path / "a" / "b" / "out"):
            raise RuntimeError("the work failed")
    assert list(tmp_path.iterdir()) == []
    with atomic.output_reservation(tmp_path / "c" / "out"):
        assert (tmp_path / "c").is_dir()
    assert list(tmp_path.iterdir()) == []
