"""The ``rimclf`` command line: a thin layer over the library.

Each subcommand lives in its own module under :mod:`rimclf.cli` and exposes
``register(subparsers)`` (argument definitions only: no heavy imports, so ``--help`` is instant)
and ``run(args) -> int`` (imports the library lazily and calls one public function).
:func:`build_parser` gives every subcommand the same ``-v/--verbose`` and ``-q/--quiet``
(:func:`~rimclf.cli._options.add_output_options`); :func:`main` shows warnings as one line
(``rimclf: warning: DataWarning: ...``), without the library's source lines, and an error as one
line with exit status :data:`EXIT_USAGE` (2) for a usage error and :data:`EXIT_ERROR` (1) for the
rest; Ctrl-C and SIGTERM stop a command with one line and status 130 / 143
(:mod:`rimclf.cli._interrupts`).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import warnings
from collections.abc import Iterator

from rimclf._version import __version__
from rimclf.cli._options import add_output_options

#: subcommand name -> module implementing it (``register`` and ``run``)
COMMANDS: dict[str, str] = {
    "phantom": "rimclf.cli.phantom",
    "extract": "rimclf.cli.extract",
    "tune": "rimclf.cli.tune",
    "train": "rimclf.cli.train",
    "predict": "rimclf.cli.predict",
    "demo": "rimclf.cli.demo",
    "cv": "rimclf.cli.cv",
    "benchmark": "rimclf.cli.benchmark",
}


#: Exit status of a usage error: an option argparse refuses, or a setting that is not valid
#: (:class:`~rimclf.errors.ParameterError`), as argparse itself exits.
EXIT_USAGE = 2
#: Exit status of any other error: the data (:class:`~rimclf.errors.CohortError`, a missing file),
#: a model file, an output location, unusable predictions, a missing optional package.
EXIT_ERROR = 1


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per command."""
    parser = argparse.ArgumentParser(
        prog="rimclf",
        description="Find chronic active (paramagnetic rim+) MS lesions on QSM with QSMRim-Net.",
    )
    parser.add_argument("--version", action="version", version=f"rimclf {__version__}")
    add_output_options(parser, top_level=True)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        sub = module.register(subparsers)
        add_output_options(sub)
        sub.set_defaults(_module=module_name)
    return parser


def format_warning(message, category, filename, lineno, line=None) -> str:
    """A warning as the command line shows it: ``rimclf: warning: <Category>: <message>``.

    The file, line number and source line of the code that warned mean nothing to a user of the
    command line (they point inside rimclf or a library), so they are left out.
    """
    return f"rimclf: warning: {category.__name__}: {message}\n"


#: (message start, category) of library warnings that tell a command-line user nothing they can act
#: on: loky's note that an idle worker of joblib's reusable executor timed out while jobs were
#: queued (joblib starts another; the results are unchanged), which reads like a memory leak.
SILENCED_WARNINGS = (("A worker stopped while some jobs were given to the executor", UserWarning),)


@contextlib.contextmanager
def _cli_warnings() -> Iterator[None]:
    """Warnings formatted by :func:`format_warning` inside the block, less
    :data:`SILENCED_WARNINGS` (the library's own formatting and filters are left alone: only
    :func:`main` installs this)."""
    saved = warnings.formatwarning
    warnings.formatwarning = format_warning
    try:
        with warnings.catch_warnings():
            for message, category in SILENCED_WARNINGS:
                warnings.filterwarnings("ignore", message=message, category=category)
            yield
    finally:
        warnings.formatwarning = saved


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``rimclf`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from rimclf.cli._options import set_log_levels

    set_log_levels(args)

    from rimclf.cli._interrupts import handling_interrupts, report_interrupt
    from rimclf.errors import ParameterError, RimclfError

    module = importlib.import_module(args._module)
    with _cli_warnings():
        try:
            with handling_interrupts():  # SIGTERM like Ctrl-C: exit 143 / 130, one line, nothing written
                return int(module.run(args) or 0)
        except (RimclfError, FileNotFoundError) as exc:
            print(f"rimclf {args.command}: error: {exc}", file=sys.stderr)
            return EXIT_USAGE if isinstance(exc, ParameterError) else EXIT_ERROR
        except KeyboardInterrupt as exc:
            return report_interrupt(args.command, exc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
