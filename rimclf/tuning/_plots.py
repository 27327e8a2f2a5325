"""Figures of a study: optimisation history and parameter importances (matplotlib, headless-safe)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import optuna
from optuna.trial import TrialState

logger = logging.getLogger(__name__)

#: File names written by :func:`save_study_plots`.
PLOT_FILES = {
    "optimization_history": "optimization_history.png",
    "param_importances": "param_importances.png",
}


def _varied_params(study: optuna.Study) -> set[str]:
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    values: dict[str, set[str]] = {}
    for trial in completed:
        for name, value in trial.params.items():
            values.setdefault(name, set()).add(repr(value))
    return {name for name, seen in values.items() if len(seen) > 1}


def plot_study(study: optuna.Study) -> dict[str, object]:
    """Draw the study's figures with :mod:`optuna.visualization.matplotlib`.

    The optimisation history needs one completed trial; parameter importances need at least
    two completed trials in which some parameter took different values. A figure that cannot be
    drawn yet is left out with a logged reason.

    Parameters
    ----------
    study : optuna.Study

    Returns
    -------
    dict of str to matplotlib.figure.Figure
        Keys among ``"optimization_history"`` and ``"param_importances"``.
    """
    from optuna.visualization import matplotlib as optuna_mpl

    n_completed = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    figures: dict[str, object] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if n_completed >= 1:
            axes = optuna_mpl.plot_optimization_history(study)
            axes.figure.set_size_inches(7, 4.5)
            axes.figure.tight_layout()
            figures["optimization_history"] = axes.figure
        else:
            logger.info("no completed trial yet: no optimisation history plot")
        if n_completed >= 2 and _varied_params(study):
            warnings.simplefilter("ignore", UserWarning)  # "too few trials" notes of the evaluator
            axes = optuna_mpl.plot_param_importances(study)
            axes.figure.set_size_inches(7, 4.5)
            axes.figure.tight_layout()
            figures["param_importances"] = axes.figure
        else:
            logger.info(
                "parameter importances need >= 2 completed trials with varied parameters "
                "(%d completed): no importance plot", n_completed,
            )
    return figures


def save_study_plots(study: optuna.Study, out_dir: str | Path) -> list[Path]:
    """Write the figures of :func:`plot_study` as PNG files into ``out_dir``.

    Returns
    -------
    list of pathlib.Path
        The files written (see :data:`PLOT_FILES`).
    """
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    written = []
    for name, figure in plot_study(study).items():
        path = out_dir / PLOT_FILES[name]
        figure.savefig(path, dpi=120)
        plt.close(figure)
        written.append(path)
    return written
