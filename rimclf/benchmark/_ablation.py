"""The ablation's summary over cohorts: combined tables, runs merged, verdicts and the forest plot.

:func:`run_benchmark` writes one folder per cohort; these functions put the cohorts' results
tables (``results.tsv``) side by side: :func:`combined_tables` (markdown, methods x cohorts),
:func:`merge_runs` (one cohort's methods split between runs), :func:`verdicts` (the questions the
ablation answers) and :func:`plot_ablation` (each method's paired difference from the reference).
``benchmarks/bench_ablation.py`` and ``benchmarks/bench_imbalance.py`` call them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from rimclf._atomic import atomic_output_dir
from rimclf.benchmark._methods import ABLATION_REFERENCE
from rimclf.benchmark._summary import difference, with_ci
from rimclf.errors import CohortError

#: The strongest radiomics baseline, which the default model must beat.
RADIOMICS_BASELINE = "rf_lesion_shell"
#: The default model with a CNN branch: does the CNN add?
WITH_CNN = "net_fused"


def read_results(folder: str | os.PathLike) -> pd.DataFrame:
    """A cohort folder's results table (``results.tsv``; ``results.csv`` of runs before rimclf wrote TSV).

    Examples
    --------
    >>> results = {name: read_results(f"runs/{name}") for name in ("seed11", "seed12")}   # doctest: +SKIP
    """
    folder = Path(folder)
    if (folder / "results.tsv").is_file():
        return pd.read_csv(folder / "results.tsv", sep="\t", na_values="n/a")
    if (folder / "results.csv").is_file():
        return pd.read_csv(folder / "results.csv")
    raise CohortError(f"{folder}: no results.tsv; this is not a folder written by run_benchmark")


def merge_runs(frames: list[pd.DataFrame], cohort: str, reference: str = ABLATION_REFERENCE) -> pd.DataFrame:
    """One cohort's results from runs that split its methods between them.

    Each run cross-validated the reference on the same folds with the same seeds, so its paired
    differences are against the same reference; the reference rows must therefore agree (else the
    runs are not comparable: :class:`~rimclf.errors.CohortError`). A method in several runs is
    kept from the first.

    Examples
    --------
    >>> import pandas as pd
    >>> a = pd.DataFrame({"method": ["default", "rf_rim"], "pauc": [0.9, 0.8], "pr_auc": [0.7, 0.6]})
    >>> b = pd.DataFrame({"method": ["default", "net_cnn"], "pauc": [0.9, 0.7], "pr_auc": [0.7, 0.5]})
    >>> merge_runs([a, b], "seed11")["method"].tolist()
    ['default', 'rf_rim', 'net_cnn']
    """
    scores = [frame.set_index("method").loc[reference, ["pauc", "pr_auc"]].astype(float) for frame in frames]
    for other in scores[1:]:
        if not np.allclose(other.to_numpy(), scores[0].to_numpy(), atol=1e-9):
            raise CohortError(
                f"{cohort}: the runs' {reference} models differ (pAUC/PR AUC {scores[0].tolist()} vs "
                f"{other.tolist()}); they did not use the same folds, seeds or code"
            )
    merged = pd.concat(frames, ignore_index=True)
    return merged.drop_duplicates("method", keep="first").reset_index(drop=True)


def combined_tables(results: dict[str, pd.DataFrame], reference_label: str = "the default model") -> str:
    """Markdown tables, methods x cohorts: pAUC, PR AUC, ROC AUC with CIs, differences against
    the reference, and the mean training time per fold. A method a cohort did not run shows "not run".

    Examples
    --------
    >>> print(combined_tables({"seed11": read_results("runs/seed11")}))   # doctest: +SKIP
    """
    names = list(results)
    methods = pd.concat(list(results.values()), ignore_index=True).drop_duplicates("method")[["method", "label"]]
    rows = {name: frame.set_index("method") for name, frame in results.items()}

    def cells(method: str, cell) -> list[str]:
        return [cell(rows[name].loc[method]) if method in rows[name].index else "not run" for name in names]

    sections = []
    for title, cell in (
        ("Standardised partial ROC AUC (FPR ≤ 0.1) [95% subject-bootstrap CI]", lambda r: with_ci(r, "pauc")),
        ("PR AUC (average precision) [95% CI]", lambda r: with_ci(r, "pr_auc")),
        ("ROC AUC [95% CI]", lambda r: with_ci(r, "roc_auc")),
        (f"Δ pAUC against {reference_label} [paired 95% CI] (* p < 0.05)",
         lambda r: difference(r, "pauc", significance="star")),
        (f"Δ PR AUC against {reference_label} [paired 95% CI] (* p < 0.05)",
         lambda r: difference(r, "pr_auc", significance="star")),
    ):
        lines = [f"**{title}**", "", "| method | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        for method, label in zip(methods["method"], methods["label"]):
            lines.append(f"| {label} | " + " | ".join(cells(method, cell)) + " |")
        sections.append("\n".join(lines))
    lines = ["**Training time per fold (s, mean; wall clock / CPU)**", "",
             "| method | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for method, label in zip(methods["method"], methods["label"]):
        times = cells(method, lambda row: f"{row['fit_seconds']:.1f} / {row['fit_cpu_seconds']:.1f}")
        lines.append(f"| {label} | " + " | ".join(times) + " |")
    sections.append("\n".join(lines))
    return "\n\n".join(sections)


def verdicts(results: dict[str, pd.DataFrame], reference: str = ABLATION_REFERENCE) -> str:
    """The questions the ablation answers, per cohort, as markdown: does the default model beat the
    strongest radiomics baseline (:data:`RADIOMICS_BASELINE`), does a CNN branch add (:data:`WITH_CNN`)?

    Examples
    --------
    >>> print(verdicts({"seed11": read_results("runs/seed11")}))   # doctest: +SKIP
    """
    lines = ["**Verdicts** (paired subject-bootstrap 95% CIs; a difference is method − default model)", ""]
    for name, frame in results.items():
        rows = frame.set_index("method")
        default = rows.loc[reference]
        line = [f"- {name}: default model pAUC {default['pauc']:.3f}, PR AUC {default['pr_auc']:.3f}"]
        if RADIOMICS_BASELINE in rows.index:
            rf = rows.loc[RADIOMICS_BASELINE]
            beaten = rf["pauc_diff_ci_high"] < 0
            line.append(f"; {RADIOMICS_BASELINE} − default: pAUC {difference(rf, 'pauc', significance=None)} "
                        f"({'default better' if beaten else 'not significant'})")
        if WITH_CNN in rows.index:
            cnn = rows.loc[WITH_CNN]
            adds = cnn["pr_auc_diff"] >= 0.03
            line.append(f"; adding the CNN: PR AUC {difference(cnn, 'pr_auc', significance=None)} "
                        f"({'adds >= 0.03' if adds else 'adds < 0.03'})")
        lines.append("".join(line))
    return "\n".join(lines)


def plot_ablation(results: dict[str, pd.DataFrame], reference: str = ABLATION_REFERENCE):
    """Forest plot: each method's paired difference from the reference, per cohort, pAUC and PR AUC.

    Examples
    --------
    >>> plot_ablation({"seed11": read_results("runs/seed11")}).savefig("ablation.png")   # doctest: +SKIP
    """
    from matplotlib.figure import Figure

    every = pd.concat(list(results.values()), ignore_index=True).drop_duplicates("method")
    methods = [m for m in every["method"] if m != reference]
    labels = every.set_index("method").loc[methods, "label"].tolist()
    figure = Figure(figsize=(12, 0.42 * len(methods) + 1.8))
    axes = figure.subplots(1, 2, sharey=True)
    colours = ("tab:blue", "tab:orange", "tab:green", "tab:red")
    offsets = np.linspace(-0.25, 0.25, len(results)) if len(results) > 1 else [0.0]
    positions = np.arange(len(methods))[::-1]
    for axis, metric, title in zip(axes, ("pauc", "pr_auc"), ("Δ pAUC (FPR ≤ 0.1)", "Δ PR AUC")):
        for (name, frame), offset, colour in zip(results.items(), offsets, colours):
            rows = frame.set_index("method").reindex(methods)  # NaN (no point) where a cohort lacks a method
            centre = rows[f"{metric}_diff"].to_numpy()
            low, high = rows[f"{metric}_diff_ci_low"].to_numpy(), rows[f"{metric}_diff_ci_high"].to_numpy()
            axis.errorbar(centre, positions + offset, xerr=[centre - low, high - centre], fmt="o", ms=4,
                          color=colour, capsize=2, label=name)
        axis.axvline(0.0, color="black", lw=0.8)
        axis.set_xlabel(f"{title}: method − default model")
        axis.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(positions, labels)
    handles, names = axes[1].get_legend_handles_labels()  # below the panels: it hides no point
    figure.legend(handles, names, loc="lower center", ncol=len(names), fontsize=9, title="cohort", frameon=False)
    figure.suptitle("Ablation: each change to the default model, paired 95% subject-bootstrap CIs")
    figure.tight_layout(rect=(0, 0.07, 1, 1))
    return figure


@contextmanager
def results_folder(out: str | os.PathLike, *, force: bool = False) -> Iterator[Path]:
    """A benchmark's output folder, written whole or not at all: yields a temporary folder that
    becomes ``out`` when the block ends without an error (an existing ``out`` only with ``force``).

    Examples
    --------
    >>> with results_folder("results/ablation", force=True) as tmp:   # doctest: +SKIP
    ...     (tmp / "summary.md").write_text(text)
    """
    with atomic_output_dir(out, force=force) as tmp:
        yield tmp
