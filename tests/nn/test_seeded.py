"""The seeded generators of DeepSMOTE and PatchAugment: pickling without torch.Generator objects.

A GPU-fitted net used to fail to unpickle because a ``torch.Generator`` pickles its state as a
CPU tensor, which skorch's unpickler maps onto the GPU. Mapping tensors onto the ``meta`` device
reproduces that failure on a CPU-only machine.
"""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch
from skorch.utils import _TorchLoadUnpickler

from rimclf.nn import DeepSMOTE, PatchAugment

Z = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
Y = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0])
PATCHES = torch.randn(4, 1, 8, 8, 8, generator=torch.Generator().manual_seed(1))


def draw(layer: torch.nn.Module) -> torch.Tensor:
    """One random draw of the layer (DeepSMOTE weights or augmented patches)."""
    return layer(Z, Y)[0] if isinstance(layer, DeepSMOTE) else layer(PATCHES)


LAYERS = {
    "deepsmote": lambda seed: DeepSMOTE(k=2, seed=seed).train(),
    "augment": lambda seed: PatchAugment(max_rotation_degrees=10.0, seed=seed).train(),
}


def pickled_types(obj: object) -> set[type]:
    """The types of every object pickled along with ``obj``."""
    seen: set[type] = set()

    class Recorder(pickle.Pickler):
        def reducer_override(self, value):
            seen.add(type(value))
            return NotImplemented

    Recorder(io.BytesIO()).dump(obj)
    return seen


def load_mapped(data: bytes, map_location: str) -> object:
    """Unpickle as skorch does for a net's module, mapping every tensor to ``map_location``."""
    unpickler = _TorchLoadUnpickler(io.BytesIO(data), map_location=map_location, torch_load_kwargs={"weights_only": True})
    return unpickler.load()


@pytest.mark.parametrize("name", LAYERS)
def test_pickles_without_generator_and_continues_the_stream(name: str) -> None:
    layer = LAYERS[name](3)
    draw(layer)
    assert isinstance(layer._generator, torch.Generator)
    assert torch.Generator not in pickled_types(layer)
    twin = pickle.loads(pickle.dumps(layer))
    copied = copy.deepcopy(layer)
    expected = draw(layer)
    assert torch.equal(draw(twin), expected)  # the stream goes on where it stopped
    assert torch.equal(draw(copied), expected)


@pytest.mark.parametrize("name", LAYERS)
def test_unpickles_when_tensors_are_mapped_to_another_device(name: str) -> None:
    """What skorch does with a CUDA-fitted net on a CUDA machine: every tensor is mapped."""
    layer = LAYERS[name](3)
    draw(layer)
    twin = load_mapped(pickle.dumps(layer), "meta")
    assert twin._saved_generator[0] == "cpu"


def test_a_raw_generator_state_does_not_survive_mapping() -> None:
    """The failure the modules avoid (issue #13), reproduced without a GPU."""
    with pytest.raises((TypeError, SystemError)):
        load_mapped(pickle.dumps(torch.Generator().manual_seed(0)), "meta")


@pytest.mark.parametrize("name", LAYERS)
def test_generator_of_another_device_type_restarts_from_the_seed(name: str) -> None:
    """A layer pickled with a CUDA generator, used on the CPU, restarts from its seed."""
    layer = LAYERS[name](5)
    state = layer.__getstate__()
    state["_saved_generator"] = ("cuda", bytes(16))  # a CUDA (Philox) state: seed and offset
    moved = LAYERS[name](0)
    moved.__setstate__(state)
    assert torch.equal(draw(moved), draw(LAYERS[name](5)))


@pytest.mark.parametrize("name", LAYERS)
def test_manual_seed_forgets_a_saved_state(name: str) -> None:
    layer = LAYERS[name](7)
    draw(layer)
    twin = pickle.loads(pickle.dumps(layer))
    twin.manual_seed(7)
    assert torch.equal(draw(twin), draw(LAYERS[name](7)))


@pytest.mark.slow
def test_labels_may_stay_on_the_host() -> None:
    """Features on another device (``meta`` stands in for a GPU), labels on the CPU: the rim+
    rows are found on the host and ``y_aug`` stays there."""
    z = Z.to("meta")
    z_aug, y_aug = DeepSMOTE(k=2).train()(z, Y)  # torch.Generator cannot live on meta
    n_positive = int(Y.sum())
    assert z_aug.device.type == "meta" and z_aug.shape == (8 + 2 * n_positive, 4)
    assert y_aug.device.type == "cpu" and y_aug.tolist() == Y.tolist() + [1.0] * (2 * n_positive)
