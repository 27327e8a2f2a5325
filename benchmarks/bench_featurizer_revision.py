"""Featurization time of this checkout against an earlier git revision, measured in the same run.

Two interpreters run side by side: one imports rimclf from this checkout, the other from
``git archive <revision> rimclf`` unpacked in a temporary folder. Each reads the cohort once; then,
subject by subject, the two take turns timing ``make_featurizer(config).transform`` of that
subject's lesions (n_jobs=1, no cache; reading the subject's files included, imports and
``load_cohort`` not), ``--repeats`` times in alternating order. On a machine shared with other
jobs, both sides thus see the same load at almost the same moment; a side's time is the sum over
subjects of each subject's best (least) time, CPU and wall clock. Finally each side featurizes the
whole cohort once more: the table says whether both sides' features and warnings are
bit-identical.

Feature sets: ``default`` (the default model's rim + rim_fit), ``surface`` (rim + rim_fit + the
surface map of ``image="surface_map"``) and ``patches`` (rim + rim_fit + the default patches,
ring-normalised: ``branches="both"``). Run from the repository root, e.g.::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_featurizer_revision.py --against 4bdd388 \\
        --subjects 20 --seed 5
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SETS = ("default", "surface", "patches")

# a side: reads commands on stdin ("time <subject>", "save <path>", "quit"), answers one JSON line each
_SIDE = r"""
import json, sys, time, warnings
from dataclasses import replace
import numpy as np
import rimclf
from rimclf import load_cohort
from rimclf.defaults import DEFAULT_MODEL
from rimclf.features import make_featurizer

cohort, which = sys.argv[1:3]
warnings.simplefilter("ignore")
table = load_cohort(cohort)
subjects = list(dict.fromkeys(table["participant_id"]))
changes = {"default": {}, "surface": {"image": "surface_map", "branches": "both"}, "patches": {"branches": "both"}}
featurizer = make_featurizer(replace(DEFAULT_MODEL, **changes[which]), n_jobs=1, progress=False)
print(json.dumps({"rimclf": rimclf.__file__, "subjects": subjects, "lesions": len(table)}), flush=True)
for line in sys.stdin:
    command, _, argument = line.strip().partition(" ")
    if command == "time":
        part = table[table["participant_id"] == argument]
        wall, cpu = time.perf_counter(), time.process_time()
        featurizer.transform(part)
        print(json.dumps({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}), flush=True)
    elif command == "save":
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            features = featurizer.transform(table)
        np.savez(argument, **{key: features[key] for key in features.keys()})
        print(json.dumps({"warnings": [str(w.message) for w in caught]}), flush=True)
    else:
        break
"""


class Side:
    """One interpreter importing rimclf from ``source``, featurizing the cohort on command."""

    def __init__(self, source: Path, cohort: Path, which: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(source), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        self.process = subprocess.Popen([sys.executable, "-c", _SIDE, str(cohort), which], cwd=source, env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.info = self._answer()
        if not Path(self.info["rimclf"]).resolve().is_relative_to(source.resolve()):
            raise RuntimeError(f"a side imported {self.info['rimclf']}, not rimclf from {source}")

    def _answer(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"a side ended early (exit status {self.process.wait()})")
        return json.loads(line)

    def ask(self, command: str) -> dict:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self._answer()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=60)


def unpack_revision(revision: str, folder: Path) -> Path:
    """``rimclf/`` of ``revision`` (``git archive``) unpacked under ``folder``; the folder to import it from."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", revision, "rimclf"],
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def identical(a: Path, b: Path) -> bool:
    """Whether two saved featurizations hold the same arrays, bit for bit."""
    with np.load(a) as first, np.load(b) as second:
        return sorted(first) == sorted(second) and all(
            first[k].dtype == second[k].dtype and first[k].shape == second[k].shape
            and first[k].tobytes() == second[k].tobytes() for k in first
        )


def compare(sources: dict[str, Path], cohort: Path, which: str, repeats: int, work: Path) -> dict:
    """Per-subject best times of both sides (summed), and whether their outputs are identical."""
    sides = {name: Side(source, cohort, which) for name, source in sources.items()}
    try:
        names = list(sides)
        best = {name: {"wall": 0.0, "cpu": 0.0} for name in names}
        for subject in sides[names[0]].info["subjects"]:
            times: dict[str, list[dict]] = {name: [] for name in names}
            for repeat in range(repeats):
                for name in names if repeat % 2 == 0 else names[::-1]:  # alternate who goes first
                    times[name].append(sides[name].ask(f"time {subject}"))
            for name in names:
                for kind in ("wall", "cpu"):
                    best[name][kind] += min(t[kind] for t in times[name])
        saved = {name: work / f"{which}-{index}.npz" for index, name in enumerate(names)}
        warned = {name: sides[name].ask(f"save {saved[name]}")["warnings"] for name in names}
        same = identical(*saved.values()) and warned[names[0]] == warned[names[1]]
        return {"best": best, "identical": same, "lesions": sides[names[0]].info["lesions"]}
    finally:
        for side in sides.values():
            side.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, help="the earlier git revision (commit, tag or branch)")
    parser.add_argument("--subjects", type=int, default=20, help="phantom subjects (default 20)")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--cohort", type=Path, help="use this cohort instead of writing a phantom")
    parser.add_argument("--repeats", type=int, default=5, help="runs per subject and side (default 5)")
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
    sources = {f"before ({commit})": old, f"after ({head})": ROOT}
    load_start = os.getloadavg()[0]
    results = {which: compare(sources, cohort, which, args.repeats, work) for which in args.sets}

    lesions = next(iter(results.values()))["lesions"]
    print(f"cohort {cohort}: {lesions} lesions; n_jobs=1, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '1')}; "
          f"sum over subjects of each subject's best of {args.repeats} runs per side (alternating)")
    before, after = list(sources)
    print(f"| feature set | {before} CPU s | {after} CPU s | after/before CPU | {before} wall s | {after} wall s "
          "| after/before wall | features and warnings bit-identical |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for which, result in results.items():
        best = result["best"]
        cells = []
        for kind in ("cpu", "wall"):
            cells += [f"{best[before][kind]:.2f}", f"{best[after][kind]:.2f}", f"{best[after][kind] / best[before][kind]:.2f}"]
        print(f"| {which} | {' | '.join(cells)} | {'yes' if result['identical'] else 'NO'} |")
    print(f"load average (1 min): {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, "
          f"on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
