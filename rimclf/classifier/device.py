"""Device and mixed-precision choices of the estimators (``device="auto"``, ``amp="auto"``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from rimclf._validation import check_choice
from rimclf.defaults import AMP_CHOICES
from rimclf.errors import ParameterError


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The torch device meant by an estimator's ``device`` parameter.

    Parameters
    ----------
    device : "auto", str, torch.device or None
        ``"auto"`` (or None) picks ``cuda`` when a CUDA device is present, else ``cpu``; any
        other value is passed to :class:`torch.device`.

    Raises
    ------
    ParameterError
        An unknown device name, or a CUDA device when CUDA is not available.
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ParameterError(f"device={device!r} is not a torch device ({error})") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError(
            f"device={device!r} asks for CUDA but no CUDA device is available; "
            "use device='auto' or 'cpu'"
        )
    return resolved


def resolve_amp(amp: object, device: torch.device) -> bool:
    """Whether bf16 autocast is used: ``"auto"`` means on CUDA with bf16 support, never on CPU.

    ``True`` turns bf16 autocast on for any device (on CPU it is slower but exercises the same
    code path as a GPU); ``False`` turns it off.
    """
    if check_choice(amp, "amp", AMP_CHOICES) == "auto":
        return device.type == "cuda" and torch.cuda.is_bf16_supported()
    return bool(amp)


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """A bf16 autocast context on ``device`` (a no-op context when not ``enabled``)."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def uses_channels_last(device: torch.device) -> bool:
    """Whether 5-D inputs and conv weights use ``torch.channels_last_3d`` (on CUDA: cuDNN's
    fast path for 3D convolutions; on CPU the default layout is as fast or faster)."""
    return device.type == "cuda"


@contextlib.contextmanager
def seeded_torch(seed: int | None, device: torch.device) -> Iterator[None]:
    """Seed torch's global generators for the duration of the block and restore them after.

    Weight initialisation and dropout draw from the global generators; forking them keeps a fit
    repeatable without changing the caller's random state. ``seed=None`` leaves them alone.
    """
    if seed is None:
        yield
        return
    devices = []
    if device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


class AutoDeviceMixin:
    """``device="auto"`` and ``amp`` for a skorch net.

    skorch reads ``self.device`` wherever it moves modules or maps loaded tensors, and would
    fail on ``"auto"``. The parameter keeps the user's value (sklearn rule: fit does not change
    parameters); ``initialize`` resolves it into ``device_`` and ``amp_``, and skorch sees the
    resolved device only inside the calls that need it (see :meth:`_skorch_sees_device`). The
    class using the mixin has an ``amp`` parameter.
    """

    def _device(self) -> torch.device:
        device = getattr(self, "device_", None)
        return device if device is not None else resolve_device(self.device)

    @contextlib.contextmanager
    def _skorch_sees_device(self, requested: Any = None) -> Iterator[None]:
        """Inside the block ``self.device`` is the resolved device; after it, ``requested``."""
        requested = self.device if requested is None else requested
        self.device = str(resolve_device(requested))
        try:
            yield
        finally:
            self.device = requested

    def initialize(self):
        """Resolve ``device_``/``amp_``, then build module, criterion and optimizer."""
        self.device_ = resolve_device(self.device)
        self.amp_ = resolve_amp(self.amp, self.device_)
        with self._skorch_sees_device():
            return super().initialize()

    def set_params(self, **kwargs: Any):
        if not getattr(self, "initialized_", False):
            return super().set_params(**kwargs)  # nothing to move yet; fit validates
        requested = kwargs.pop("device", self.device)
        self.device_ = resolve_device(requested)
        self.amp_ = resolve_amp(kwargs.get("amp", self.amp), self.device_)
        with self._skorch_sees_device(requested):
            super().set_params(**kwargs)
        return self

    def load_params(self, *args: Any, **kwargs: Any) -> None:
        with self._skorch_sees_device():
            super().load_params(*args, **kwargs)

    def __setstate__(self, state: dict[str, Any]) -> None:
        requested = state["device"]
        is_auto = isinstance(requested, str) and requested == "auto"
        if is_auto:
            state = dict(state, device=str(resolve_device("auto")))
        super().__setstate__(state)  # maps CUDA tensors to the CPU when CUDA is absent
        if is_auto:
            self.device = "auto"
        if "device_" in state:
            self.device_ = resolve_device(self.device)
            self.amp_ = resolve_amp(self.amp, self.device_)
