"""Resolution-aware rim features, measured: ``bench_acquisition.py`` with the rim-profile
extractor's ``resolution`` setting, and the paired difference from the unchanged features.

``RimProfileExtractor(resolution=...)`` weights each edge voxel by how well the voxel grid resolves
the lesion boundary there (``"weighted"``), or keeps only the resolved ones (``"resolved"``); see
docs/features.md. This script runs ``bench_acquisition.py`` (same cohorts, folds and models) with
that setting in the featurizer it builds, saves the out-of-fold probabilities as
OUT/predictions.npz, and, given ``--against`` (the OUT folder of a run with ``--resolution
ignore``), writes OUT/resolution.md: the pAUC and PR AUC difference on the fixed-site cohort (seen
CV) and the varied cohort (seen CV; unseen protocols), each with a paired subject-bootstrap 95 %
CI. Give each setting its own ``--cache`` folder. Run from the repository root::

    .venv/bin/python benchmarks/bench_rim_resolution.py --resolution ignore --out BASE [bench_acquisition options]
    .venv/bin/python benchmarks/bench_rim_resolution.py --resolution weighted --against BASE --out OUT [...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_acquisition  # noqa: E402

from rimclf.metrics import paired_bootstrap, partial_roc_auc, pr_auc  # noqa: E402

EVALUATIONS = (("fixed sites, seen", False, "seen"), ("varied, seen", True, "seen"), ("varied, unseen", True, "unseen"))


def compare(base: Path, variant: Path, n_boot: int = 1000) -> str:
    """Markdown table: the variant's pAUC and PR AUC against the base run's, paired bootstrap CIs."""
    a, b = (np.load(folder / "predictions.npz", allow_pickle=False) for folder in (variant, base))
    if not (np.array_equal(a["y"], b["y"]) and np.array_equal(a["groups"], b["groups"])):
        raise SystemExit(f"{base} and {variant} were not run on the same cohorts")
    y, groups = a["y"], a["groups"]
    lines = ["| evaluation | pAUC base → variant (Δ [95 % CI]) | PR AUC base → variant (Δ [95 % CI]) |", "|---|---|---|"]
    for name, varied, key in EVALUATIONS:
        chosen = a["is_varied"] == varied
        cells = []
        for metric, score in (("pauc", partial_roc_auc), ("pr_auc", pr_auc)):
            diff = paired_bootstrap(metric, y[chosen], a[key][chosen], b[key][chosen], groups[chosen], n_boot=n_boot,
                                    random_state=0)
            cells.append(f"{score(y[chosen], b[key][chosen]):.3f} → {score(y[chosen], a[key][chosen]):.3f} "
                         f"({diff.difference:+.3f} [{diff.ci_low:+.3f}, {diff.ci_high:+.3f}])")
        lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=False)
    parser.add_argument("--resolution", choices=("ignore", "weighted", "resolved"), required=True)
    parser.add_argument("--against", help="OUT folder of a --resolution ignore run on the same cohorts and seed")
    parser.add_argument("--out", default="bench_acquisition_results", help="output folder")
    ours, rest = parser.parse_known_args(argv)
    rest = [*rest, "--out", ours.out]
    make_featurizer = bench_acquisition.make_featurizer

    def featurizer(*args, **kwargs):
        built = make_featurizer(*args, **kwargs)
        for name, extractor in built.features:
            if name == "rim":
                extractor.set_params(resolution=ours.resolution)
        return built

    compare_methods = bench_acquisition.compare_methods

    def keep_predictions(methods, predictions, y, groups, is_varied, fit_seconds, args):
        seen, unseen = predictions[methods[0]]
        np.savez(Path(args.out) / "predictions.npz", seen=seen, unseen=unseen, y=y,
                 groups=np.asarray(groups).astype(str), is_varied=is_varied)
        return compare_methods(methods, predictions, y, groups, is_varied, fit_seconds, args)

    bench_acquisition.make_featurizer = featurizer
    bench_acquisition.compare_methods = keep_predictions
    status = bench_acquisition.main(rest)
    if ours.against:
        out = Path(ours.out)
        text = compare(Path(ours.against), out)
        (out / "resolution.md").write_text(text, encoding="utf-8")
        print(text)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
