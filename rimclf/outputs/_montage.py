"""The QC montage of ``rimclf predict``: QSM and FLAIR axial planes through each lesion.

Geometry: every panel is a world axial plane (x right, y anterior up, neurological convention:
the patient's right on the right) through the lesion's centroid, ``2 * half_width_mm`` wide,
with orientation letters (R/L, A/P) on its edges. FLAIR panels show the lesion's outline in
yellow; QSM panels frame it with a dashed line :data:`HALO_MM` outside it, leaving the lesion edge,
where a rim is, undrawn.

QSM window: one window for every QSM panel of a subject, so that panels compare and one
colourbar (ppb) reads them all. It centres on the median of the tissue shown (the
normal-appearing white matter around the lesions) and spans :data:`WINDOW_SPREADS` robust
standard deviations (1.4826 MAD) of it each way, at least :data:`MIN_HALF_WINDOW_PPB`: a rim of
+15..+40 ppb above the white matter then spans a third to half of the grey range, where a fixed
+-100 ppb window gave it a tenth. Veins and iron-rich nuclei saturate to white, which a rim
reader wants anyway. FLAIR panels keep a per-panel 1-99.5 % window (FLAIR has no unit).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

#: Robust standard deviations of the shown tissue on each side of its median in the QSM window.
WINDOW_SPREADS = 3.0
#: On QSM panels the lesion is framed by a dashed line this far outside its outline (mm), so that
#: nothing is drawn over the lesion edge, where a rim is.
HALO_MM = 2.5
#: The QSM window is at least +-this around the tissue median (ppb), so that noise-free tissue
#: (a tiny spread) does not blow every detail up into black and white.
MIN_HALF_WINDOW_PPB = 20.0


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

    Examples
    --------
    >>> import numpy as np
    >>> volume = np.arange(27, dtype=float).reshape(3, 3, 3)
    >>> axial_plane(volume, np.eye(4), np.array([1.0, 1.0, 1.0]), half_width_mm=1.0, step_mm=1.0, order=1)
    array([[ 1., 10., 19.],
           [ 4., 13., 22.],
           [ 7., 16., 25.]])
    """
    offsets = np.arange(-half_width_mm, half_width_mm + 1e-6, step_mm)
    gx, gy = np.meshgrid(centre_mm[0] + offsets, centre_mm[1] + offsets, indexing="xy")
    world = np.stack([gx, gy, np.full_like(gx, centre_mm[2]), np.ones_like(gx)], axis=-1)
    voxel = world @ np.linalg.inv(affine).T
    return ndimage.map_coordinates(volume, voxel[..., :3].transpose(2, 0, 1), order=order, mode="constant", cval=0.0)


def qsm_window(planes: list[np.ndarray], lesion_planes: list[np.ndarray]) -> tuple[float, float]:
    """The QSM display window (ppb) of a subject's panels: see the module docstring.

    ``planes`` are the QSM panels, ``lesion_planes`` the matching lesion masks (left out of the
    tissue statistics, as is the zero background outside the brain).
    """
    tissue = [plane[(plane != 0) & (lesion < 0.5)] for plane, lesion in zip(planes, lesion_planes)]
    values = np.concatenate(tissue) if tissue else np.zeros(0)
    if values.size < 10:
        return -100.0, 100.0
    centre = float(np.median(values))
    spread = 1.4826 * float(np.median(np.abs(values - centre)))
    half = max(WINDOW_SPREADS * spread, MIN_HALF_WINDOW_PPB)
    return centre - half, centre + half


def _orientation_marks(ax, fontsize: float = 6.5) -> None:
    """R/L and A/P letters on the edges of an axial panel (neurological: the patient's right on the right)."""
    style = {"color": "#f5d000", "fontsize": fontsize, "fontweight": "bold", "transform": ax.transAxes}
    ax.text(0.985, 0.5, "R", ha="right", va="center", **style)
    ax.text(0.015, 0.5, "L", ha="left", va="center", **style)
    ax.text(0.5, 0.985, "A", ha="center", va="top", **style)
    ax.text(0.5, 0.015, "P", ha="center", va="bottom", **style)


def _scale_bar(ax, half_width_mm: float, length_mm: float = 10.0) -> None:
    x0 = half_width_mm - 2.0 - length_mm
    y0 = -half_width_mm + 2.5
    ax.plot([x0, x0 + length_mm], [y0, y0], color="white", linewidth=1.6, solid_capstyle="butt")
    ax.text(x0 + length_mm / 2, y0 + 1.0, f"{length_mm:g} mm", color="white", fontsize=6, ha="center", va="bottom")


def write_montage(
    path: str | os.PathLike,
    subject: pd.DataFrame,
    *,
    qsm: np.ndarray,
    qsm_affine: np.ndarray,
    flair: np.ndarray,
    flair_affine: np.ndarray,
    labels: np.ndarray,
    title: str,
    max_lesions: int = 12,
    half_width_mm: float = 20.0,
) -> Path:
    """Save a PNG of QSM and FLAIR axial planes through each lesion, ranked by probability.

    The figure is :func:`montage_figure`'s (same parameters); this saves it to ``path``.

    Examples
    --------
    ``rimclf.outputs.write_prediction_outputs`` calls it for every scan; by hand:

    >>> import nibabel as nib
    >>> import numpy as np
    >>> from rimclf.cohort import read_lesion_labels, read_qsm
    >>> subject = predictions[predictions["participant_id"] == "001"]        # doctest: +SKIP
    >>> row = table.iloc[0]                                                   # doctest: +SKIP
    >>> qsm, qsm_affine = read_qsm(row["qsm"], unit=row["qsm_unit"])          # doctest: +SKIP
    >>> image = nib.load(row["flair"])                                        # doctest: +SKIP
    >>> flair, flair_affine = np.asarray(image.dataobj, dtype=np.float32), image.affine  # doctest: +SKIP
    >>> labels, _ = read_lesion_labels(row["mask"], int(row["connectivity"]))  # doctest: +SKIP
    >>> write_montage("sub-001_montage.png", subject, qsm=qsm, qsm_affine=qsm_affine, flair=flair,
    ...               flair_affine=flair_affine, labels=labels, title="sub-001")  # doctest: +SKIP
    """
    figure = montage_figure(subject, qsm=qsm, qsm_affine=qsm_affine, flair=flair, flair_affine=flair_affine,
                            labels=labels, title=title, max_lesions=max_lesions, half_width_mm=half_width_mm)
    figure.savefig(path, dpi=100)
    return Path(path)


def montage_figure(
    subject: pd.DataFrame,
    *,
    qsm: np.ndarray,
    qsm_affine: np.ndarray,
    flair: np.ndarray,
    flair_affine: np.ndarray,
    labels: np.ndarray,
    title: str,
    max_lesions: int = 12,
    half_width_mm: float = 20.0,
):
    """The montage as a :class:`matplotlib.figure.Figure` (no pyplot state).

    Each lesion gets a QSM panel and a FLAIR panel (see the module docstring); titles give lesion id, probability and decision (and the reference label
    when known). One colourbar gives the QSM window in ppb.

    Parameters
    ----------
    subject : pandas.DataFrame
        One scan's rows of the prediction table (``lesion_id``, ``centroid_x/y/z``,
        ``probability``, ``decision``, optional ``rim``).
    qsm, qsm_affine, flair, flair_affine, labels
        The volumes (QSM in ppb; lesion labels on the QSM grid) and their affines.
    title : str
        Names the scan in the figure title (e.g. ``sub-01_ses-1``).
    max_lesions : int, default=12
        The most probable lesions shown.
    half_width_mm : float, default=20.0
        Half the width of each panel.
    """
    from matplotlib.figure import Figure  # the object API: no pyplot state, the user's backend untouched

    ranked = subject.sort_values("probability", ascending=False).head(max_lesions)
    plane = {"half_width_mm": half_width_mm, "step_mm": 0.5}
    panels = []
    halo = int(round(HALO_MM / plane["step_mm"]))
    for row in ranked.itertuples(index=False):
        centre = np.array([row.centroid_x, row.centroid_y, row.centroid_z])
        lesion = axial_plane((labels == row.lesion_id).astype(np.float32), qsm_affine, centre, order=0, **plane) > 0.5
        panels.append(
            (
                row,
                axial_plane(qsm, qsm_affine, centre, order=1, **plane),
                axial_plane(flair, flair_affine, centre, order=1, **plane),
                lesion,
                ndimage.binary_dilation(lesion, iterations=halo) if lesion.any() else lesion,
            )
        )
    low, high = qsm_window([p[1] for p in panels], [p[4] for p in panels])

    n_cols = 4  # two lesions per row: QSM, FLAIR, QSM, FLAIR
    n_rows = max(1, int(np.ceil(len(ranked) / 2)))
    fig = Figure(figsize=(2.6 * n_cols + 0.9, 2.75 * n_rows + 0.55), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    extent = (-half_width_mm, half_width_mm, -half_width_mm, half_width_mm)
    qsm_image = None
    for index, (row, qsm_plane, flair_plane, lesion_plane, halo_plane) in enumerate(panels):
        verdict = "rim+" if row.decision else "rim-"
        truth = f" (ref {'rim+' if row.rim == 1 else 'rim-'})" if hasattr(row, "rim") and not pd.isna(row.rim) else ""
        flair_limits = np.percentile(flair_plane, [1, 99.5])
        for offset, (image, name, limits) in enumerate([(qsm_plane, "QSM", (low, high)), (flair_plane, "FLAIR", flair_limits)]):
            ax = axes[index // 2, (index % 2) * 2 + offset]
            shown = ax.imshow(image, cmap="gray", vmin=limits[0], vmax=max(limits[1], limits[0] + 1e-6),
                              origin="lower", extent=extent, interpolation="nearest")
            if name == "QSM":
                qsm_image = shown
            if name == "FLAIR" and lesion_plane.any():
                ax.contour(lesion_plane, levels=[0.5], colors="yellow", linewidths=0.8, origin="lower", extent=extent)
            elif name == "QSM" and halo_plane.any():  # around the rim, not on it
                ax.contour(halo_plane, levels=[0.5], colors="yellow", linewidths=0.7, linestyles=[(0, (2, 2))],
                           origin="lower", extent=extent)
            _orientation_marks(ax)
            if index == 0 and offset == 0:
                _scale_bar(ax, half_width_mm)
            ax.set_title(f"{name}  lesion {row.lesion_id}\np={row.probability:.2f} {verdict}{truth}", fontsize=8)
    if qsm_image is not None:
        bar = fig.colorbar(qsm_image, ax=axes[:, :], location="right", shrink=min(0.6, 0.3 + 0.05 * n_rows), aspect=25, pad=0.01)
        bar.set_label("QSM (ppb)", fontsize=8)
        bar.ax.tick_params(labelsize=7)
    fig.suptitle(
        f"{title}: lesions ranked by rim+ probability. Axial planes, {2 * half_width_mm:g} mm wide, "
        f"patient's right on the right; QSM window {low:.0f}..{high:.0f} ppb, FLAIR 1-99.5 %",
        fontsize=8.5,
    )
    return fig
