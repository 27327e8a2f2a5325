"""Figures of the benchmarks: ROC and PR curves per method, and a forest plot of the
paired differences against the reference. Built on :class:`matplotlib.figure.Figure` (no
pyplot state), so they work under any backend and in notebooks.

Readability rules: each panel colours its methods with a qualitative palette (tab10, one hue per
method; the reference is a thick black line) and draws network variants solid and baselines
dashed; legends sit below the axes, so they hide no curve; the ROC figure adds, under
each panel, the pAUC region (FPR <= 0.1) zoomed to the full width. The curves are drawn with
scikit-learn's :class:`~sklearn.metrics.RocCurveDisplay` and
:class:`~sklearn.metrics.PrecisionRecallDisplay`.
"""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import PrecisionRecallDisplay, RocCurveDisplay, precision_recall_curve, roc_curve

from rimclf.benchmark._summary import SHORT_METRIC_LABELS, METRICS, _KNOWN, _label

_FPR_GRID = np.unique(np.r_[np.linspace(0.0, 0.1, 101), np.linspace(0.1, 1.0, 181)])
_RECALL_GRID = np.linspace(0.0, 1.0, 201)
#: The partial-AUC range of the ROC figures.
MAX_FPR = 0.1
#: Line style by method family.
FAMILY_STYLES = {"network": "-", "baseline": (0, (5, 2))}
_PAUC_SHADE = "#fff2b3"


def _family(name: str) -> str:
    return _KNOWN[name].family if name in _KNOWN else "baseline"


def reference_of(results: pd.DataFrame) -> str | None:
    """The method the results compare every other one with: the one row without a paired
    difference when the others have one (None when nothing was compared)."""
    if "pauc_diff" not in results or len(results) < 2:
        return None
    missing = results["pauc_diff"].isna()
    return str(results.loc[missing, "method"].iloc[0]) if missing.sum() == 1 else None


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


def _panels(methods: list[str], reference: str | None) -> list[tuple[str, list[str]]]:
    network = [m for m in methods if _family(m) == "network"]
    baselines = [m for m in methods if _family(m) != "network"]
    panels = []
    if network:
        panels.append(("networks", network))
    if baselines:
        with_reference = ([reference] if reference in network else []) + baselines
        panels.append(("baselines", with_reference))
    return panels


def method_styles(members: list[str], reference: str | None = None) -> dict[str, dict]:
    """Line styles of one panel's methods: a distinct tab10/tab20 hue each (the reference black
    and thick), solid for network variants, dashed for baselines."""
    from matplotlib import colormaps

    others = [m for m in members if m != reference]
    palette = colormaps["tab10" if len(others) <= 10 else "tab20"].colors
    styles = {reference: {"color": "black", "linewidth": 2.4, "linestyle": "-", "zorder": 5}}
    for index, method in enumerate(others):
        styles[method] = {"color": palette[index % len(palette)], "linewidth": 1.5,
                          "linestyle": FAMILY_STYLES[_family(method)], "zorder": 3}
    return {method: styles[method] for method in members}


def _draw(display, ax, label: str, style: dict):
    """Draw a scikit-learn curve display on ``ax`` with ``style``; return its line."""
    if "curve_kwargs" in inspect.signature(display.plot).parameters:  # scikit-learn >= 1.7
        display.plot(ax=ax, name=label, curve_kwargs=style)
    else:
        display.plot(ax=ax, name=label, **style)
    line = ax.lines[-1]
    if ax.get_legend() is not None:
        ax.get_legend().remove()  # one legend per panel, below it (see _legend_below)
    return line


def _legend_below(ax, handles: list, labels: list[str]) -> None:
    ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=7.5, frameon=False,
              ncol=1, handlelength=3.2)


def plot_curves(predictions: pd.DataFrame, results: pd.DataFrame, kind: str = "roc") -> Figure:
    """ROC (``kind="roc"``) or precision-recall (``kind="pr"``) curves of every method.

    Out-of-fold predictions are pooled per repeat and the curves averaged over repeats. Left
    panels: the network variants; right: the baselines with the reference. The ROC
    figure shades FPR <= 0.1, the range of the partial AUC, and zooms into it in a second row;
    the PR panels mark the rim+ prevalence (a random score's average precision). Legends with
    each method's pAUC (ROC) or average precision (PR) stand below the panels.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from rimclf.benchmark import summarize_predictions
    >>> rng = np.random.default_rng(0)
    >>> rim = np.tile([1, 0, 0, 0, 0], 8)                  # 8 subjects of 5 lesions, one rim+ each
    >>> lesions = pd.DataFrame({"participant_id": np.repeat([f"{i:02d}" for i in range(1, 9)], 5),
    ...                         "lesion_id": np.tile(np.arange(1, 6), 8), "rim": rim})
    >>> predictions = pd.concat([                          # what predictions.tsv holds
    ...     lesions.assign(method=name, repeat=0, fold=0, probability=gain * rim + rng.uniform(0, 0.5, 40))
    ...     for name, gain in (("default", 0.5), ("rf_rim", 0.2))])
    >>> results = summarize_predictions(predictions, reference="default", n_boot=200, random_state=0)
    >>> figure = plot_curves(predictions, results, kind="pr")   # a matplotlib Figure
    >>> figure.savefig("pr_curves.png")                         # doctest: +SKIP
    """
    methods = list(dict.fromkeys(predictions["method"]))
    estimates = results.set_index("method")
    reference = reference_of(results)
    panels = _panels(methods, reference)
    curves = {method: _mean_curves(predictions, method) for method in methods}
    first = predictions[(predictions["method"] == methods[0]) & (predictions["repeat"] == predictions["repeat"].min())]
    prevalence = float(first["rim"].mean())
    longest = max(len(members) for _, members in panels)
    legend_height = 0.22 * (longest + 1)
    if kind == "roc":
        figure = Figure(figsize=(6.0 * len(panels), 9.2 + legend_height), layout="constrained")
        grid = figure.subplots(2, len(panels), squeeze=False, height_ratios=[5.0, 2.6 + legend_height])
    else:
        figure = Figure(figsize=(6.0 * len(panels), 5.6 + legend_height), layout="constrained")
        grid = figure.subplots(1, len(panels), squeeze=False)
    for column, (title, members) in enumerate(panels):
        styles = method_styles(members, reference)
        handles, labels = [], []
        axis = grid[0, column]
        for method in members:
            tpr, precision = curves[method]
            if kind == "roc":
                label = f"{_label(method)} (pAUC {estimates.loc[method, 'pauc']:.3f})"
                line = _draw(RocCurveDisplay(fpr=_FPR_GRID, tpr=tpr), axis, label, styles[method])
                _draw(RocCurveDisplay(fpr=_FPR_GRID, tpr=tpr), grid[1, column], label, styles[method])
            else:
                label = f"{_label(method)} (AP {estimates.loc[method, 'pr_auc']:.3f})"
                display = PrecisionRecallDisplay(precision=precision, recall=_RECALL_GRID, prevalence_pos_label=prevalence)
                line = _draw(display, axis, label, {**styles[method], "drawstyle": "steps-post"})
            handles.append(line)
            labels.append(label)
        if kind == "roc":
            _decorate_roc(axis, grid[1, column], title)
            shade = axis.patches[0]
            handles.append(shade)
            labels.append(f"FPR ≤ {MAX_FPR:g}: the pAUC region (zoomed below)")
            _legend_below(grid[1, column], handles, labels)
        else:
            (chance,) = axis.plot([0, 1], [prevalence, prevalence], color="0.45", linestyle=":", linewidth=1.2)
            handles.append(chance)
            labels.append(f"chance: prevalence {prevalence:.3f}")
            axis.set(xlim=(0, 1), ylim=(0, 1.01), aspect="auto", title=title,
                     xlabel="recall (sensitivity)", ylabel="precision (positive predictive value)")
            _legend_below(axis, handles, labels)
    figure.suptitle(("ROC" if kind == "roc" else "Precision-recall") + " curves, pooled out-of-fold predictions "
                    "(mean over repeats)")
    return figure


def _decorate_roc(axis, zoom, title: str) -> None:
    """Full ROC panel on top (pAUC region shaded), the pAUC region zoomed below."""
    axis.axvspan(0.0, MAX_FPR, color=_PAUC_SHADE, zorder=0, linewidth=0)
    axis.plot([0, 1], [0, 1], color="0.6", linestyle=":", linewidth=1)
    axis.set(xlim=(0, 1), ylim=(0, 1.01), aspect="auto", title=title,
             xlabel="false-positive rate (1 − specificity)", ylabel="true-positive rate (sensitivity)")
    zoom.set_facecolor(_PAUC_SHADE)
    zoom.plot([0, MAX_FPR], [0, MAX_FPR], color="0.6", linestyle=":", linewidth=1)
    zoom.set(xlim=(0, MAX_FPR), ylim=(0, 1.01), aspect="auto",
             title=f"the pAUC region, FPR 0–{MAX_FPR:g}, zoomed",
             xlabel="false-positive rate (1 − specificity)", ylabel="true-positive rate")
    zoom.grid(color="white", linewidth=0.8)


def plot_paired_differences(results: pd.DataFrame, reference: str | None = None) -> Figure:
    """Forest plot of ``metric(method) - metric(reference)`` with paired subject-bootstrap CIs.

    One panel per metric (pAUC, PR AUC, ROC AUC), one row per method; points right of 0 mean the
    method beats the reference (default: :func:`reference_of` the results). Filled markers:
    bootstrap p < 0.05.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from rimclf.benchmark import summarize_predictions
    >>> rng = np.random.default_rng(0)
    >>> rim = np.tile([1, 0, 0, 0, 0], 8)                  # 8 subjects of 5 lesions, one rim+ each
    >>> lesions = pd.DataFrame({"participant_id": np.repeat([f"{i:02d}" for i in range(1, 9)], 5),
    ...                         "lesion_id": np.tile(np.arange(1, 6), 8), "rim": rim})
    >>> predictions = pd.concat([                          # what predictions.tsv holds
    ...     lesions.assign(method=name, repeat=0, fold=0, probability=gain * rim + rng.uniform(0, 0.5, 40))
    ...     for name, gain in (("default", 0.5), ("rf_rim", 0.2))])
    >>> results = summarize_predictions(predictions, reference="default", n_boot=200, random_state=0)
    >>> figure = plot_paired_differences(results)               # pAUC, PR AUC, ROC AUC panels
    >>> len(figure.axes)
    3
    >>> figure.savefig("paired_differences.png")                # doctest: +SKIP
    """
    reference = reference_of(results) if reference is None else reference
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
        axis.set_title(f"Δ {SHORT_METRIC_LABELS[metric]}")
        axis.set_xlabel(f"method − {_label(reference)}")
        axis.grid(axis="x", color="0.92")
    axes[0].set_yticks(positions, [_label(method) for method in rows["method"]])
    figure.suptitle("Paired differences against the reference (95% subject-bootstrap CI; filled: p < 0.05)")
    return figure
