"""Pool the varied protocols of several ``bench_acquisition.py`` runs: one estimate, with a CI.

One acquisition pair has 30-40 rim+ lesions among its varied protocols, so its pAUC and PR AUC
move by a few hundredths from pair to pair. This script reads the ``predictions.tsv`` (or
``predictions.tsv.gz``) of several runs (each a pair of cohorts of its own seed) and scores the
varied lesions of all of them together, seen (subject-grouped CV) and unseen (each protocol
left out of training), with a 95 % subject-bootstrap interval (whole subjects drawn with
replacement, across all pairs). The probabilities of different runs come from different models,
so the pooled figure is that of "the default model as trained on a pair like these", not of one
model.

It also pools the isointense rim- lesions of the varied protocols called rim+ at each run's own
threshold, by noise level and size tercile (the terciles of each run's isointense rim- lesions,
fixed sites included, as ``bench_acquisition.py`` makes them), each with its count and Wilson
interval.

Run from the repository root::

    .venv/bin/python benchmarks/pool_acquisition.py RUN [RUN ...] [--method default] [--out FILE]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from rimclf.metrics import partial_roc_auc, pr_auc, subject_bootstrap

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cell_rates import wilson_interval  # noqa: E402 (beside this script)


def read_runs(folders: list[Path]) -> pd.DataFrame:
    """The predictions of every run, with a subject key unique across runs (``subject``)."""
    parts = []
    for folder in folders:
        path = Path(folder) / "predictions.tsv"
        if not path.is_file() and path.with_suffix(".tsv.gz").is_file():
            path = path.with_suffix(".tsv.gz")  # as stored under benchmarks/results/
        if not path.is_file():
            raise SystemExit(f"pool_acquisition: {path} does not exist; run bench_acquisition.py --out {folder} first")
        part = pd.read_csv(path, sep="\t", dtype={"participant_id": str, "site": str})
        part["subject"] = part["pair_seed"].astype(str) + ":" + part["participant_id"]
        parts.append(part)
    runs = pd.concat(parts, ignore_index=True)
    if runs.duplicated(["subject", "lesion_id"]).any():  # the subject key holds the pair seed
        raise SystemExit("pool_acquisition: two runs of the same pair seed were given; give each run once")
    return runs


def pooled_scores(runs: pd.DataFrame, method: str, n_boot: int = 1000, random_state: int = 0) -> pd.DataFrame:
    """pAUC and PR AUC of the varied lesions of all runs pooled, seen and unseen, with 95 % CIs.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = (rng.random(400) < 0.1).astype(int)
    >>> runs = pd.DataFrame({"pair_seed": 1, "cohort": "varied", "subject": np.repeat(np.arange(40), 10).astype(str),
    ...                      "rim": y, "default_seen": y + rng.random(400), "default_unseen": y + rng.random(400)})
    >>> pooled_scores(runs, "default", n_boot=50)["pauc"].round(3).tolist()
    [1.0, 1.0]
    """
    varied = runs[runs["cohort"] == "varied"]
    y = varied["rim"].to_numpy(int)
    groups = varied["subject"].to_numpy()
    rows = []
    for evaluation in ("seen", "unseen"):
        score = varied[f"{method}_{evaluation}"].to_numpy(float)
        values, _ = subject_bootstrap(lambda i: (partial_roc_auc(y[i], score[i]), pr_auc(y[i], score[i])),
                                      y, groups, n_boot, random_state=random_state)
        low, high = np.percentile(values, [2.5, 97.5], axis=0)
        rows.append({"evaluation": evaluation, "lesions": len(y), "rim+": int(y.sum()),
                     "pauc": partial_roc_auc(y, score), "pauc_low": low[0], "pauc_high": high[0],
                     "pr_auc": pr_auc(y, score), "pr_auc_low": low[1], "pr_auc_high": high[1]})
    return pd.DataFrame(rows)


def isointense_rates(runs: pd.DataFrame) -> pd.DataFrame:
    """Isointense rim- lesions of the varied protocols called rim+ at each run's own threshold, by
    noise level and size tercile (within each run), pooled over runs: counts, rates, Wilson CIs."""
    iso = runs[(runs["pattern"] == "iso") & (runs["rim"] == 0)].copy()
    iso["size"] = iso.groupby("pair_seed")["n_voxels"].transform(  # the terciles of bench_acquisition.py's tables
        lambda n: pd.qcut(n, 3, labels=["small", "mid", "large"]).astype(str))
    iso = iso[iso["cohort"] == "varied"]
    iso["noise"] = iso["noise"].str.replace("varied, ", "", regex=False)
    rows = []
    for noise, by_noise in iso.groupby("noise"):
        for size, cell in [*by_noise.groupby("size"), ("all sizes", by_noise)]:
            k, n = int(cell["called"].sum()), len(cell)
            low, high = wilson_interval(k, n)
            rows.append({"noise": noise, "size": size, "k": k, "n": n, "rate": k / n, "low": low, "high": high})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="output folders of bench_acquisition.py")
    parser.add_argument("--method", default="default", help="the method whose probabilities are pooled")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    parser.add_argument("--out", type=Path, default=None, help="also write the tables to this markdown file")
    args = parser.parse_args(argv)
    runs = read_runs(args.runs)
    if f"{args.method}_seen" not in runs:
        raise SystemExit(f"pool_acquisition: no method {args.method!r} in the runs' predictions")
    scores = pooled_scores(runs, args.method, args.n_boot, args.seed)
    rates = isointense_rates(runs)
    seeds = ", ".join(str(seed) for seed in sorted(runs["pair_seed"].unique()))
    text = (f"Varied protocols of the pairs of seeds {seeds}, pooled ({args.method}; 95 % subject-bootstrap CI, "
            f"{args.n_boot} resamples):\n\n" + scores.to_markdown(index=False, floatfmt=".3f")
            + "\n\nIsointense rim- lesions of the varied protocols called rim+ at each run's own threshold:\n\n"
            + rates.to_markdown(index=False, floatfmt=".3f") + "\n")
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
