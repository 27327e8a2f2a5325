"""Hyper-parameter tuning with Optuna, from one process to many machines.

:func:`tune` runs an Optuna study over any sklearn/imblearn estimator or pipeline: every trial
is scored by subject-grouped cross-validation, fold by fold, so that a pruner can stop bad trials
early. The study lives in a storage that any number of processes share:

- a journal file (the default): several processes on one host;
- an Optuna RDB URL (PostgreSQL, MySQL): many workers on many machines.

Calling :func:`tune` again with the same ``study_name`` resumes the study. Search spaces are
plain mappings ``{set_params name: optuna distribution}`` (:func:`network_space` and the
baselines' spaces), which :class:`optuna_integration.OptunaSearchCV` accepts as they are.

Design notes
------------
- Pruning works on the per-fold reports of :class:`CrossValidationObjective`, not on skorch's
  per-epoch ``SkorchPruningCallback``: that callback holds the trial among the net's parameters,
  which breaks ``sklearn.clone`` and hence ``cross_val_score``. Trials stay plain sklearn.
- Features are extracted once per study: :func:`tune_cohort` (``rimclf tune``) transforms the
  lesion table with :class:`rimclf.LesionFeaturizer` before the first trial and tunes the
  classifier on the resulting ``SliceDict``. Tuning a ``Pipeline([("features", featurizer),
  ("clf", ...)])`` on the lesion table works too; give the featurizer ``memory=`` so that each
  subject is extracted once, not once per trial and fold.
- All trials of a study are scored on the same folds and search the same space: the study records
  the folds, the scorer, the estimator, the space and the features (:mod:`rimclf.tuning._search`)
  and refuses to be resumed with others.
"""

from rimclf.tuning._cohort import MODELS, featurize_cohort, make_model, tune_cohort, write_study_outputs
from rimclf.tuning._objective import CrossValidationObjective
from rimclf.tuning._plots import PLOT_FILES, plot_study, save_study_plots
from rimclf.tuning._spaces import (
    SPACES,
    gradient_boosting_space,
    logistic_regression_space,
    network_space,
    random_forest_space,
    suggest_params,
)
from rimclf.tuning._storage import check_storage, describe_storage, open_storage
from rimclf.tuning._table import TrialTable, trials_table
from rimclf.tuning._tune import TuningResult, best_params_of, tune

__all__ = [
    "MODELS",
    "PLOT_FILES",
    "SPACES",
    "CrossValidationObjective",
    "TrialTable",
    "TuningResult",
    "best_params_of",
    "check_storage",
    "describe_storage",
    "featurize_cohort",
    "gradient_boosting_space",
    "logistic_regression_space",
    "make_model",
    "network_space",
    "open_storage",
    "plot_study",
    "random_forest_space",
    "save_study_plots",
    "suggest_params",
    "trials_table",
    "tune",
    "tune_cohort",
    "write_study_outputs",
]
