"""Per-scan output files written in parallel worker processes, with one progress bar over scans.

Each task names one scan (its file paths and its few rows of the prediction table); the worker
reads the scan's volumes itself (from the run's scan store when there is one:
:mod:`rimclf.cohort._store`), writes its files and returns nothing, so that nothing large
travels between processes and memory does not grow with the number of scans: a worker holds
one scan at a time, and joblib dispatches only a few tasks ahead. The files a scan gets do not
depend on the worker or the order, so any ``n_jobs`` writes the same bytes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from joblib import Parallel, delayed
from tqdm.auto import tqdm

from rimclf._orphans import exit_with_parent, in_loky_worker


def _run(function: Callable, args: tuple, kwargs: dict) -> None:
    if in_loky_worker():
        exit_with_parent()  # a killed rimclf leaves no loky worker behind
    function(*args, **kwargs)


def for_each_scan(function: Callable, tasks: Sequence[tuple], *, n_jobs: int | None = None, progress: bool = False,
                  desc: str = "output files", **kwargs) -> None:
    """Call ``function(*task, **kwargs)`` for every task, ``n_jobs`` at a time (joblib, processes).

    ``progress`` shows a tqdm bar over scans on stderr (on a terminal only). The first error
    stops the others and is raised.

    Examples
    --------
    >>> written = []
    >>> for_each_scan(lambda name, suffix: written.append(name + suffix), [("a",), ("b",)], suffix=".png")
    >>> written
    ['a.png', 'b.png']
    """
    calls = (delayed(_run)(function, tuple(task), kwargs) for task in tasks)
    results = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(calls)
    shown = bool(progress) and bool(tasks) and hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    with tqdm(total=len(tasks), desc=desc, unit="scan", file=sys.stderr, disable=not shown, leave=False) as bar:
        for _ in results:
            bar.update(1)
