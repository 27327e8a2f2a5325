"""Training and inference speed of QSMRimNetClassifier on a CPU or a GPU, against a bare torch loop.

Measured in one run, on the same synthetic lesions (random float32 patches of 3 channels and
527 radiomics, ~6 % rim+; no pyradiomics, no files):

1. training samples/s of ``QSMRimNetClassifier.fit`` against a bare torch loop that trains the
   same ``QSMRimNet`` (both branches, sum fusion, DeepSMOTE k=2, no augmentation: QSMRim-Net) on
   the same data with the same optimizer, schedule, batch composition and, on CUDA, the same
   bf16 autocast, ``channels_last_3d`` layout, cuDNN autotuning and data moved to the GPU once.
   The ratio is the estimator's time over the bare loop's (its overhead: skorch, checks,
   standardisation, history);
2. peak GPU memory of a fit (inputs on the device included) and ``predict_proba`` lesions/s;
3. with ``--concurrent N``: N fits at once (N processes sharing the device) against the same
   N fits one after another;
4. (full CPU run only) the DeepSMOTE layer's share of one training step, for rimclf's vectorised
   ``deep_smote`` and a re-implementation of the published per-sample loop.

``--device cuda --quick`` is the GPU check of ``make gpu-check``: the three settings of issue #13
(paper net at batch 32 and 128, CPU-size net at batch 32) on 1,400 lesions of 32³, with the
targets "fit within 1.10x of the bare loop" and "paper net at batch 128 >= 3,500 samples/s".
``--device cpu --quick`` is a seconds-long smoke run. Without ``--quick`` the CPU benchmark of
the README runs (a few minutes on 2 cores). ``python benchmarks/bench_training.py --help``.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import platform
import queue
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import sklearn
import skorch
import torch
from skorch.helper import SliceDict

import rimclf
from rimclf import QSMRimNetClassifier
from rimclf.classifier import StratifiedBatchSampler
from rimclf.nn import QSMRimNet, deep_smote

N_CHANNELS, N_RADIOMICS, PREVALENCE, LR = 3, 527, 0.06, 1e-3
#: the network both sides train: QSMRim-Net (both branches summed, DeepSMOTE, no augmentation)
MODULE = {"branches": "both", "fusion": "sum", "augment": "none", "smote_k": 2}
#: targets of issue #13 on an H200-class GPU
MAX_RATIO, PAPER_128_MIN_RATE = 1.10, 3500.0
#: the clock of every timing: wall time, or this process's CPU time (``--clock cpu``: steadier
#: on a machine shared with other jobs; equal to wall time x threads when nothing else runs)
clock = time.perf_counter


@dataclasses.dataclass(frozen=True)
class Setting:
    """One measured configuration: network size, batch size and data."""

    name: str
    depth: int
    width: int
    batch_size: int
    patch_size: int = 32
    n_lesions: int = 1400
    n_epochs: int = 8  # a fit's fixed costs (checks, statistics, copying the inputs) stay small

    @property
    def n_samples(self) -> int:
        return self.n_lesions * self.n_epochs


#: ``--quick`` settings per device type: issue #13's three on a GPU, a tiny smoke run on a CPU
QUICK = {
    "cuda": [Setting("paper, batch 32", 18, 64, 32), Setting("paper, batch 128", 18, 64, 128),
             Setting("CPU-size, batch 32", 10, 16, 32)],
    "cpu": [Setting("tiny, batch 16", 10, 4, 16, patch_size=16, n_lesions=64, n_epochs=1)],
}


def make_lesions(n_lesions: int, patch_size: int, seed: int = 0) -> tuple[SliceDict, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n_lesions) < PREVALENCE).astype(np.int64)
    y[:3] = 1
    patches = rng.normal(size=(n_lesions, N_CHANNELS, *(patch_size,) * 3)).astype(np.float32)
    radiomics = rng.normal(size=(n_lesions, N_RADIOMICS)).astype(np.float32)
    return SliceDict(patches=patches, radiomics=radiomics), y


def check_device(name: str) -> torch.device:
    """The torch device ``name``; exits with a clear message when CUDA is asked for but absent."""
    device = torch.device("cuda" if name == "auto" and torch.cuda.is_available() else "cpu" if name == "auto" else name)
    if device.type == "cuda" and not torch.cuda.is_available():
        build = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        sys.exit(f"no CUDA device: torch {torch.__version__} ({build}) at {sys.executable} sees none "
                 f"(torch.cuda.is_available() is False; CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')!r})")
    return device


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def uses_amp(device: torch.device) -> bool:
    """bf16 autocast as the estimator's ``amp="auto"`` decides it."""
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


def make_estimator(setting: Setting, device: torch.device, n_epochs: int) -> QSMRimNetClassifier:
    module = {f"module__{name}": value for name, value in MODULE.items() if name != "smote_k"}
    return QSMRimNetClassifier(
        module__depth=setting.depth, module__width=setting.width, **module, imbalance="deepsmote",
        smote_k=MODULE["smote_k"], max_epochs=n_epochs, batch_size=setting.batch_size, lr=LR,
        random_state=0, device=str(device),
    )


def time_estimator(X: SliceDict, y: np.ndarray, setting: Setting, device: torch.device,
                   n_epochs: int | None = None) -> tuple[float, int, QSMRimNetClassifier]:
    """Seconds for ``fit`` (the estimator's checks, standardisation and set-up included), peak
    GPU memory in bytes (0 on the CPU) and the fitted estimator."""
    net = make_estimator(setting, device, n_epochs or setting.n_epochs)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    synchronize(device)
    start = clock()
    net.fit(X, y)
    synchronize(device)
    seconds = clock() - start
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
    return seconds, peak, net


def time_bare_loop(X: SliceDict, y: np.ndarray, setting: Setting, device: torch.device,
                   n_epochs: int | None = None) -> float:
    """Seconds for the same training written as a plain torch loop (data on the device once)."""
    n_epochs = n_epochs or setting.n_epochs
    cuda, amp = device.type == "cuda", uses_amp(device)
    layout = torch.channels_last_3d if cuda else torch.contiguous_format
    benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = cuda  # as QSMRimNetClassifier.fit does on CUDA
    try:
        synchronize(device)
        start = clock()
        torch.manual_seed(0)
        radiomics = X["radiomics"]
        radiomics = (radiomics - radiomics.mean(axis=0)) / radiomics.std(axis=0)
        patches_t = torch.from_numpy(X["patches"]).to(device).contiguous(memory_format=layout)
        radiomics_t = torch.from_numpy(radiomics.astype(np.float32)).to(device)
        labels = torch.from_numpy(y.astype(np.float32))  # on the host, as the estimator keeps them
        module = QSMRimNet(N_CHANNELS, N_RADIOMICS, depth=setting.depth, width=setting.width, smote_seed=0,
                           **MODULE).to(device, memory_format=layout)
        optimizer = torch.optim.AdamW(module.parameters(), lr=LR)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=n_epochs)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        sampler = StratifiedBatchSampler(y, setting.batch_size, min_positives=MODULE["smote_k"] + 1, random_state=0)
        module.train()
        for _ in range(n_epochs):
            for index in sampler:
                rows = torch.from_numpy(index)
                device_rows = rows.to(device, non_blocking=True)
                optimizer.zero_grad()
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    logits, y_aug = module(patches_t[device_rows], radiomics_t[device_rows], labels[rows])
                loss_fn(logits.float(), y_aug.to(device, non_blocking=True)).backward()
                optimizer.step()
            schedule.step()
        synchronize(device)
        return clock() - start
    finally:
        torch.backends.cudnn.benchmark = benchmark


def time_inference(net: QSMRimNetClassifier, X: SliceDict, device: torch.device) -> float:
    """Lesions/s of ``predict_proba`` (its set-up and the copy to the device included)."""
    net.predict_proba(X[: net.batch_size])  # warm-up: cuDNN's inference algorithms
    synchronize(device)
    start = clock()
    net.predict_proba(X)
    synchronize(device)
    return len(X) / (clock() - start)


def measure(setting: Setting, device: torch.device, n_repeats: int) -> dict:
    """Best-of-``n_repeats`` samples/s of the bare loop and of ``fit``, interleaved so that load
    changes hit both alike, after one warm-up epoch of each (CUDA context, cuDNN autotuning)."""
    X, y = make_lesions(setting.n_lesions, setting.patch_size)
    time_bare_loop(X, y, setting, device, n_epochs=1)
    time_estimator(X, y, setting, device, n_epochs=1)
    bare, fit, peaks = [], [], []
    for _ in range(n_repeats):
        bare.append(time_bare_loop(X, y, setting, device))
        seconds, peak, net = time_estimator(X, y, setting, device)
        fit.append(seconds)
        peaks.append(peak)
    return {
        "setting": setting, "bare_rate": setting.n_samples / min(bare), "fit_rate": setting.n_samples / min(fit),
        "ratio": min(fit) / min(bare), "peak_gib": max(peaks) / 2**30, "inference_rate": time_inference(net, X, device),
    }


# ------------------------------------------------------------------------- concurrency
def _fit_worker(setting: Setting, device_name: str, n_fits: int, n_threads: int, barrier, results) -> None:
    """One process: warm up, wait for the others, then run ``n_fits`` fits one after another."""
    torch.set_num_threads(n_threads)
    device = torch.device(device_name)
    X, y = make_lesions(setting.n_lesions, setting.patch_size)
    time_estimator(X, y, setting, device, n_epochs=1)
    barrier.wait(timeout=900)
    start = time.perf_counter()  # CLOCK_MONOTONIC: comparable between processes
    for _ in range(n_fits):
        time_estimator(X, y, setting, device)
    synchronize(device)
    results.put((start, time.perf_counter()))


def run_processes(setting: Setting, device: torch.device, n_processes: int, fits_per_process: int, n_threads: int) -> float:
    """Samples/s of ``n_processes`` spawned processes each running ``fits_per_process`` fits,
    timed from their common start to the last one's end."""
    context = multiprocessing.get_context("spawn")  # never fork a process that may hold CUDA
    barrier, results = context.Barrier(n_processes), context.Queue()
    processes = [context.Process(target=_fit_worker, args=(setting, str(device), fits_per_process, n_threads, barrier, results))
                 for _ in range(n_processes)]
    for process in processes:
        process.start()
    spans = []
    try:
        while len(spans) < n_processes:
            try:
                spans.append(results.get(timeout=1.0))
            except queue.Empty:
                dead = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"a benchmark process failed (exit code {dead[0]}); see its error above") from None
    finally:
        for process in processes:
            if len(spans) < n_processes:
                process.terminate()
            process.join()
    seconds = max(end for _, end in spans) - min(start for start, _ in spans)
    return n_processes * fits_per_process * setting.n_samples / seconds


def measure_concurrency(setting: Setting, device: torch.device, n_fits: int) -> dict:
    """``n_fits`` fits one after another in one process, against ``n_fits`` processes at once
    (each with ``cpu_count // n_fits`` torch threads)."""
    n_cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    sequential = run_processes(setting, device, 1, n_fits, max(1, n_cpus // n_fits))
    concurrent = run_processes(setting, device, n_fits, 1, max(1, n_cpus // n_fits))
    return {"setting": setting, "n_fits": n_fits, "sequential": sequential, "concurrent": concurrent}


# --------------------------------------------------------------------------- profile
def profile_fit(setting: Setting, device: torch.device, n_rows: int = 20) -> str:
    """torch.profiler's table of one epoch of ``fit`` (after a warm-up epoch)."""
    from torch.profiler import ProfilerActivity, profile

    X, y = make_lesions(setting.n_lesions, setting.patch_size)
    time_estimator(X, y, setting, device, n_epochs=1)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as profiler:
        time_estimator(X, y, setting, device, n_epochs=1)
    sort_by = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return profiler.key_averages().table(sort_by=sort_by, row_limit=n_rows)


# ------------------------------------------------------------- DeepSMOTE (full CPU run)
def naive_deep_smote(z: torch.Tensor, y: torch.Tensor, k: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """The published algorithm, re-implemented: neighbours include the row itself, one Python
    iteration per (row, neighbour) pair, numpy weights, nothing done below 3 rim+ rows."""
    positive = y > 0.5
    if int(positive.sum()) <= 2:
        return z, y
    points = z[positive].t().unsqueeze(0)  # (1, d, n)
    inner = -2 * torch.matmul(points.transpose(2, 1), points)
    squared = torch.sum(points**2, dim=1, keepdim=True)
    neighbours = (-squared - inner - squared.transpose(2, 1)).topk(k=k + 1, dim=-1)[1].squeeze(0)
    synthetic = []
    for i in range(neighbours.shape[0]):
        for j in range(neighbours.shape[1]):
            start, end = points[:, :, neighbours[i][0]], points[:, :, neighbours[i][j]]
            synthetic.append(torch.lerp(start, end, float(np.random.rand())))
    synthetic = torch.cat(synthetic, dim=0)
    return torch.cat([z, synthetic]), torch.cat([y, torch.ones(len(synthetic))])


def time_layer(layer: Callable, z: torch.Tensor, y: torch.Tensor, n_repeats: int) -> float:
    """Median seconds of layer forward + backward on features z."""
    times = []
    for _ in range(n_repeats):
        leaf = z.detach().requires_grad_(True)
        start = clock()
        out, _ = layer(leaf, y)
        out.sum().backward()
        times.append(clock() - start)
    return statistics.median(times)


def time_step(setting: Setting, n_repeats: int) -> float:
    """Median seconds of one bare CPU training step on a batch with 3 rim+ rows."""
    X, _ = make_lesions(setting.batch_size, setting.patch_size, seed=1)
    y = torch.zeros(setting.batch_size)
    y[:3] = 1.0
    module = QSMRimNet(N_CHANNELS, N_RADIOMICS, depth=setting.depth, width=setting.width, **MODULE).train()
    optimizer = torch.optim.AdamW(module.parameters(), lr=LR)
    patches, radiomics = torch.from_numpy(X["patches"]), torch.from_numpy(X["radiomics"])
    times = []
    for _ in range(n_repeats):
        start = clock()
        optimizer.zero_grad()
        logits, y_aug = module(patches, radiomics, y)
        torch.nn.functional.binary_cross_entropy_with_logits(logits, y_aug).backward()
        optimizer.step()
        times.append(clock() - start)
    return statistics.median(times)


def deepsmote_rows(setting: Setting) -> list[tuple[str, str, str, str]]:
    step = time_step(setting, n_repeats=3)
    z = torch.randn(setting.batch_size, 8 * setting.width)
    generator = torch.Generator().manual_seed(0)
    rows = [(setting.name, "one training step, 3 rim+ (ms)", f"{step * 1e3:.1f}", "")]
    for n_positive, n_repeats in ((3, 200), (16, 100)):
        labels = torch.zeros(setting.batch_size)
        labels[:n_positive] = 1.0
        ours = time_layer(lambda a, b: deep_smote(a, b, 2, generator), z, labels, n_repeats)
        naive = time_layer(naive_deep_smote, z, labels, n_repeats)
        rows += [
            (setting.name, f"deep_smote, {n_positive} rim+ rows, fwd+bwd (ms)", f"{ours * 1e3:.3f}", f"{ours / step:.2%} of a step"),
            (setting.name, f"published loop, {n_positive} rim+ rows, fwd+bwd (ms)", f"{naive * 1e3:.3f}",
             f"{naive / step:.2%} of a step; {naive / ours:.1f}x deep_smote"),
        ]
    return rows


# ---------------------------------------------------------------------------- output
def environment(device: torch.device) -> str:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        where = (f"{props.name} ({props.total_memory / 2**30:.0f} GiB), CUDA {torch.version.cuda}, "
                 f"cuDNN {torch.backends.cudnn.version()}")
    else:
        where = f"CPU {platform.machine()}, torch threads {torch.get_num_threads()}"
    return (f"{where}; rimclf {rimclf.__version__}, torch {torch.__version__}, skorch {skorch.__version__}, "
            f"scikit-learn {sklearn.__version__}, numpy {np.__version__}, Python {platform.python_version()}")


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def speed_table(results: list[dict]) -> str:
    rows = []
    for r in results:
        s = r["setting"]
        rows.append([f"{s.name}: depth {s.depth}, width {s.width}, {s.patch_size}³, {s.n_lesions} x {s.n_epochs} ep",
                     f"{r['bare_rate']:,.0f}", f"{r['fit_rate']:,.0f}", f"{r['ratio']:.2f}",
                     f"{r['peak_gib']:.2f}" if r["peak_gib"] else "–", f"{r['inference_rate']:,.0f}"])
    return table(["setting", "bare loop (samples/s)", "fit (samples/s)", "fit / bare time", "peak GPU memory of fit (GiB)",
                  "predict_proba (lesions/s)"], rows)


def verdict(results: list[dict], device: torch.device) -> str:
    worst = max(results, key=lambda r: r["ratio"])
    lines = [f"fit within {MAX_RATIO:.2f}x of the bare loop at every setting: "
             f"{'yes' if worst['ratio'] <= MAX_RATIO else 'NO'} (worst {worst['ratio']:.2f}, {worst['setting'].name})"]
    paper_128 = [r for r in results if r["setting"].depth == 18 and r["setting"].width == 64 and r["setting"].batch_size == 128]
    for r in paper_128:
        lines.append(f"paper net at batch 128 >= {PAPER_128_MIN_RATE:,.0f} samples/s: "
                     f"{'yes' if r['fit_rate'] >= PAPER_128_MIN_RATE else 'NO'} ({r['fit_rate']:,.0f})")
    if device.type != "cuda":
        lines.append("(the targets are for an H200-class GPU; this was a CPU run)")
    return "\n".join(lines)


def concurrency_table(result: dict) -> str:
    s, n = result["setting"], result["n_fits"]
    return table(["setting", "fits", "one after another (samples/s)", "at once (samples/s)", "speed-up"],
                 [[s.name, str(n), f"{result['sequential']:,.0f}", f"{result['concurrent']:,.0f}",
                   f"{result['concurrent'] / result['sequential']:.2f}x"]])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 or auto (default cpu)")
    parser.add_argument("--quick", action="store_true",
                        help="the GPU check on cuda (issue #13's three settings), a seconds-long smoke run on cpu")
    parser.add_argument("--concurrent", type=int, default=0, metavar="N",
                        help="also time N fits at once (N processes on the device) against N one after another")
    parser.add_argument("--profile", action="store_true", help="print torch.profiler's table of one epoch of fit")
    parser.add_argument("--check", action="store_true", help="only check that the device is there and print the versions")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=None, help="timed fits per variant, best kept (default 3; --quick 2)")
    parser.add_argument("--cpu-lesions", type=int, default=192, help="full CPU run: lesions of the CPU-size network")
    parser.add_argument("--paper-lesions", type=int, default=64, help="full CPU run: lesions of the paper network")
    parser.add_argument("--skip-paper", action="store_true", help="full CPU run: only the CPU-size network")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall time, or process CPU time (steadier on a shared CPU; not with a GPU)")
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (2 if args.quick else 3)
    device = check_device(args.device)
    global clock
    clock = time.process_time if args.clock == "cpu" and device.type == "cpu" else time.perf_counter
    if args.threads:
        torch.set_num_threads(args.threads)
    np.random.seed(0)
    if args.check:
        print(environment(device))
        return
    print(environment(device) + f"; {args.clock if device.type == 'cpu' else 'wall'} clock, best of {args.repeats}", flush=True)
    if args.quick:
        settings = QUICK["cuda" if device.type == "cuda" else "cpu"]
    else:
        settings = [Setting("CPU-size", 10, 16, 32, n_lesions=args.cpu_lesions, n_epochs=2)]
        if not args.skip_paper:
            settings.append(Setting("paper", 18, 64, 32, n_lesions=args.paper_lesions, n_epochs=1))
    results = [measure(setting, device, args.repeats) for setting in settings]
    print(speed_table(results))
    print(verdict(results, device))
    if not args.quick and device.type == "cpu":
        print(table(["network", "measurement", "value", "ratio"], [list(row) for s in settings for row in deepsmote_rows(s)]))
    if args.concurrent:
        print(concurrency_table(measure_concurrency(settings[0], device, args.concurrent)), flush=True)
    if args.profile:
        print(profile_fit(settings[0], device))


if __name__ == "__main__":
    main()
