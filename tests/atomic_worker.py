"""A writer process of the atomic-output tests: ``python atomic_worker.py OUT TEXT [options]``.

Not a test module (pytest does not collect it). It writes ``OUT/content.txt`` (= TEXT) and a few
other files through :func:`rimclf._atomic.atomic_output_dir`, the way every rimclf command writes
its output folder, and can kill itself with SIGKILL just before the N-th file-system step of the
final move (``--kill-at N``), as ``kill -9`` or a power cut would.

Options: ``--force``; ``--no-exchange`` (pretend ``renameat2(RENAME_EXCHANGE)`` is unsupported);
``--reserve`` (claim OUT up front with ``reserve_output_dir``); ``--wait-for FILE`` (after the
claim, wait until FILE exists before writing). Prints ``ok`` or ``error: <message>``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path


def _kill_before(step: int):
    """Wrap the file-system steps of the final move so that the ``step``-th one kills the process."""
    import rimclf._atomic as atomic

    count = {"n": 0}

    def wrap(function):
        def wrapped(*args, **kwargs):
            count["n"] += 1
            if count["n"] == step:
                os.kill(os.getpid(), signal.SIGKILL)
            return function(*args, **kwargs)

        return wrapped

    atomic.rename_noreplace = wrap(atomic.rename_noreplace)
    atomic.exchange = wrap(atomic.exchange)
    atomic._remove = wrap(atomic._remove)
    atomic.os.rename = wrap(os.rename)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("text")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--no-exchange", action="store_true")
    parser.add_argument("--reserve", action="store_true")
    parser.add_argument("--wait-for")
    parser.add_argument("--kill-at", type=int)
    args = parser.parse_args(argv)

    import rimclf._atomic as atomic
    from rimclf.errors import RimclfError

    if args.no_exchange:
        atomic.exchange = lambda first, second: False
    try:
        if args.reserve:
            atomic.reserve_output_dir(args.out, force=args.force)
        if args.wait_for:
            while not Path(args.wait_for).exists():
                time.sleep(0.01)
        with atomic.atomic_output_dir(args.out, force=args.force) as tmp:
            for index in range(3):
                (tmp / f"part{index}.txt").write_text(f"{args.text} {index}\n")
            (tmp / "content.txt").write_text(args.text)
            if args.kill_at is not None:
                _kill_before(args.kill_at)
    except (RimclfError, FileExistsError) as exc:
        print(f"error: {exc}", flush=True)
        return 2
    print("ok", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
