"""Tables of trials: a live one (one printed line per finished trial) and ``trials.tsv``."""

from __future__ import annotations

import json
import math
import sys
from typing import TextIO

import pandas as pd

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

    Examples
    --------
    >>> import optuna
    >>> from rimclf.tuning import logistic_regression_space, suggest_params
    >>> space = logistic_regression_space(sampler="none")
    >>> study = optuna.create_study(direction="maximize")
    >>> study.optimize(lambda trial: -abs(suggest_params(trial, space)["model__C"] - 1.0), n_trials=5)
    >>> study.optimize(lambda trial: -abs(suggest_params(trial, space)["model__C"] - 1.0), n_trials=1,
    ...                callbacks=[TrialTable()])
     trial  state        value   seconds  params
         5  COMPLETE  ...  model__C=...
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


def _cell(value: object) -> object:
    """A TSV cell: numbers and strings as they are, lists and dicts as JSON (never a Python repr)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=str, sort_keys=isinstance(value, dict))
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """Every trial of ``study`` as the rows of ``trials.tsv``.

    Columns: ``number``, ``state``, ``value`` (the CV score; empty until complete),
    ``duration_s``, ``datetime_start``, ``datetime_complete`` (ISO 8601), then one column per
    parameter under its own name (``params_<name>``; empty where a trial did not draw it), then
    one per user attribute (``user_attrs_<name>``: numbers and text as they are, lists and dicts
    such as ``fold_scores`` as JSON). :func:`write_trials_tsv` writes it.

    Examples
    --------
    >>> import optuna
    >>> from rimclf.tuning import logistic_regression_space, suggest_params
    >>> space = logistic_regression_space(sampler="none")
    >>> study = optuna.create_study(direction="maximize")
    >>> study.optimize(lambda trial: -abs(suggest_params(trial, space)["model__C"] - 1.0), n_trials=5)
    >>> table = trials_table(study)
    >>> table.columns.tolist()
    ['number', 'state', 'value', 'duration_s', 'datetime_start', 'datetime_complete', 'params_model__C']
    >>> len(table)
    5
    """
    trials = study.get_trials(deepcopy=False)
    params = sorted({name for trial in trials for name in trial.params})
    attrs = sorted({name for trial in trials for name in trial.user_attrs})
    rows = []
    for trial in trials:
        row = {
            "number": trial.number,
            "state": trial.state.name,
            "value": trial.value,
            "duration_s": trial.duration.total_seconds() if trial.duration is not None else None,
            "datetime_start": trial.datetime_start.isoformat(timespec="seconds") if trial.datetime_start else None,
            "datetime_complete": trial.datetime_complete.isoformat(timespec="seconds") if trial.datetime_complete else None,
        }
        row.update({f"params_{name}": _cell(trial.params.get(name)) for name in params})
        row.update({f"user_attrs_{name}": _cell(trial.user_attrs.get(name)) for name in attrs})
        rows.append(row)
    columns = ["number", "state", "value", "duration_s", "datetime_start", "datetime_complete",
               *(f"params_{name}" for name in params), *(f"user_attrs_{name}" for name in attrs)]
    return pd.DataFrame(rows, columns=columns)


def _tsv_text(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "n/a"
    return " ".join(str(value).split("\t")).replace("\n", " ")


def write_trials_tsv(study: optuna.Study, path) -> None:
    """Write :func:`trials_table` as a plain TSV: no quoting (JSON cells read as written), ``n/a`` for missing."""
    frame = trials_table(study)
    lines = ["\t".join(frame.columns)]
    lines += ["\t".join(_tsv_text(value) for value in row) for row in frame.itertuples(index=False, name=None)]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
