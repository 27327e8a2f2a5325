"""QSMRimNetClassifier and its layers on a CUDA device (issue #13). Skipped without one.

``make gpu-check`` runs this file (``pytest -m cuda``). It needs torch with CUDA, skorch and
scikit-learn, not pyradiomics. A "CPU-only machine" is a child interpreter started with
``CUDA_VISIBLE_DEVICES=""``. The tolerances below were set without a GPU at hand (none was
available when they were written); a first GPU run tells whether they are right.
"""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from skorch.helper import SliceDict
from skorch.utils import _TorchLoadUnpickler
from sklearn.base import clone

from rimclf.classifier import QSMRimNetClassifier
from rimclf.classifier.batches import DeviceBatches, LesionBatchDataset
from rimclf.classifier.device import autocast
from rimclf.nn import DeepSMOTE, PatchAugment

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device (torch.cuda.is_available() is False)"),
]

FAST = {"module__width": 4, "module__branches": "both", "imbalance": "deepsmote", "module__augment": "flips",
        "max_epochs": 2, "batch_size": 16, "random_state": 0, "device": "cuda"}
#: largest difference in rim+ probability between two CUDA fits with one random_state, and
#: between a GPU (bf16) and a CPU (float32) prediction of one fitted net
CUDA_REPEAT_ATOL = 0.05
CPU_GPU_ATOL = 0.02


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n = 96
    y = np.zeros(n, dtype=int)
    y[::4] = 1
    patches = rng.normal(size=(n, 3, 16, 16, 16)).astype(np.float32)
    patches[y == 1, 0] += 1.0
    radiomics = rng.normal(size=(n, 10)).astype(np.float32)
    return SliceDict(patches=patches, radiomics=radiomics), y


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    return QSMRimNetClassifier(**FAST).fit(X, y)


def run_without_cuda(script: str, tmp_path: Path, **files: bytes) -> np.ndarray:
    """Run ``script`` in a fresh interpreter that sees no CUDA device; it prints float32 hex."""
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    root = str(Path(__file__).resolve().parents[1])  # rimclf, also when it is not installed
    path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": path}
    prelude = "import torch\nassert not torch.cuda.is_available()\n"
    done = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return np.frombuffer(bytes.fromhex(done.stdout.strip().splitlines()[-1]), dtype=np.float32)


def test_fit_runs_on_the_gpu(fitted, data):
    X, y = data
    assert fitted.device_.type == "cuda"
    assert {p.device.type for p in fitted.module_.parameters()} == {"cuda"}
    assert fitted.amp_ is torch.cuda.is_bf16_supported()
    proba = fitted.predict_proba(X)
    assert proba.shape == (len(y), 2) and proba.dtype == np.float32 and np.isfinite(proba).all()
    assert all(isinstance(batch["train_loss"], float) for batch in fitted.history[-1, "batches"])


def test_inputs_live_on_the_gpu_during_fit(fitted, data):
    X, _ = data
    dataset = fitted.get_dataset(X)
    iterator = fitted.get_iterator(dataset, training=False)
    assert isinstance(iterator, DeviceBatches) and iterator.dataset.device.type == "cuda"
    inputs, y = next(iter(iterator))
    assert inputs["patches"].device.type == "cuda" and y.device.type == "cpu"
    assert inputs["patches"].is_contiguous(memory_format=torch.channels_last_3d)
    train = fitted.get_iterator(LesionBatchDataset(dataset.inputs, torch.zeros(len(dataset))), training=True)
    assert isinstance(train, DeviceBatches)


def test_preprocess_feeds_the_module_on_its_device(fitted, data):
    X, _ = data
    inputs = fitted.preprocess(X)
    assert {value.device.type for value in inputs.values()} == {"cuda"}
    with torch.no_grad(), autocast(fitted.device_, fitted.amp_):
        logits = fitted.module_.eval()(**inputs)
    proba = torch.sigmoid(logits.float()).cpu().numpy()
    np.testing.assert_allclose(proba, fitted.predict_proba(X)[:, 1], rtol=0, atol=1e-2)


def test_no_host_synchronisation_per_batch(data):
    """torch's sync debug mode warns at every operation that waits for the GPU: their number
    must not grow with the number of batches."""
    X, y = data
    QSMRimNetClassifier(**{**FAST, "max_epochs": 1}).fit(X, y)  # CUDA, cuDNN and caches warmed up
    counts, n_batches = [], []
    for batch_size, n_epochs in ((32, 3), (8, 3), (8, 1)):
        net = QSMRimNetClassifier(**{**FAST, "batch_size": batch_size, "max_epochs": n_epochs})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                net.fit(X, y)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        counts.append(sum("synchroniz" in str(w.message) for w in caught))
        n_batches.append(len(net.history[-1, "batches"]))
    assert n_batches[:2] == [3, 8]
    assert counts[0] == counts[1], counts  # 5 more batches per epoch, no more waits
    assert counts[1] - counts[2] <= 2 * 2, counts  # at most 2 per epoch (the epoch's losses)


def test_repeatability_on_cuda(data):
    """Same random_state: the same initial weights, batches and random draws, so fits with a
    zero learning rate agree bit for bit; real fits agree within CUDA_REPEAT_ATOL (cuDNN and
    atomics add in varying orders); another random_state differs."""
    X, y = data
    frozen = [QSMRimNetClassifier(**{**FAST, "lr": 0.0, "optimizer__weight_decay": 0.0}).fit(X, y) for _ in range(2)]
    for name, tensor in frozen[0].module_.state_dict().items():
        if not name.endswith(("running_mean", "running_var")):
            assert torch.equal(tensor, frozen[1].module_.state_dict()[name]), name
    first, second = (QSMRimNetClassifier(**FAST).fit(X, y).predict_proba(X)[:, 1] for _ in range(2))
    np.testing.assert_allclose(first, second, rtol=0, atol=CUDA_REPEAT_ATOL)
    other = QSMRimNetClassifier(**{**FAST, "random_state": 1}).fit(X, y).predict_proba(X)[:, 1]
    assert not np.array_equal(first, other)


def test_cuda_net_pickles_and_clones_on_the_gpu(fitted, data):
    X, y = data
    restored = pickle.loads(pickle.dumps(fitted))
    assert restored.device_.type == "cuda"
    np.testing.assert_array_equal(restored.predict_proba(X), fitted.predict_proba(X))
    restored.partial_fit(X, y)  # the unpickled generators go on on the GPU
    twin = clone(fitted).fit(X, y)
    assert twin.predict_proba(X).shape == (len(y), 2)


def test_cuda_net_unpickles_on_a_cpu_only_machine(fitted, data, tmp_path):
    X, _ = data
    np.save(tmp_path / "patches.npy", X["patches"])
    np.save(tmp_path / "radiomics.npy", X["radiomics"])
    script = """
        import pickle, sys, warnings
        import numpy as np
        from skorch.helper import SliceDict
        warnings.simplefilter("ignore")
        net = pickle.loads(open("net.pkl", "rb").read())
        assert net.device_.type == "cpu", net.device_
        X = SliceDict(patches=np.load("patches.npy"), radiomics=np.load("radiomics.npy"))
        y = np.zeros(len(X), dtype=int); y[::4] = 1
        net.partial_fit(X, y)  # trains on, on the CPU
        net = pickle.loads(open("net.pkl", "rb").read())
        sys.stdout.write(net.predict_proba(X)[:, 1].astype(np.float32).tobytes().hex())
    """
    on_cpu = run_without_cuda(script, tmp_path, **{"net.pkl": pickle.dumps(fitted)})
    np.testing.assert_allclose(on_cpu, fitted.predict_proba(X)[:, 1], rtol=0, atol=CPU_GPU_ATOL)


def test_fitted_state_of_a_gpu_fit_loads_on_a_cpu_only_machine(data, tmp_path):
    """What a model file holds (JSON settings + tensors), from a fit with device="cuda"."""
    X, y = data
    net = QSMRimNetClassifier(**FAST).fit(X, y)
    state = net.fitted_state()
    assert {tensor.device.type for tensor in state["module_state"].values()} == {"cpu"}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    np.save(tmp_path / "patches.npy", X["patches"])
    np.save(tmp_path / "radiomics.npy", X["radiomics"])
    script = """
        import sys
        import numpy as np, torch
        from skorch.helper import SliceDict
        from rimclf.classifier import QSMRimNetClassifier
        state = torch.load("state.pt", weights_only=False)
        net = QSMRimNetClassifier.from_fitted_state(state, device="auto")
        assert net.device_.type == "cpu"
        X = SliceDict(patches=np.load("patches.npy"), radiomics=np.load("radiomics.npy"))
        sys.stdout.write(net.predict_proba(X)[:, 1].astype(np.float32).tobytes().hex())
    """
    on_cpu = run_without_cuda(script, tmp_path, **{"state.pt": buffer.getvalue()})
    np.testing.assert_allclose(on_cpu, net.predict_proba(X)[:, 1], rtol=0, atol=CPU_GPU_ATOL)


@pytest.mark.parametrize("layer", [DeepSMOTE(k=2, seed=3), PatchAugment(max_rotation_degrees=10.0, seed=3)])
def test_cuda_generators_survive_mapped_unpickling(layer):
    """skorch's unpickler maps tensors onto the GPU (or the CPU without CUDA): the layers'
    CUDA generators go on on the GPU, and restart from the seed on the CPU."""
    layer = layer.cuda().train()
    draw = (lambda m, d: m(torch.randn(8, 4, device=d), torch.tensor([1.0, 1, 1, 0, 0, 1, 0, 0]))[0]
            if isinstance(m, DeepSMOTE) else m(torch.ones(2, 1, 8, 8, 8, device=d)))
    torch.manual_seed(0)
    draw(layer, "cuda")
    assert layer._generator.device.type == "cuda"
    data = pickle.dumps(layer)
    for location in ("cuda", "cpu"):
        loaded = _TorchLoadUnpickler(io.BytesIO(data), map_location=location,
                                     torch_load_kwargs={"weights_only": True}).load()
        torch.manual_seed(1)
        out = draw(loaded, location)
        assert out.device.type == location
    twin = pickle.loads(data)
    torch.manual_seed(2)
    expected = draw(layer, "cuda")
    torch.manual_seed(2)
    assert torch.equal(draw(twin, "cuda"), expected)  # the CUDA stream goes on where it stopped


def test_memory_of_a_paper_size_step_is_small():
    """The paper's network (depth 18, width 64) at batch 32 on 32^3 patches fits in a few GiB."""
    from rimclf.nn import QSMRimNet

    module = QSMRimNet(3, 527, depth=18, width=64, branches="both", fusion="sum").cuda()
    module = module.to(memory_format=torch.channels_last_3d).train()
    patches = torch.randn(32, 3, 32, 32, 32, device="cuda").contiguous(memory_format=torch.channels_last_3d)
    radiomics = torch.randn(32, 527, device="cuda")
    y = torch.zeros(32)
    y[:3] = 1.0
    torch.cuda.reset_peak_memory_stats()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits, y_aug = module(patches, radiomics, y)
    torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), y_aug.cuda()).backward()
    assert torch.cuda.max_memory_allocated() < 8 * 2**30
