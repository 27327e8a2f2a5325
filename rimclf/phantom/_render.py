"""One phantom subject: anatomy, lesions and veins rendered into QSM, FLAIR and a lesion mask."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from rimclf.phantom._acquisition import (
    average_slices,
    background_residual,
    dipole_streaks,
    thick_labels,
    to_storage,
)
from rimclf.phantom._anatomy import FLAIR_BIAS, QSM_BACKGROUND, WM_TEXTURE, Anatomy, Tissue, make_anatomy
from rimclf.phantom._config import Difficulty, Site
from rimclf.phantom._geometry import Grid, gaussian_blur_mm, make_grid, sigmoid
from rimclf.phantom._lesions import Lesion, place_lesions
from rimclf.phantom._veins import make_anatomy_veins, render_veins

#: Lesions whose drawn mask is smaller than this are left out (they would be unusable).
MIN_MASK_VOXELS = 15


@dataclass(frozen=True)
class SubjectImages:
    """A rendered subject: arrays, affines and one record per lesion in the mask."""

    qsm: np.ndarray  # float32, ppb
    qsm_affine: np.ndarray
    flair: np.ndarray  # float32, scanner units
    flair_affine: np.ndarray
    labels: np.ndarray  # int16 instance labels on the QSM grid
    age: float
    sex: str
    lesions: list[dict]


@dataclass(frozen=True)
class _Kept:
    lesion: Lesion
    label: int
    n_voxels: int


def make_grids(rng: np.random.Generator, site: Site, fov_mm: np.ndarray, anatomy: Anatomy) -> tuple[Grid, Grid | None]:
    """The site's QSM grid (and FLAIR grid when it has its own) around the subject's head."""
    fov_center = anatomy.center_world + rng.uniform(-4.0, 4.0, 3)
    grids = []
    for voxel_mm, axes in ((site.qsm_voxel_mm, site.qsm_axes), (site.flair_voxel_mm, site.flair_axes)):
        if voxel_mm is None:
            grids.append(None)
            continue
        extent_mm = np.abs(np.round(axes)).T @ fov_mm  # the field of view along each array axis
        shape = tuple(int(n) for n in np.maximum(np.round(extent_mm / np.asarray(voxel_mm)), 8))
        grids.append(make_grid(shape, voxel_mm, axes, fov_center, anatomy.center_world, anatomy.rotation))
    return grids[0], grids[1]


def render_subject(
    rng: np.random.Generator,
    site: Site,
    fov_mm: np.ndarray,
    difficulty: Difficulty,
    n_lesions: int,
    rim_prevalence: float,
) -> SubjectImages:
    """Draw and render one subject (all randomness from ``rng``, in a fixed order)."""
    age = float(rng.uniform(20, 65))
    sex = "F" if rng.random() < 0.72 else "M"
    anatomy = make_anatomy(rng, fov_mm, age)
    lesions = place_lesions(rng, anatomy, n_lesions, rim_prevalence, difficulty)
    veins = make_anatomy_veins(rng, anatomy)
    acquired, flair_grid = make_grids(rng, site, fov_mm, anatomy)
    n_sub = site.slice_oversampling
    # thick slices: render on sub-slices, average them into the acquired slices
    qsm_grid = acquired.subdivide(n_sub) if n_sub > 1 else acquired

    points = qsm_grid.brain_coordinates()
    tissue = anatomy.tissue(points, qsm_grid)
    labels, kept = _draw_masks(rng, qsm_grid, points, tissue, lesions, anatomy, site)
    shown = [k.lesion for k in kept]
    all_veins = veins + [v for lesion in shown for v in lesion.veins]

    vein_ppb, vein_fraction = render_veins(qsm_grid, all_veins)
    clean = _clean_qsm(qsm_grid, points, tissue, shown, vein_ppb, anatomy, site)
    if n_sub > 1:
        labels, renumbered = thick_labels(labels, n_sub, MIN_MASK_VOXELS)
        kept = [_Kept(k.lesion, *renumbered[k.label]) for k in kept if k.label in renumbered]
        support = average_slices(tissue.surface_depth, n_sub) > -0.5
        clean = average_slices(clean, n_sub)
    else:
        support = tissue.surface_depth > -0.5
    background_points = acquired.brain_coordinates() if site.background_ppb > 0 and n_sub > 1 else points
    qsm = _acquire_qsm(rng, acquired, clean, support, background_points, anatomy, site, difficulty)
    if flair_grid is not None:  # the site's FLAIR has its own grid: render the subject again there
        flair_points = flair_grid.brain_coordinates()
        flair_tissue = anatomy.tissue(flair_points, flair_grid)
        _, flair_veins = render_veins(flair_grid, all_veins)
        flair = _clean_flair(flair_grid, flair_points, flair_tissue, shown, flair_veins, anatomy, site)
    else:  # on the QSM grid (its sub-slices averaged, for thick slices)
        flair = average_slices(_clean_flair(qsm_grid, points, tissue, shown, vein_fraction, anatomy, site), n_sub)
    flair = _acquire_flair(rng, flair, anatomy, site, difficulty)
    qsm_affine = acquired.affine
    flair_affine = acquired.affine if flair_grid is None else flair_grid.affine
    if site.storage != (0, 1, 2) or any(site.storage_flips):  # the voxel order on disk
        labels, _ = to_storage(labels, acquired.affine, site)
        qsm, qsm_affine = to_storage(qsm, acquired.affine, site)
        if flair_grid is None:
            flair, flair_affine = to_storage(flair, acquired.affine, site)

    records = [
        {
            "lesion_id": k.label,
            "rim": int(k.lesion.rim),
            "pattern": k.lesion.pattern,
            "central_vein": int(k.lesion.central_vein),
            "radius_mm": round(k.lesion.radius_mm, 2),
            "n_voxels": k.n_voxels,
            "rim_ppb": round(k.lesion.shell_ppb, 1) if k.lesion.rim else 0.0,
            "rim_completeness": round(k.lesion.shell_completeness, 2) if k.lesion.rim else 0.0,
        }
        for k in sorted(kept, key=lambda k: k.label)
    ]
    return SubjectImages(qsm, qsm_affine, flair, flair_affine, labels, age, sex, records)


def _draw_masks(
    rng: np.random.Generator, grid: Grid, points: np.ndarray, tissue: Tissue, lesions: list[Lesion], anatomy: Anatomy,
    site: Site,
) -> tuple[np.ndarray, list[_Kept]]:
    """The rater's FLAIR outlines on the QSM grid: the blurred lesion thresholded, largest component.

    Lesions whose outline is too small or would touch another lesion are dropped, so every label
    is one 26-connected component and the mask reads the same as instance labels or as binary.
    """
    labels = np.zeros(grid.shape, dtype=np.int16)
    kept: list[tuple[Lesion, int]] = []
    full = np.ones((3, 3, 3), dtype=bool)
    for lesion in lesions:
        box = grid.box(lesion.body.center, lesion.reach_mm)
        if box is None:
            continue
        occupancy, _, _ = lesion.fields(points[(slice(None), *box)], anatomy.fine)
        occupancy = occupancy * (1.0 - tissue.csf[box])
        outline = gaussian_blur_mm(occupancy, site.psf_sigma_mm, grid.voxel_mm) > lesion.mask_threshold
        components, n = ndimage.label(outline, structure=full)
        if n == 0:
            continue
        sizes = np.bincount(components.ravel())[1:]
        outline = components == (int(np.argmax(sizes)) + 1)
        if sizes.max() < MIN_MASK_VOXELS:
            continue
        if labels[box][ndimage.binary_dilation(outline, structure=full)].any():
            continue
        labels[box][outline] = len(kept) + 1
        kept.append((lesion, int(sizes.max())))
    # instance labels in random order, so a label says nothing about size or rim status
    new_label = np.concatenate([[0], rng.permutation(len(kept)) + 1]).astype(np.int16)
    return new_label[labels], [_Kept(lesion, int(new_label[i + 1]), n) for i, (lesion, n) in enumerate(kept)]


def _correlated_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma_voxels: float) -> np.ndarray:
    """Gaussian noise, smoothed like a reconstructed image's, with unit standard deviation."""
    noise = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma_voxels, mode="wrap")
    return noise / (noise.std() + np.float32(1e-12))


def _clean_qsm(
    grid: Grid, points: np.ndarray, tissue: Tissue, lesions: list[Lesion], vein_ppb: np.ndarray, anatomy: Anatomy,
    site: Site,
) -> np.ndarray:
    """The QSM before noise and calibration: tissue, lesions, veins, background, blur."""
    chi = anatomy.qsm_ppb
    texture = anatomy.smooth(points, WM_TEXTURE)
    qsm = tissue.wm * (chi["wm"] + 2.5 * texture) + tissue.gm * chi["gm"] + tissue.csf * chi["csf"]
    qsm += tissue.nuclei_sum(chi)
    for lesion in lesions:
        box = grid.box(lesion.body.center, lesion.reach_mm)
        _, delta, _ = lesion.fields(points[(slice(None), *box)], anatomy.fine)
        qsm[box] += (1.0 - tissue.csf[box]) * delta
    qsm += vein_ppb + 3.0 * anatomy.smooth(points, QSM_BACKGROUND)
    return gaussian_blur_mm(qsm, site.psf_sigma_mm, grid.voxel_mm)


def _acquire_qsm(
    rng: np.random.Generator, grid: Grid, qsm: np.ndarray, support: np.ndarray, points: np.ndarray, anatomy: Anatomy,
    site: Site, difficulty: Difficulty,
) -> np.ndarray:
    """Artefacts, noise, the site's scale and reference offset; zero outside ``support``."""
    if site.streak_ppb > 0:  # errors of the dipole inversion around strong paramagnetic sources
        source = np.clip(qsm - np.float32(anatomy.qsm_ppb["wm"] + 30.0), 0.0, None) * support
        streaks = dipole_streaks(source, grid)
        spread = float(streaks[support].std()) if support.any() else 0.0
        if spread > 0:
            qsm = qsm + streaks * np.float32(site.streak_ppb / spread)
    if site.background_ppb > 0:
        qsm = qsm + np.float32(site.background_ppb) * background_residual(rng, points, anatomy.semi_axes)
    noise = _correlated_noise(rng, grid.shape, site.noise_correlation_voxels)
    if site.noise_texture == "streaky":
        noise = 0.5 * noise + dipole_streaks(noise, grid, width=0.1)
        noise /= noise.std() + np.float32(1e-12)
    qsm += noise * np.float32(difficulty.qsm_noise_ppb * site.qsm_noise_factor)
    qsm = qsm * np.float32(site.qsm_scale) + np.float32(site.qsm_offset_ppb)
    return np.where(support, qsm, np.float32(0.0)).astype(np.float32)


def _clean_flair(
    grid: Grid, points: np.ndarray, tissue: Tissue, lesions: list[Lesion], vein_fraction: np.ndarray,
    anatomy: Anatomy, site: Site,
) -> np.ndarray:
    """The FLAIR before noise: tissue, lesions, caps, head, bias field, blur and gain."""
    value = anatomy.flair
    flair = tissue.wm * value["wm"] + tissue.gm * value["gm"] + tissue.csf * value["csf"]
    flair += tissue.nuclei_sum(value)
    parenchyma = 1.0 - tissue.csf
    near_ventricle = np.exp(-np.maximum(tissue.ventricle_distance, 0.0) / 1.5)
    flair += value["cap"] * near_ventricle * parenchyma  # periventricular caps and lining
    for lesion in lesions:
        box = grid.box(lesion.body.center, lesion.reach_mm)
        if box is None:
            continue
        _, _, delta = lesion.fields(points[(slice(None), *box)], anatomy.fine)
        flair[box] += parenchyma[box] * delta * np.float32(value["wm"])
    flair *= 1.0 - 0.4 * np.clip(vein_fraction, 0.0, 1.0)  # large veins are slightly dark

    # outside the brain: subarachnoid CSF, skull, scalp, air
    b = anatomy.semi_axes[1]
    out = -tissue.surface_depth
    s1, s2, s3 = 0.03 * b, 0.10 * b, 0.18 * b
    skull = sigmoid(out - s1, 0.4) * sigmoid(s2 - out, 0.4)
    scalp = sigmoid(out - s2, 0.4) * sigmoid(s3 - out, 0.6)
    head = sigmoid(s3 - out, 0.6)
    flair = (head - skull - scalp) * flair + skull * value["skull"] + scalp * value["scalp"]

    z = points[2] / np.float32(anatomy.semi_axes[2])
    flair *= np.exp(0.08 * anatomy.smooth(points, FLAIR_BIAS) + 0.04 * z)
    return gaussian_blur_mm(flair, site.psf_sigma_mm, grid.voxel_mm) * np.float32(site.flair_gain)


def _acquire_flair(rng: np.random.Generator, flair: np.ndarray, anatomy: Anatomy, site: Site, difficulty: Difficulty) -> np.ndarray:
    """Rician noise."""
    sigma = np.float32(difficulty.flair_noise_fraction * anatomy.flair["wm"] * site.flair_gain)
    real = flair + sigma * rng.standard_normal(flair.shape, dtype=np.float32)
    imaginary = sigma * rng.standard_normal(flair.shape, dtype=np.float32)
    return np.sqrt(real * real + imaginary * imaginary).astype(np.float32)
