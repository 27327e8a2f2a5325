"""Featurization time of this checkout against an earlier git revision, measured in the same run.

Each measurement is a fresh interpreter that imports rimclf either from this checkout or from
``git archive <revision> rimclf`` unpacked in a temporary folder, reads the cohort, and times one
``make_featurizer(config).transform(table)`` (n_jobs=1, no cache; imports and ``load_cohort`` not
included). The two sides alternate, so both see the same load on the machine; the table gives the
median and the best of ``--repeats`` runs per side, and whether both sides' features and warnings
are bit-identical.

Feature sets: ``default`` (the default model's rim + rim_fit) and ``surface`` (rim + rim_fit + the
surface map of ``image="surface_map"``). Run from the repository root, e.g.::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_featurizer_revision.py --against 4bdd388 \\
        --subjects 20 --seed 5
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SETS = ("default", "surface")

_CHILD = r"""
import json, sys, time, warnings
from dataclasses import replace
import numpy as np
import rimclf
from rimclf import load_cohort
from rimclf.defaults import DEFAULT_MODEL
from rimclf.features import make_featurizer

cohort, which, out = sys.argv[1:4]
table = load_cohort(cohort)
config = DEFAULT_MODEL if which == "default" else replace(DEFAULT_MODEL, image="surface_map")
featurizer = make_featurizer(config, patches=which != "default", n_jobs=1, progress=False)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    wall, cpu = time.perf_counter(), time.process_time()
    features = featurizer.transform(table)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
np.savez(out, **{key: features[key] for key in features.keys()})
print(json.dumps({"wall": wall, "cpu": cpu, "lesions": len(table), "rimclf": rimclf.__file__,
                  "warnings": [str(w.message) for w in caught]}))
"""


def unpack_revision(revision: str, folder: Path) -> Path:
    """``rimclf/`` of ``revision`` (``git archive``) unpacked under ``folder``; the folder to import it from."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", revision, "rimclf"],
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def measure(source: Path, cohort: Path, which: str, out: Path) -> dict:
    """One timed featurization in a fresh interpreter importing rimclf from ``source``."""
    env = {**os.environ, "PYTHONPATH": str(source), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    result = subprocess.run([sys.executable, "-c", _CHILD, str(cohort), which, str(out)], check=True,
                            capture_output=True, text=True, cwd=source, env=env)
    record = json.loads(result.stdout.strip().splitlines()[-1])
    if not Path(record["rimclf"]).resolve().is_relative_to(source.resolve()):
        raise RuntimeError(f"the measurement imported {record['rimclf']}, not rimclf from {source}")
    return record


def identical(a: Path, b: Path) -> bool:
    """Whether two saved featurizations hold the same arrays, bit for bit."""
    with np.load(a) as first, np.load(b) as second:
        return sorted(first) == sorted(second) and all(
            first[k].dtype == second[k].dtype and first[k].shape == second[k].shape
            and first[k].tobytes() == second[k].tobytes() for k in first
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, help="the earlier git revision (commit, tag or branch)")
    parser.add_argument("--subjects", type=int, default=20, help="phantom subjects (default 20)")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--cohort", type=Path, help="use this cohort instead of writing a phantom")
    parser.add_argument("--repeats", type=int, default=3, help="runs per side and feature set (default 3)")
    parser.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS))
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="rimclf-bench-revision-"))
    try:
        return run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path) -> int:
    """Measure both sides in ``work`` (a temporary folder) and print the table."""
    old = unpack_revision(args.against, work / "old")
    cohort = args.cohort
    if cohort is None:
        from rimclf.phantom import make_phantom_cohort

        cohort = make_phantom_cohort(work / "cohort", n_subjects=args.subjects, random_state=args.seed)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.against], check=True,
                            capture_output=True, text=True).stdout.strip()
    head = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], check=True,
                          capture_output=True, text=True).stdout.strip()
    sides = {f"old ({commit})": old, f"new ({head})": ROOT}
    runs: dict[tuple[str, str], list[dict]] = {}
    same: dict[str, bool] = {}
    lesions = 0
    for which in args.sets:
        for repeat in range(args.repeats):
            order = list(sides) if repeat % 2 == 0 else list(sides)[::-1]  # alternate who goes first
            for side in order:
                out = work / f"{which}-{side.split()[0]}-{repeat}.npz"
                record = measure(sides[side], cohort, which, out)
                runs.setdefault((which, side), []).append(record)
                lesions = record["lesions"]
        names = list(sides)
        first = [work / f"{which}-{side.split()[0]}-0.npz" for side in names]
        same[which] = identical(*first) and runs[(which, names[0])][0]["warnings"] == runs[(which, names[1])][0]["warnings"]

    print(f"cohort {cohort}: {lesions} lesions; n_jobs=1, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '1')}, "
          f"{args.repeats} runs per side (fresh interpreters, alternating)")
    old_name, new_name = list(sides)
    print(f"| feature set | {old_name} wall s | {new_name} wall s | new/old wall | {old_name} CPU s | {new_name} CPU s "
          "| new/old CPU | features and warnings bit-identical |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for which in args.sets:
        cells = []
        for kind in ("wall", "cpu"):
            values = [[r[kind] for r in runs[(which, side)]] for side in sides]
            median, best = [statistics.median(v) for v in values], [min(v) for v in values]
            cells += [f"{median[0]:.2f} / {best[0]:.2f}", f"{median[1]:.2f} / {best[1]:.2f}",
                      f"{median[1] / median[0]:.2f} / {best[1] / best[0]:.2f}"]
        print(f"| {which} | {' | '.join(cells)} | {'yes' if same[which] else 'NO'} |")
    print("cells: median / best of the runs")
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
