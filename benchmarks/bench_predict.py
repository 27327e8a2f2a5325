"""``rimclf predict`` at study scale: time per scan by stage, montage overhead and peak memory.

On phantom cohorts of two sizes (60 and 300 scans; ``--quick``: 15 and 60), with the default
model trained on another 20-subject phantom cohort (threshold from its training lesions), at
``-j 1`` and ``-j 2``:

1. **Stages** (in this process, per scan): *reading* a scan's mask, QSM and FLAIR (one after
   another; features and output workers each read what they need), *features* (cold, no cache),
   *network* (the classifier on the features), *maps* (``write_prediction_outputs`` without
   montages: tables, probability maps, label images, sidecars) and *montage* (the same with
   montages, less maps).
2. **rimclf predict** (the command, in a fresh process, with a warm feature cache as on a
   second run): wall time without and with montages in the same run, their ratio, seconds per
   scan, and the peak memory of the command's process tree (it and its workers, sampled every
   50 ms), against the smaller cohort's.

Timings on a shared machine are noisy: compare the ratios, measured within one run. Full run
(about 15 minutes on 2 cores)::

    python benchmarks/bench_predict.py

and the quick one (a few minutes)::

    python benchmarks/bench_predict.py --quick
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

import rimclf
from rimclf import load_cohort
from rimclf.benchmark import package_versions
from rimclf.cohort import read_lesion_labels, read_qsm
from rimclf.outputs import write_prediction_outputs
from rimclf.phantom import make_phantom_cohort
from rimclf.workflows import train_model

#: the command, as the console script runs it
CLI = "import sys; from rimclf.cli import main; sys.exit(main(sys.argv[1:]))"
#: targets of issue #25 (at -j 2 on the 60-scan cohort; memory of the larger cohort against the smaller)
MAX_MONTAGE_RATIO, MAX_S_PER_SCAN, MAX_MEMORY_GROWTH = 1.5, 0.5, 1.2


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants (Linux /proc), MiB."""
    total, stack = 0.0, [pid]
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/status") as status:
                total += next((int(line.split()[1]) for line in status if line.startswith("VmRSS")), 0) / 1024
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    stack += [int(child) for child in children.read().split()]
        except (OSError, ValueError):
            continue  # the process ended meanwhile
    return total


def run_predict(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak process-tree memory (MiB) of one ``rimclf predict`` run."""
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", CLI, "predict", *args, "-q"], stdout=subprocess.DEVNULL)
    peak = [0.0]

    def sample() -> None:
        while process.poll() is None:
            peak[0] = max(peak[0], tree_rss_mib(process.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = process.wait()
    elapsed = time.perf_counter() - start
    sampler.join()
    if code != 0:
        raise SystemExit(f"rimclf predict {' '.join(args)} failed with status {code}")
    return elapsed, peak[0]


def phantom(path: Path, n_subjects: int, seed: int) -> Path:
    """A phantom cohort at ``path`` (one already there from an earlier run with ``--workdir`` is reused)."""
    return path if path.exists() else make_phantom_cohort(path, n_subjects=n_subjects, random_state=seed)


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def read_scans(table) -> None:
    """Read every scan's mask, QSM and FLAIR once, as a worker does."""
    import nibabel as nib

    for _, rows in table.groupby("participant_id"):
        first = rows.iloc[0]
        read_lesion_labels(first["mask"], int(first["connectivity"]))
        read_qsm(first["qsm"], str(first["qsm_unit"]))
        np.asarray(nib.load(first["flair"]).dataobj, dtype=np.float32)


def stages(model, table, n_jobs: int, folder: Path) -> dict[str, float]:
    """Seconds per scan of each stage (see the module docstring)."""
    n_scans = table["participant_id"].nunique()
    featurizer = model.featurizer_.set_params(n_jobs=n_jobs, memory=None, progress=False)
    _, reading = timed(read_scans, table)
    features, extraction = timed(featurizer.transform, table)
    probability, network = timed(lambda: model.classifier_.predict_proba(features)[:, 1])
    common = {"threshold": model.threshold_, "n_jobs": n_jobs, "force": True}
    _, maps = timed(write_prediction_outputs, folder / f"maps-j{n_jobs}", table, probability, montage=False, **common)
    _, both = timed(write_prediction_outputs, folder / f"all-j{n_jobs}", table, probability, montage=True, **common)
    seconds = {"reading": reading, "features": extraction, "network": network, "maps": maps, "montage": both - maps}
    return {name: value / n_scans for name, value in seconds.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="15- and 60-scan cohorts instead of 60 and 300")
    parser.add_argument("--cohorts", type=int, nargs="+", help="cohort sizes (default 60 300; --quick 15 60)")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="-j values (default 1 2)")
    parser.add_argument("--workdir", help="keep cohorts, model and outputs here (default: a temporary folder)")
    args = parser.parse_args(argv)
    sizes = args.cohorts or ([15, 60] if args.quick else [60, 300])
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as scratch:
        work = Path(args.workdir or scratch)
        work.mkdir(parents=True, exist_ok=True)
        print(f"rimclf {rimclf.__version__}; {os.cpu_count()} CPUs; " + ", ".join(f"{k} {v}" for k, v in package_versions().items()))
        train = phantom(work / "train", 20, 1000)
        model_dir = work / "model"
        if not model_dir.exists():
            # the threshold off the training lesions (no CV, so no calibration): its quality does not matter here, its speed does
            _, seconds = timed(train_model, train, threshold_cv=0, calibration=None, random_state=0, out=model_dir)
            print(f"trained the default model on 20 phantom subjects in {seconds:.0f} s", flush=True)
        stage_rows, command_rows = [], []
        for size in sizes:
            cohort = phantom(work / f"cohort-{size}", size, size)
            table = load_cohort(cohort)
            print(f"cohort of {size} scans, {len(table)} lesions", flush=True)
            for n_jobs in args.jobs:
                seconds = stages(rimclf.load_model(model_dir), table, n_jobs, work / f"stages-{size}")
                stage_rows.append((size, n_jobs, seconds))
                print(f"  -j {n_jobs} stages (s/scan): " + ", ".join(f"{k} {v:.3f}" for k, v in seconds.items()), flush=True)
            cache = work / f"cache-{size}"
            run_predict([str(model_dir), str(cohort), "-o", str(work / f"warm-{size}"), "-j", str(max(args.jobs)),
                         "--cache", str(cache), "--no-montage", "--force"])  # fills the feature cache
            for n_jobs in args.jobs:
                common = [str(model_dir), str(cohort), "-j", str(n_jobs), "--cache", str(cache), "--force"]
                plain = run_predict([*common, "-o", str(work / f"plain-{size}-j{n_jobs}"), "--no-montage"])
                full = run_predict([*common, "-o", str(work / f"full-{size}-j{n_jobs}")])
                command_rows.append((size, n_jobs, plain, full))
                print(f"  -j {n_jobs} predict: {plain[0]:.1f} s without montages, {full[0]:.1f} s with", flush=True)
        print(report(stage_rows, command_rows))
    return 0


def report(stage_rows: list, command_rows: list) -> str:
    """The two Markdown tables and the issue's checks."""
    names = ["reading", "features", "network", "maps", "montage"]
    lines = ["", "Stages, seconds per scan (reading is part of features and of maps/montage):", "",
             "| scans | -j | " + " | ".join(names) + " |", "|---:|---:|" + "---:|" * len(names)]
    lines += [f"| {size} | {n_jobs} | " + " | ".join(f"{seconds[name]:.3f}" for name in names) + " |"
              for size, n_jobs, seconds in stage_rows]
    lines += ["", "rimclf predict (warm feature cache), same run:", "",
              "| scans | -j | no montage (s) | with montages (s) | ratio | s/scan | peak MiB no montage | peak MiB with |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for size, n_jobs, plain, full in command_rows:
        lines.append(f"| {size} | {n_jobs} | {plain[0]:.1f} | {full[0]:.1f} | {full[0] / plain[0]:.2f} | "
                     f"{full[0] / size:.3f} | {plain[1]:.0f} | {full[1]:.0f} |")
    sizes = sorted({row[0] for row in command_rows})
    checks = []
    for size, n_jobs, plain, full in command_rows:
        if n_jobs == 2 and size == 60:
            checks.append(f"60 scans at -j 2: montages {full[0] / plain[0]:.2f}x (target <= {MAX_MONTAGE_RATIO}), "
                          f"{full[0] / size:.3f} s/scan (target <= {MAX_S_PER_SCAN})")
    if len(sizes) > 1:
        for n_jobs in sorted({row[1] for row in command_rows}):
            peaks = {row[0]: row[3][1] for row in command_rows if row[1] == n_jobs}
            checks.append(f"-j {n_jobs}: peak memory of {sizes[-1]} scans / {sizes[0]} scans = "
                          f"{peaks[sizes[-1]] / peaks[sizes[0]]:.2f} (target <= {MAX_MEMORY_GROWTH})")
    return "\n".join(lines + [""] + checks)


if __name__ == "__main__":
    raise SystemExit(main())
