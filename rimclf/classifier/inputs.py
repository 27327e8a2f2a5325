"""Input side of QSMRimNetClassifier: checks of X and y, feature standardisation, datasets.

X is a :class:`skorch.helper.SliceDict` (or a plain dict), as made by ``LesionFeaturizer``, keyed
by the names of :mod:`rimclf.feature_registry`: the image entry ``"patches"`` float
``(n, C, D, H, W)`` for the CNN branch, and the tabular entries (``"rim"``, ``"radiomics"``, ...)
float ``(n, F)`` for the MLP branch. The tabular entries present are joined column-wise in
registry order into the one vector per lesion the MLP branch takes (the module's ``tabular``
input); which entries were joined is learnt in ``fit`` (``feature_keys_``).
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from skorch.utils import is_dataset
from sklearn.exceptions import NotFittedError

from rimclf.classifier.batches import LesionBatchDataset
from rimclf._data_checks import PATCHES, check_lesion_inputs
from rimclf._validation import check_choice
from rimclf.defaults import BRANCHES
from rimclf.feature_registry import TABULAR, feature_names
from rimclf.errors import CohortError, DataWarning, ParameterError

def input_keys() -> tuple[str, ...]:
    """The keys of X the estimator understands: the registered features (the image entry and the tabular ones)."""
    return feature_names()


def check_inputs(
    X: object, branches: str, feature_keys: tuple[str, ...] | None = None, image: str = PATCHES
) -> tuple[dict[str, np.ndarray], tuple[str, ...] | None]:
    """Validate X; return the inputs the network's ``branches`` use, as numpy arrays, and the
    tabular entries joined into its ``"tabular"`` input (None without an MLP branch).

    :func:`rimclf._data_checks.check_lesion_inputs` with the keys of the feature registry: the
    image entry ``image`` (``"patches"`` or ``"surface_map"``, the module's ``"patches"`` input)
    becomes C-contiguous float32 and must be finite; the tabular entries (``feature_keys``, or every
    registered tabular entry present in X when None) are joined column-wise into float64
    ``"tabular"``, which may hold NaN/inf (imputed by :class:`RadiomicsScaler`).

    Raises
    ------
    CohortError
        X is not a mapping, misses a needed key, has an unknown key, wrong dimensions,
        non-finite patches, or inputs of different lengths.
    ParameterError
        ``branches`` is not one of :data:`rimclf.defaults.BRANCHES`.
    """
    check_choice(branches, "module__branches", BRANCHES)
    return check_lesion_inputs(X, branches, feature_keys, known=input_keys(), tabular=feature_names(TABULAR), image=image)


@dataclass
class RadiomicsScaler:
    """Median imputation then standardisation of radiomic features, fitted on training rows.

    Attributes
    ----------
    median, mean, scale : numpy.ndarray of shape (F,)
        Training median (NaN/inf are replaced by it), mean and standard deviation after
        imputation; a constant column gets ``scale = 1`` and a column that is NaN in every
        training row gets ``median = 0``.
    """

    median: np.ndarray
    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, radiomics: np.ndarray) -> RadiomicsScaler:
        values = np.where(np.isfinite(radiomics), radiomics, np.nan)
        all_missing = np.isnan(values).all(axis=0)
        if all_missing.any():
            warnings.warn(
                f"radiomics columns {np.flatnonzero(all_missing).tolist()[:10]} are NaN in every "
                "training lesion; they are set to 0",
                DataWarning,
                stacklevel=3,
            )
        if values.shape[0] and not np.isnan(values).any():
            median = np.median(values, axis=0)  # the same, three times faster
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
                median = np.nanmedian(values, axis=0) if values.shape[0] else np.zeros(values.shape[1])
        median = np.where(np.isnan(median), 0.0, median)
        imputed = np.where(np.isnan(values), median, values)
        mean = imputed.mean(axis=0)
        scale = imputed.std(axis=0)
        tiny = scale <= 10 * np.finfo(np.float64).eps * np.maximum(np.abs(mean), 1.0)
        scale = np.where(tiny, 1.0, scale)
        return cls(median=median, mean=mean, scale=scale)

    def transform(self, radiomics: np.ndarray, dtype: type = np.float32) -> np.ndarray:
        """Impute and standardise ``(n, F)`` radiomics -> ``(n, F)`` of ``dtype`` (float32 for the network)."""
        if radiomics.shape[1] != self.median.shape[0]:
            raise CohortError(
                f"X's tabular features have {radiomics.shape[1]} columns; the estimator was fitted "
                f"on {self.median.shape[0]}"
            )
        values = np.where(np.isfinite(radiomics), radiomics, self.median)
        return ((values - self.mean) / self.scale).astype(dtype)


def signature_parameters(factory: Any) -> dict[str, inspect.Parameter]:
    """The parameters of a class or function (empty when it has no inspectable signature)."""
    try:
        return dict(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        return {}


class LesionInputsMixin:
    """Fitted preprocessing of a skorch net taking the lesion SliceDict.

    ``_fit_preprocessing`` learns ``in_channels_``, ``patch_shape_``, ``n_radiomics_`` and the
    radiomics statistics; ``get_dataset`` turns X into standardised tensors. It uses only the
    skorch net's own API (``module``, ``get_params_for``, ``check_is_fitted``).
    """

    def _module_branches(self) -> str:
        branches = self.get_params_for("module").get("branches")
        if branches is not None:
            return branches
        if isinstance(self.module, torch.nn.Module):
            return getattr(self.module, "branches", "both")
        parameter = signature_parameters(self.module).get("branches")
        if parameter is not None and parameter.default is not inspect.Parameter.empty:
            return parameter.default
        return "both"

    def _module_image(self) -> str:
        """The X entry the image branch reads (``module__image``; "patches" unless set)."""
        image = self.get_params_for("module").get("image")
        if image is None and isinstance(self.module, torch.nn.Module):
            image = getattr(self.module, "image", None)
        return PATCHES if image is None else image

    def _fit_preprocessing(self, inputs: dict[str, np.ndarray], feature_keys: tuple[str, ...] | None) -> None:
        """Learn the input sizes, the tabular entries used and their statistics from the training inputs."""
        patches = inputs.get("patches")
        self.in_channels_ = None if patches is None else int(patches.shape[1])
        self.patch_shape_ = None if patches is None else tuple(int(s) for s in patches.shape[2:])
        radiomics = inputs.get("tabular")
        self.feature_keys_ = feature_keys
        if radiomics is None:
            self.n_radiomics_ = None
            self.radiomics_median_ = self.radiomics_mean_ = self.radiomics_scale_ = None
        else:
            scaler = RadiomicsScaler.fit(radiomics)
            self.n_radiomics_ = int(radiomics.shape[1])
            self.radiomics_median_ = scaler.median
            self.radiomics_mean_ = scaler.mean
            self.radiomics_scale_ = scaler.scale
        module_params = self.get_params_for("module")
        learned = (("in_channels", self.in_channels_), ("n_tabular", self.n_radiomics_))
        for name, fitted in learned:
            if name in module_params and fitted is not None and module_params[name] != fitted:
                raise ParameterError(
                    f"module__{name}={module_params[name]!r} but X has {fitted}; "
                    f"leave module__{name} unset (it is taken from X)"
                )

    def _check_input_sizes(self, module_kwargs: dict[str, Any], accepted: Mapping[str, Any]) -> None:
        """Raise a clear :class:`ParameterError` when the network is built (``initialize()``)
        before ``fit`` has learnt the input sizes it needs and no ``module__*`` gives them."""
        branches = self._module_branches()
        needed = {"in_channels": branches != "tabular", "n_tabular": branches != "patches"}
        missing = [f"module__{name}" for name, used in needed.items()
                   if used and name in accepted and module_kwargs.get(name) is None]
        if missing:
            raise ParameterError(
                f"{type(self).__name__}.initialize() before fit: the network's input sizes are learnt from X in "
                f"fit, and {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not given. To restore a "
                "saved network use rimclf.load_model(path) (written by rimclf.save_model(net, path)) or "
                f"{type(self).__name__}.from_fitted_state(state); to build the bare network (e.g. for skorch's "
                f"load_params(f_params=...)) give {', '.join(name + '=...' for name in missing)}"
            )

    def _check_preprocessing(self) -> None:
        """Prediction needs what ``fit`` learnt besides the weights (input sizes, tabular statistics)."""
        if not hasattr(self, "feature_keys_"):
            raise NotFittedError(
                f"this {type(self).__name__} has a network but no fitted preprocessing (the input sizes and the "
                "standardisation of the tabular features are learnt in fit; skorch's load_params restores the "
                "network's weights only). Fit it, or restore a saved one with rimclf.load_model(path) or "
                f"{type(self).__name__}.from_fitted_state(state)"
            )

    def _transform_inputs(self, X: object) -> dict[str, torch.Tensor]:
        self._check_preprocessing()
        inputs, _ = check_inputs(X, self._module_branches(), getattr(self, "feature_keys_", None), self._module_image())
        return self._as_tensors(inputs)

    def _as_tensors(self, inputs: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        tensors: dict[str, torch.Tensor] = {}
        if "patches" in inputs:
            patches = inputs["patches"]
            if self.in_channels_ is not None and (
                patches.shape[1] != self.in_channels_ or patches.shape[2:] != self.patch_shape_
            ):
                raise CohortError(
                    f"X['patches'] has shape {patches.shape[1:]} per lesion; the estimator was "
                    f"fitted on {(self.in_channels_, *self.patch_shape_)}"
                )
            tensors["patches"] = torch.from_numpy(patches)
        if "tabular" in inputs:
            tensors["tabular"] = torch.from_numpy(self._tabular_scaler().transform(inputs["tabular"]))
        return tensors

    def _tabular_scaler(self) -> RadiomicsScaler:
        """The imputation and standardisation fitted on the training rows' tabular features."""
        return RadiomicsScaler(self.radiomics_median_, self.radiomics_mean_, self.radiomics_scale_)

    def preprocess(self, X: object) -> dict[str, torch.Tensor]:
        """X as the standardised tensors the fitted module takes, on the module's device.

        ``net.module_.eval()(**net.preprocess(X))`` returns the logits that ``predict_proba``
        turns into probabilities, on any device (the same numbers when run under
        ``torch.autocast(net.device_.type, torch.bfloat16)`` if ``net.amp_``). Patches on a GPU
        get the ``torch.channels_last_3d`` layout of the module's convolution weights.
        """
        self.check_is_fitted()
        device = next(self.module_.parameters()).device
        tensors = {}
        for name, value in self._transform_inputs(X).items():
            value = value.to(device)
            if device.type == "cuda" and value.ndim == 5:
                value = value.contiguous(memory_format=torch.channels_last_3d)
            tensors[name] = value
        return tensors

    def get_dataset(self, X: object, y: object = None) -> torch.utils.data.Dataset:
        """X (and y) as a :class:`LesionBatchDataset` of standardised tensors."""
        if is_dataset(X):
            return X
        labels = None if y is None else torch.as_tensor(np.asarray(y, dtype=np.float32))
        return LesionBatchDataset(self._transform_inputs(X), labels)
