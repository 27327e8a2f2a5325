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
