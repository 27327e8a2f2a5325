"""benchmarks/bench_ablation.py's summary of runs that split one cohort's methods between them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "bench_ablation.py"


@pytest.fixture(scope="module")
def bench_ablation():
    sys.path.insert(0, str(SCRIPT.parent))  # it imports bench_imbalance by module name
    try:
        spec = importlib.util.spec_from_file_location("bench_ablation", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(SCRIPT.parent))


def _run(*rows: tuple[str, float, float]) -> pd.DataFrame:
    return pd.DataFrame([{"method": m, "label": m, "pauc": p, "pr_auc": a} for m, p, a in rows])


def test_runs_of_one_cohort_merge_and_their_reference_must_agree(bench_ablation):
    tabular = _run(("default", 0.94, 0.88), ("rf_rim", 0.93, 0.84))
    cnn = _run(("default", 0.94, 0.88), ("net_fused", 0.92, 0.84))
    merged = bench_ablation.merge_runs([tabular, cnn], "seed12")
    assert merged["method"].tolist() == ["default", "rf_rim", "net_fused"]
    other_folds = _run(("default", 0.91, 0.88), ("net_cnn", 0.6, 0.2))
    with pytest.raises(SystemExit, match="seed12: the runs' default models differ"):
        bench_ablation.merge_runs([tabular, other_folds], "seed12")


def test_combined_tables_mark_a_method_a_cohort_did_not_run(bench_ablation):
    from bench_imbalance import combined_tables

    def full(frame: pd.DataFrame) -> pd.DataFrame:
        columns = [f"{m}{s}" for m in ("pauc", "pr_auc", "roc_auc") for s in ("", "_ci_low", "_ci_high")]
        columns += [f"{m}_diff{s}" for m in ("pauc", "pr_auc") for s in ("", "_ci_low", "_ci_high", "_p")]
        return frame.assign(**{c: 0.5 for c in columns if c not in frame}, fit_seconds=1.0, fit_cpu_seconds=2.0)

    text = combined_tables({"a": full(_run(("default", 0.9, 0.8), ("net_fused", 0.9, 0.8))),
                            "b": full(_run(("default", 0.9, 0.8)))})
    assert "| net_fused | " in text and "not run" in text
