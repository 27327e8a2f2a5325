"""Several worker processes running trials of one study through a shared storage."""

from __future__ import annotations

import multiprocessing
import os
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import joblib
import optuna

from rimclf.tuning._objective import CrossValidationObjective
from rimclf.tuning._storage import open_storage
from rimclf.tuning._table import TrialTable

# How often the parent process looks for newly finished trials to print.
_POLL_INTERVAL_S = 1.0


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


def run_worker(job: WorkerJob) -> int:
    """Body of a worker process: open the shared study and run ``job.n_trials`` trials."""
    from threadpoolctl import threadpool_limits

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
            objective, n_trials=job.n_trials, timeout=job.timeout, callbacks=job.callbacks,
            catch=job.catch, gc_after_trial=True,
        )
    return job.n_trials


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
    to ``table`` (trials run elsewhere on the same storage included). The first worker error is
    raised after all workers stopped.
    """
    counts = split_trials(n_trials, n_workers)
    n_threads = max(1, cpu_count() // len(counts))
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
            )
            for k, count in enumerate(counts)
        ]
        if table is not None:
            table.mark_seen(study)
        errors: list[BaseException] = []
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=len(jobs), mp_context=context) as pool:
            pending = {pool.submit(run_worker, job) for job in jobs}
            while pending:
                done, pending = wait(pending, timeout=_POLL_INTERVAL_S, return_when=FIRST_EXCEPTION)
                errors += [future.exception() for future in done if future.exception() is not None]
                if table is not None:
                    table.print_new(study)
        if errors:
            raise errors[0]
