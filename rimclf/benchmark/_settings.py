"""Settings of the imbalance benchmark: the full and quick presets and their checks."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from rimclf._validation import Interval, Options, Types, check_param
from rimclf.defaults import CALIBRATIONS, DEFAULT_MODEL, OPERATING_POINTS, ModelConfig
from rimclf.errors import ParameterError


@dataclass(frozen=True)
class BenchmarkSettings:
    """How the imbalance benchmark cross-validates, trains and bootstraps.

    The defaults are the full run (:meth:`full`), sized so that three 30-subject phantom
    cohorts finish within an hour on two CPU cores; :meth:`quick` is a smaller run. Every method
    is trained on the same folds, with the same seeds.

    Parameters
    ----------
    n_splits : int, default=5
        Folds of the subject-grouped ``StratifiedGroupKFold``.
    n_repeats : int, default=2
        Repetitions of the cross-validation over new shuffles of the subjects.
    max_epochs : int, default=20
        Fixed training epochs of every QSMRim-Net variant (no early stopping).
    batch_size : int, default=32
        Network batch size (batches grow when a fold has too few rim+ lesions for DeepSMOTE).
    lr : float, default=1e-3
        Network learning rate (AdamW, cosine schedule over ``max_epochs``), the classifier's default.
    module_depth : int, default=10
        ResNet3D depth of the patch branch.
    module_width : int, default=8
        ResNet3D base width: a CPU-size network (the classifier's default is 16, the paper's 64).
    patch_shape : int, default=16
        Samples per patch edge.
    patch_size_mm : float, default=24.0
        Patch edge in millimetres (1.5 mm samples with the default shape).
    network_radiomics : {"lesion+shell", "lesion"}, default="lesion+shell"
        Radiomics the network's MLP branch takes: of the lesion and a peri-lesional ring (as the
        strongest radiomics baseline), or of the lesion only (QSMRim-Net's original input).
    n_estimators : int, default=300
        Trees of the random forests.
    smote_k : int, default=5
        Neighbours of input-level SMOTE (imblearn ``SMOTE`` on radiomics, ``SliceDictSMOTE`` on
        network inputs); DeepSMOTE keeps the paper's ``k = 2``.
    shell_mm : float, default=2.0
        Width of the peri-lesional ring of the lesion + shell radiomics.
    n_boot : int, default=1000
        Subject bootstrap resamples for the confidence intervals and paired differences.
    alpha : float, default=0.05
        1 - confidence level of the intervals.
    max_fpr : float, default=0.1
        Upper false-positive rate of the standardised partial ROC AUC.
    n_threads : int, default=1
        Threads of each fit (torch intra-op, OpenMP, BLAS). Parallelism comes from fitting folds
        in separate processes (``n_jobs`` of :func:`run_imbalance_benchmark`): a small 3D CNN
        gains little from intra-op threads, and on a busy machine they can slow it several-fold.
    device : str, default="auto"
        Network device (``"auto"``: CUDA when available).
    threshold_cv : int, default=5
        Folds of the threshold CV inside every training fold, as ``RimModel(threshold_cv=...)``
        (:data:`~rimclf.defaults.DEFAULT_MODEL`): its out-of-fold probabilities calibrate the
        method and set its threshold, so the benchmark scores what a trained model outputs, at
        ``threshold_cv + 1`` fits per fold. 0: one fit per fold, the method's own probabilities
        scored and the threshold read off the training lesions (the benchmark before calibration).
    calibration : {"sigmoid", "isotonic"} or None, default="sigmoid"
        As ``RimModel(calibration=...)`` (needs ``threshold_cv >= 2``).
    operating_point : {"specificity", "sensitivity", "f1", "count"}, default="specificity"
        How each fold's threshold is chosen, as ``RimModel(operating_point=...)``.
    target_specificity, target_sensitivity : float, default=0.9, 0.8
        The targets of the operating points "specificity" and "sensitivity".

    Examples
    --------
    >>> BenchmarkSettings.quick().n_splits, BenchmarkSettings.full().n_splits
    (3, 5)
    >>> settings = BenchmarkSettings.full(max_epochs=10, n_boot=200)
    >>> settings.model_config().max_epochs                        # the networks' configuration
    10
    >>> BenchmarkSettings.full(epochs=10)
    Traceback (most recent call last):
    ...
    rimclf.errors.ParameterError: unknown benchmark setting(s) ['epochs']; ...
    """

    n_splits: int = 5
    n_repeats: int = 2
    max_epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    module_depth: int = 10
    module_width: int = 8
    patch_shape: int = 16
    patch_size_mm: float = 24.0
    network_radiomics: str = "lesion+shell"
    n_estimators: int = 300
    smote_k: int = 5
    shell_mm: float = 2.0
    n_boot: int = 1000
    alpha: float = 0.05
    max_fpr: float = 0.1
    n_threads: int = 1
    device: str = "auto"
    threshold_cv: int = DEFAULT_MODEL.threshold_cv
    calibration: str | None = DEFAULT_MODEL.calibration
    operating_point: str = DEFAULT_MODEL.operating_point
    target_specificity: float = DEFAULT_MODEL.target_specificity
    target_sensitivity: float = DEFAULT_MODEL.target_sensitivity

    @classmethod
    def full(cls, **overrides: object) -> BenchmarkSettings:
        """The full run: 5 folds x 2 repeats, 20 epochs, 1000 bootstrap resamples."""
        return cls().replace(**overrides)

    @classmethod
    def quick(cls, **overrides: object) -> BenchmarkSettings:
        """The quick run: 3 folds x 1 repeat, 15 epochs, 200 trees, 300 bootstrap resamples."""
        return cls(n_splits=3, n_repeats=1, max_epochs=15, n_estimators=200, n_boot=300).replace(**overrides)

    def model_config(self, **changes: object) -> ModelConfig:
        """The network and feature settings as a :class:`~rimclf.defaults.ModelConfig` (the
        others from :data:`~rimclf.defaults.DEFAULT_MODEL`), with ``changes``."""
        settings = dict(
            depth=self.module_depth, width=self.module_width, max_epochs=self.max_epochs, batch_size=self.batch_size,
            lr=self.lr, patch_shape=self.patch_shape, patch_size_mm=self.patch_size_mm, shell_mm=self.shell_mm,
        )
        return dataclasses.replace(DEFAULT_MODEL, **{**settings, **changes})

    def replace(self, **overrides: object) -> BenchmarkSettings:
        """A copy with some fields changed; unknown names raise :class:`~rimclf.errors.ParameterError`."""
        names = {field.name for field in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ParameterError(f"unknown benchmark setting(s) {unknown}; valid names: {sorted(names)}")
        return dataclasses.replace(self, **overrides)

    def check(self) -> BenchmarkSettings:
        """Return ``self`` after checking every field; raise ParameterError naming a bad one."""
        for name, allowed in _CONSTRAINTS.items():
            check_param(getattr(self, name), name, allowed, owner="benchmark setting")
        return self


_POSITIVE_INT = [Interval(int, 1)]
_POSITIVE = [Interval(float, 0, closed="neither")]
#: What each field of :class:`BenchmarkSettings` accepts.
_CONSTRAINTS = {
    "n_splits": [Interval(int, 2)],
    "n_repeats": _POSITIVE_INT,
    "max_epochs": _POSITIVE_INT,
    "batch_size": [Interval(int, 2)],
    "lr": _POSITIVE,
    "module_depth": _POSITIVE_INT,
    "module_width": _POSITIVE_INT,
    "patch_shape": _POSITIVE_INT,
    "patch_size_mm": _POSITIVE,
    "network_radiomics": [Options("lesion+shell", "lesion")],
    "n_estimators": _POSITIVE_INT,
    "smote_k": _POSITIVE_INT,
    "shell_mm": _POSITIVE,
    "n_boot": _POSITIVE_INT,
    "alpha": [Interval(float, 0, 1, closed="neither")],
    "max_fpr": [Interval(float, 0, 1, closed="right")],
    "n_threads": _POSITIVE_INT,
    "device": [Types(str, description="a device name such as 'auto' or 'cpu'")],
    "threshold_cv": [Options(0), Interval(int, 2, 1000)],
    "calibration": [Options(None, *CALIBRATIONS)],
    "operating_point": [Options(*OPERATING_POINTS)],
    "target_specificity": [Interval(float, 0, 1, closed="neither")],
    "target_sensitivity": [Interval(float, 0, 1, closed="right")],
}


def resolve_settings(settings: BenchmarkSettings | Mapping | None, quick: bool) -> BenchmarkSettings:
    """The preset for ``quick``, updated by ``settings`` (a mapping), or ``settings`` as given."""
    if isinstance(settings, BenchmarkSettings):
        return settings.check()
    if settings is not None and not isinstance(settings, Mapping):
        raise ParameterError(
            f"settings={settings!r} is not valid; it must be a BenchmarkSettings, a mapping of setting names to values or None"
        )
    overrides = dict(settings or {})
    preset = BenchmarkSettings.quick if quick else BenchmarkSettings.full
    return preset(**overrides).check()
