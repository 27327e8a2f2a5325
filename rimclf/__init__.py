"""rimclf: chronic active (paramagnetic rim+) MS lesion classification on QSM.

A scikit-learn-compatible re-implementation of QSMRim-Net (Zhang et al., NeuroImage: Clinical
34:102979, 2022). Public names are imported lazily so that ``import rimclf`` and the command
line stay fast; ``from rimclf import QSMRimNetClassifier`` imports torch only then.
"""

from __future__ import annotations

import importlib
from typing import Any

from rimclf._version import __version__
from rimclf.errors import CohortError

_LAZY: dict[str, str] = {
    "load_cohort": "rimclf.cohort",
    "LesionFeaturizer": "rimclf.features",
    "RadiomicsExtractor": "rimclf.features",
    "PatchExtractor": "rimclf.features",
    "QSMRimNetClassifier": "rimclf.classifier",
    "RimModel": "rimclf.rim_model",
    "save_model": "rimclf.model_files",
    "load_model": "rimclf.model_files",
}

__all__ = ["__version__", "CohortError", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rimclf' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
