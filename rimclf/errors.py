"""Exception and warning classes raised by rimclf.

Errors, by kind
---------------
Every error rimclf raises on purpose is a :class:`RimclfError`; catch that to catch them all.
Each kind also subclasses the builtin exception that code written without rimclf in mind
already catches::

    RimclfError
     ├── CohortError       (ValueError)  a cohort file or table: missing, unreadable, inconsistent
     ├── ParameterError    (ValueError)  an invalid parameter of an estimator, function or setting
     ├── ModelFileError    (ValueError)  a saved model directory that cannot be loaded safely
     ├── PredictionError   (ValueError)  a model's output that cannot be used (NaN/Inf probabilities)
     └── OutputError       (OSError)     an output location or storage that cannot be used

Messages name the file, row, parameter, path or URL, and what is wrong with it. The command
line prints any :class:`RimclfError` as one line and exits with status 2.

``nn/`` (plain torch modules, importable without the rest of rimclf) raises
:class:`ParameterError` too, so that a bad ``module__depth`` reads the same whether the
estimator or the module catches it.

Warnings
--------
:class:`RimclfWarning` is the base of :class:`DataWarning`, :class:`QSMUnitWarning` and
:class:`ModelVersionWarning`.
"""

from __future__ import annotations


class RimclfError(Exception):
    """Base class of every error rimclf raises on purpose."""


class CohortError(RimclfError, ValueError):
    """Bad cohort input: a missing, unreadable or inconsistent cohort file, manifest or lesion table.

    A subclass of :class:`ValueError`, so code that already catches ``ValueError`` keeps working.
    The message always names the offending file (or table row) and what is wrong with it.
    """


class ParameterError(RimclfError, ValueError):
    """An invalid parameter value: of an estimator, a function, a CLI option or a model setting.

    The message repeats the parameter's name and value and says what is allowed.
    """


class ModelFileError(RimclfError, ValueError):
    """A model directory that cannot be loaded: missing files, not a rimclf model, tampered weights."""


class PredictionError(RimclfError, ValueError):
    """Predictions that cannot be reported: NaN, infinite or out-of-range probabilities.

    The message names the lesions concerned; nothing is written.
    """


class OutputError(RimclfError, OSError):
    """An output folder, file or storage (e.g. an Optuna journal or database URL) that cannot be used."""


class RimclfWarning(UserWarning):
    """Base class of rimclf's warnings."""


class QSMUnitWarning(RimclfWarning):
    """The QSM's value range suggests another unit than the one declared or assumed."""


class DataWarning(RimclfWarning):
    """Input data was repaired (e.g. NaN outside the brain zero-filled), or lesions were skipped or got NaN features."""


class ModelVersionWarning(RimclfWarning):
    """The model was saved with other versions of rimclf, torch, pyradiomics, skorch or scikit-learn."""
