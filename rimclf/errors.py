"""Exception and warning classes raised by rimclf.

Errors, by kind
---------------
Every error rimclf raises on purpose is a :class:`RimclfError`; catch that to catch them all.
Each kind also subclasses the builtin exception that code written without rimclf in mind
already catches::

    RimclfError
     ├── CohortError       (ValueError)  the data: a cohort file or table, X, y, groups
     ├── ParameterError    (ValueError,  a setting: an estimator parameter, a function argument,
     │                      TypeError)
     │                                   a CLI option, an Optuna or benchmark setting
     ├── ModelFileError    (ValueError)  a model directory that cannot be saved or loaded safely
     ├── PredictionError   (ValueError)  a model's output that cannot be used (NaN/Inf probabilities)
     ├── MissingDependencyError (ImportError)  an optional package (an extra such as
     │                                   ``rimclf[radiomics]``) that the settings need is not installed
     └── OutputError       (OSError)     an output location or storage that cannot be used
          └── OutputExistsError (FileExistsError)  an output that exists, without force

The kind says what to fix: the data (:class:`CohortError`) or a setting
(:class:`ParameterError`). A setting that cannot work with the data given (more folds than
subjects) is a :class:`ParameterError`. Messages name the file, row, parameter, path or URL and
repeat the bad value; parameter messages read ``"name=value is not valid; it must be ..."``
(see :mod:`rimclf._validation`). The command line prints any :class:`RimclfError` as one line
and exits with status 2 for a usage error (a bad option: :class:`ParameterError`, or one argparse
refuses) and 1 for the rest (data, model file, output, prediction, missing optional package).

``nn/`` (plain torch modules, importable without the rest of rimclf) raises
:class:`ParameterError` for its settings too, so that a bad ``module__depth`` reads the same
whether the estimator or the module catches it, and :class:`CohortError` for inputs of the
wrong shape.

Warnings
--------
:class:`RimclfWarning` is the base of :class:`DataWarning` and :class:`ModelVersionWarning`.

Text from files
---------------
Messages quote text read from files (a model's ``settings.json``, a sidecar, a file name). So
that a file cannot put terminal control sequences into what rimclf prints (clear the screen,
forge an error line), the message of every :class:`RimclfError` and :class:`RimclfWarning` is
shown through :func:`printable` (``str(error)``): control characters come out escaped, and the
message stays on one line.
"""

from __future__ import annotations

import unicodedata


class RimclfError(Exception):
    """Base class of every error rimclf raises on purpose.

    Examples
    --------
    >>> import rimclf
    >>> try:
    ...     rimclf.load_cohort("no/such/cohort")
    ... except RimclfError as error:                  # catches every error rimclf raises on purpose
    ...     print(type(error).__name__)
    CohortError
    >>> str(RimclfError("a name from a file: \\x1b[2J"))     # control characters come out escaped
    'a name from a file: \\\\x1b[2J'
    """

    def __str__(self) -> str:
        return printable(super().__str__(), limit=None)


class CohortError(RimclfError, ValueError):
    """Bad data: a missing, unreadable or inconsistent cohort file, manifest or lesion table, or
    features (X), labels (y) or subjects (groups) an estimator or metric cannot use.

    A subclass of :class:`ValueError`, so code that already catches ``ValueError`` keeps working.
    The message always names the offending file (or table row, or input) and what is wrong with it.

    Examples
    --------
    >>> import rimclf
    >>> rimclf.load_cohort("no/such/cohort")
    Traceback (most recent call last):
    ...
    rimclf.errors.CohortError: .../no/such/cohort: no such cohort directory or manifest file
    >>> issubclass(CohortError, ValueError)
    True
    """


class ParameterError(RimclfError, ValueError, TypeError):
    """An invalid setting: a parameter of an estimator or function, a CLI option, an Optuna or
    benchmark setting, or one that cannot work with the data given.

    The message repeats the parameter's name and value and says what is allowed. Like
    scikit-learn's ``InvalidParameterError`` it is both a :class:`ValueError` and a
    :class:`TypeError` (a value of the wrong type is a bad setting too).

    Examples
    --------
    >>> from rimclf.metrics import subject_folds
    >>> subject_folds([0, 1, 0, 1], ["01", "01", "02", "02"], n_splits=1)
    Traceback (most recent call last):
    ...
    rimclf.errors.ParameterError: n_splits=1 is not valid; it must be an integer >= 2
    """


class ModelFileError(RimclfError, ValueError):
    """A model directory that cannot be loaded (missing files, not a rimclf model, tampered
    weights), or a model that a model directory cannot hold (a custom network class).

    Examples
    --------
    >>> import rimclf
    >>> rimclf.load_model("no/such/model")
    Traceback (most recent call last):
    ...
    rimclf.errors.ModelFileError: no/such/model: no such model directory
    """


class PredictionError(RimclfError, ValueError):
    """Predictions that cannot be reported: NaN, infinite or out-of-range probabilities.

    The message names the lesions concerned; nothing is written.

    Examples
    --------
    >>> from rimclf.outputs import check_probabilities
    >>> check_probabilities([0.5, float("nan")])
    Traceback (most recent call last):
    ...
    rimclf.errors.PredictionError: the model gave 1 of 2 lesion(s) a NaN, infinite or out-of-range rim+ probability: ...
    """


class MissingDependencyError(RimclfError, ImportError):
    """An optional package that the settings need is not installed: pyradiomics for a radiomics
    feature set or baseline (the extra ``rimclf[radiomics]``).

    An :class:`ImportError` (the package is missing from this environment, whatever the data and
    settings), raised when the settings are checked, before any long work. The message is one line
    naming the extra and how to install it.

    Examples
    --------
    >>> issubclass(MissingDependencyError, ImportError)
    True
    >>> from rimclf.features.radiomics import require_pyradiomics
    >>> require_pyradiomics()          # doctest: +SKIP
    Traceback (most recent call last):
    ...
    rimclf.errors.MissingDependencyError: radiomics features need pyradiomics, which is not installed: ...
    """


class OutputError(RimclfError, OSError):
    """An output folder, file or storage (e.g. an Optuna journal or database URL) that cannot be used.

    Examples
    --------
    >>> from rimclf.tuning import open_storage
    >>> open_storage(None, study_name="../elsewhere")      # the default journal must stay in the current folder
    Traceback (most recent call last):
    ...
    rimclf.errors.OutputError: ...refused to write '../elsewhere.journal': a name from the data must be one plain path component
    """


class OutputExistsError(OutputError, FileExistsError):
    """An output that exists already, refused because ``force`` (``--force``) was not given.

    Examples
    --------
    >>> import tempfile
    >>> from rimclf.phantom import make_phantom_cohort
    >>> with tempfile.TemporaryDirectory() as folder:     # exists: refused before any work
    ...     make_phantom_cohort(folder, n_subjects=1)
    Traceback (most recent call last):
    ...
    rimclf.errors.OutputExistsError: ... already exists; use --force (force=True) to overwrite it
    >>> issubclass(OutputExistsError, FileExistsError)
    True
    """


class RimclfWarning(UserWarning):
    """Base class of rimclf's warnings.

    Examples
    --------
    >>> import warnings
    >>> issubclass(DataWarning, RimclfWarning), issubclass(ModelVersionWarning, RimclfWarning)
    (True, True)
    >>> warnings.simplefilter("error", RimclfWarning)     # doctest: +SKIP
    """

    def __str__(self) -> str:
        return printable(super().__str__(), limit=None)


class DataWarning(RimclfWarning):
    """Input data was repaired (e.g. NaN outside the brain zero-filled), or lesions were skipped or got NaN features.

    Examples
    --------
    >>> import warnings
    >>> import numpy as np
    >>> from rimclf.baselines import SafeSMOTE
    >>> X, y = np.random.default_rng(0).normal(size=(12, 3)), np.array([1, 1, 1] + [0] * 9)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     _ = SafeSMOTE(k_neighbors=5).fit_resample(X, y)
    >>> caught[0].category.__name__
    'DataWarning'
    """


class ModelVersionWarning(RimclfWarning):
    """The model was saved with other versions of rimclf, torch, pyradiomics, skorch or scikit-learn.

    Examples
    --------
    >>> import warnings
    >>> import rimclf
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", ModelVersionWarning)   # a model of other package versions
    ...     model = rimclf.load_model("model")                      # doctest: +SKIP
    """


#: Unicode categories escaped by :func:`printable`: control characters (C0, DEL, C1), format
#: characters (bidirectional overrides, zero-width characters) and line/paragraph separators.
_UNPRINTABLE_CATEGORIES = ("Cc", "Cf", "Zl", "Zp")


def printable(text: object, limit: int | None = 300) -> str:
    """``str(text)`` safe to show on a terminal: on one line, no control characters, not too long.

    Control and format characters (escape sequences, carriage returns, newlines, bidirectional
    overrides) are written as Python escapes (``\\x1b``, ``\\n``, ``\\u202e``); text longer than
    ``limit`` characters is cut and ends with ``...``.

    Parameters
    ----------
    text : object
        Usually a string read from a file (a setting, a sidecar value, a file name).
    limit : int or None, default=300
        Most characters kept (None: all).

    Returns
    -------
    str

    Examples
    --------
    >>> printable("3.0.1\\x1b[2J\\rrimclf: error: forged")
    '3.0.1\\\\x1b[2J\\\\rrimclf: error: forged'
    >>> printable("x" * 10, limit=4)
    'xxxx...'
    """
    text = str(text)
    cut = limit is not None and len(text) > limit
    if cut:
        text = text[:limit]
    if not text.isprintable():
        text = "".join(
            char.encode("unicode_escape").decode("ascii") if unicodedata.category(char) in _UNPRINTABLE_CATEGORIES else char
            for char in text
        )
    return text + "..." if cut else text
