"""Figures of a study: optimisation history and parameter importances (matplotlib, headless-safe).

Optuna draws them; rimclf labels the score axis with the metric the trials were scored with
(:func:`metric_label`, e.g. "partial ROC AUC (FPR <= 0.1)") instead of "Objective Value", and
puts trial numbers (integers) on the history's x axis.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import optuna
from optuna.trial import TrialState

from rimclf.tuning._objective import SCORING_ATTR

logger = logging.getLogger(__name__)

#: Axis labels of rimclf's scorers (``rimclf.metrics.SCORERS`` keys).
METRIC_LABELS = {
    "pauc": "partial ROC AUC (FPR ≤ 0.1)",
    "pr_auc": "PR AUC (average precision)",
    "roc_auc": "ROC AUC",
    "sens_at_spec90": "sensitivity at specificity 0.9",
}

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


def metric_label(study: optuna.Study) -> str:
    """What the study's trials were scored with, for an axis label (from the study's scoring record)."""
    from rimclf.metrics import SCORERS

    recorded = study.user_attrs.get(SCORING_ATTR)
    for key, scorer in SCORERS.items():
        if recorded == repr(scorer):
            return METRIC_LABELS.get(key, key)
    if isinstance(recorded, str) and recorded.startswith("make_scorer("):
        return recorded[len("make_scorer("):].split(",")[0].split(")")[0]
    return "score"


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

    Examples
    --------
    >>> import optuna
    >>> from rimclf.tuning import logistic_regression_space, suggest_params
    >>> space = logistic_regression_space(sampler="none")
    >>> study = optuna.create_study(direction="maximize")
    >>> study.optimize(lambda trial: -abs(suggest_params(trial, space)["model__C"] - 1.0), n_trials=5)
    >>> figures = plot_study(study)           # matplotlib figures
    >>> sorted(figures)
    ['optimization_history', 'param_importances']
    """
    from matplotlib.ticker import MaxNLocator
    from optuna.visualization import matplotlib as optuna_mpl

    n_completed = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    figures: dict[str, object] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        metric = metric_label(study)
        if n_completed >= 1:
            axes = optuna_mpl.plot_optimization_history(study, target_name=metric)
            axes.set_ylabel(f"{metric}\n(mean over the CV folds)")
            axes.set_xlabel("trial")
            axes.set_title("Optimisation history: each trial and the best so far")
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
            axes.legend(loc="best", fontsize=8)  # inside: optuna puts it outside, beyond the figure
            axes.figure.set_size_inches(7, 4.5)
            axes.figure.tight_layout()
            figures["optimization_history"] = axes.figure
        else:
            logger.info("no completed trial yet: no optimisation history plot")
        if n_completed >= 2 and _varied_params(study):
            warnings.simplefilter("ignore", UserWarning)  # "too few trials" notes of the evaluator
            axes = optuna_mpl.plot_param_importances(study, target_name=metric)
            axes.set_title(f"Parameter importances for the {metric}", loc="left", fontsize=11)
            if axes.get_legend() is not None:
                axes.get_legend().remove()  # one series, named in the title
            axes.set_xlabel("importance (Optuna's PED-ANOVA evaluator; sums to 1)")
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

    Examples
    --------
    >>> import optuna
    >>> from rimclf.tuning import logistic_regression_space, suggest_params
    >>> space = logistic_regression_space(sampler="none")
    >>> study = optuna.create_study(direction="maximize")
    >>> study.optimize(lambda trial: -abs(suggest_params(trial, space)["model__C"] - 1.0), n_trials=5)
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     [path.name for path in save_study_plots(study, folder)]
    ['optimization_history.png', 'param_importances.png']
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
