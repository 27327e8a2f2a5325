"""Write ``docs/cli.md``, the command-line reference, from the parsers of :mod:`rimclf.cli`.

Run from the repository root after changing a subcommand or an option::

    python docs/cli_reference.py

``tests/test_docs.py`` fails when ``docs/cli.md`` differs from what this script writes, so the
reference always lists every subcommand and option with its current default and help.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # this checkout's rimclf

from rimclf.cli import build_parser  # noqa: E402

INTRO = """\
# Command-line reference

`rimclf` is a thin layer over the library: each subcommand parses its options, calls one public
function and prints where its results went. Every command has `--help`, writes its outputs
atomically (complete or not at all) and refuses to overwrite them without `--force`. Every command
takes `-v/--verbose` and `-q/--quiet`, before or after its name. By default a training shows a
progress bar (on standard error, only on a terminal) and one summary line (epochs, lesions, time,
last loss); `-v` adds each training's epoch table (colours only on a terminal) and rimclf's own
debug messages (other libraries' stay at warnings); `-q` hides progress bars, summaries and
progress messages, never results. Warnings are one line, `rimclf: warning: DataWarning: ...`.

An error (any `rimclf.errors.RimclfError`, or a missing file) is one line,
`rimclf COMMAND: error: ...`. Exit status:

| status | meaning |
|---|---|
| 0 | success |
| 1 | an error in the data or the environment: `CohortError` (cohort files, labels), `ModelFileError`, `OutputError` (e.g. an output that exists, without `--force`), `PredictionError`, `MissingDependencyError` (e.g. a radiomics feature set without the extra `rimclf[radiomics]`), a missing file |
| 2 | a usage error: an option argparse refuses, or a `ParameterError` (a setting that is not valid, or that cannot work with the data given) |
| 130, 143 | stopped by Ctrl-C (SIGINT) or SIGTERM; nothing was written (see *Interrupts* below) |

**What is refused, before any work.** Every option is checked before the first slow step (reading
or featurising the cohort), with the checks the Python API uses (`rimclf._validation`:
`check_model_config`, `check_threshold_settings`), and refused in one line that names the option
and its valid range, e.g. `rimclf train: error: --epochs: max_epochs=-1 is not valid; it must be
an integer in [1, 100000]`: `--threshold` outside [0, 1], `--target-specificity` outside (0, 1),
`--epochs`, `--batch-size`, `--lr` (NaN, infinite, negative), `--width`, `--patch-shape`,
`--patch-size-mm`, `--shell-mm` outside the ranges of [the size limits](network.md#size-limits)
(so that a typo cannot exhaust the memory), `--threshold-cv` of 1 or of more folds than the
cohort has subjects, a `--device` that torch does not know or this machine does not have, `-j 0`,
`tune --trials 0`, `--workers 0`, `--folds 1`. **Inputs are sacred**: `-o` may never be, contain
or lie inside anything the command reads (the cohort folder; a manifest and the files it lists;
the model; `--cache`; the tuning journal), with or without `--force`, since `--force` replaces the
output folder as a whole; nor may it be empty, the current folder or a folder above it. The one
place inside a cohort open to outputs is where BIDS puts them: `COHORT/derivatives/NAME` for a new
NAME or rimclf's own output (`-o COHORT/derivatives/rimclf`), which rimclf never reads as input.

**Interrupts.** Ctrl-C or SIGTERM stops any command (in training, threshold-CV folds, `cv` and
`benchmark` folds, tuning trials, prediction) with exit status 130 (SIGINT) or 143 (SIGTERM) and
one line, `rimclf train: interrupted (Ctrl-C); stopped; no output was written`: an interrupted
training never becomes a model (skorch's own handling, which ends the fit early and keeps the
half-trained network, is turned off), outputs being written are given up, and an interrupted
tuning trial is stored `FAIL` (see [tuning](tuning.md#from-the-command-line)). Two `rimclf demo`
runs into one folder cannot mix their outputs: the second fails at once while the first runs.

Defaults of the model options come from `rimclf.defaults.DEFAULT_MODEL` (see
[the network](network.md#the-default-model)). This page is generated from the parsers by
`python docs/cli_reference.py`; a test checks that it is up to date.
"""


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, tuple[str, argparse.ArgumentParser]]:
    """``{name: (one-line help, parser)}`` in the order the top-level help lists them."""
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help for choice in action._choices_actions}
    return {name: (helps[name], sub) for name, sub in action.choices.items()}


def _cell(text: str) -> str:
    """Text on one line for a Markdown table cell or paragraph (``|`` and ``*`` escaped)."""
    return " ".join(str(text).split()).replace("|", "\\|").replace("*", "\\*")


def _option(action: argparse.Action) -> str:
    """How the option is written: ``--depth {10,18,34}``, ``-o OUT, --out OUT``, ``cohort``."""
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`"
    if action.nargs == 0:
        value = ""
    elif action.choices is not None and action.metavar is None:
        value = " {" + ",".join(str(choice) for choice in action.choices) + "}"
    else:
        metavar = action.metavar or action.dest.upper()
        if isinstance(metavar, tuple):
            metavar = " ".join(metavar)
        value = f" {metavar}" + (" ..." if action.nargs in ("+", "*") else "")
    return ", ".join(f"`{name}{value}`" for name in action.option_strings)


def _default(action: argparse.Action) -> str:
    default = action.default
    if action.nargs == 0 or default is None or default is argparse.SUPPRESS:
        return ""
    if isinstance(default, (list, tuple)):
        default = " ".join(str(item) for item in default)
    return f"`{default}`"


def _description(action: argparse.Action) -> str:
    text = action.help or ""
    if action.choices is not None and action.metavar is not None:
        text += f" (choices: {', '.join(str(choice) for choice in action.choices)})"
    return _cell(text)


def _group_table(title: str, actions: list[argparse.Action]) -> list[str]:
    rows = [a for a in actions if a.help is not argparse.SUPPRESS and not isinstance(a, argparse._HelpAction)]
    if not rows:
        return []
    lines = [f"*{title}*", "", "| argument | default | description |", "|---|---|---|"]
    lines += [f"| {_option(a)} | {_default(a)} | {_description(a)} |" for a in rows]
    return lines + [""]


def _usage(name: str, parser: argparse.ArgumentParser) -> str:
    words = [f"rimclf {name}"]
    for action in parser._actions:
        if not action.option_strings:
            word = (action.metavar or action.dest).upper()
            words.append(f"[{word}]" if action.nargs == "?" else word)
    optional = [a for a in parser._actions if a.option_strings and a.required]
    words += [f"{a.option_strings[0]} {a.metavar or a.dest.upper()}" for a in optional]
    return " ".join(words) + " [options]"


def render() -> str:
    """The text of ``docs/cli.md``."""
    parser = build_parser()
    commands = _subcommands(parser)
    lines = [INTRO, "| command | what it does |", "|---|---|"]
    lines += [f"| [`rimclf {name}`](#rimclf-{name}) | {_cell(text)} |" for name, (text, _) in commands.items()]
    lines.append("")
    for name, (text, sub) in commands.items():
        lines += [f"## rimclf {name}", "", _cell(text[0].upper() + text[1:]) + ".", ""]
        lines += ["```", _usage(name, sub), "```", ""]
        if sub.description:
            lines += [_cell(sub.description), ""]
        for group in sub._action_groups:
            title = {"positional arguments": "arguments", "options": "options"}.get(group.title, group.title)
            lines += _group_table(title, group._group_actions)
    lines += _group_table("top-level options (`rimclf [options] COMMAND ...`)",
                          [a for a in parser._actions if a.option_strings])
    return "\n".join(lines).rstrip("\n") + "\n"


def main() -> int:
    path = HERE / "cli.md"
    path.write_text(render(), encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
