"""Figure of the phantom cohort: QSM and FLAIR through a rim+ lesion and a rim- mimic.

Writes a small phantom cohort to a temporary folder, picks its clearest rim+ lesion and a rim-
lesion with a vein at its edge (the classic mimic; another rim- pattern if there is none), and
saves a 2 x 2 figure: axial planes in world coordinates through each lesion, QSM (ppb) and FLAIR,
with the lesion mask's outline. Run from the repository root::

    .venv/bin/python benchmarks/make_phantom_figure.py [--out docs/phantom.png] [--seed 1]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import ndimage  # noqa: E402

from rimclf import load_cohort  # noqa: E402
from rimclf.cohort import read_lesion_labels  # noqa: E402
from rimclf.outputs import axial_plane as world_axial_plane  # noqa: E402
from rimclf.phantom import PIPELINE_FOLDER, make_phantom_cohort  # noqa: E402

HALF_WIDTH_MM = 24.0
STEP_MM = 0.25
MIMICS = ("vein_edge", "spot", "hyper", "iso", "hypo", "faint_ring")



def read_volume(path: str) -> tuple[np.ndarray, np.ndarray]:
    """A NIfTI volume's voxels (float32) and affine (the phantom's QSM is in ppb, as its sidecar says)."""
    image = nibabel.load(path)
    return np.asarray(image.dataobj, dtype=np.float32), image.affine

def axial_plane(volume: np.ndarray, affine: np.ndarray, centre_mm: np.ndarray, order: int) -> np.ndarray:
    """The volume on a square axial plane around ``centre_mm`` (rows along world y, columns along x)."""
    return world_axial_plane(volume, affine, centre_mm, half_width_mm=HALF_WIDTH_MM, step_mm=STEP_MM, order=order)


def best_plane(lesion: pd.Series, qsm: np.ndarray, affine: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Of the axial planes through the lesion, the one whose QSM edge stands out most."""
    centre = np.array([lesion.centroid_x, lesion.centroid_y, lesion.centroid_z])
    radius = (3.0 * lesion.volume_mm3 / (4.0 * np.pi)) ** (1 / 3)
    planes = [centre + np.array([0.0, 0.0, dz]) for dz in np.arange(-0.4 * radius, 0.4 * radius + 0.01, 0.5)]
    masks = [axial_plane((labels == lesion.lesion_id).astype(np.float32), affine, plane, 0) > 0.5 for plane in planes]
    largest = max(int(m.sum()) for m in masks)
    best, best_score = centre, -np.inf
    for plane, inside in zip(planes, masks):
        if inside.sum() < 0.7 * largest:  # cut through the lesion, not tangent to its cap
            continue
        values = axial_plane(qsm, affine, plane, 1)
        pixels_per_mm = int(round(1.0 / STEP_MM))
        interior = ndimage.binary_erosion(inside, iterations=pixels_per_mm)
        edge = ndimage.binary_dilation(inside, iterations=2 * pixels_per_mm) & ~interior
        score = values[edge].mean() - values[interior if interior.any() else inside].mean()
        if score > best_score:
            best, best_score = plane, score
    return best


def edge_contrast(lesion: pd.Series) -> float:
    """QSM across the lesion edge (1 voxel either side) minus the interior and the tissue beyond."""
    qsm, _ = read_volume(lesion["qsm"])
    labels, _ = read_lesion_labels(lesion["mask"], int(lesion["connectivity"]))
    inside = labels == lesion["lesion_id"]
    others = (labels > 0) & ~inside
    interior = ndimage.binary_erosion(inside)
    edge = ndimage.binary_dilation(inside) & ~interior & ~others
    beyond = ndimage.binary_dilation(inside, iterations=5) & ~ndimage.binary_dilation(inside, iterations=3) & ~others
    if not interior.any():
        return -np.inf
    return float(qsm[edge].mean() - 0.5 * (np.median(qsm[interior]) + np.median(qsm[beyond])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/phantom.png", help="PNG to write (default docs/phantom.png)")
    parser.add_argument("--seed", type=int, default=1, help="phantom seed (default 1)")
    parser.add_argument("--subjects", type=int, default=8, help="subjects to generate (default 8)")
    parser.add_argument("--difficulty", default="default", choices=("easy", "default", "hard"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        cohort = make_phantom_cohort(Path(tmp) / "phantom", n_subjects=args.subjects, random_state=args.seed, difficulty=args.difficulty)
        table = load_cohort(cohort)
        truth = pd.read_csv(cohort / PIPELINE_FOLDER / "phantom_lesions.tsv", sep="\t")
        truth["participant_id"] = truth["participant_id"].str.removeprefix("sub-")
        table = table.merge(truth[["participant_id", "lesion_id", "pattern", "rim_ppb", "rim_completeness"]], on=["participant_id", "lesion_id"])
        table = table[table["volume_mm3"] > 150]
        rim = table[table["rim"] == 1]
        if rim.empty:
            raise SystemExit("no rim+ lesion in this phantom; try another --seed or more --subjects")
        rim_lesion = rim.loc[max(rim.index, key=lambda i: edge_contrast(rim.loc[i]))]  # the clearest rim
        pattern = next(name for name in MIMICS if (table["pattern"] == name).any())  # a vein at the edge
        mimics = table[table["pattern"] == pattern]
        other = mimics.loc[max(mimics.index, key=lambda i: edge_contrast(mimics.loc[i]))]  # the most rim-like

        fig, axes = plt.subplots(2, 2, figsize=(9, 8.6), constrained_layout=True)
        extent = (-HALF_WIDTH_MM, HALF_WIDTH_MM, -HALF_WIDTH_MM, HALF_WIDTH_MM)
        for row, lesion in enumerate((rim_lesion, other)):
            qsm, qsm_affine = read_volume(lesion["qsm"])
            flair, flair_affine = read_volume(lesion["flair"])
            labels, _ = read_lesion_labels(lesion["mask"], int(lesion["connectivity"]))
            centre = best_plane(lesion, qsm, qsm_affine, labels)
            outline = axial_plane((labels == lesion.lesion_id).astype(np.float32), qsm_affine, centre, 1)
            flair_plane = axial_plane(flair, flair_affine, centre, 1)
            label = (
                f"rim+  (rim +{lesion.rim_ppb:.0f} ppb, {100 * lesion.rim_completeness:.0f}% of the edge)"
                if lesion.rim == 1
                else f"rim-  ({lesion.pattern.replace('_', ' ')})"
            )
            for col, (plane, cmap, limits, unit) in enumerate(
                (
                    (axial_plane(qsm, qsm_affine, centre, 1), "gray", (-60.0, 60.0), "QSM (ppb)"),
                    (flair_plane, "gray", (0.0, np.percentile(flair_plane, 99.5)), "FLAIR (a.u.)"),
                )
            ):
                ax = axes[row, col]
                image = ax.imshow(plane, origin="lower", cmap=cmap, vmin=limits[0], vmax=limits[1], extent=extent)
                ax.contour(outline, levels=[0.5], colors="tab:red", linewidths=1.0, extent=extent)
                ax.set_title(f"{unit.split()[0]}: sub-{lesion.participant_id} lesion {lesion.lesion_id}\n{label}", fontsize=9)
                ax.set_xlabel("x (mm)")
                ax.set_ylabel("y (mm)")
                fig.colorbar(image, ax=ax, shrink=0.85, label=unit)
        fig.suptitle(f"rimclf phantom (seed {args.seed}, {args.difficulty}): axial planes, lesion mask in red", fontsize=10)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
