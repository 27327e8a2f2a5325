"""Device choices of the estimators: ``device="auto"``, bf16 autocast (``amp``), inputs kept on
the device (``data_on_device``), and the cuDNN settings of a fit."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from rimclf._validation import check_choice
from rimclf.defaults import AMP_CHOICES, DATA_ON_DEVICE_CHOICES
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


#: ``data_on_device="auto"`` keeps the inputs on a GPU when they take at most this share of its
#: free memory (the network's activations, the optimizer and other processes need the rest).
DEVICE_DATA_FRACTION = 0.25


def resolve_data_on_device(setting: object, device: torch.device, n_bytes: int) -> bool:
    """Whether inputs of ``n_bytes`` bytes are placed on ``device`` for a whole fit or prediction.

    ``"auto"``: on CUDA when they take at most :data:`DEVICE_DATA_FRACTION` of the device's free
    memory (``torch.cuda.mem_get_info``), never on the CPU (they are there already, and the
    ``DataLoader`` path is as fast); ``True``: always (on the CPU too: batches are then gathered
    without a ``DataLoader``, the path a GPU takes); ``False``: never (batches are copied to the
    device one at a time, from pinned memory on CUDA).
    """
    if check_choice(setting, "data_on_device", DATA_ON_DEVICE_CHOICES) != "auto":
        return bool(setting)
    if device.type != "cuda":
        return False
    free_bytes, _ = torch.cuda.mem_get_info(device)
    return n_bytes <= DEVICE_DATA_FRACTION * free_bytes


@contextlib.contextmanager
def cudnn_autotune(device: torch.device) -> Iterator[None]:
    """On CUDA, let cuDNN time its convolution algorithms for each new input shape and keep the
    fastest (``torch.backends.cudnn.benchmark``) for the duration of the block; restored after.

    A fit sees a handful of batch shapes many times, so the timing pays for itself within an
    epoch. The chosen algorithms may differ from run to run, one reason why CUDA training is
    not repeatable bit for bit.
    """
    if device.type != "cuda":
        yield
        return
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous


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
        elif isinstance(requested, str) and isinstance(self.device, torch.device):
            self.device = str(self.device)  # skorch's fallback device, as the string parameter it replaces
        if "device_" in state:
            self.device_ = resolve_device(self.device)
            self.amp_ = resolve_amp(self.amp, self.device_)
