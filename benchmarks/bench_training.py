"""Training and inference speed of QSMRimNetClassifier, and the cost of DeepSMOTE.

Measured in one run, on the same synthetic lesions (random float32 patches and radiomics,
~6 % rim+):

1. training samples/s of ``QSMRimNetClassifier.fit`` against a bare torch loop that trains the
   same ``QSMRimNet`` on the same data with the same optimizer, schedule and batch composition
   (the estimator's overhead: skorch, validation, standardisation, history);
2. the DeepSMOTE layer's share of one training step, for rimclf's vectorised ``deep_smote`` and
   for a re-implementation of the published per-sample loop (neighbours include the row itself,
   a Python loop over pairs, numpy weights, a no-op below 3 rim+ rows);
3. inference lesions/s of ``predict_proba``.

Two networks: a CPU-size one (depth 10, width 16) and the paper's (depth 18, width 64), both on
32³ patches with 3 channels. Run ``python benchmarks/bench_training.py --help`` for options;
the default run takes a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import platform
import statistics
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

N_CHANNELS, N_RADIOMICS, PREVALENCE, BATCH_SIZE, LR = 3, 527, 0.06, 32, 1e-3
#: the clock of every timing: wall time, or this process's CPU time (``--clock cpu``: steadier
#: on a machine shared with other jobs; equal to wall time x threads when nothing else runs)
clock = time.perf_counter


def make_lesions(n_lesions: int, patch_size: int, seed: int = 0) -> tuple[SliceDict, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n_lesions) < PREVALENCE).astype(np.int64)
    y[:3] = 1
    patches = rng.normal(size=(n_lesions, N_CHANNELS, *(patch_size,) * 3)).astype(np.float32)
    radiomics = rng.normal(size=(n_lesions, N_RADIOMICS)).astype(np.float32)
    return SliceDict(patches=patches, radiomics=radiomics), y


def time_estimator(X: SliceDict, y: np.ndarray, depth: int, width: int, n_epochs: int) -> float:
    """Seconds for ``fit`` (including the estimator's preprocessing and set-up)."""
    net = QSMRimNetClassifier(
        module__depth=depth, module__width=width, max_epochs=n_epochs, batch_size=BATCH_SIZE,
        lr=LR, random_state=0, device="cpu",
    )
    start = clock()
    net.fit(X, y)
    return clock() - start


def time_bare_loop(X: SliceDict, y: np.ndarray, depth: int, width: int, n_epochs: int) -> float:
    """Seconds for the same training written as a plain torch loop."""
    start = clock()
    torch.manual_seed(0)
    radiomics = X["radiomics"]
    radiomics = (radiomics - radiomics.mean(axis=0)) / radiomics.std(axis=0)
    patches_t = torch.from_numpy(X["patches"])
    radiomics_t = torch.from_numpy(radiomics.astype(np.float32))
    y_t = torch.from_numpy(y.astype(np.float32))
    module = QSMRimNet(N_CHANNELS, N_RADIOMICS, depth=depth, width=width, smote_k=2, smote_seed=0)
    optimizer = torch.optim.AdamW(module.parameters(), lr=LR)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=n_epochs)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    sampler = StratifiedBatchSampler(y, BATCH_SIZE, min_positives=3, random_state=0)
    module.train()
    for _ in range(n_epochs):
        for index in sampler:
            rows = torch.from_numpy(index)
            optimizer.zero_grad()
            logits, y_aug = module(patches_t[rows], radiomics_t[rows], y_t[rows])
            loss_fn(logits, y_aug).backward()
            optimizer.step()
        schedule.step()
    return clock() - start


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


def time_step(depth: int, width: int, patch_size: int, n_repeats: int) -> float:
    """Median seconds of one bare training step on a batch of BATCH_SIZE with 3 rim+ rows."""
    X, _ = make_lesions(BATCH_SIZE, patch_size, seed=1)
    y = torch.zeros(BATCH_SIZE)
    y[:3] = 1.0
    module = QSMRimNet(N_CHANNELS, N_RADIOMICS, depth=depth, width=width).train()
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


def time_inference(X: SliceDict, y: np.ndarray, depth: int, width: int) -> float:
    net = QSMRimNetClassifier(module__depth=depth, module__width=width, max_epochs=1,
                              batch_size=BATCH_SIZE, random_state=0, device="cpu")
    net.fit(X[:BATCH_SIZE * 2], y[:BATCH_SIZE * 2])
    start = clock()
    net.predict_proba(X)
    return clock() - start


def run_config(name: str, depth: int, width: int, patch_size: int, n_lesions: int,
               n_epochs: int, n_repeats: int) -> list[tuple[str, str, str, str]]:
    X, y = make_lesions(n_lesions, patch_size)
    n_samples = n_lesions * n_epochs
    time_estimator(X[: BATCH_SIZE * 2], y[: BATCH_SIZE * 2], depth, width, 1)  # warm-up
    estimator, bare = [], []
    for _ in range(n_repeats):  # interleaved, so that load changes hit both alike
        bare.append(time_bare_loop(X, y, depth, width, n_epochs))
        estimator.append(time_estimator(X, y, depth, width, n_epochs))
    estimator_rate, bare_rate = n_samples / min(estimator), n_samples / min(bare)

    step = time_step(depth, width, patch_size, n_repeats=3)
    z = torch.randn(BATCH_SIZE, 8 * width)
    labels = torch.zeros(BATCH_SIZE)
    labels[:3] = 1.0
    generator = torch.Generator().manual_seed(0)
    ours = time_layer(lambda a, b: deep_smote(a, b, 2, generator), z, labels, 200)
    naive = time_layer(naive_deep_smote, z, labels, 200)
    labels_many = torch.zeros(BATCH_SIZE)
    labels_many[:16] = 1.0
    ours_many = time_layer(lambda a, b: deep_smote(a, b, 2, generator), z, labels_many, 100)
    naive_many = time_layer(naive_deep_smote, z, labels_many, 100)

    inference = n_lesions / time_inference(X, y, depth, width)
    config = f"{name}: depth {depth}, width {width}, {patch_size}³, {n_lesions} lesions x {n_epochs} ep"
    return [
        (config, "training, bare torch loop (samples/s)", f"{bare_rate:.1f}", "1.00 (reference)"),
        (config, "training, QSMRimNetClassifier.fit (samples/s)", f"{estimator_rate:.1f}",
         f"{bare_rate / estimator_rate:.3f}x the bare loop's time (target <= 1.15)"),
        (config, "one training step, batch 32 with 3 rim+ (ms)", f"{step * 1e3:.1f}", ""),
        (config, "deep_smote, 3 rim+ rows, fwd+bwd (ms)", f"{ours * 1e3:.3f}",
         f"{ours / step:.2%} of a step"),
        (config, "published loop, 3 rim+ rows, fwd+bwd (ms)", f"{naive * 1e3:.3f}",
         f"{naive / step:.2%} of a step; {naive / ours:.1f}x deep_smote"),
        (config, "deep_smote, 16 rim+ rows, fwd+bwd (ms)", f"{ours_many * 1e3:.3f}",
         f"{ours_many / step:.2%} of a step"),
        (config, "published loop, 16 rim+ rows, fwd+bwd (ms)", f"{naive_many * 1e3:.3f}",
         f"{naive_many / step:.2%} of a step; {naive_many / ours_many:.1f}x deep_smote"),
        (config, "inference, predict_proba (lesions/s)", f"{inference:.1f}", ""),
    ]


def print_table(rows: list[tuple[str, str, str, str]]) -> None:
    print("| network | measurement | value | ratio |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=3, help="timed fits per variant (best kept)")
    parser.add_argument("--cpu-lesions", type=int, default=192)
    parser.add_argument("--paper-lesions", type=int, default=64)
    parser.add_argument("--skip-paper", action="store_true", help="only the CPU-size network")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall time, or process CPU time (steadier on a shared machine)")
    args = parser.parse_args(argv)
    global clock
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.threads:
        torch.set_num_threads(args.threads)
    np.random.seed(0)
    print(
        f"rimclf {rimclf.__version__}, torch {torch.__version__}, skorch {skorch.__version__}, "
        f"scikit-learn {sklearn.__version__}, numpy {np.__version__}, "
        f"Python {platform.python_version()}, {platform.machine()}, "
        f"torch threads {torch.get_num_threads()}, CUDA {'yes' if torch.cuda.is_available() else 'no'}, "
        f"{args.clock} clock, best of {args.repeats}"
    )
    rows = run_config("CPU-size", 10, 16, 32, args.cpu_lesions, 2, args.repeats)
    if not args.skip_paper:
        rows += run_config("paper", 18, 64, 32, args.paper_lesions, 1, args.repeats)
    print_table(rows)


if __name__ == "__main__":
    main()
