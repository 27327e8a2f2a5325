"""Figures of the imbalance benchmark: ROC and PR curves per method, and a forest plot of the
paired differences against the reference. Built on :class:`matplotlib.figure.Figure` (no
pyplot state), so they work under any backend and in notebooks."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

from rimclf.benchmark._methods import METHODS, REFERENCE
from rimclf.benchmark._summary import METRIC_LABELS, METRICS

_FPR_GRID = np.unique(np.r_[np.linspace(0.0, 0.1, 101), np.linspace(0.1, 1.0, 181)])
_RECALL_GRID = np.linspace(0.0, 1.0, 201)


def _label(name: str) -> str:
    return METHODS[name].label if name in METHODS else name


def _family(name: str) -> str:
    return METHODS[name].family if name in METHODS else "radiomics"


def _mean_curves(predictions: pd.DataFrame, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Vertically averaged ROC (TPR on an FPR grid) and PR (precision on a recall grid) curves
    of the method's pooled out-of-fold predictions, averaged over repeats."""
    rows = predictions[predictions["method"] == method]
    tprs, precisions = [], []
    for _, repeat in rows.groupby("repeat"):
        labels = repeat["rim"].to_numpy(dtype=int)
        scores = repeat["probability"].to_numpy(dtype=float)
        fpr, tpr, _ = roc_curve(labels, scores)
        tprs.append(np.interp(_FPR_GRID, fpr, tpr))
        precision, recall, _ = precision_recall_curve(labels, scores)
        # recall decreases along the arrays; precision at the first point reaching each recall
        order = np.argsort(recall, kind="stable")
        positions = np.searchsorted(recall[order], _RECALL_GRID, side="left").clip(max=recall.size - 1)
        precisions.append(precision[order][positions])
    return np.mean(tprs, axis=0), np.mean(precisions, axis=0)


def _panels(methods: list[str]) -> list[tuple[str, list[str]]]:
    network = [m for m in methods if _family(m) == "network"]
    radiomics = [m for m in methods if _family(m) != "network"]
    panels = []
    if network:
        panels.append(("QSMRim-Net variants", network))
    if radiomics:
        with_reference = ([REFERENCE] if REFERENCE in methods else []) + radiomics
        panels.append(("radiomics baselines", with_reference))
    return panels


def _colors(methods: list[str]) -> dict[str, tuple]:
    from matplotlib import colormaps

    palette = colormaps["tab20"].colors
    return {method: ("black" if method == REFERENCE else palette[i % len(palette)]) for i, method in enumerate(methods)}


def plot_curves(predictions: pd.DataFrame, results: pd.DataFrame, kind: str = "roc") -> Figure:
    """ROC (``kind="roc"``) or precision-recall (``kind="pr"``) curves of every method.

    Out-of-fold predictions are pooled per repeat and the curves averaged over repeats. Left
    panel: the QSMRim-Net variants; right: the radiomics baselines with the reference. The ROC
    panels shade FPR <= 0.1, the range of the partial AUC; the PR panels mark the rim+ prevalence
    (a random score's average precision).
    """
    methods = list(dict.fromkeys(predictions["method"]))
    estimates = results.set_index("method")
    colors = _colors(methods)
    panels = _panels(methods)
    figure = Figure(figsize=(6.2 * len(panels), 5.4), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    curves = {method: _mean_curves(predictions, method) for method in methods}
    first = predictions[(predictions["method"] == methods[0]) & (predictions["repeat"] == predictions["repeat"].min())]
    prevalence = float(first["rim"].mean())
    for axis, (title, members) in zip(axes, panels):
        for method in members:
            tpr, precision = curves[method]
            style = {"color": colors[method], "linewidth": 2.2 if method == REFERENCE else 1.4}
            if kind == "roc":
                label = f"{_label(method)} (pAUC {estimates.loc[method, 'pauc']:.3f})"
                axis.plot(_FPR_GRID, tpr, label=label, **style)
            else:
                label = f"{_label(method)} (AP {estimates.loc[method, 'pr_auc']:.3f})"
                axis.step(_RECALL_GRID, precision, where="post", label=label, **style)
        if kind == "roc":
            axis.axvspan(0.0, 0.1, color="0.9", zorder=0, label="FPR ≤ 0.1 (pAUC)")
            axis.plot([0, 1], [0, 1], color="0.6", linestyle=":", linewidth=1)
            axis.set_xlabel("false-positive rate (1 − specificity)")
            axis.set_ylabel("true-positive rate (sensitivity)")
        else:
            axis.axhline(prevalence, color="0.6", linestyle=":", linewidth=1, label=f"prevalence {prevalence:.3f}")
            axis.set_xlabel("recall (sensitivity)")
            axis.set_ylabel("precision (positive predictive value)")
        axis.set_xlim(0, 1)
        axis.set_ylim(0, 1.01)
        axis.set_title(title)
        axis.legend(fontsize=7.5, loc="lower right" if kind == "roc" else "best")
    figure.suptitle(("ROC" if kind == "roc" else "Precision-recall") + " curves, pooled out-of-fold predictions")
    return figure


def plot_paired_differences(results: pd.DataFrame, reference: str = REFERENCE) -> Figure:
    """Forest plot of ``metric(method) - metric(reference)`` with paired subject-bootstrap CIs.

    One panel per metric (pAUC, PR AUC, ROC AUC), one row per method; points right of 0 mean the
    method beats the reference. Filled markers: bootstrap p < 0.05.
    """
    rows = results[results["method"] != reference].iloc[::-1]
    figure = Figure(figsize=(13.0, 1.6 + 0.34 * max(len(rows), 1)), layout="constrained")
    axes = figure.subplots(1, len(METRICS), sharey=True, squeeze=False)[0]
    positions = np.arange(len(rows))
    for axis, metric in zip(axes, METRICS):
        diff = rows[f"{metric}_diff"].to_numpy(dtype=float)
        low = rows[f"{metric}_diff_ci_low"].to_numpy(dtype=float)
        high = rows[f"{metric}_diff_ci_high"].to_numpy(dtype=float)
        significant = rows[f"{metric}_diff_p"].to_numpy(dtype=float) < 0.05
        axis.axvline(0.0, color="0.4", linewidth=1)
        axis.hlines(positions, low, high, color="tab:blue", linewidth=1.6)
        axis.plot(diff[significant], positions[significant], "o", color="tab:blue", markersize=6)
        axis.plot(diff[~significant], positions[~significant], "o", markerfacecolor="white",
                  markeredgecolor="tab:blue", markersize=6)
        axis.set_title(f"Δ {METRIC_LABELS[metric]}")
        axis.set_xlabel(f"method − {_label(reference)}")
        axis.grid(axis="x", color="0.92")
    axes[0].set_yticks(positions, [_label(method) for method in rows["method"]])
    figure.suptitle("Paired differences against the reference (95% subject-bootstrap CI; filled: p < 0.05)")
    return figure
