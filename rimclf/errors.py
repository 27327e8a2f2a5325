"""Exception and warning classes raised by rimclf."""

from __future__ import annotations


class CohortError(ValueError):
    """Bad input: a missing, unreadable or inconsistent cohort file, or an invalid parameter.

    A subclass of :class:`ValueError`, so code that already catches ``ValueError`` keeps working.
    The message always names the offending file (or parameter) and what is wrong with it.
    """


class QSMUnitWarning(UserWarning):
    """The QSM's value range suggests ppm where rimclf expects ppb (parts per billion)."""


class DataWarning(UserWarning):
    """Input data was repaired (e.g. NaN outside the brain zero-filled) or lesions were skipped."""


class ModelVersionWarning(UserWarning):
    """The model was saved with other versions of rimclf, torch, pyradiomics, skorch or scikit-learn."""
