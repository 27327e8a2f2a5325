"""Rates per table cell with their uncertainty, for ``bench_acquisition.py``'s isointense tables.

A cell's rate is k of n lesions called rim+; its 95 % interval is the Wilson score interval of a
binomial proportion,

    (p + z²/2n ± z √(p(1 − p)/n + z²/4n²)) / (1 + z²/n),   p = k/n, z = Φ⁻¹(0.975),

which, unlike p ± z √(p(1 − p)/n), stays inside [0, 1] and does not shrink to a point at k = 0.
Each cell is read against a promised rate ± a tolerance (0.10 ± 0.03 at specificity 0.9): above
it when the whole interval lies above the band, below it when the whole interval lies below, else
compatible with it. Whether the cells differ at all is a chi-square test of homogeneity of the
cells × (called, not called) table, with a Monte Carlo permutation p-value beside the asymptotic
one (the expected calls per cell are often below 5).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import chi2_contingency, norm


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of the proportion ``k / n``.

    Examples
    --------
    >>> [round(bound, 4) for bound in wilson_interval(1, 10)]
    [0.0179, 0.4042]
    """
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"wilson_interval: need 0 <= k <= n and n > 0, got k={k}, n={n}")
    z = norm.ppf(0.5 + confidence / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (0.0 if k == 0 else float(centre - half)), (1.0 if k == n else float(centre + half))  # exact ends, no rounding residue


def rate_cells(called: pd.DataFrame, lesions: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """One row per cell of ``called`` (lesions called rim+) and ``lesions`` (lesions in the cell),
    two tables of one shape: row, column, k, n, rate and the Wilson interval. Empty cells are left out."""
    rows = []
    for row in lesions.index:
        for column in lesions.columns:
            n = lesions.at[row, column]
            if pd.isna(n) or n == 0:
                continue
            k, n = int(called.at[row, column]), int(n)
            low, high = wilson_interval(k, n, confidence)
            rows.append({"row": str(row), "column": str(column), "k": k, "n": n, "rate": k / n, "low": low, "high": high})
    return pd.DataFrame(rows, columns=["row", "column", "k", "n", "rate", "low", "high"])


def format_cells(cells: pd.DataFrame, like: pd.DataFrame) -> pd.DataFrame:
    """``like``'s layout with each cell written as "rate [low, high] (k/n)"."""
    text = pd.DataFrame("", index=like.index.astype(str), columns=like.columns.astype(str))
    text.index.name, text.columns.name = like.index.name, like.columns.name
    for cell in cells.itertuples():
        text.at[cell.row, cell.column] = f"{cell.rate:.3f} [{cell.low:.2f}, {cell.high:.2f}] ({cell.k}/{cell.n})"
    return text


def homogeneity(k: np.ndarray, n: np.ndarray, n_permutations: int = 10_000, random_state: int = 0) -> dict:
    """Chi-square test that the cells share one rate: statistic, dof, asymptotic p, and the
    permutation p (calls redistributed over the cells with every margin fixed), the smallest expected count."""
    k, n = np.asarray(k, dtype=int), np.asarray(n, dtype=int)
    result = {"statistic": float("nan"), "dof": int(k.size - 1), "p": float("nan"), "p_permutation": float("nan"),
              "n_permutations": n_permutations, "min_expected": float("nan")}
    total = int(k.sum())
    if k.size < 2 or total == 0 or total == n.sum():
        return result  # one cell, or no variation at all: nothing to test
    observed = chi2_contingency(np.column_stack([k, n - k]), correction=False)
    rate = total / n.sum()
    draws = np.random.default_rng(random_state).multivariate_hypergeometric(n, total, size=n_permutations)
    simulated = ((draws - n * rate) ** 2 / (n * rate * (1 - rate))).sum(axis=1)
    extreme = int((simulated >= observed.statistic * (1 - 1e-9)).sum())
    result.update(statistic=float(observed.statistic), dof=int(observed.dof), p=float(observed.pvalue),
                  p_permutation=(1 + extreme) / (1 + n_permutations), min_expected=float(observed.expected_freq.min()))
    return result


def verdict(cells: pd.DataFrame, promised: float, tolerance: float, test: dict) -> dict:
    """How many cells' intervals lie wholly above ``promised + tolerance``, wholly below
    ``promised - tolerance``, or overlap the band; which; and the homogeneity ``test``."""
    above = cells[cells["low"] > promised + tolerance]
    below = cells[cells["high"] < promised - tolerance]
    name = lambda chosen: [f"{cell.row}, {cell.column}" for cell in chosen.itertuples()]  # noqa: E731
    return {"cells": len(cells), "band": [round(promised - tolerance, 10), round(promised + tolerance, 10)],
            "above": name(above), "below": name(below), "compatible": len(cells) - len(above) - len(below),
            "homogeneity": test}


def describe_verdict(result: dict) -> str:
    """The verdict in one line of markdown."""
    low, high = result["band"]
    test = result["homogeneity"]
    listed = lambda names: f" ({'; '.join(names)})" if names else ""  # noqa: E731
    line = (f"Verdict over the {result['cells']} cells (95 % Wilson intervals against {(low + high) / 2:.2f} ± "
            f"{(high - low) / 2:.2f}): {len(result['above'])} wholly above {high:.2f}{listed(result['above'])}, "
            f"{len(result['below'])} wholly below {low:.2f}{listed(result['below'])}, {result['compatible']} "
            f"compatible with the band. ")
    if np.isnan(test["statistic"]):
        return line + "Homogeneity across the cells: not testable (no variation)."
    p_text = lambda p: f"{p:.3f}" if p >= 0.001 else "< 0.001"  # noqa: E731
    return line + (f"Homogeneity across the cells: chi-square {test['statistic']:.1f}, dof {test['dof']}, "
                   f"p {p_text(test['p'])} (permutation p {p_text(test['p_permutation'])}, {test['n_permutations']:,} "
                   f"draws with the margins fixed; smallest expected count {test['min_expected']:.1f}).")
