"""Feature extraction speed: LesionFeaturizer against naive pyradiomics, measured in the same run.

Naive is what a user writes first: one ``RadiomicsFeatureExtractor(params)`` with the same
QSMRim-Net settings and ``extractor.execute(qsm_path, mask_path, label=i)`` per lesion, which
reads both files and filters the whole volume with the 8 wavelets for every lesion.

Prints a table (lesions per second and ratios against naive), the maximum relative difference
of the feature values, the peak memory of both ways (each in a fresh subprocess) and the
package versions. Run from the repository root::

    .venv/bin/python benchmarks/bench_features.py [--subjects 6] [--naive-max 60] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import logging
import os
import pstats
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PARAMS = ROOT / "rimclf" / "data" / "qsmrim_params.yaml"

_MEMORY_PROBE = r"""
import json, resource, sys, warnings
warnings.simplefilter("ignore")


def high_water_mib():
    # VmHWM: peak resident memory of this process image (ru_maxrss would include the parent's at fork)
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


from radiomics.featureextractor import RadiomicsFeatureExtractor
from skorch.helper import SliceDict  # imports torch: part of the baseline, as for any rimclf model
from rimclf import LesionFeaturizer, PatchExtractor, RadiomicsExtractor, load_cohort
table = load_cohort(sys.argv[2])
table = table[table["participant_id"].isin(sorted(set(table["participant_id"]))[:int(sys.argv[3])])]
before = high_water_mib()
if sys.argv[1] == "naive":
    extractor = RadiomicsFeatureExtractor(sys.argv[4])
    for row in table.itertuples():
        extractor.execute(row.qsm, row.mask, label=int(row.lesion_id))
else:
    parts = [("radiomics", RadiomicsExtractor())] + ([("patches", PatchExtractor())] if sys.argv[1] == "both" else [])
    LesionFeaturizer(parts, progress=False).transform(table)
print(json.dumps({"imports_mib": before, "peak_mib": high_water_mib()}))
"""


def relative_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| / max(|a|, |b|), 0 where equal (NaN == NaN counts as equal)."""
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    scale = np.maximum(np.abs(a), np.abs(b))
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = np.where(same, 0.0, np.abs(a - b) / scale)
    return np.where(np.isnan(diff), np.inf, diff)


def timed(function, *args, **kwargs):
    """Result, wall-clock seconds and CPU seconds of this process (all its threads, not workers')."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


_SPIN = "total = 0\nfor i in range(20_000_000):\n    total += i\n"


def two_process_scaling() -> float:
    """Throughput of two concurrent CPU-bound processes relative to one alone (2.0 = two full cores).

    What a second core gives on this machine (shared or virtual cores give less than 2), measured
    with the same pure-Python loop in fresh interpreters (no rimclf involved).
    """
    command = [sys.executable, "-c", _SPIN]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    alone = time.perf_counter() - start
    start = time.perf_counter()
    running = [subprocess.Popen(command) for _ in range(2)]
    for process in running:
        process.wait()
    together = time.perf_counter() - start
    return 2 * alone / together


def print_table(
    rows: list[tuple[str, int, float, float]], naive_rows: int, naive_wall: float, naive_cpu: float
) -> None:
    """Markdown table of lesions per second, wall-clock and CPU, with ratios against naive."""
    print(f"| {'measurement':58s} | lesions | wall s | lesions/s | vs naive | CPU s | lesions/CPU s | vs naive |")
    print(f"|{'-' * 60}|--------:|-------:|----------:|---------:|------:|--------------:|---------:|")
    for label, count, wall, cpu in rows:
        wall_rate = count / wall / (naive_rows / naive_wall)
        cpu_text = "    - |             - |        -"
        if np.isfinite(cpu):
            cpu_text = f"{cpu:5.2f} | {count / cpu:13.1f} | {count / cpu / (naive_rows / naive_cpu):7.1f}x"
        print(f"| {label:58s} | {count:7d} | {wall:6.2f} | {count / wall:9.1f} | {wall_rate:7.1f}x | {cpu_text} |")


def naive_extraction(table, names) -> np.ndarray:
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    extractor = RadiomicsFeatureExtractor(str(PARAMS))
    rows = []
    for row in table.itertuples():
        result = extractor.execute(row.qsm, row.mask, label=int(row.lesion_id))
        rows.append([float(result[name]) for name in names])
    return np.array(rows)


def memory_probe(kind: str, cohort: Path, n_subjects: int) -> dict:
    output = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, kind, str(cohort), str(n_subjects), str(PARAMS)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=6, help="phantom subjects (default 6)")
    parser.add_argument(
        "--naive-max",
        type=int,
        default=60,
        help="lesions extracted the naive way (default 60, a sample across subjects)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--shape",
        type=int,
        nargs=3,
        metavar=("X", "Y", "Z"),
        help="phantom QSM grid (default 96 112 64, a small head; e.g. 160 192 112 for a clinical-size one)",
    )
    parser.add_argument("--cohort", type=Path, help="use this cohort instead of writing a phantom")
    parser.add_argument("--profile", action="store_true", help="print where the featurizer's time goes (one subject)")
    args = parser.parse_args(argv)

    warnings.simplefilter("ignore")
    import radiomics  # noqa: F401  (sets its logger's level on import)

    logging.getLogger("radiomics").setLevel(logging.ERROR)  # naive pyradiomics repeats "GLCM is symmetrical" per lesion
    from rimclf import LesionFeaturizer, PatchExtractor, RadiomicsExtractor, load_cohort
    from rimclf.benchmark import package_versions
    from rimclf.phantom import make_phantom_cohort

    # LesionFeaturizer returns a skorch SliceDict: importing skorch (and torch) is a once-per-process
    # cost, like importing pyradiomics for the naive way; done here, before any timing
    import_start = time.perf_counter()
    from skorch.helper import SliceDict  # noqa: F401

    import_seconds = time.perf_counter() - import_start

    workdir = Path(tempfile.mkdtemp(prefix="rimclf-bench-features-"))
    load_start = os.getloadavg()[0]
    if args.cohort is None:
        cohort, seconds, _ = timed(
            make_phantom_cohort,
            workdir / "cohort",
            n_subjects=args.subjects,
            random_state=args.seed,
            shape=tuple(args.shape) if args.shape else None,
        )
        grid = "x".join(map(str, args.shape)) if args.shape else "default 96x112x64"
        print(f"phantom cohort: {args.subjects} subjects ({grid} reference grid) written in {seconds:.1f} s")
    else:
        cohort = args.cohort
    table = load_cohort(cohort)
    n = len(table)
    print(f"{n} lesions in {table['participant_id'].nunique()} subjects")

    radiomics_only = dict(features=[("radiomics", RadiomicsExtractor())], progress=False)
    names = RadiomicsExtractor().get_feature_names_out()

    # naive: a sample of lesions spread over the subjects (every k-th row)
    step = max(1, n // max(1, args.naive_max))
    sample = np.arange(0, n, step)[: args.naive_max]
    naive_values, naive_wall, naive_cpu = timed(naive_extraction, table.iloc[sample], names)

    ours, serial_wall, serial_cpu = timed(LesionFeaturizer(**radiomics_only, n_jobs=1).transform, table)
    # start both worker processes first (imports of pyradiomics, SimpleITK, ...; one lesion of two
    # subjects, so each worker gets one): timed apart, as a once-per-session cost
    first_subject = table[table["participant_id"] == table["participant_id"].iloc[0]]
    one_per_subject = table.groupby("participant_id", sort=False).head(1).iloc[:2]
    _, startup_wall, _ = timed(LesionFeaturizer(**radiomics_only, n_jobs=2).transform, one_per_subject)
    parallel, parallel_wall, _ = timed(LesionFeaturizer(**radiomics_only, n_jobs=2).transform, table)
    patch_featurizer = LesionFeaturizer([("patches", PatchExtractor())], progress=False)
    _, patch_wall, patch_cpu = timed(patch_featurizer.transform, table)
    cached = LesionFeaturizer([("radiomics", RadiomicsExtractor()), ("patches", PatchExtractor())], n_jobs=1,
                              memory=workdir / "cache", progress=False)
    first, first_wall, first_cpu = timed(cached.transform, table)
    again, again_wall, again_cpu = min((timed(cached.transform, table) for _ in range(3)), key=lambda r: r[1])

    # values: ours (float64 RadiomicsExtractor; float32 SliceDict) against naive
    ours64 = RadiomicsExtractor().transform(table.iloc[sample])
    diff = relative_difference(ours64, naive_values)
    diff32 = relative_difference(
        ours["radiomics"][sample].astype(np.float64), naive_values.astype(np.float32).astype(np.float64)
    )
    ill_posed = sorted({str(names[j]) for j in np.flatnonzero((diff > 1e-6).any(axis=0))})
    identical = {
        "n_jobs=2 vs 1": bool(np.array_equal(parallel["radiomics"], ours["radiomics"], equal_nan=True)),
        "cached vs first": bool(
            np.array_equal(again["radiomics"], first["radiomics"], equal_nan=True)
            and np.array_equal(again["patches"], first["patches"])
        ),
        "featurizer vs n_jobs=1": bool(np.array_equal(first["radiomics"], ours["radiomics"], equal_nan=True)),
    }

    print()
    print_table(
        [
            ("naive pyradiomics, per lesion (radiomics)", len(sample), naive_wall, naive_cpu),
            ("LesionFeaturizer radiomics, n_jobs=1", n, serial_wall, serial_cpu),
            ("LesionFeaturizer radiomics, n_jobs=2", n, parallel_wall, float("nan")),
            ("LesionFeaturizer patches only, n_jobs=1", n, patch_wall, patch_cpu),
            ("LesionFeaturizer both, memory=, first run", n, first_wall, first_cpu),
            ("LesionFeaturizer both, memory=, cached re-run (best of 3)", n, again_wall, again_cpu),
        ],
        len(sample),
        naive_wall,
        naive_cpu,
    )
    print()
    print(
        f"speed-up n_jobs=2 over n_jobs=1: {serial_wall / parallel_wall:.2f}x "
        f"(worker start-up, {startup_wall:.1f} s once per session, not included)"
    )
    print(f"import of skorch and torch before the timings: {import_seconds:.1f} s once per process, not included")
    print(
        f"two concurrent pure-Python loops (fresh interpreters, no rimclf) run {two_process_scaling():.2f}x "
        "the throughput of one: what a second core gives on this machine"
    )
    print(
        f"cached re-run vs first run: {first_wall / again_wall:.0f}x faster (wall), {first_cpu / again_cpu:.0f}x (CPU)"
    )
    print(
        f"max relative difference to naive pyradiomics ({len(sample)} lesions x {len(names)} features): "
        f"{diff.max():.3g} (float64 RadiomicsExtractor), "
        f"{diff32.max():.3g} (float32 SliceDict vs naive rounded to float32)"
    )
    print(f"features above 1e-6: {ill_posed or 'none'}")
    print(f"identical results: {identical}")

    n_memory = min(2, table["participant_id"].nunique())
    memory = {kind: memory_probe(kind, cohort, n_memory) for kind in ("naive", "radiomics", "both")}
    print(
        f"peak memory (VmHWM of a fresh process extracting {n_memory} subjects; "
        "after imports (rimclf, pyradiomics, torch) and load_cohort in brackets): "
        + ", ".join(f"{kind} {m['peak_mib']:.0f} MiB ({m['imports_mib']:.0f})" for kind, m in memory.items())
    )

    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        LesionFeaturizer(**radiomics_only).transform(first_subject)
        profiler.disable()
        print(f"\nprofile of one subject ({len(first_subject)} lesions), top 12 by cumulative time:")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(12)

    load_end = os.getloadavg()[0]
    print(
        f"CPU cores: {os.cpu_count()}; load average (1 min) at start {load_start:.1f}, at end {load_end:.1f}"
        + (
            " - other processes were competing for the cores: n_jobs=2 figures are depressed"
            if max(load_start, load_end) > 1.5
            else ""
        )
    )
    names = ("rimclf", "pyradiomics", "SimpleITK", "PyWavelets", "numpy", "scipy", "joblib", "scikit-learn", "nibabel")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in package_versions(names).items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
