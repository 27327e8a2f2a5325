"""rimclf.benchmark's summary over cohorts: runs merged, combined tables, verdicts, the forest plot."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rimclf.benchmark import (
    RADIOMICS_BASELINE,
    WITH_CNN,
    combined_tables,
    merge_runs,
    plot_ablation,
    read_results,
    results_folder,
    verdicts,
)
from rimclf.errors import CohortError, OutputExistsError


def _run(*rows: tuple[str, float, float]) -> pd.DataFrame:
    return pd.DataFrame([{"method": m, "label": m, "pauc": p, "pr_auc": a} for m, p, a in rows])


def _full(frame: pd.DataFrame, diff: float = 0.5) -> pd.DataFrame:
    """A results table with every column run_benchmark writes (CIs, paired differences, times)."""
    columns = {f"{m}{s}": 0.5 for m in ("roc_auc",) for s in ("",)}
    columns.update({f"{m}{s}": 0.5 for m in ("pauc", "pr_auc", "roc_auc") for s in ("_ci_low", "_ci_high")})
    columns.update({f"{m}_diff{s}": diff for m in ("pauc", "pr_auc") for s in ("", "_ci_low", "_ci_high")})
    columns.update({"pauc_diff_p": 0.01, "pr_auc_diff_p": 0.5})
    frame = frame.assign(**columns, fit_seconds=1.0, fit_cpu_seconds=2.0)
    reference = frame["method"] == "default"
    for column in [c for c in frame if "_diff" in c]:
        frame.loc[reference, column] = np.nan
    return frame


def test_runs_of_one_cohort_merge_and_their_reference_must_agree():
    tabular = _run(("default", 0.94, 0.88), ("rf_rim", 0.93, 0.84))
    cnn = _run(("default", 0.94, 0.88), ("net_fused", 0.92, 0.84))
    merged = merge_runs([tabular, cnn], "seed12")
    assert merged["method"].tolist() == ["default", "rf_rim", "net_fused"]
    other_folds = _run(("default", 0.91, 0.88), ("net_cnn", 0.6, 0.2))
    with pytest.raises(CohortError, match="seed12: the runs' default models differ"):
        merge_runs([tabular, other_folds], "seed12")


def test_combined_tables_mark_a_method_a_cohort_did_not_run():
    text = combined_tables({"a": _full(_run(("default", 0.9, 0.8), ("net_fused", 0.9, 0.8))),
                            "b": _full(_run(("default", 0.9, 0.8)))})
    assert "| net_fused | " in text and "not run" in text
    assert "| default | reference | reference |" in text
    assert "+0.500 [+0.500, +0.500]*" in text  # pAUC difference with p < 0.05 starred
    assert "| net_fused | 1.0 / 2.0 | not run |" in text


def test_verdicts_answer_the_ablation_s_questions():
    frame = _full(_run(("default", 0.9, 0.8), (RADIOMICS_BASELINE, 0.8, 0.6), (WITH_CNN, 0.9, 0.85)), diff=-0.05)
    text = verdicts({"seed11": frame})
    assert "- seed11: default model pAUC 0.900, PR AUC 0.800" in text
    assert f"{RADIOMICS_BASELINE} − default: pAUC -0.050 [-0.050, -0.050] (default better)" in text
    assert "adding the CNN: PR AUC -0.050 [-0.050, -0.050] (adds < 0.03)" in text


@pytest.mark.slow
def test_plot_ablation_draws_every_method_but_the_reference():
    frame = _full(_run(("default", 0.9, 0.8), ("rf_rim", 0.8, 0.6), ("net_cnn", 0.7, 0.5)))
    figure = plot_ablation({"a": frame, "b": frame.iloc[:2]})
    assert [tick.get_text() for tick in figure.axes[0].get_yticklabels()] == ["rf_rim", "net_cnn"]


def test_results_are_read_back_and_written_whole(tmp_path):
    with results_folder(tmp_path / "out") as tmp:
        _full(_run(("default", 0.9, 0.8))).to_csv(tmp / "results.tsv", sep="\t", index=False, na_rep="n/a")
    assert read_results(tmp_path / "out")["method"].tolist() == ["default"]
    with pytest.raises(OutputExistsError):
        with results_folder(tmp_path / "out"):
            pass
    with pytest.raises(CohortError, match="no results.tsv"):
        read_results(tmp_path)
