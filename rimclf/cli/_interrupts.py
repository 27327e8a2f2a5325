"""Ctrl-C and SIGTERM on the command line: stop, write nothing, say so in one line.

Inside :func:`handling_interrupts`, SIGTERM raises :class:`Terminated` (a ``KeyboardInterrupt``)
in the main thread, just as Ctrl-C raises ``KeyboardInterrupt``. Both therefore take the same
path through the library: a training stops with an error (never a half-trained model, see
``QSMRimNetClassifier.fit_loop``), an atomic output is given up (nothing is published), a tuning
trial is recorded ``FAIL`` by Optuna. The command then prints one line and exits with the shell's
status for the signal: 130 for SIGINT, 143 for SIGTERM.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator

#: exit status of a command stopped by Ctrl-C (128 + SIGINT), as a shell reports it
EXIT_SIGINT = 128 + signal.SIGINT
#: exit status of a command stopped by SIGTERM (128 + SIGTERM)
EXIT_SIGTERM = 128 + signal.SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that everything that cleans up after one cleans up after both."""


def _raise_terminated(signum: int, frame: object) -> None:
    # ignore further SIGTERMs while cleaning up (a second one would interrupt the clean-up)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated()


@contextlib.contextmanager
def handling_interrupts() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` inside the block (main thread only; elsewhere a no-op)."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread: signals cannot be handled here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def report_interrupt(command: str, exc: KeyboardInterrupt) -> int:
    """Print the one line a stopped command shows and return its exit status."""
    terminated = isinstance(exc, Terminated)
    what = "terminated (SIGTERM)" if terminated else "interrupted (Ctrl-C)"
    print(f"rimclf {command}: {what}; stopped; no output was written", file=sys.stderr)
    return EXIT_SIGTERM if terminated else EXIT_SIGINT
