"""A fitted QSMRimNetClassifier as plain data (for model files), and the way back.

The fitted state is: the constructor parameters that are plain JSON values, the module's
``state_dict``, the radiomics standardisation arrays and the input sizes learned from X. A
model file (:func:`rimclf.save_model`) stores the JSON part as JSON and the tensors and arrays
with ``torch.save`` (loaded with ``weights_only=True``); ``fitted_state(json=True)`` is all JSON
(tensors and arrays as nested lists), for ``json.dumps`` or any other plain-data store. Nothing
needs pickle.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rimclf._records import json_value
from rimclf._tensor_files import check_weights_archive
from rimclf.errors import ModelFileError, printable

#: fitted attributes (without the trailing underscore) restored by ``from_fitted_state``
SCALAR_STATE = ("in_channels", "patch_shape", "n_radiomics", "feature_keys", "pos_weight")
ARRAY_STATE = ("radiomics_median", "radiomics_mean", "radiomics_scale", "blend_coef", "blend_intercept")
#: fitted attributes kept as arrays in the state but as a float on the estimator
_FLOAT_STATE = ("blend_intercept",)


class FittedStateMixin:
    """``fitted_state()`` / ``from_fitted_state()`` for :class:`QSMRimNetClassifier`."""

    def fitted_state(self, *, json: bool = False) -> dict[str, Any]:
        """Everything a model file needs to rebuild this fitted estimator.

        Parameters
        ----------
        json : bool, default=False
            Return plain JSON types only, so that ``json.dumps(net.fitted_state(json=True))``
            works: the module's tensors become nested lists of numbers (float32 values are exact
            as JSON numbers; NaN/inf become the non-standard ``NaN``/``Infinity`` of Python's
            ``json``) and the radiomics arrays lists. Slower and bigger than tensors for large
            networks; :func:`rimclf.save_model` keeps tensors in a tensors-only file instead.

        Returns
        -------
        state : dict
            - ``"params"``: constructor parameters whose values are JSON (numbers, strings,
              booleans, None, lists, str-keyed dicts), e.g. ``imbalance``, ``module__depth``;
            - ``"omitted_params"``: names of the parameters left out because their values are
              objects (classes, callbacks, split objects, RandomState); pass them to
              :meth:`from_fitted_state` when they differ from the defaults;
            - ``"module_state"``: ``module_.state_dict()`` with CPU tensors (nested lists with
              ``json=True``);
            - ``"in_channels"``, ``"patch_shape"``, ``"n_radiomics"``, ``"feature_keys"`` (the
              tabular entries of X joined into the MLP input), ``"pos_weight"``: JSON;
            - ``"radiomics_median"``, ``"radiomics_mean"``, ``"radiomics_scale"``: float64
              arrays (lists with ``json=True``; None without a radiomics branch);
            - ``"blend_coef"``, ``"blend_intercept"``: the logistic blend's coefficients and
              intercept, float64 arrays of shapes ``(n_radiomics,)`` and ``(1,)`` (None with
              ``blend="none"``).

        Examples
        --------
        >>> import json
        >>> text = json.dumps(net.fitted_state(json=True))  # doctest: +SKIP
        >>> QSMRimNetClassifier.from_fitted_state(json.loads(text))  # doctest: +SKIP
        """
        self.check_is_fitted()
        params, omitted = {}, []
        for name, value in self.get_params(deep=False).items():
            if name.startswith("_"):
                continue
            try:
                params[name] = json_value(value, name, finite=False)
            except TypeError:
                omitted.append(name)
        state: dict[str, Any] = {
            "params": params,
            "omitted_params": sorted(omitted),
            "module_state": {
                key: tensor.detach().cpu().clone()
                for key, tensor in self.module_.state_dict().items()
            },
        }
        for name in SCALAR_STATE:
            state[name] = json_value(getattr(self, name + "_", None), name, finite=False)
        for name in ARRAY_STATE:
            array = getattr(self, name + "_", None)
            state[name] = None if array is None else np.array(array, dtype=np.float64).reshape(-1)
        if json:
            state["module_state"] = {key: tensor.tolist() for key, tensor in state["module_state"].items()}
            for name in ARRAY_STATE:
                state[name] = None if state[name] is None else state[name].tolist()
        return state

    @classmethod
    def from_fitted_state(cls, state: dict[str, Any], **params: Any):
        """Rebuild a fitted estimator from :meth:`fitted_state` (or its JSON round trip).

        ``state`` may come from ``fitted_state()`` or ``fitted_state(json=True)`` (tensors and
        arrays as nested lists), e.g. after a JSON round trip.
        ``net = QSMRimNetClassifier.from_fitted_state(state)`` constructs the estimator from
        ``state["params"]`` updated with ``params``, restores the fitted preprocessing
        attributes, calls :meth:`initialize` (which builds ``module_`` with the fitted input
        sizes) and loads ``state["module_state"]``. The result predicts exactly like the
        original; its ``history_`` is empty and its optimizer freshly initialised.
        """
        net = cls(**{**_saved_params(state), **params})
        net._restore_fitted_inputs(state)
        net.initialize()
        expected = net.module_.state_dict()
        module_state = {
            # a nested list (fitted_state(json=True)) takes the dtype of the module's own tensor
            key: torch.as_tensor(value, dtype=expected[key].dtype if key in expected else None)
            for key, value in state["module_state"].items()
        }
        net.module_.load_state_dict(module_state)
        return net

    @classmethod
    def module_state_layout(cls, state: dict[str, Any]) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        """Names, shapes and dtypes of the ``module_state`` that :meth:`from_fitted_state` needs.

        The network that ``state`` describes (its parameters and input sizes; ``module_state``
        is not read) is built on torch's ``"meta"`` device, which holds shapes and no data, so
        that a model file's weights can be checked against it before any of them is read, and a
        description of a huge network costs no memory.

        Examples
        --------
        >>> layout = QSMRimNetClassifier.module_state_layout(net.fitted_state())  # doctest: +SKIP
        >>> layout["head.weight"]  # doctest: +SKIP
        ((1, 64), torch.float32)
        """
        net = cls(**{**_saved_params(state), "device": "cpu"})
        net._restore_fitted_inputs(state)
        with torch.device("meta"), net._current_init_context("module"):  # skorch's guard of module_
            net.initialize_module()
        return {key: (tuple(tensor.shape), tensor.dtype) for key, tensor in net.module_.state_dict().items()}

    def _restore_fitted_inputs(self, state: dict[str, Any]) -> None:
        """Set the fitted input sizes and standardisation arrays of ``state`` on this estimator."""
        net = self
        for name in SCALAR_STATE:
            value = state.get(name)
            if name == "patch_shape" and value is not None:
                value = tuple(int(s) for s in value)
            if name == "feature_keys":  # states written before rim features knew only radiomics
                value = tuple(str(key) for key in value) if value is not None else (
                    ("radiomics",) if state.get("n_radiomics") is not None else None
                )
            setattr(net, name + "_", value)
        for name in ARRAY_STATE:
            value = state.get(name)
            value = None if value is None else np.asarray(value, dtype=np.float64)
            if value is not None and name in _FLOAT_STATE:
                value = float(value.reshape(-1)[0])
            setattr(net, name + "_", value)


def _saved_params(state: dict[str, Any]) -> dict[str, Any]:
    """A state's estimator parameters; a state written before the blend existed is the network alone."""
    return {"blend": "none", **state["params"]}


def load_tensor_dict(path: Path, data: bytes) -> dict[str, torch.Tensor]:
    """The named tensors of ``data`` (a file's bytes, already size- and hash-checked): its archive
    checked by :func:`check_weights_archive`, then ``torch.load(weights_only=True)``; anything but
    a dict of named tensors is a :class:`ModelFileError` naming ``path``. Used for model files'
    ``weights.pt`` and the pretrained encoder."""
    check_weights_archive(path, data)
    try:
        tensors = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for forbidden globals, RuntimeError for broken archives, ...
        lines = str(exc).strip().splitlines()
        raise ModelFileError(f"{path}: refused: not a tensors-only weights file ({type(exc).__name__}: "
                             f"{printable(lines[0] if lines else '')})") from None
    if not isinstance(tensors, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in tensors.items()):
        raise ModelFileError(f"{path}: must hold a dict of named tensors")
    return tensors
