"""QSMRimNetClassifier's GPU paths, run without a GPU.

- the inputs kept on the device (``data_on_device``) train exactly like batches copied one by one;
- ``meta``, a device without data, stands in for an asynchronous GPU: any host read of one of
  its tensors is a host synchronisation on a real GPU, and is counted here;
- a net fitted on CUDA is simulated by a net whose ``device`` says CUDA, or whose pickled
  tensors are mapped onto another device, as skorch does.

``tests/test_cuda.py`` runs the real thing on a GPU.
"""

from __future__ import annotations

import collections
import io
import pickle
import warnings

import numpy as np
import pytest
import torch
from skorch.callbacks import LRScheduler
from skorch.exceptions import DeviceWarning
from skorch.helper import SliceDict
from sklearn.base import clone

from rimclf.classifier import GroupValidSplit, QSMRimNetClassifier
from rimclf.classifier.device import DEVICE_DATA_FRACTION, cudnn_autotune, resolve_data_on_device
from rimclf.errors import ParameterError
from rimclf.nn._seeded import SeededGeneratorMixin

FAST = {"module__width": 4, "module__branches": "both", "imbalance": "deepsmote", "module__augment": "flips",
        "max_epochs": 2, "batch_size": 16, "random_state": 0}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    n = 96
    y = np.zeros(n, dtype=int)
    y[::3] = 1  # 32 rim+: enough for 6 batches of 16 or 10 of 8 with 3 rim+ each
    patches = rng.normal(size=(n, 3, 8, 8, 8)).astype(np.float32)
    patches[y == 1, 0] += 1.0
    radiomics = rng.normal(size=(n, 6)).astype(np.float32)
    groups = np.repeat([f"S{i:02d}" for i in range(12)], 8)
    return SliceDict(patches=patches, radiomics=radiomics), y, groups


def fast(**params) -> QSMRimNetClassifier:
    return QSMRimNetClassifier(**{**FAST, "device": "cpu", **params})


def assert_same_fit(first: QSMRimNetClassifier, second: QSMRimNetClassifier) -> None:
    state = second.module_.state_dict()
    for name, tensor in first.module_.state_dict().items():
        assert torch.equal(tensor, state[name]), name
    for key in ("train_loss", "n_synthetic"):
        assert first.history[:, key] == second.history[:, key]


# ----------------------------------------------------------------- inputs on the device
@pytest.mark.slow
def test_data_on_device_trains_like_batches_copied_one_by_one(data):
    X, y, groups = data
    on_device = fast(data_on_device=True).fit(X, y)
    copied = fast(data_on_device=False).fit(X, y)
    assert_same_fit(on_device, copied)
    np.testing.assert_array_equal(on_device.predict_proba(X), copied.predict_proba(X))
    # with a subject-grouped validation split: the validation batches come from the device too
    split = {"train_split": GroupValidSplit(3), "max_epochs": 1}
    on_device = fast(data_on_device=True, **split).fit(X, y, groups=groups)
    copied = fast(data_on_device=False, **split).fit(X, y, groups=groups)
    assert_same_fit(on_device, copied)
    assert on_device.history[:, "valid_loss"] == copied.history[:, "valid_loss"]


def test_losses_are_floats_by_the_end_of_each_epoch(data):
    X, y, _ = data
    net = fast(data_on_device=True).fit(X, y)
    for entry in net.history:
        assert all(type(batch["train_loss"]) is float for batch in entry["batches"])
        weights = [batch["train_batch_size"] for batch in entry["batches"]]
        mean = np.average([batch["train_loss"] for batch in entry["batches"]], weights=weights)
        assert entry["train_loss"] == pytest.approx(mean)


def test_data_on_device_choice(monkeypatch):
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (8 * 2**30, 16 * 2**30))
    assert resolve_data_on_device("auto", cuda, int(DEVICE_DATA_FRACTION * 8 * 2**30))
    assert not resolve_data_on_device("auto", cuda, int(DEVICE_DATA_FRACTION * 8 * 2**30) + 1)
    assert not resolve_data_on_device(False, cuda, 1)
    assert not resolve_data_on_device("auto", torch.device("cpu"), 1)
    assert resolve_data_on_device(True, torch.device("cpu"), 2**40)
    with pytest.raises(ParameterError, match="data_on_device"):
        resolve_data_on_device("always", cuda, 1)


def test_bad_data_on_device_raises_at_fit(data):
    X, y, _ = data
    with pytest.raises(ParameterError, match="data_on_device"):
        fast(data_on_device=1).fit(X, y)


def test_cudnn_autotune_is_scoped(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    with cudnn_autotune(torch.device("cpu")):
        assert torch.backends.cudnn.benchmark is False
    with cudnn_autotune(torch.device("cuda")):
        assert torch.backends.cudnn.benchmark is True
    assert torch.backends.cudnn.benchmark is False


# ------------------------------------------------------------- no per-batch host reads
@pytest.fixture
def count_host_reads(monkeypatch):
    """Count reads of ``meta`` tensors (they hold no data: each read returns zeros). On a GPU,
    each such read waits for the device to finish the work queued before it."""
    reads = collections.Counter()

    def counted(name, fake):
        original = getattr(torch.Tensor, name)

        def method(self, *args, **kwargs):
            if self.device.type != "meta":
                return original(self, *args, **kwargs)
            reads[name] += 1
            return fake(self)

        monkeypatch.setattr(torch.Tensor, name, method)

    counted("item", lambda tensor: 0.0)
    counted("tolist", lambda tensor: torch.zeros(tensor.shape).tolist())
    counted("cpu", lambda tensor: torch.zeros(tensor.shape, dtype=tensor.dtype))
    counted("numpy", lambda tensor: np.zeros(tensor.shape))
    for name, value in (("__bool__", True), ("__int__", 0), ("__float__", 0.0), ("__index__", 0)):
        counted(name, lambda tensor, value=value: value)
    # a torch.Generator cannot live on meta: the seeded layers draw from the global one there
    generator_on = SeededGeneratorMixin._generator_on
    monkeypatch.setattr(SeededGeneratorMixin, "_generator_on",
                        lambda self, device: None if device.type == "meta" else generator_on(self, device))
    return reads


@pytest.mark.slow
@pytest.mark.parametrize("data_on_device", [True, False])
def test_training_reads_the_device_once_per_epoch(data, count_host_reads, data_on_device):
    """The device stands in for a GPU: a fit reads it once per epoch (the epoch's batch
    losses), however many batches the epoch has; DeepSMOTE counts rim+ rows on the host."""
    X, y, _ = data
    for batch_size, n_batches in ((16, 6), (8, 10)):
        count_host_reads.clear()
        net = fast(device="meta", data_on_device=data_on_device, batch_size=batch_size, max_epochs=3).fit(X, y)
        assert len(net.history[-1, "batches"]) == n_batches
        assert net.history[-1, "n_synthetic"] > 0
        assert sum(count_host_reads.values()) == 3, dict(count_host_reads)
    count_host_reads.clear()
    assert net.predict_proba(X).shape == (len(y), 2)
    assert sum(count_host_reads.values()) == 1  # the probabilities, copied back once


# ------------------------------------------------------- nets fitted on a GPU, on a CPU
def pickled_types(obj: object) -> set[type]:
    """The types of every object pickled along with ``obj``."""
    seen: set[type] = set()

    class Recorder(pickle.Pickler):
        def reducer_override(self, value):
            seen.add(type(value))
            return NotImplemented

    Recorder(io.BytesIO()).dump(obj)
    return seen


def test_only_the_mapped_part_of_a_pickle_holds_tensors(data):
    """skorch pickles ``cuda_dependent_attributes_`` apart and loads them with ``map_location``;
    a CUDA tensor anywhere else (the optimizer, through the LR scheduler callback) could not be
    unpickled on a CPU-only machine. No part holds a torch.Generator."""
    X, y, _ = data
    net = fast().fit(X, y)
    state = net.__getstate__()
    outside = pickled_types({key: value for key, value in state.items() if key != "__cuda_dependent_attributes__"})
    assert not {torch.Tensor, torch.nn.Parameter, torch.Generator} & outside, outside
    assert "callbacks_" in net.cuda_dependent_attributes_
    inside = pickled_types({name: getattr(net, name) for name in net.cuda_dependent_attributes_})
    assert torch.nn.Parameter in inside and torch.Generator not in inside


@pytest.mark.slow
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_net_fitted_on_cuda_unpickles_and_clones_on_a_cpu_only_machine(data, monkeypatch, device):
    """A net whose device says CUDA, unpickled where CUDA is absent: skorch maps every tensor to
    the CPU and says so; the net predicts as before and trains on."""
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA (tests/test_cuda.py covers a real GPU)")
    X, y, _ = data
    net = fast().fit(X, y)
    expected = net.predict_proba(X)
    net.device = device  # what a fit with device="cuda" leaves (its tensors are mapped on load)
    with pytest.warns(DeviceWarning) as caught:
        restored = pickle.loads(pickle.dumps(net))
    assert any("not available" in str(warning.message) for warning in caught)
    assert restored.device == "cpu" and restored.device_ == torch.device("cpu") and restored.amp_ is False
    np.testing.assert_array_equal(restored.predict_proba(X), expected)
    scheduler = next(callback for _, callback in restored.callbacks_ if isinstance(callback, LRScheduler))
    assert scheduler.lr_scheduler_.optimizer is restored.optimizer_  # one optimizer
    restored.partial_fit(X, y)
    assert len(restored.history) == 2 + FAST["max_epochs"]
    twin = clone(net)
    assert twin.device == device and not hasattr(twin, "module_")
    with pytest.raises(ParameterError, match="no CUDA device"):
        twin.fit(X, y)


@pytest.mark.slow
def test_state_of_a_cuda_fit_loads_on_the_cpu(data):
    """What ``load_model`` does with a model trained with ``device="cuda"``: the state says CUDA,
    the caller's ``device`` wins."""
    X, y, _ = data
    net = fast().fit(X, y)
    state = net.fitted_state()
    state["params"]["device"] = "cuda"
    rebuilt = QSMRimNetClassifier.from_fitted_state(state, device="cpu")
    assert rebuilt.device_ == torch.device("cpu")
    np.testing.assert_array_equal(rebuilt.predict_proba(X), net.predict_proba(X))
    rebuilt = QSMRimNetClassifier.from_fitted_state(state, device="auto")
    assert rebuilt.device_.type == ("cuda" if torch.cuda.is_available() else "cpu")
    np.testing.assert_allclose(rebuilt.predict_proba(X), net.predict_proba(X), rtol=0, atol=0.02)  # bf16 on a GPU
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="no CUDA device"):
            QSMRimNetClassifier.from_fitted_state(state)


def test_preprocess_gives_tensors_on_the_module_device(data):
    X, y, _ = data
    net = fast().fit(X, y)
    tensors = net.preprocess(X)
    assert {tensor.device for tensor in tensors.values()} == {next(net.module_.parameters()).device}
    net.module_.to("meta")  # wherever the module is, preprocess follows it
    assert {tensor.device.type for tensor in net.preprocess(X).values()} == {"meta"}


@pytest.mark.slow
def test_no_warning_when_pickling_on_the_same_device(data):
    X, y, _ = data
    net = fast().fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pickle.loads(pickle.dumps(net))
