"""A module's own seeded ``torch.Generator``, made on the batch's device and pickled as plain bytes.

:class:`~rimclf.nn.DeepSMOTE` and :class:`~rimclf.nn.PatchAugment` draw from a private generator
so that a fit is repeatable without touching torch's global one. A ``torch.Generator`` cannot be
pickled safely across devices: it pickles its state as a CPU ``uint8`` tensor, which a loader
that maps tensors onto a GPU (skorch unpickling a net fitted on CUDA, on a CUDA machine) moves
off the CPU (``TypeError: RNG state must be a torch.ByteTensor``), and a CUDA generator cannot
be rebuilt on a machine without CUDA. So the module pickles the generator as its device type
and its state as ``bytes``, never as a generator or a tensor.
"""

from __future__ import annotations

from typing import Any

import torch


class SeededGeneratorMixin:
    """``seed``, ``manual_seed`` and a lazily made ``torch.Generator`` for an ``nn.Module``.

    The generator is made from ``seed`` on the device of the first batch (``_generator_on``);
    a batch on another device restarts it from ``seed`` there. Pickled (or deep-copied), the
    module keeps the generator's device type and state as bytes: unpickled, the stream goes on
    where it stopped when the next batch is on a device of the same type (CPU after CPU, CUDA
    after CUDA), and restarts from ``seed`` otherwise (a net fitted on a GPU, unpickled on a
    CPU-only machine). ``seed=None`` draws from torch's global generator instead.
    """

    seed: int | None
    _generator: torch.Generator | None
    #: ``(device type, state bytes)`` of an unpickled generator, restored at its first use
    _saved_generator: tuple[str, bytes] | None = None

    def manual_seed(self, seed: int | None):
        """Restart the module's random draws from ``seed`` (None: torch's global generator)."""
        self.seed = seed
        self._generator = None
        self._saved_generator = None
        return self

    def _generator_on(self, device: torch.device) -> torch.Generator | None:
        if self.seed is None:
            return None
        if self._generator is None or self._generator.device != device:
            generator = torch.Generator(device=device).manual_seed(int(self.seed))
            saved, self._saved_generator = self._saved_generator, None
            if self._generator is None and saved is not None and saved[0] == device.type:
                generator.set_state(torch.frombuffer(bytearray(saved[1]), dtype=torch.uint8))
            self._generator = generator
        return self._generator

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()  # nn.Module's: a copy of __dict__
        generator = state.pop("_generator", None)
        if generator is not None:
            state["_saved_generator"] = (generator.device.type, bytes(generator.get_state().numpy()))
        state["_generator"] = None
        return state
