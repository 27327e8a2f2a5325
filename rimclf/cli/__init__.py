"""The ``rimclf`` command line: a thin layer over the library.

Each subcommand lives in its own module under :mod:`rimclf.cli` and exposes
``register(subparsers)`` (argument definitions only: no heavy imports, so ``--help`` is instant)
and ``run(args) -> int`` (imports the library lazily and calls one public function).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from rimclf._version import __version__

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


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per command."""
    parser = argparse.ArgumentParser(
        prog="rimclf",
        description="Find chronic active (paramagnetic rim+) MS lesions on QSM with QSMRim-Net.",
    )
    parser.add_argument("--version", action="version", version=f"rimclf {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debugging details")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        sub = module.register(subparsers)
        sub.set_defaults(_module=module_name)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``rimclf`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from rimclf.errors import RimclfError

    module = importlib.import_module(args._module)
    try:
        return int(module.run(args) or 0)
    except (RimclfError, FileNotFoundError) as exc:
        print(f"rimclf {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
