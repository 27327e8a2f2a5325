"""Veins of the phantom: thin paramagnetic tubes (deoxyhaemoglobin), the classic rim mimic on QSM."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rimclf.phantom._anatomy import Anatomy
from rimclf.phantom._geometry import Grid, gaussian_blur_mm, splat_lines

STEP_MM = 0.4
_THICK_MM = 0.7  # veins at least this wide are blurred more and darken the FLAIR


@dataclass(frozen=True)
class Vein:
    """A vein: centre-line points (N, 3) in the brain frame, ``STEP_MM`` apart."""

    points: np.ndarray
    radius_mm: float
    chi_ppb: float


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def polyline(control: np.ndarray) -> np.ndarray:
    """Points every ``STEP_MM`` along straight segments through ``control`` points (K, 3)."""
    control = np.asarray(control, dtype=float)
    seg = np.linalg.norm(np.diff(control, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    s = np.arange(0.0, arc[-1] + 1e-9, STEP_MM)
    return np.stack([np.interp(s, arc, control[:, k]) for k in range(3)], axis=1)


def random_walk(
    rng: np.random.Generator,
    start: np.ndarray,
    direction: np.ndarray,
    n_steps: int,
    wander: float = 0.12,
    project: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Smoothly curving paths from ``start`` (n, 3); returns (n, n_steps + 1, 3)."""
    points = [np.asarray(start, dtype=float)]
    d = unit(np.asarray(direction, dtype=float))
    p = points[0]
    for _ in range(n_steps):
        d = unit(d + wander * rng.standard_normal(d.shape))
        new = p + STEP_MM * d
        if project is not None:
            new = project(new)
            d = unit(new - p)
        p = new
        points.append(p)
    return np.stack(points, axis=1)


def _project_to_depth(anatomy: Anatomy, depth_mm: float) -> Callable[[np.ndarray], np.ndarray]:
    def project(points: np.ndarray) -> np.ndarray:
        for _ in range(2):
            _, phi = anatomy.surface(points.T.astype(np.float32))
            surface = points / phi[:, None]
            radius = np.linalg.norm(surface, axis=1, keepdims=True)
            points = surface * (1.0 - depth_mm / radius)
        return points

    return project


def make_anatomy_veins(rng: np.random.Generator, anatomy: Anatomy) -> list[Vein]:
    """Medullary veins (ventricles to cortex), cortical veins, internal cerebral and
    thalamostriate veins."""
    a, b, c = anatomy.semi_axes
    veins: list[Vein] = []

    # medullary veins: from the lateral ventricles' walls outwards to the cortex
    n_medullary = int(rng.integers(16, 31))
    chosen = rng.integers(0, 6, n_medullary)
    u = unit(rng.standard_normal((n_medullary, 3)) * np.array([1.0, 0.6, 1.0]) + np.array([0, 0, 0.3]))
    start = np.array([anatomy.ventricles[i].center + anatomy.ventricles[i].semi_axes * u[k] for k, i in enumerate(chosen)])
    outward = unit(start * np.array([1.0, 0.2, 1.0]) - np.array([0.0, 0.0, 0.05 * c]))
    paths = random_walk(rng, start, unit(outward + 0.5 * u), int(np.ceil(0.6 * a / STEP_MM)), wander=0.08)
    depth, _ = anatomy.surface(np.moveaxis(paths, -1, 0).astype(np.float32))
    for k in range(n_medullary):
        shallow = np.nonzero(depth[k] < anatomy.cortex_mm + 0.5)[0]
        end = shallow[0] if shallow.size else paths.shape[1]
        if end > 4:
            veins.append(Vein(paths[k, :end], float(rng.uniform(0.3, 0.55)), float(rng.uniform(300, 450))))

    # cortical veins: along the surface, in the sulcal CSF / outer cortex
    n_cortical = int(rng.integers(8, 15))
    project = _project_to_depth(anatomy, 0.7)
    u = unit(rng.standard_normal((n_cortical, 3)) + np.array([0.0, 0.0, 0.6]))
    start = project(u * anatomy.semi_axes)
    tangent = unit(np.cross(u, rng.standard_normal((n_cortical, 3))))
    n_steps = int(rng.uniform(15, 35) / STEP_MM)
    paths = random_walk(rng, start, tangent, n_steps, wander=0.1, project=project)
    for k in range(n_cortical):
        veins.append(Vein(paths[k], float(rng.uniform(0.5, 0.9)), float(rng.uniform(300, 450))))

    # deep veins: internal cerebral veins and thalamostriate veins (paired)
    for side in (-1.0, 1.0):
        icv = [[side * 1.2, 0.05 * b, 0.15 * c], [side * 1.0, -0.15 * b, 0.16 * c], [side * 0.8, -0.35 * b, 0.12 * c]]
        veins.append(Vein(polyline(np.array(icv)), 0.8, float(rng.uniform(330, 420))))
        tsv = [[side * 0.22 * a, -0.2 * b, 0.16 * c], [side * 0.12 * a, -0.05 * b, 0.16 * c], [side * 0.04 * a, 0.04 * b, 0.15 * c]]
        veins.append(Vein(polyline(np.array(tsv)), 0.6, float(rng.uniform(300, 400))))
    return veins


def render_veins(grid: Grid, veins: list[Vein]) -> tuple[np.ndarray, np.ndarray]:
    """Veins on ``grid``: (susceptibility in ppb, fraction of each voxel inside a thick vein).

    Each centre-line point carries the vein's cross-section times its susceptibility; a Gaussian
    blur with about the vein's radius spreads it into a tube (partial volume included).
    """
    voxel_volume = float(np.prod(grid.voxel_mm))
    qsm = np.zeros(grid.shape, dtype=np.float32)
    thick_fraction = np.zeros(grid.shape, dtype=np.float32)
    for thick, sigma_mm in ((False, 0.5), (True, 0.9)):
        group = [v for v in veins if (v.radius_mm >= _THICK_MM) == thick]
        if not group:
            continue
        points = np.concatenate([v.points for v in group])
        area = np.concatenate([np.full(len(v.points), np.pi * v.radius_mm**2 * STEP_MM / voxel_volume) for v in group])
        chi = np.concatenate([np.full(len(v.points), v.chi_ppb) for v in group])
        qsm += gaussian_blur_mm(splat_lines(grid, points, area * chi), sigma_mm, grid.voxel_mm)
        if thick:
            thick_fraction = gaussian_blur_mm(splat_lines(grid, points, area), sigma_mm, grid.voxel_mm)
    return qsm, thick_fraction
