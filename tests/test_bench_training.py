"""benchmarks/bench_training.py and ``make gpu-check`` on a CPU: tiny runs of every code path,
and a clear refusal where a GPU is asked for and absent."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_training.py"
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(SCRIPT.parent))  # spawned workers import their target by module name
    spec = importlib.util.spec_from_file_location("bench_training", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_training"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("bench_training", None)
    sys.path.remove(str(SCRIPT.parent))


@pytest.fixture(scope="module")
def tiny(bench):
    return bench.Setting("tiny", depth=10, width=2, batch_size=8, patch_size=8, n_lesions=24, n_epochs=1)


def test_quick_cpu_measurement_and_table(bench, tiny):
    result = bench.measure(tiny, torch.device("cpu"), n_repeats=1)
    assert result["bare_rate"] > 0 and result["fit_rate"] > 0 and result["peak_gib"] == 0
    assert result["ratio"] == pytest.approx(result["bare_rate"] / result["fit_rate"])
    table = bench.speed_table([result])
    assert table.count("\n") == 2 and "tiny: depth 10, width 2, 8³, 24 x 1 ep" in table
    verdict = bench.verdict([result], torch.device("cpu"))
    assert "within 1.10x" in verdict and "CPU run" in verdict


def test_verdict_names_the_targets(bench):
    paper = bench.Setting("paper, batch 128", 18, 64, 128)
    results = [{"setting": paper, "ratio": 1.05, "fit_rate": 3600.0},
               {"setting": bench.Setting("small", 10, 16, 32), "ratio": 1.2, "fit_rate": 5000.0}]
    verdict = bench.verdict(results, torch.device("cuda"))
    assert "every setting: NO (worst 1.20, small)" in verdict
    assert "batch 128 >= 3,500 samples/s: yes (3,600)" in verdict


@pytest.mark.slow
def test_concurrent_fits(bench, tiny):
    """N spawned processes at once against the same fits one after another."""
    result = bench.measure_concurrency(tiny, torch.device("cpu"), 2)
    assert result["sequential"] > 0 and result["concurrent"] > 0
    assert "| tiny | 2 |" in bench.concurrency_table(result)


def test_the_gpu_settings_are_issue_13s(bench):
    settings = {(s.depth, s.width, s.batch_size) for s in bench.QUICK["cuda"]}
    assert settings == {(18, 64, 32), (18, 64, 128), (10, 16, 32)}
    assert {(s.patch_size, s.n_lesions) for s in bench.QUICK["cuda"]} == {(32, 1400)}


@pytest.mark.slow
@NO_CUDA
def test_cuda_asked_for_without_a_gpu_is_refused_clearly():
    done = subprocess.run([sys.executable, str(SCRIPT), "--device", "cuda", "--quick"], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert done.returncode == 1 and done.stderr.startswith("no CUDA device: torch"), done.stderr[-2000:]


@pytest.mark.slow
@NO_CUDA
@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_gpu_check_stops_clearly_without_a_gpu(tmp_path):
    """``make gpu-check PY=...`` uses the given Python as it is: no venv, no download."""
    done = subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "gpu-check", f"PY={sys.executable}"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "no CUDA device: torch" in done.stderr, done.stderr[-2000:]
    assert "pytest" not in done.stdout  # stopped before the tests


@pytest.mark.slow
@NO_CUDA
def test_a_failing_worker_stops_the_concurrent_run(bench, tiny):
    with pytest.raises(RuntimeError, match="benchmark process failed"):
        bench.run_processes(tiny, torch.device("cuda"), 1, 1, 1)  # the worker's fit refuses CUDA
