"""Benchmarks: methods cross-validated on the same subject-grouped folds of one cohort.

:func:`run_benchmark` cross-validates the methods of a table on one cohort (a phantom or your
own data): by default the ablation, :data:`ABLATION_METHODS` (the default model against each
one-part change of it and against baselines; ``rimclf benchmark``, ``benchmarks/bench_ablation.py``);
:func:`run_imbalance_benchmark` runs the imbalance benchmark's :data:`METHODS` (DeepSMOTE against
input-level SMOTE, class weights, oversampling and radiomics baselines;
``benchmarks/bench_imbalance.py``). Each writes ``results.tsv``, ``results.json`` (with settings and
package versions), ``predictions.tsv`` (all out-of-fold probabilities, from which
:func:`summarize_predictions` recomputes every number of the table) and ROC, PR and
paired-difference figures. :func:`combined_tables`, :func:`merge_runs`, :func:`verdicts` and
:func:`plot_ablation` put several cohorts' results side by side; :func:`results_folder` writes a
benchmark's output folder whole or not at all.

Names are imported lazily, so that the command line can read the method table without
importing torch and scikit-learn.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "ABLATION_METHODS": "rimclf.benchmark._methods",
    "ABLATION_REFERENCE": "rimclf.benchmark._methods",
    "METHODS": "rimclf.benchmark._methods",
    "REFERENCE": "rimclf.benchmark._methods",
    "Method": "rimclf.benchmark._methods",
    "BenchmarkSettings": "rimclf.benchmark._settings",
    "RADIOMICS_BASELINE": "rimclf.benchmark._ablation",
    "WITH_CNN": "rimclf.benchmark._ablation",
    "combined_tables": "rimclf.benchmark._ablation",
    "merge_runs": "rimclf.benchmark._ablation",
    "plot_ablation": "rimclf.benchmark._ablation",
    "read_results": "rimclf.benchmark._ablation",
    "results_folder": "rimclf.benchmark._ablation",
    "verdicts": "rimclf.benchmark._ablation",
    "plot_curves": "rimclf.benchmark._plots",
    "plot_paired_differences": "rimclf.benchmark._plots",
    "cross_validate_method": "rimclf.benchmark._cv",
    "make_inner_folds": "rimclf.benchmark._cv",
    "make_repeated_folds": "rimclf.benchmark._cv",
    "OUTPUT_FILES": "rimclf.benchmark._run",
    "package_versions": "rimclf.benchmark._run",
    "run_benchmark": "rimclf.benchmark._run",
    "run_imbalance_benchmark": "rimclf.benchmark._run",
    "PREDICTION_COLUMNS": "rimclf.benchmark._summary",
    "format_calibration": "rimclf.benchmark._summary",
    "format_results": "rimclf.benchmark._summary",
    "ranking_metrics": "rimclf.benchmark._summary",
    "summarize_predictions": "rimclf.benchmark._summary",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rimclf.benchmark' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
