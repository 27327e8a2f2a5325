"""The per-subject figure of rim+ counts: expected count with its 90 % interval, count at the threshold, truth."""

from __future__ import annotations

import numpy as np
import pandas as pd


def subject_counts_figure(counts: pd.DataFrame, *, title: str = ""):
    """A matplotlib ``Figure`` of each subject's rim+ count, subjects sorted by expected count.

    Parameters
    ----------
    counts : pandas.DataFrame
        One row per subject (or scan) with ``participant_id``, ``expected_rim_pos``,
        ``rim_pos_low_90``, ``rim_pos_high_90``, ``n_rim_pos_predicted`` and optionally
        ``n_rim_pos_true`` (and ``session``): the columns of ``subjects.tsv``.

    Examples
    --------
    >>> import pandas as pd
    >>> counts = pd.DataFrame({"participant_id": ["01", "02"], "expected_rim_pos": [0.4, 3.2],
    ...                        "rim_pos_low_90": [0, 1], "rim_pos_high_90": [1, 5], "n_rim_pos_predicted": [0, 3]})
    >>> subject_counts_figure(counts).savefig("subjects.png")       # doctest: +SKIP
    """
    from matplotlib.figure import Figure  # the object API: no pyplot state, the user's backend untouched

    counts = counts.sort_values("expected_rim_pos", kind="stable").reset_index(drop=True)
    x = np.arange(len(counts))
    expected = counts["expected_rim_pos"].to_numpy(dtype=float)
    fig = Figure(figsize=(max(5.0, 0.22 * len(counts) + 2.0), 4.0))
    ax = fig.subplots()
    # the interval of a discrete count need not contain the mean (one lesion at 0.98: mean 0.98, interval [1, 1])
    ax.vlines(x, counts["rim_pos_low_90"].to_numpy(dtype=float), counts["rim_pos_high_90"].to_numpy(dtype=float),
              color="tab:blue", lw=1.5, alpha=0.6, label="90% interval")
    ax.plot(x, expected, "o", color="tab:blue", ms=4, label="expected count")
    ax.plot(x, counts["n_rim_pos_predicted"], "_", color="tab:orange", ms=9, mew=2, label="count at the threshold")
    if "n_rim_pos_true" in counts:
        ax.plot(x, counts["n_rim_pos_true"], "x", color="black", ms=5, label="true count")
    ax.axhline(3.5, color="grey", ls=":", lw=1, label="4 or more above")
    names = [str(p).removeprefix("sub-") for p in counts["participant_id"]]
    if "session" in counts:
        names = [f"{n} {s}".strip() if isinstance(s, str) and s not in ("", "n/a") else n for n, s in zip(names, counts["session"])]
    ax.set_xticks(x, names, rotation=90, fontsize=6)
    ax.set(xlabel="subject", ylabel="rim+ lesions", title=title or "rim+ lesions per subject")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig
