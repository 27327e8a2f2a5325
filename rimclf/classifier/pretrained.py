"""The pretrained surface-map encoder shipped with rimclf, read safely.

``QSMRimNetClassifier(image_weights="pretrained")`` starts the surface-map encoder of its
network (:class:`rimclf.nn.SurfaceMapEncoder`) from weights learnt on 5,475 phantom
lesions of 22 acquisition protocols (``benchmarks/pretrain_surface_map.py`` writes them; see
docs/benchmarks.md), instead of from random numbers. The weights are package data
(``rimclf/data/surface_map_encoder.pt``, a few kilobytes), never downloaded. They are read
once per ``fit``: a fitted network keeps its own weights (a saved model holds them), so a model
file never needs this file.

The file is read as model files are (:mod:`rimclf._tensor_files`): its JSON sidecar first
(format, version, SHA-256, the tensors it holds), then at most :data:`MAX_PRETRAINED_BYTES`
of the weights, their SHA-256 against the sidecar's, the zip archive inspected, and
``torch.load(weights_only=True)``; the tensors must be those of the encoder they go into,
name by name, shape and dtype.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

import torch

from rimclf._tensor_files import read_at_most
from rimclf.classifier.state import load_tensor_dict
from rimclf.errors import ModelFileError, printable

#: The pretrained weights' file in ``rimclf/data`` and its sidecar.
PRETRAINED_WEIGHTS = "surface_map_encoder.pt"
PRETRAINED_SIDECAR = "surface_map_encoder.json"
#: The sidecar's ``format`` and the ``format_version`` this rimclf reads.
PRETRAINED_FORMAT = "rimclf-pretrained-surface-map-encoder"
PRETRAINED_FORMAT_VERSION = 1
#: Largest pretrained weights file read (bytes), and largest sidecar.
MAX_PRETRAINED_BYTES = 10 * 2**20
_MAX_SIDECAR_BYTES = 2**20


def shipped_weights() -> Path:
    """Path of the pretrained surface-map encoder's weights in the installed package.

    Examples
    --------
    >>> shipped_weights().name
    'surface_map_encoder.pt'
    """
    return Path(str(resources.files("rimclf").joinpath("data", PRETRAINED_WEIGHTS)))


def read_pretrained_sidecar(weights: Path) -> dict:
    """The JSON sidecar beside ``weights`` (``NAME.json`` for ``NAME.pt``), its format checked."""
    path = weights.with_suffix(".json")
    if not path.is_file():
        raise ModelFileError(f"{path}: missing; the pretrained weights {weights.name} need their sidecar "
                             "(written by benchmarks/pretrain_surface_map.py)")
    raw = read_at_most(path, _MAX_SIDECAR_BYTES)
    if len(raw) > _MAX_SIDECAR_BYTES:
        raise ModelFileError(f"{path}: larger than {_MAX_SIDECAR_BYTES:,} bytes; refused")
    try:
        sidecar = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ModelFileError(f"{path}: not valid JSON ({printable(exc)})") from None
    if not isinstance(sidecar, dict) or sidecar.get("format") != PRETRAINED_FORMAT:
        raise ModelFileError(f"{path}: not the sidecar of pretrained rimclf weights (format must be {PRETRAINED_FORMAT!r})")
    if sidecar.get("format_version") != PRETRAINED_FORMAT_VERSION:
        raise ModelFileError(f"{path}: format_version={printable(repr(sidecar.get('format_version')))}; this rimclf reads "
                             f"version {PRETRAINED_FORMAT_VERSION}")
    if not isinstance(sidecar.get("sha256"), str):
        raise ModelFileError(f"{path}: has no sha256 of the weights")
    return sidecar


def read_pretrained(weights: Path | str | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """The tensors of a pretrained encoder file and its sidecar, read with bounded memory.

    Parameters
    ----------
    weights : path, optional
        The ``.pt`` file; default: the one shipped with rimclf (:func:`shipped_weights`).

    Returns
    -------
    tensors : dict of str to Tensor
    sidecar : dict

    Raises
    ------
    ModelFileError
        Missing sidecar or weights, larger than :data:`MAX_PRETRAINED_BYTES`, SHA-256 other than
        the sidecar's, not a tensors-only ``torch.save`` archive, or not a dict of named tensors.

    Examples
    --------
    >>> tensors, sidecar = read_pretrained()
    >>> sidecar["encoder"]["out_features"], tuple(tensors["project.0.weight"].shape)
    (64, (64, 64))
    """
    path = shipped_weights() if weights is None else Path(weights)
    sidecar = read_pretrained_sidecar(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: missing; the pretrained surface-map encoder is package data of rimclf "
                             "(reinstall rimclf, or write it with benchmarks/pretrain_surface_map.py)")
    data = read_at_most(path, MAX_PRETRAINED_BYTES)
    if len(data) > MAX_PRETRAINED_BYTES:
        raise ModelFileError(f"{path}: larger than the {MAX_PRETRAINED_BYTES // 2**20} MiB a pretrained encoder may take; "
                             "refused without reading it")
    found = hashlib.sha256(data).hexdigest()
    if found != sidecar["sha256"]:
        raise ModelFileError(f"{path}: SHA-256 {found[:16]}... differs from the {printable(sidecar['sha256'][:16])}... "
                             f"recorded in {path.with_suffix('.json').name}; the file is damaged or was replaced, so it is not loaded")
    tensors = load_tensor_dict(path, data)
    return tensors, sidecar


def load_pretrained_encoder(encoder: torch.nn.Module, weights: Path | str | None = None) -> dict:
    """Copy pretrained weights into ``encoder`` (in place, on its device); returns the sidecar.

    The file's tensors must be exactly ``encoder.state_dict()``'s: same names, shapes and dtypes
    (so the encoder must be built as the pretrained one was: 2 input channels, 64 outputs, i.e.
    ``module__width=8``).

    Raises
    ------
    ModelFileError
        The file cannot be read safely (:func:`read_pretrained`), or its tensors do not fit
        ``encoder``.

    Examples
    --------
    >>> from rimclf.nn import SurfaceMapEncoder
    >>> encoder = SurfaceMapEncoder(2, out_features=64)
    >>> load_pretrained_encoder(encoder)["format_version"]
    1
    """
    path = shipped_weights() if weights is None else Path(weights)
    tensors, sidecar = read_pretrained(path)
    expected = encoder.state_dict()
    if set(tensors) != set(expected):
        missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
        raise ModelFileError(f"{path}: the tensors do not fit the surface-map encoder (missing {missing[:5]}, "
                             f"unknown {[printable(name, 100) for name in extra[:5]]})")
    for name, tensor in expected.items():
        given = tensors[name]
        if given.shape != tensor.shape or given.dtype != tensor.dtype:
            raise ModelFileError(
                f"{path}: {name} is {str(given.dtype).removeprefix('torch.')} {tuple(given.shape)} but the surface-map "
                f"encoder needs {str(tensor.dtype).removeprefix('torch.')} {tuple(tensor.shape)}; the pretrained encoder "
                f"takes {sidecar.get('encoder', {}).get('in_channels', '?')} channels and gives "
                f"{sidecar.get('encoder', {}).get('out_features', '?')} features (module__width=8)"
            )
    with torch.no_grad():
        for name, tensor in expected.items():
            tensor.copy_(tensors[name])
    return sidecar
