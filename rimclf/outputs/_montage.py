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

Which lesions: the ``max_lesions`` most probable, and every lesion called rim+ besides
(:func:`montage_lesions`), ranked by probability, two per row. A scan without lesions gets a
picture of the same size saying so (:func:`no_lesion_montage`), so every scan has its montage.

Rendering: panels, outlines, scale bar, colourbar and text are composed as one RGB array
(:mod:`rimclf.outputs._raster`, each plane sample a 3x3 pixel block at 100 dpi) and saved as
PNG; no matplotlib figure or axes (they made a montage cost over a second).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import ndimage

from rimclf.defaults import MONTAGE_LESIONS
from rimclf.outputs import _raster

#: Robust standard deviations of the shown tissue on each side of its median in the QSM window.
WINDOW_SPREADS = 3.0
#: On QSM panels the lesion is framed by a dashed line this far outside its outline (mm), so that
#: nothing is drawn over the lesion edge, where a rim is.
HALO_MM = 2.5
#: The QSM window is at least +-this around the tissue median (ppb), so that noise-free tissue
#: (a tiny spread) does not blow every detail up into black and white.
MIN_HALF_WINDOW_PPB = 20.0
#: Pixels per plane sample on the PNG (100 dpi): a 40 mm panel sampled every 0.5 mm is 243 pixels.
SCALE = 3
#: Spacing (mm) of the plane samples of a panel.
PLANE_STEP_MM = 0.5
#: Layout of the PNG in pixels: left margin, gap between panels, panel title, suptitle, bottom margin.
LEFT_PX, GAP_PX, TITLE_PX, TOP_PX, BOTTOM_PX = 12, 15, 30, 24, 8
#: Orientation letters and text colours (the letters are matplotlib's "#f5d000").
MARK_COLOUR = (0xF5, 0xD0, 0x00)


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
    tissue statistics, as is the background outside the brain, which ``read_qsm`` sets to 0).
    """
    tissue = [plane[(plane != 0) & (lesion < 0.5)] for plane, lesion in zip(planes, lesion_planes)]
    values = np.concatenate(tissue) if tissue else np.zeros(0)
    if values.size < 10:
        return -100.0, 100.0
    centre = float(np.median(values))
    spread = 1.4826 * float(np.median(np.abs(values - centre)))
    half = max(WINDOW_SPREADS * spread, MIN_HALF_WINDOW_PPB)
    return centre - half, centre + half


def montage_lesions(subject: pd.DataFrame, max_lesions: int = MONTAGE_LESIONS) -> pd.DataFrame:
    """The rows a montage shows: the ``max_lesions`` most probable and every lesion called rim+,
    ranked by probability (ties keep the table's order).

    Examples
    --------
    >>> import pandas as pd
    >>> subject = pd.DataFrame({"lesion_id": [1, 2, 3, 4], "probability": [0.2, 0.9, 0.6, 0.7],
    ...                         "decision": [0, 1, 1, 1]})
    >>> montage_lesions(subject, 1)["lesion_id"].tolist()       # the top one and all rim+ calls
    [2, 4, 3]
    """
    ranked = subject.sort_values("probability", ascending=False, kind="stable")
    shown = np.arange(len(ranked)) < max_lesions
    if "decision" in ranked:
        shown |= ranked["decision"].to_numpy() == 1
    return ranked[shown]


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
    max_lesions: int = MONTAGE_LESIONS,
    half_width_mm: float = 20.0,
) -> Path:
    """Save a PNG of QSM and FLAIR axial planes through each lesion, ranked by probability.

    The picture is :func:`montage_image`'s (same parameters); this saves it to ``path`` as PNG.

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
    montage = montage_image(subject, qsm=qsm, qsm_affine=qsm_affine, flair=flair, flair_affine=flair_affine,
                            labels=labels, title=title, max_lesions=max_lesions, half_width_mm=half_width_mm)
    return _raster.write_png(path, montage.pixels, dpi=100)


def _lesion_panels(ranked: pd.DataFrame, qsm, qsm_affine, flair, flair_affine, labels, half_width_mm: float) -> list[tuple]:
    """Per lesion: its row, the QSM and FLAIR planes, its outline plane and the halo around it."""
    plane = {"half_width_mm": half_width_mm, "step_mm": PLANE_STEP_MM}
    halo = int(round(HALO_MM / plane["step_mm"]))
    panels = []
    for row in ranked.itertuples(index=False):
        centre = np.array([row.centroid_x, row.centroid_y, row.centroid_z])
        # nearest-neighbour labels, then this lesion: as sampling its own mask, without a volume per lesion
        lesion = axial_plane(labels, qsm_affine, centre, order=0, **plane) == row.lesion_id
        panels.append((
            row,
            axial_plane(qsm, qsm_affine, centre, order=1, **plane),
            axial_plane(flair, flair_affine, centre, order=1, **plane),
            lesion,
            ndimage.binary_dilation(lesion, iterations=halo) if lesion.any() else lesion,
        ))
    return panels


class Montage(NamedTuple):
    """A montage: its pixels, what it says where, and the QSM window of its panels."""

    #: ``(height, width, 3)`` uint8 RGB, 100 dpi.
    pixels: np.ndarray
    #: ``(x, y, text)`` of every label drawn (pixels from the top-left corner).
    texts: list[tuple[float, float, str]]
    #: The QSM display window (ppb): ``(low, high)``.
    window: tuple[float, float]


def montage_image(
    subject: pd.DataFrame,
    *,
    qsm: np.ndarray,
    qsm_affine: np.ndarray,
    flair: np.ndarray,
    flair_affine: np.ndarray,
    labels: np.ndarray,
    title: str,
    max_lesions: int = MONTAGE_LESIONS,
    half_width_mm: float = 20.0,
) -> Montage:
    """The montage as an RGB picture (see the module docstring).

    Each lesion gets a QSM panel and a FLAIR panel; titles give lesion id, probability and
    decision (and the reference label when known). One colourbar gives the QSM window in ppb.

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
        The most probable lesions shown; every lesion called rim+ is shown besides
        (:func:`montage_lesions`).
    half_width_mm : float, default=20.0
        Half the width of each panel.

    Returns
    -------
    Montage
        ``pixels`` (uint8 RGB), ``texts`` and the QSM ``window``.
    """
    ranked = montage_lesions(subject, max_lesions)
    panels = _lesion_panels(ranked, qsm, qsm_affine, flair, flair_affine, labels, half_width_mm)
    low, high = qsm_window([p[1] for p in panels], [p[4] for p in panels])
    n = panels[0][1].shape[0] if panels else _samples(half_width_mm)
    side = n * SCALE
    n_rows = max(1, int(np.ceil(len(panels) / 2)))
    pitch_x, pitch_y = side + GAP_PX, TITLE_PX + side + 4
    bar_left = LEFT_PX + 4 * pitch_x
    width, height = _canvas_size(side, n_rows)
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    texts: list[tuple[float, float, str, dict]] = []  # (x, y, text, style): written after the pixels
    mark = {"colour": MARK_COLOUR, "size_pt": 6.5, "bold": True}
    for index, (row, qsm_plane, flair_plane, lesion_plane, halo_plane) in enumerate(panels):
        verdict = "rim+" if row.decision else "rim-"
        truth = f" (ref {'rim+' if row.rim == 1 else 'rim-'})" if hasattr(row, "rim") and not pd.isna(row.rim) else ""
        flair_limits = np.percentile(flair_plane, [1, 99.5])
        for offset, (image, name, limits) in enumerate([(qsm_plane, "QSM", (low, high)), (flair_plane, "FLAIR", flair_limits)]):
            top = TOP_PX + (index // 2) * pitch_y + TITLE_PX
            left = LEFT_PX + ((index % 2) * 2 + offset) * pitch_x
            canvas[top:top + side, left:left + side] = _raster.enlarge(
                _raster.gray(image, limits[0], max(limits[1], limits[0] + 1e-6)), SCALE)[..., None]
            where = {"top": top, "left": left, "n": n, "scale": SCALE}
            if name == "FLAIR":
                _raster.draw_lines(canvas, _raster.outline(lesion_plane), **where)
            else:  # around the rim, not on it
                _raster.draw_lines(canvas, _raster.outline(halo_plane), dash_px=2.0, **where)
            texts += [(left + side - 3, top + side / 2, "R", {"ha": "right", "va": "center", **mark}),
                      (left + 3, top + side / 2, "L", {"ha": "left", "va": "center", **mark}),
                      (left + side / 2, top + 3, "A", {"ha": "center", "va": "top", **mark}),
                      (left + side / 2, top + side - 3, "P", {"ha": "center", "va": "bottom", **mark}),
                      (left + side / 2, top - 3, f"{name}  lesion {row.lesion_id}\np={row.probability:.2f} {verdict}{truth}",
                       {"ha": "center", "va": "bottom", "size_pt": 8})]
            if index == 0 and offset == 0:
                texts.append(_scale_bar(canvas, top, left, side, half_width_mm))
    if panels:
        texts += _colourbar(canvas, bar_left, TOP_PX + TITLE_PX, n_rows * pitch_y - TITLE_PX, n_rows, low, high)
    texts.append((width / 2, 5, f"{title}: lesions ranked by rim+ probability. Axial planes, {2 * half_width_mm:g} mm "
                  f"wide, patient's right on the right; QSM window {low:.0f}..{high:.0f} ppb, FLAIR 1-99.5 %",
                  {"ha": "center", "va": "top", "size_pt": 8.5}))
    for x, y, text, style in texts:
        _raster.draw_text(canvas, x, y, text, **style)
    return Montage(canvas, [(x, y, text) for x, y, text, _ in texts], (low, high))


def _samples(half_width_mm: float) -> int:
    """Plane samples along each side of a panel ``2 * half_width_mm`` wide (:func:`axial_plane`'s count)."""
    return int(round(2 * half_width_mm / PLANE_STEP_MM)) + 1


def _canvas_size(side: int, n_rows: int) -> tuple[int, int]:
    """``(width, height)`` in pixels of a montage of ``n_rows`` rows of panels ``side`` pixels wide: two
    lesions (QSM and FLAIR each) per row, then the colour bar."""
    return LEFT_PX + 4 * (side + GAP_PX) + 100, TOP_PX + n_rows * (TITLE_PX + side + 4) + BOTTOM_PX


def no_lesion_montage(title: str, half_width_mm: float = 20.0) -> Montage:
    """The montage of a scan without lesions: a blank picture the size of a one-row montage that says so.

    Nothing is drawn from the volumes, so none is read for it.

    Examples
    --------
    >>> montage = no_lesion_montage("sub-01")
    >>> [text for _, _, text in montage.texts][0]
    'sub-01: no lesions'
    >>> montage.pixels.dtype, montage.pixels.ndim
    (dtype('uint8'), 3)
    """
    width, height = _canvas_size(_samples(half_width_mm) * SCALE, 1)
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    texts = [(width / 2, height / 2, f"{title}: no lesions",
              {"ha": "center", "va": "center", "size_pt": 14, "bold": True}),
             (width / 2, height / 2 + 30, "the lesion mask is empty, or every lesion in it is below min_voxels: "
              "no lesion to show or to call rim+", {"ha": "center", "va": "top", "size_pt": 9})]
    for x, y, text, style in texts:
        _raster.draw_text(canvas, x, y, text, **style)
    return Montage(canvas, [(x, y, text) for x, y, text, _ in texts], qsm_window([], []))  # no panel to window


def write_no_lesion_montage(path: str | os.PathLike, title: str) -> Path:
    """Save :func:`no_lesion_montage` to ``path`` as PNG, where a scan with lesions gets :func:`write_montage`'s."""
    return _raster.write_png(path, no_lesion_montage(title).pixels, dpi=100)


def _scale_bar(canvas: np.ndarray, top: int, left: int, side: int, half_width_mm: float, length_mm: float = 10.0) -> tuple:
    """A white ``length_mm`` bar near the panel's bottom-right corner; returns its label."""
    px_per_mm = side / (2 * half_width_mm)
    x0 = left + int(round((2 * half_width_mm - 2.0 - length_mm) * px_per_mm))
    x1 = x0 + int(round(length_mm * px_per_mm))
    y = top + side - int(round(2.5 * px_per_mm))
    _raster.fill(canvas, slice(y - 1, y + 1), slice(x0, x1), _raster.WHITE)
    return ((x0 + x1) / 2, y - 1 - 1.0 * px_per_mm, f"{length_mm:g} mm",
            {"colour": _raster.WHITE, "size_pt": 6, "ha": "center", "va": "bottom"})


def _colourbar(canvas: np.ndarray, left: int, top: int, span: int, n_rows: int, low: float, high: float) -> list[tuple]:
    """The QSM window as a gray strip with ticks right of the panels; returns its tick labels and label."""
    from matplotlib.ticker import MaxNLocator

    bar_height = int(span * min(0.6, 0.3 + 0.05 * n_rows))
    bar_width = max(10, bar_height // 25)
    bar_top = top + (span - bar_height) // 2
    canvas[bar_top:bar_top + bar_height, left:left + bar_width] = _raster.colour_strip(bar_height, bar_width)
    texts = []
    for value in MaxNLocator(nbins=8, steps=[1, 2, 2.5, 5, 10]).tick_values(low, high):
        if not low <= value <= high:
            continue
        y = bar_top + int(round((high - value) / (high - low) * (bar_height - 1)))
        _raster.fill(canvas, slice(y, y + 1), slice(left + bar_width, left + bar_width + 4), _raster.BLACK)
        texts.append((left + bar_width + 7, y, f"{value:g}", {"size_pt": 7, "ha": "left", "va": "center"}))
    texts.append((left + bar_width + 50, bar_top + bar_height / 2, "QSM (ppb)",
                  {"size_pt": 8, "ha": "center", "va": "center", "rotation": 90}))
    return texts
