"""Does QSMRim-Net learn? Its branches and the QSM patch normalisation, on one phantom cohort.

One default-difficulty phantom cohort, one set of subject-grouped folds shared by every
configuration, the default network (``rimclf.defaults.DEFAULT_MODEL``: ResNet3D depth 10, width 16,
32³ patches) with DeepSMOTE, and one training seed per fold shared by every configuration; folds,
seeds and the cross-validation loop are the imbalance benchmark's
(``rimclf.benchmark.make_repeated_folds`` and ``cross_validate_method``). Configurations:

- branches: fused (ResNet3D on patches + MLP on radiomics, the reference), CNN only, radiomics
  only (the same network with one branch), all on NAWM-normalised patches;
- patch normalisation (``PatchExtractor(normalize=...)``) with the CNN-only network, the one that
  sees nothing but the patches: "nawm" (reference), "none" (QSM in ppb, FLAIR in scanner units),
  "zscore" (each patch channel standardised on its own).

Out-of-fold rim+ probabilities of all folds are pooled; reported are the standardised partial
ROC AUC (FPR <= 0.1), PR AUC and ROC AUC with subject-bootstrap 95 % CIs, and paired
subject-bootstrap differences against the fused/NAWM reference and, for the normalisations,
against the CNN-only/NAWM network. The mean training loss of the first and last epoch shows
that the network fits at all. The cohort is kept in ``WORK/<difficulty>-seed<S>-<N>/cohort`` and
the features are cached in ``WORK/cache`` (about 1 GB for 30 subjects, hence outside the
repository by default), so a rerun only retrains. Run from the repository root::

    .venv/bin/python benchmarks/bench_ablation.py [--subjects 30] [--epochs 15] [--folds 3]
        [--seed 0] [--out benchmarks/results/ablation] [--work DIR] [--normalizations none zscore]
        [--force]

The default run takes about 17 minutes on 2 shared CPU cores (phantom and features about
2 minutes cold; each CNN configuration about 3 minutes, the radiomics-only network seconds).
Writes ``OUT/results.csv`` (one row per configuration), ``OUT/results.json`` (settings,
versions, command, timings, rows), ``OUT/folds.csv`` (per fold: sizes, fit times, training
loss, DeepSMOTE rows per epoch), ``OUT/predictions.tsv`` (out-of-fold scores) and
``OUT/table.md`` (the printed markdown table).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from rimclf.defaults import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parent.parent
METRICS = {"pauc": "pAUC (FPR ≤ 0.1)", "pr_auc": "PR AUC", "roc_auc": "ROC AUC"}
VERSIONED = ("rimclf", "torch", "skorch", "scikit-learn", "numpy", "pyradiomics", "imbalanced-learn")


@dataclass(frozen=True)
class Config:
    """One configuration, a "method" of ``rimclf.benchmark.cross_validate_method``."""

    name: str
    label: str
    branches: str
    normalize: str | None  # None: no patches used
    baseline: str | None = None  # besides the fused reference, compared with this configuration

    def make_estimator(self, settings, random_state: int):
        """The default network (``DEFAULT_MODEL``) with these branches and the run's training settings."""
        from rimclf.classifier import make_classifier

        return make_classifier(
            settings.model_config(branches=self.branches, depth=DEFAULT_MODEL.depth, width=DEFAULT_MODEL.width),
            device=settings.device, random_state=random_state,
        )

    def fold_record(self, net) -> dict:
        """Training loss of the first and last epoch, DeepSMOTE rows per epoch."""
        losses = net.history[:, "train_loss"]
        return {"loss_first_epoch": float(losses[0]), "loss_last_epoch": float(losses[-1]),
                "synthetic_rows_per_epoch": float(np.mean(net.history[:, "n_synthetic"]))}


REFERENCE = "fused-nawm"


def make_configs(normalizations: list[str]) -> list[Config]:
    configs = [
        Config(REFERENCE, "fused (CNN + radiomics), NAWM", "both", "nawm"),
        Config("cnn-nawm", "CNN only, NAWM", "patches", "nawm"),
        Config("radiomics", "radiomics only", "radiomics", None),
    ]
    for normalize in normalizations:
        configs.append(
            Config(f"cnn-{normalize}", f"CNN only, {normalize}", "patches", normalize, baseline="cnn-nawm")
        )
    return configs


def phantom_cohort(work: Path, n_subjects: int, seed: int, difficulty: str) -> tuple[Path, float]:
    """``work/cohort``, generated unless one with the same parameters is there."""
    from rimclf.phantom import make_phantom_cohort, read_provenance

    path = work / "cohort"
    provenance = read_provenance(path)
    if provenance is not None:
        parameters = provenance["parameters"]
        if (parameters["n_subjects"], parameters["random_state"], parameters["difficulty"]) == (
            n_subjects, seed, difficulty,
        ):
            return path, 0.0
    start = time.perf_counter()
    make_phantom_cohort(path, n_subjects=n_subjects, random_state=seed, difficulty=difficulty, force=True)
    return path, time.perf_counter() - start


def extract(table: pd.DataFrame, configs: list[Config], cache: Path) -> tuple[dict, dict[str, float]]:
    """Radiomics once, and patches once per normalisation (each a separate, cached extraction)."""
    from rimclf.features import make_featurizer

    seconds = {}
    start = time.perf_counter()
    radiomics = make_featurizer(patches=False, memory=cache, progress=False).transform(table)["radiomics"]
    seconds["radiomics"] = time.perf_counter() - start
    patches = {}
    for normalize in dict.fromkeys(c.normalize for c in configs if c.normalize is not None):
        start = time.perf_counter()
        featurizer = make_featurizer(replace(DEFAULT_MODEL, normalize=normalize), radiomics=False, memory=cache,
                                     progress=False)
        patches[normalize] = featurizer.transform(table)["patches"]
        seconds[f"patches_{normalize}"] = time.perf_counter() - start
    return {"radiomics": radiomics, "patches": patches}, seconds


def inputs_of(config: Config, features: dict):
    from skorch.helper import SliceDict

    if config.branches == "radiomics":
        return SliceDict(radiomics=features["radiomics"])
    if config.branches == "patches":
        return SliceDict(patches=features["patches"][config.normalize])
    return SliceDict(patches=features["patches"][config.normalize], radiomics=features["radiomics"])


def cross_validate(config: Config, X, y: np.ndarray, folds, fit_seeds, settings) -> tuple[np.ndarray, list[dict]]:
    """Out-of-fold rim+ probabilities and one record per fold (sizes, times, training loss), from the
    imbalance benchmark's cross-validation loop."""
    from rimclf.benchmark import cross_validate_method

    probabilities, _, records = cross_validate_method(config, X, y, folds, fit_seeds, settings, n_jobs=1)
    for record in records:
        print(f"  {config.name} fold {record['fold']}: fit {record['fit_seconds']:.0f} s, train loss "
              f"{record['loss_first_epoch']:.3f} -> {record['loss_last_epoch']:.3f}", flush=True)
    return probabilities[0], records


def summarise(
    configs: list[Config], scores: dict, y, groups, records: list[dict], n_boot: int, seed: int
) -> pd.DataFrame:
    """One row per configuration: metrics with CIs, paired differences, training summary."""
    from rimclf.metrics import bootstrap_ci, paired_bootstrap

    rows = []
    for config in configs:
        row = {"config": config.name, "label": config.label, "branches": config.branches,
               "normalize": config.normalize or "-"}
        mine = [r for r in records if r["method"] == config.name]
        row["fit_seconds_per_fold"] = float(np.mean([r["fit_seconds"] for r in mine]))
        row["loss_first_epoch"] = float(np.mean([r["loss_first_epoch"] for r in mine]))
        row["loss_last_epoch"] = float(np.mean([r["loss_last_epoch"] for r in mine]))
        for metric in METRICS:
            ci = bootstrap_ci(metric, y, scores[config.name], groups, n_boot=n_boot, random_state=seed)
            row.update({metric: ci.estimate, f"{metric}_ci_low": ci.ci_low, f"{metric}_ci_high": ci.ci_high})
            for prefix, other in (("vs_fused", REFERENCE), ("vs_baseline", config.baseline)):
                if other is None or other == config.name:
                    continue
                diff = paired_bootstrap(metric, y, scores[config.name], scores[other], groups,
                                        n_boot=n_boot, random_state=seed)
                row.update({f"{metric}_{prefix}": diff.difference, f"{metric}_{prefix}_ci_low": diff.ci_low,
                            f"{metric}_{prefix}_ci_high": diff.ci_high, f"{metric}_{prefix}_p": diff.p_value})
        row["baseline"] = config.baseline or ""
        rows.append(row)
    return pd.DataFrame(rows)


def _ci(row, metric: str) -> str:
    return f"{row[metric]:.3f} [{row[metric + '_ci_low']:.3f}, {row[metric + '_ci_high']:.3f}]"


def _diff(row, key: str) -> str:
    star = "*" if row[key + "_p"] < 0.05 else ""
    return f"{row[key]:+.3f} [{row[key + '_ci_low']:+.3f}, {row[key + '_ci_high']:+.3f}]{star}"


def markdown(results: pd.DataFrame, header: str) -> str:
    """Two tables: each configuration's metrics, and the paired differences."""
    lines = [
        header, "",
        "| configuration | " + " | ".join(METRICS.values()) + " | train loss, epoch 1 → last | fit s/fold |",
        "|---|" + "---:|" * (len(METRICS) + 2),
    ]
    for _, row in results.iterrows():
        cells = [_ci(row, m) for m in METRICS]
        cells += [f"{row['loss_first_epoch']:.3f} → {row['loss_last_epoch']:.3f}", f"{row['fit_seconds_per_fold']:.0f}"]
        lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
    lines += ["", "| paired difference | " + " | ".join(f"Δ {name}" for name in METRICS.values()) + " |",
              "|---|" + "---:|" * len(METRICS)]
    labels = dict(zip(results["config"], results["label"], strict=True))
    for _, row in results.iterrows():
        for prefix, other in (("vs_fused", REFERENCE), ("vs_baseline", row["baseline"])):
            if f"pauc_{prefix}" in row and not pd.isna(row[f"pauc_{prefix}"]):
                cells = [_diff(row, f"{metric}_{prefix}") for metric in METRICS]
                lines.append(f"| {row['label']} − {labels[other]} | " + " | ".join(cells) + " |")
    lines += ["", (
        "Metrics of the pooled out-of-fold scores [95 % subject-bootstrap CI]; Δ: paired subject bootstrap "
        "[95 % CI], * p < 0.05. The training loss is BCE on the DeepSMOTE-augmented batches, mean over folds."
    )]
    return "\n".join(lines)


def write_results(out: Path, text: str, record: dict, results: pd.DataFrame, predictions: pd.DataFrame) -> None:
    predictions.to_csv(out / "predictions.tsv", sep="\t", index=False)
    results.to_csv(out / "results.csv", index=False)
    pd.DataFrame(record["folds"]).to_csv(out / "folds.csv", index=False)
    (out / "table.md").write_text(text + "\n", encoding="utf-8")
    (out / "results.json").write_text(json.dumps(record, indent=2, default=float) + "\n", encoding="utf-8")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=30, help="phantom subjects (default 30)")
    parser.add_argument("--epochs", type=int, default=15, help="training epochs per fold (default 15)")
    parser.add_argument("--folds", type=int, default=3, help="subject-grouped folds (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the cohort, the folds, the nets, the bootstrap")
    parser.add_argument("--difficulty", default="default", choices=("easy", "default", "hard"))
    parser.add_argument("--normalizations", nargs="*", default=["none", "zscore"], choices=("none", "zscore"),
                        help="patch normalisations compared with 'nawm' on the CNN-only net (default: none zscore)")
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate (classifier default 1e-3)")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size (classifier default 32)")
    parser.add_argument("--n-boot", type=int, default=1000, help="subject-bootstrap resamples")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: shared machine)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ablation",
                        help="results folder (default benchmarks/results/ablation)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "rimclf-bench-ablation",
                        help="phantom cohorts and feature cache, kept for reruns "
                        "(default: TMPDIR/rimclf-bench-ablation)")
    parser.add_argument("--force", action="store_true", help="replace the results in OUT")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from rimclf import load_cohort
    from rimclf.benchmark import BenchmarkSettings, make_repeated_folds
    from rimclf.cohort import labelled_lesions

    warnings.simplefilter("ignore")  # pyradiomics' per-lesion chatter
    torch.set_num_threads(args.threads)
    if (args.out / "results.json").exists() and not args.force:
        print(f"error: {args.out / 'results.json'} exists; pass --force to replace the results", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    arguments = sys.argv[1:] if argv is None else argv
    command = shlex.join([".venv/bin/python", "benchmarks/bench_ablation.py", *arguments])
    started, load_start = time.perf_counter(), os.getloadavg()

    work = args.work / f"{args.difficulty}-seed{args.seed}-{args.subjects}"
    cohort, phantom_seconds = phantom_cohort(work, args.subjects, args.seed, args.difficulty)
    table, y, groups = labelled_lesions(load_cohort(cohort), purpose="the ablation")
    n_rim_subjects = int(table.groupby("participant_id")["rim"].sum().gt(0).sum())
    print(f"cohort: {args.subjects} subjects, {len(y)} lesions, {y.sum()} rim+ in {n_rim_subjects} subjects "
          f"(generated in {phantom_seconds:.0f} s)", flush=True)

    configs = make_configs(args.normalizations)
    features, feature_seconds = extract(table, configs, args.work / "cache")
    print("features: " + ", ".join(f"{k} {v:.0f} s" for k, v in feature_seconds.items()), flush=True)

    settings = BenchmarkSettings(n_splits=args.folds, n_repeats=1, max_epochs=args.epochs, lr=args.lr,
                                 batch_size=args.batch_size, n_threads=args.threads, device="cpu")
    folds, _, fit_seeds = make_repeated_folds(y, groups, args.folds, 1, args.seed)
    scores, records = {}, []
    for config in configs:
        print(f"{config.name}:", flush=True)
        X = inputs_of(config, features)
        scores[config.name], fold_records = cross_validate(config, X, y, folds, fit_seeds, settings)
        records += fold_records
    results = summarise(configs, scores, y, groups, records, args.n_boot, args.seed)
    total = time.perf_counter() - started

    from rimclf.benchmark import package_versions

    versions = package_versions(VERSIONED)
    header = "\n".join([
        "### Does it learn? Branches and normalisation", "",
        (f"Phantom cohort: {args.subjects} subjects, difficulty {args.difficulty}, seed {args.seed}: "
        f"{len(y)} lesions, {y.sum()} rim+ in {n_rim_subjects} subjects. {args.folds} "
        f"subject-grouped folds (rimclf.metrics.subject_folds, seed {args.seed}), the same folds and training "
        "seeds for every row. The default model (ResNet3D depth 10, width 16; 32 mm, 32³ patches of "
        f"QSM/FLAIR/mask; sum fusion), imbalance=\"deepsmote\", {args.epochs} epochs, lr {args.lr:g}, "
        f"batch {args.batch_size}, {args.threads} torch thread(s), CPU; {args.n_boot} subject-bootstrap "
        f"resamples. Total {total / 60:.1f} min on {os.cpu_count()} cores shared with other jobs (load "
        f"average {load_start[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end)."),
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()), "",
        f"Command: `{command}`",
    ])
    text = markdown(results, header)
    fold_of = np.full(len(y), -1)
    for fold, (_, test) in enumerate(folds[0]):
        fold_of[test] = fold
    predictions = table[["participant_id", "lesion_id"]].assign(rim=y, fold=fold_of, **scores)
    record = {
        "command": command, "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "cohort": {"n_subjects": args.subjects, "n_lesions": len(y), "n_rim": int(y.sum()),
                   "n_rim_subjects": n_rim_subjects, "phantom_seconds": phantom_seconds},
        "feature_seconds": feature_seconds, "total_seconds": total, "cpu_count": os.cpu_count(),
        "load_average_start": list(load_start), "load_average_end": list(os.getloadavg()),
        "versions": versions, "folds": records, "results": results.to_dict(orient="records"),
    }
    write_results(args.out, text, record, results, predictions)
    print("\n" + text)
    print(f"\ntotal {total / 60:.1f} min; wrote {args.out}/results.csv, results.json, folds.csv, "
          "predictions.tsv, table.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
