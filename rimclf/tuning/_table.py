"""A live table of finished trials: one printed line per trial."""

from __future__ import annotations

import math
import sys
from typing import TextIO

import optuna
from optuna.trial import FrozenTrial, TrialState

FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def _format_value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_trial(trial: FrozenTrial) -> str:
    """One table line: number, state, value (or the last fold's running mean), seconds, params."""
    value = trial.value
    if value is None and trial.intermediate_values:
        value = trial.intermediate_values[max(trial.intermediate_values)]
    value_text = "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"
    duration = trial.duration.total_seconds() if trial.duration is not None else float("nan")
    params = " ".join(f"{name}={_format_value(v)}" for name, v in sorted(trial.params.items()))
    return f"{trial.number:>6d}  {trial.state.name:<8s}  {value_text:>8s}  {duration:>8.1f}  {params}"


class TrialTable:
    """Optuna callback printing a line per finished trial, under a header printed once.

    Parameters
    ----------
    stream : file-like or None, default=None
        Where to print; ``None`` means ``sys.stdout`` at the time of printing.
    """

    HEADER = f"{'trial':>6s}  {'state':<8s}  {'value':>8s}  {'seconds':>8s}  params"

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self._printed_header = False
        self._seen: set[int] = set()

    def mark_seen(self, study: optuna.Study) -> None:
        """Remember the trials already finished, so that :meth:`print_new` skips them."""
        self._seen.update(t.number for t in study.get_trials(deepcopy=False, states=FINISHED_STATES))

    def print_trial(self, trial: FrozenTrial) -> None:
        """Print one trial's line (and the header before the first)."""
        stream = self.stream if self.stream is not None else sys.stdout
        if not self._printed_header:
            print(self.HEADER, file=stream)
            self._printed_header = True
        print(format_trial(trial), file=stream, flush=True)
        self._seen.add(trial.number)

    def print_new(self, study: optuna.Study) -> None:
        """Print every finished trial of ``study`` not printed yet (for polling a shared study)."""
        finished = study.get_trials(deepcopy=False, states=FINISHED_STATES)
        new = [t for t in finished if t.number not in self._seen]
        for trial in sorted(new, key=lambda t: (t.datetime_complete or t.datetime_start, t.number)):
            self.print_trial(trial)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.number not in self._seen:
            self.print_trial(trial)
