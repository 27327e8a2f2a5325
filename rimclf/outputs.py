"""What ``rimclf predict`` writes: a lesion table, probability maps and QC montages.

Layout of an output directory::

    OUT/lesions.tsv                                   one row per lesion, with probability and decision
    OUT/subjects.tsv                                  per-subject predicted (and, if labelled, true) rim+ counts
    OUT/sub-<label>/sub-<label>_desc-rimprob_map.nii.gz   QSM grid; each lesion's voxels carry its probability
    OUT/sub-<label>/sub-<label>_desc-rimprob_montage.png  QSM/FLAIR through each lesion, ranked by probability

The directory is built in a temporary sibling and moved into place when complete, so an
interrupted run leaves nothing half-written; an existing ``OUT`` is replaced only with ``force``
(see :mod:`rimclf._atomic`). Participant labels must be letters and digits, and every path is
checked to stay inside ``OUT``; probabilities must be finite and within [0, 1]
(:func:`check_probabilities`). Nothing is written otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from rimclf._atomic import atomic_output_dir, safe_child
from rimclf._nifti import load_header, read_volume, save_nifti
from rimclf.cohort import check_participant_label, read_lesion_labels, read_qsm
from rimclf.errors import CohortError, PredictionError

LESION_COLUMNS = [
    "participant_id",
    "lesion_id",
    "centroid_x",
    "centroid_y",
    "centroid_z",
    "volume_mm3",
    "probability",
    "decision",
]


def check_probabilities(probability: object, table: pd.DataFrame | None = None) -> np.ndarray:
    """Rim+ probabilities as a float array, refused when any is NaN, infinite or outside [0, 1].

    Call it wherever probabilities are about to be reported or written.

    Parameters
    ----------
    probability : array-like of shape (n_lesions,)
    table : pandas.DataFrame, optional
        The lesion table of the same rows, to name the lesions concerned.

    Returns
    -------
    ndarray of float64, shape (n_lesions,)

    Raises
    ------
    PredictionError
        Naming how many lesions (and, with ``table``, which) have an unusable probability.
    """
    values = np.asarray(probability, dtype=float).reshape(-1)
    bad = ~np.isfinite(values) | (values < 0) | (values > 1)
    if bad.any():
        rows = np.flatnonzero(bad)
        if table is not None and {"participant_id", "lesion_id"} <= set(table.columns) and len(table) == len(values):
            named = [f"sub-{table['participant_id'].iloc[r]} lesion {table['lesion_id'].iloc[r]}" for r in rows[:5]]
        else:
            named = [f"row {r}" for r in rows[:5]]
        examples = ", ".join(f"{name} ({values[r]:g})" for name, r in zip(named, rows[:5]))
        raise PredictionError(
            f"the model gave {len(rows)} of {len(values)} lesion(s) a NaN, infinite or out-of-range "
            f"rim+ probability: {examples}{', ...' if len(rows) > 5 else ''}. Their features may hold "
            "NaN/Inf, or the model may be damaged; nothing was written"
        )
    return values


def lesion_predictions(table: pd.DataFrame, probability: np.ndarray, threshold: float) -> pd.DataFrame:
    """The per-lesion prediction table: identifiers, geometry, rim+ probability and decision.

    Parameters
    ----------
    table : pandas.DataFrame
        The lesion table of :func:`rimclf.load_cohort`.
    probability : array-like of shape (n_lesions,)
        Rim+ probability of each row of ``table``.
    threshold : float
        A lesion is called rim+ (``decision = 1``) when its probability is at least this.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`LESION_COLUMNS`, plus ``rim`` (the reference label) when ``table`` has one.
    """
    probability = np.asarray(probability, dtype=float).reshape(-1)
    if probability.shape[0] != len(table):
        raise CohortError(f"probability has {probability.shape[0]} values for {len(table)} lesions")
    probability = check_probabilities(probability, table)
    predictions = table[LESION_COLUMNS[:6]].reset_index(drop=True).copy()
    predictions["probability"] = probability
    predictions["decision"] = (probability >= threshold).astype(int)
    if "rim" in table and table["rim"].notna().any():
        predictions["rim"] = table["rim"].to_numpy()
    return predictions


def subject_summary(predictions: pd.DataFrame) -> pd.DataFrame:
    """Per-subject rim+ counts: predicted (decisions), expected (sum of probabilities), true if known."""
    grouped = predictions.groupby("participant_id", sort=True)
    summary = pd.DataFrame(
        {
            "n_lesions": grouped.size(),
            "n_rim_pos_predicted": grouped["decision"].sum(),
            "expected_rim_pos": grouped["probability"].sum().round(3),
        }
    )
    if "rim" in predictions:
        summary["n_rim_pos_true"] = grouped["rim"].sum().astype("Int64")
    return summary.reset_index()


def probability_map(labels: np.ndarray, lesion_ids: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """A float32 volume where each listed lesion's voxels carry its probability, 0 elsewhere."""
    lookup = np.zeros(int(labels.max(initial=0)) + 1, dtype=np.float32)
    lookup[np.asarray(lesion_ids, dtype=int)] = np.asarray(probability, dtype=np.float32)
    return lookup[labels]


def axial_plane(
    volume: np.ndarray, affine: np.ndarray, centre_mm: np.ndarray, *, half_width_mm: float, step_mm: float, order: int
) -> np.ndarray:
    """A square axial (world x-y) plane through ``centre_mm``, resampled from ``volume``.

    Parameters
    ----------
    volume : ndarray of shape (X, Y, Z)
    affine : ndarray of shape (4, 4)
        The volume's voxel-to-world (RAS mm) affine.
    centre_mm : array-like of 3 floats
        World point at the plane's centre.
    half_width_mm, step_mm : float
        The plane spans ``centre +- half_width_mm`` along world x and y, sampled every ``step_mm``.
    order : int
        Spline order: 1 (trilinear) for images, 0 (nearest) for label masks. Points outside the
        volume are 0.

    Returns
    -------
    ndarray of shape (n, n)
        Rows run along world y (anterior up with ``origin="lower"``), columns along x.
    """
    offsets = np.arange(-half_width_mm, half_width_mm + 1e-6, step_mm)
    gx, gy = np.meshgrid(centre_mm[0] + offsets, centre_mm[1] + offsets, indexing="xy")
    world = np.stack([gx, gy, np.full_like(gx, centre_mm[2]), np.ones_like(gx)], axis=-1)
    voxel = world @ np.linalg.inv(affine).T
    return ndimage.map_coordinates(volume, voxel[..., :3].transpose(2, 0, 1), order=order, mode="constant", cval=0.0)


def write_montage(
    path: str | os.PathLike,
    subject: pd.DataFrame,
    *,
    qsm: np.ndarray,
    qsm_affine: np.ndarray,
    flair: np.ndarray,
    flair_affine: np.ndarray,
    labels: np.ndarray,
    max_lesions: int = 12,
    half_width_mm: float = 20.0,
) -> Path:
    """Save a PNG of QSM and FLAIR axial slices through each lesion, ranked by probability.

    Each lesion gets a QSM panel and a FLAIR panel (world axial plane through its centroid,
    x to the right, y up) with the lesion's outline in yellow; titles give lesion id, probability
    and decision (and the reference label when known).
    """
    from matplotlib.figure import Figure  # the object API: no pyplot state, the user's backend untouched

    ranked = subject.sort_values("probability", ascending=False).head(max_lesions)
    n_cols = 4  # two lesions per row: QSM, FLAIR, QSM, FLAIR
    n_rows = max(1, int(np.ceil(len(ranked) / 2)))
    fig = Figure(figsize=(2.6 * n_cols, 2.8 * n_rows))
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    step = 0.5
    extent = (-half_width_mm, half_width_mm, -half_width_mm, half_width_mm)
    for index, row in enumerate(ranked.itertuples(index=False)):
        centre = np.array([row.centroid_x, row.centroid_y, row.centroid_z])
        plane = {"half_width_mm": half_width_mm, "step_mm": step}
        qsm_plane = axial_plane(qsm, qsm_affine, centre, order=1, **plane)
        flair_plane = axial_plane(flair, flair_affine, centre, order=1, **plane)
        lesion_plane = axial_plane((labels == row.lesion_id).astype(np.float32), qsm_affine, centre, order=0, **plane)
        verdict = "rim+" if row.decision else "rim-"
        truth = f" (ref {'rim+' if row.rim == 1 else 'rim-'})" if hasattr(row, "rim") and not pd.isna(row.rim) else ""
        for offset, (plane, name, cmap, limits) in enumerate(
            [(qsm_plane, "QSM", "gray", (-100, 100)), (flair_plane, "FLAIR", "gray", np.percentile(flair_plane, [1, 99.5]))]
        ):
            ax = axes[index // 2, (index % 2) * 2 + offset]
            ax.imshow(plane, cmap=cmap, vmin=limits[0], vmax=max(limits[1], limits[0] + 1e-6), origin="lower", extent=extent)
            if lesion_plane.any():
                ax.contour(lesion_plane, levels=[0.5], colors="yellow", linewidths=0.8, origin="lower", extent=extent)
            ax.set_title(f"{name}  lesion {row.lesion_id}\np={row.probability:.2f} {verdict}{truth}", fontsize=8)
    label = subject["participant_id"].iloc[0]
    fig.suptitle(f"sub-{label}: lesions ranked by rim+ probability (QSM window ±100 ppb, axial, 40 mm)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / (2.8 * n_rows)))  # room for the suptitle
    fig.savefig(path, dpi=90)
    return Path(path)


def write_prediction_outputs(
    out: str | os.PathLike,
    table: pd.DataFrame,
    probability: np.ndarray,
    threshold: float,
    *,
    montage: bool = True,
    max_montage_lesions: int = 12,
    force: bool = False,
) -> dict[str, Path]:
    """Write ``lesions.tsv``, ``subjects.tsv`` and per-subject probability maps and montages.

    Parameters
    ----------
    out : str or path-like
        Output directory; must not exist unless ``force``.
    table : pandas.DataFrame
        Lesion table of :func:`rimclf.load_cohort`.
    probability : array-like of shape (n_lesions,)
        Rim+ probability of each row.
    threshold : float
        Decision threshold.
    montage : bool, default=True
        Also draw the per-subject PNG montages.
    max_montage_lesions : int, default=12
        Most probable lesions shown per montage.
    force : bool, default=False
        Replace an existing ``out``.

    Returns
    -------
    dict
        ``{"lesions": path, "subjects": path, "maps": folder}``.
    """
    predictions = lesion_predictions(table, probability, threshold)
    out = Path(out)
    for participant in table["participant_id"].unique():
        check_participant_label(participant, "the lesion table")
    with atomic_output_dir(out, force=force) as tmp:
        predictions.to_csv(tmp / "lesions.tsv", sep="\t", index=False, float_format="%.6g")
        subject_summary(predictions).to_csv(tmp / "subjects.tsv", sep="\t", index=False)
        for participant, rows in table.groupby("participant_id", sort=True):
            first = rows.iloc[0]
            labels, qsm_affine = read_lesion_labels(first["mask"], int(first["connectivity"]))
            subject_predictions = predictions.loc[predictions["participant_id"] == participant]
            folder = safe_child(tmp, f"sub-{participant}")
            folder.mkdir()
            header = load_header(first["qsm"]).header.copy()
            save_nifti(
                safe_child(folder, f"sub-{participant}_desc-rimprob_map.nii.gz"),
                probability_map(labels, subject_predictions["lesion_id"].to_numpy(), subject_predictions["probability"].to_numpy()),
                qsm_affine,
                header=header,
            )
            if montage:
                qsm, _ = read_qsm(first["qsm"], str(first["qsm_unit"]))
                flair, flair_affine = read_volume(first["flair"])
                write_montage(
                    safe_child(folder, f"sub-{participant}_desc-rimprob_montage.png"),
                    subject_predictions,
                    qsm=qsm,
                    qsm_affine=qsm_affine,
                    flair=flair,
                    flair_affine=flair_affine,
                    labels=labels,
                    max_lesions=max_montage_lesions,
                )
    return {"lesions": out / "lesions.tsv", "subjects": out / "subjects.tsv", "maps": out}
