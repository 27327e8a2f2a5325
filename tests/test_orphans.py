"""kill -9 of a rimclf process leaves none of its worker processes running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


ROOT = Path(__file__).parent.parent

FEATURIZE = """
import sys, time
from pathlib import Path
from rimclf import LesionFeaturizer, PatchExtractor, load_cohort
from tests.features.builders import write_cohort
table = load_cohort(write_cohort(Path(sys.argv[1]), n_subjects=4))
LesionFeaturizer([("patches", PatchExtractor(size_mm=12.0, shape=4))], n_jobs=2, progress=False).transform(table)
print("ready", flush=True)
time.sleep(600)
"""

TUNE = """
import sys
import optuna
from rimclf.baselines import make_logistic_regression
from rimclf.tuning import tune
from tests.tuning_worker import make_data, slow_space
X, y, groups = make_data()
print("ready", flush=True)
tune(make_logistic_regression(sampler="class_weight", random_state=0), X, y, groups, space=slow_space,
     n_trials=200, n_workers=2, storage=sys.argv[1], study_name="s", cv=3, refit=False,
     pruner=optuna.pruners.NopPruner())
"""


def children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def alive(pids: set[int]) -> set[int]:
    living = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            living.add(pid)
    return living


def wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc (Linux)")
@pytest.mark.parametrize("script", ["featurize", "tune"])
def test_workers_exit_when_their_main_process_is_killed(tmp_path: Path, script: str) -> None:
    code, argument, n_workers = {"featurize": (FEATURIZE, tmp_path / "cohort", 2), "tune": (TUNE, tmp_path / "s.journal", 2)}[script]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    main = subprocess.Popen([sys.executable, "-c", code, str(argument)], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    workers: set[int] = set()
    try:
        assert main.stdout.readline().strip() == "ready"

        def python_workers() -> set[int]:
            return {pid for pid in children(main.pid) if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()}

        assert wait_for(lambda: len(python_workers()) >= n_workers, 60), children(main.pid)
        workers = python_workers()
        if script == "tune":  # wait until both workers run trials
            assert wait_for(lambda: argument.exists() and argument.read_bytes().count(b'"op_code":4') >= 3, 120)
        os.kill(main.pid, signal.SIGKILL)
        main.wait(timeout=30)
        assert wait_for(lambda: not alive(workers), 10), f"workers still running: {alive(workers)}"
    finally:
        for pid in alive(workers):  # do not leave them behind if the test fails
            os.kill(pid, signal.SIGKILL)
        if main.poll() is None:
            main.kill()
