"""Several worker processes running trials of one study through a shared storage.

Each worker is a spawned process of its own (a one-process pool), so that one worker dying
(killed, out of memory) does not take the others down. When one dies, the trials it was running
are marked ``FAIL`` in the study (they would otherwise stay ``RUNNING`` for ever), a warning
says so, and a new worker runs the trials it had left.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

import joblib
import optuna
from optuna.trial import TrialState

from rimclf._orphans import exit_with_parent
from rimclf.errors import RimclfWarning

from rimclf.tuning._objective import CrossValidationObjective
from rimclf.tuning._owners import INTERRUPTED
from rimclf.tuning._storage import open_storage
from rimclf.tuning._table import TrialTable

logger = logging.getLogger(__name__)

# How often the parent process looks for newly finished trials to print.
_POLL_INTERVAL_S = 1.0
#: Trial system attribute naming the worker that runs the trial (to fail its trials if it dies).
WORKER_ATTR = "rimclf:worker"


def cpu_count() -> int:
    """CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def split_trials(n_trials: int, n_workers: int) -> list[int]:
    """Share ``n_trials`` among at most ``n_workers`` workers as evenly as possible."""
    counts = [n_trials // n_workers + (k < n_trials % n_workers) for k in range(n_workers)]
    return [count for count in counts if count > 0]


@dataclass
class WorkerJob:
    """Everything one worker process needs (picklable)."""

    objective_path: str
    storage: str
    study_name: str
    sampler: optuna.samplers.BaseSampler | None
    reseed_sampler: bool
    seed: int | None
    pruner: optuna.pruners.BasePruner
    n_trials: int
    timeout: float | None
    callbacks: list[Callable]
    catch: tuple[type[Exception], ...]
    n_threads: int
    verbosity: int
    token: str = ""
    parent_pid: int | None = None


class _TaggedObjective:
    """The objective, first recording in the trial which worker runs it."""

    def __init__(self, objective: Callable, token: str) -> None:
        self.objective = objective
        self.token = token

    def __call__(self, trial: optuna.Trial) -> float:
        trial.storage.set_trial_system_attr(trial._trial_id, WORKER_ATTR, self.token)
        return self.objective(trial)


def run_worker(job: WorkerJob) -> int:
    """Body of a worker process: open the shared study and run ``job.n_trials`` trials."""
    from threadpoolctl import threadpool_limits

    exit_with_parent(job.parent_pid)  # a killed ``rimclf tune`` leaves no worker running trials
    optuna.logging.set_verbosity(job.verbosity)
    # the features are memory-mapped read-only: workers share them instead of copying them. This
    # is the one pickle rimclf reads back: written moments ago by the parent process into its own
    # private (0700) temporary folder, never a file from a shared or user-given location.
    objective: CrossValidationObjective = joblib.load(job.objective_path, mmap_mode="r")
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(job.n_threads)
    sampler = job.sampler
    if sampler is None:
        sampler = optuna.samplers.TPESampler(seed=job.seed)
    elif job.reseed_sampler:
        sampler.reseed_rng()  # a copy of the caller's sampler must not repeat worker 0's draws
    study = optuna.load_study(
        study_name=job.study_name, storage=open_storage(job.storage), sampler=sampler, pruner=job.pruner
    )
    with threadpool_limits(limits=job.n_threads):
        study.optimize(
            _TaggedObjective(objective, job.token), n_trials=job.n_trials, timeout=job.timeout,
            callbacks=job.callbacks, catch=job.catch, gc_after_trial=True,
        )
    return job.n_trials


def _trials_of(study: optuna.Study, token: str) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False) if t.system_attrs.get(WORKER_ATTR) == token]


def fail_trials_of_dead_worker(study: optuna.Study, token: str, reason: str) -> list[int]:
    """Mark the ``RUNNING`` trials of the worker ``token`` as ``FAIL``; return their numbers."""
    storage = study._storage
    failed = []
    for trial in _trials_of(study, token):
        if trial.state == TrialState.RUNNING:
            storage.set_trial_system_attr(trial._trial_id, "fail_reason", reason)
            if storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
                failed.append(trial.number)
    return failed


def _replacement(study: optuna.Study, job: WorkerJob, started: float, slot: int) -> WorkerJob | None:
    """After ``job``'s worker died: the job running its remaining trials, or None (nothing left,
    time up, or the worker died before it ran any trial, so that a new one would likely too)."""
    done = len(_trials_of(study, job.token))
    remaining = job.n_trials - done
    timeout = None if job.timeout is None else job.timeout - (time.monotonic() - started)
    if done == 0 or remaining <= 0 or (timeout is not None and timeout <= 0):
        return None
    return replace(job, n_trials=remaining, timeout=timeout, token=f"{job.token.rsplit('.', 1)[0]}.{slot}")


def _report_death(job: WorkerJob, failed: list[int], new: WorkerJob | None, worker: int) -> None:
    trials = f"trial(s) {', '.join(map(str, failed))} marked FAIL" if failed else "no trial was running"
    then = (
        f"a new worker runs its {new.n_trials} remaining trial(s)" if new is not None
        else "its remaining trials are not run"
    )
    message = f"tuning worker {worker} died abruptly (killed, or out of memory?): {trials}; {then}"
    logger.warning(message)
    warnings.warn(message, RimclfWarning, stacklevel=4)


def run_workers(
    study: optuna.Study,
    objective: CrossValidationObjective,
    *,
    storage: str,
    n_trials: int,
    n_workers: int,
    sampler: optuna.samplers.BaseSampler | None,
    seeds: list[int | None],
    pruner: optuna.pruners.BasePruner,
    timeout: float | None,
    callbacks: list[Callable],
    catch: tuple[type[Exception], ...],
    table: TrialTable | None,
) -> None:
    """Run ``n_trials`` trials of ``study`` in ``n_workers`` spawned processes and wait for them.

    The objective (with its data) is written once to a temporary file that every worker
    memory-maps. While the workers run, the parent prints each newly finished trial of the study
    to ``table`` (trials run elsewhere on the same storage included). A worker that dies has its
    running trials marked ``FAIL`` and is replaced for its remaining trials (with a
    :class:`~rimclf.errors.RimclfWarning`); the first error a worker raised is raised after all
    workers stopped.
    """
    counts = split_trials(n_trials, n_workers)
    n_threads = max(1, cpu_count() // len(counts))
    run_id = uuid.uuid4().hex[:8]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rimclf-tune-") as tmp:
        objective_path = Path(tmp) / "objective.joblib"
        joblib.dump(objective, objective_path)
        jobs = [
            WorkerJob(
                objective_path=str(objective_path),
                storage=storage,
                study_name=study.study_name,
                sampler=sampler,
                reseed_sampler=sampler is not None and k > 0,
                seed=seeds[k],
                pruner=pruner,
                n_trials=count,
                timeout=timeout,
                callbacks=callbacks,
                catch=catch,
                n_threads=n_threads,
                verbosity=optuna.logging.get_verbosity(),
                token=f"{run_id}.{k}.0",
                parent_pid=os.getpid(),
            )
            for k, count in enumerate(counts)
        ]
        if table is not None:
            table.mark_seen(study)
        errors: list[BaseException] = []
        context = multiprocessing.get_context("spawn")
        pools: list[ProcessPoolExecutor] = []
        with ExitStack() as stack:

            def start(job: WorkerJob) -> Future:
                pool = stack.enter_context(ProcessPoolExecutor(max_workers=1, mp_context=context))
                pools.append(pool)
                return pool.submit(run_worker, job)

            pending = {start(job): (k, job, 0) for k, job in enumerate(jobs)}
            try:
                _wait_for_workers(study, pending, start, started, errors, table)
            except KeyboardInterrupt:  # Ctrl-C or SIGTERM: stop the workers now, fail their trials
                _stop_workers(study, pending, pools)
                raise
        if errors:
            raise errors[0]


def _stop_workers(study: optuna.Study, pending: dict, pools: list[ProcessPoolExecutor]) -> None:
    """Kill the worker processes and mark the trials they were running ``FAIL`` (interrupted)."""
    for future in pending:
        future.cancel()
    for pool in pools:
        for process in list((getattr(pool, "_processes", None) or {}).values()):  # no public way before 3.14
            process.terminate()
    for process_pool in pools:
        process_pool.shutdown(wait=True, cancel_futures=True)
    for _, job, _ in pending.values():
        fail_trials_of_dead_worker(study, job.token, INTERRUPTED)


def _wait_for_workers(study: optuna.Study, pending: dict, start: Callable, started: float,
                      errors: list[BaseException], table: TrialTable | None) -> None:
    """Wait for every worker of ``pending``, replacing the ones that die; collect their errors."""
    while pending:
        done, _ = wait(pending, timeout=_POLL_INTERVAL_S, return_when=FIRST_COMPLETED)
        for future in done:
            worker, job, restarts = pending.pop(future)
            error = future.exception()
            if isinstance(error, BrokenProcessPool):
                failed = fail_trials_of_dead_worker(study, job.token, f"worker process {worker} died")
                new = _replacement(study, job, started, restarts + 1)
                _report_death(job, failed, new, worker)
                if new is not None:
                    pending[start(new)] = (worker, new, restarts + 1)
            elif error is not None:
                errors.append(error)
        if table is not None:
            table.print_new(study)
