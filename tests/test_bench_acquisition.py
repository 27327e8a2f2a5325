"""benchmarks/bench_acquisition.py's isointense tables: each cell's Wilson interval and count, the
verdict against 0.10 ± 0.03 and the homogeneity test, on a small made-up table of decisions."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(SCRIPTS))  # the bench imports cell_rates from beside itself
    yield _load("bench_acquisition")
    sys.path.remove(str(SCRIPTS))
    sys.modules.pop("cell_rates", None)


@pytest.mark.parametrize(
    ("k", "n", "expected"),
    [(0, 10, (0.0, 0.2775)), (1, 10, (0.0179, 0.4042)), (5, 10, (0.2366, 0.7634)), (10, 10, (0.7225, 1.0)),
     (0, 60, (0.0, 0.0602))],
)
def test_wilson_interval_known_values(k, n, expected) -> None:
    low, high = _load("cell_rates").wilson_interval(k, n)
    assert (low, high) == pytest.approx(expected, abs=5e-5)
    assert (low == 0.0) == (k == 0) and (high == 1.0) == (k == n)  # exact at the ends, strictly inside otherwise


def test_wilson_interval_refuses_impossible_counts() -> None:
    for k, n in ((1, 0), (-1, 5), (6, 5)):
        with pytest.raises(ValueError, match=f"k={k}, n={n}"):
            _load("cell_rates").wilson_interval(k, n)


def _lesions(rates: dict[str, float], n_per_size: int = 60) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Isointense rim- lesions of three sizes per noise level; in each (noise, size) cell the first
    round(rate * n) lesions are called rim+."""
    rows, called = [], []
    for noise, rate in rates.items():
        for size in (10, 100, 1000):
            for i in range(n_per_size):
                rows.append({"pattern": "iso", "n_voxels": size + i, "noise": noise})
                called.append(i < round(rate * n_per_size))
    table = pd.DataFrame(rows)
    return table, np.zeros(len(table), dtype=int), np.array(called)


def test_isointense_cells_carry_interval_count_and_verdict(bench) -> None:
    table, y, called = _lesions({"quiet": 0.1, "loud": 0.5, "silent": 0.0})
    rates = bench.isointense_false_positives(table, y, called, table["noise"])
    text, verdict, cells = bench.isointense_intervals(rates, promised=0.1, seed=0)
    assert text.at["loud", "small"] == "0.500 [0.38, 0.62] (30/60)"
    assert text.at["quiet", "all sizes"] == "0.100 [0.06, 0.15] (18/180)"
    assert text.at["all noise levels", "all sizes"].endswith("(108/540)")
    assert len(cells) == 16  # 3 x 3 cells, 3 pooled rows, 3 pooled columns and the total
    assert verdict["cells"] == 9 and verdict["band"] == [0.07, 0.13]
    assert sorted(verdict["above"]) == ["loud, large", "loud, mid", "loud, small"]
    assert sorted(verdict["below"]) == ["silent, large", "silent, mid", "silent, small"]  # 0/60: CI up to 0.060
    assert verdict["compatible"] == 3
    test = verdict["homogeneity"]
    assert test["dof"] == 8 and test["p"] < 1e-6 and test["p_permutation"] == pytest.approx(1 / 10_001)
    assert "3 wholly above 0.13" in bench.describe_verdict(verdict) and "p < 0.001" in bench.describe_verdict(verdict)


def test_equal_cells_are_homogeneous_and_compatible(bench) -> None:
    table, y, called = _lesions({"a": 0.1, "b": 0.1})
    rates = bench.isointense_false_positives(table, y, called, table["noise"])
    _, verdict, _ = bench.isointense_intervals(rates, promised=0.1, seed=0)
    assert verdict["above"] == [] and verdict["below"] == [] and verdict["compatible"] == 6
    assert verdict["homogeneity"]["statistic"] == pytest.approx(0.0) and verdict["homogeneity"]["p_permutation"] == 1.0
    none_called = bench.isointense_false_positives(table, y, np.zeros(len(table), dtype=bool), table["noise"])
    _, quiet, _ = bench.isointense_intervals(none_called, promised=0.1, seed=0)
    assert np.isnan(quiet["homogeneity"]["p"]) and "not testable" in bench.describe_verdict(quiet)


def _run(folder: Path, seed: int, rng: np.random.Generator) -> Path:
    """A made-up bench_acquisition run: 20 varied subjects (10 lesions, the first of each rim+, one
    isointense rim- lesion called rim+ in every other subject) and 10 fixed-site ones."""
    rows = []
    for cohort, count in (("varied", 20), ("fixed", 10)):
        for subject in range(count):
            for lesion in range(10):
                rim = int(lesion == 0)
                rows.append({"pair_seed": seed, "participant_id": f"{cohort[0]}{subject:03d}", "cohort": cohort,
                             "lesion_id": lesion + 1, "site": "V1" if cohort == "varied" else "A",
                             "noise": "varied, high noise" if cohort == "varied" else "fixed sites (A)",
                             "pattern": "rim" if rim else "iso", "n_voxels": 50 + 10 * lesion, "rim": rim,
                             "default_seen": rim + rng.random(), "default_unseen": rim * 0.5 + rng.random(),
                             "called": int(lesion == 1 and subject % 2 == 0)})
    folder.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(folder / "predictions.tsv", sep="\t", index=False)
    return folder


def test_runs_pool_their_varied_lesions_with_a_subject_bootstrap(tmp_path: Path) -> None:
    sys.path.insert(0, str(SCRIPTS))
    try:
        pool = _load("pool_acquisition")
    finally:
        sys.path.remove(str(SCRIPTS))
        sys.modules.pop("cell_rates", None)
    rng = np.random.default_rng(0)
    runs = pool.read_runs([_run(tmp_path / "a", 4, rng), _run(tmp_path / "b", 5, rng)])
    assert runs["subject"].nunique() == 60  # the same participant ids in two runs stay two subjects
    scores = pool.pooled_scores(runs, "default", n_boot=200).set_index("evaluation")
    assert scores.loc["seen", "lesions"] == 400 and scores.loc["seen", "rim+"] == 40  # varied lesions only
    assert scores.loc["seen", "pauc"] == pytest.approx(1.0) and scores.loc["seen", "pauc_low"] == pytest.approx(1.0)
    unseen = scores.loc["unseen"]
    assert unseen["pr_auc_low"] < unseen["pr_auc"] < unseen["pr_auc_high"] and unseen["pauc"] < 1.0
    rates = pool.isointense_rates(runs).set_index(["noise", "size"])
    assert rates.loc[("high noise", "all sizes"), ["k", "n"]].tolist() == [20, 360]
    assert rates.loc[("high noise", "all sizes"), "rate"] == pytest.approx(20 / 360)
    with pytest.raises(SystemExit, match="predictions.tsv does not exist"):
        pool.read_runs([tmp_path / "missing"])
    with pytest.raises(SystemExit, match="same pair seed"):
        pool.read_runs([tmp_path / "a", tmp_path / "a"])


def test_prediction_table_has_one_row_per_lesion_and_every_method(bench) -> None:
    table = pd.DataFrame({"participant_id": ["s001", "v001"], "lesion_id": [1, 1], "site": ["A", "V1"],
                          "noise": ["fixed sites (A)", "varied, high noise"], "pattern": ["rim", "iso"],
                          "n_voxels": [80, 40]})
    predictions = {"default": (np.array([0.9, 0.2]), np.array([np.nan, 0.3])),
                   "surface_map": (np.array([0.8, 0.1]), np.array([np.nan, 0.4]))}
    out = bench.prediction_table(table, np.array([1, 0]), predictions, np.array([True, False]), seed=7)
    assert out["cohort"].tolist() == ["fixed", "varied"] and out["pair_seed"].tolist() == [7, 7]
    assert out["default_unseen"].isna().tolist() == [True, False] and out["surface_map_seen"].tolist() == [0.8, 0.1]
    assert out["called"].tolist() == [1, 0] and out["rim"].tolist() == [1, 0]
