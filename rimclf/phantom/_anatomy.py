"""The phantom's brain: implicit tissue surfaces in a brain frame (mm), evaluated at any points.

The brain frame has x to the subject's left-right (+ = right), y posterior-anterior (+ = anterior),
z inferior-superior (+ = superior), origin at the brain centre. Every structure is an implicit
surface with an approximate signed distance in mm, so that tissue fractions (partial volume) follow
from soft steps of a fraction of a millimetre and the same subject can be sampled on any grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rimclf.phantom._config import rotation_matrix
from rimclf.phantom._geometry import Ellipsoid, Grid, SmoothField, make_smooth_field, sigmoid

#: coarse-field channels
BOUNDARY, SULCAL_DEPTH, QSM_BACKGROUND, FLAIR_BIAS, WM_TEXTURE = range(5)
#: fine-field channels
FOLDING, LESION_TEXTURE = range(2)

NUCLEI = ("caudate", "putamen", "pallidus", "thalamus", "red_nucleus", "nigra")
_EDGE_MM = 0.35  # width of the soft tissue boundaries
_BOX_MARGIN_MM = 6.0


@dataclass(frozen=True)
class Tissue:
    """Tissue fractions (sum to 1 inside the brain surface) and distances, on a grid or points."""

    surface_depth: np.ndarray  # mm below the outer brain surface (negative outside)
    csf: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    nuclei: list[tuple[str, tuple, np.ndarray]]  # (name, index box, fraction inside the box)
    ventricle: np.ndarray  # ventricular CSF fraction (part of csf)
    ventricle_distance: np.ndarray  # mm to the nearest ventricle (inf far from them on grids)

    def nuclei_sum(self, values: dict[str, float]) -> np.ndarray:
        """Sum over deep grey nuclei of fraction x ``values[name]``."""
        out = np.zeros_like(self.wm)
        for name, box, fraction in self.nuclei:
            out[box] += fraction * np.float32(values[name])
        return out


@dataclass(frozen=True)
class Anatomy:
    """One subject's brain: shape, structures, tissue values and smooth random fields."""

    semi_axes: np.ndarray  # brain half-widths a, b, c (mm)
    center_world: np.ndarray
    rotation: np.ndarray  # columns: brain-frame axes in scanner world
    ventricles: tuple[Ellipsoid, ...]
    nuclei: dict[str, tuple[Ellipsoid, ...]]
    cortex_mm: float
    sulcal_depth_mm: float
    fold_correlation_mm: float
    fissure_phase: np.ndarray
    coarse: SmoothField
    fine: SmoothField
    qsm_ppb: dict[str, float]
    flair: dict[str, float]

    def smooth(self, p: np.ndarray, channel: int) -> np.ndarray:
        """A coarse smooth field at points ``p``; on a grid's coordinates (3, X, Y, Z) it is sampled
        at every third voxel and interpolated (the field varies over centimetres)."""
        if p.ndim != 4 or min(p.shape[1:]) < 8:
            return self.coarse.sample(p, channel)
        sparse = self.coarse.sample(p[:, ::3, ::3, ::3], channel)
        dense = sparse
        for axis in range(3):  # linear interpolation x3 along each axis: sparse k -> voxel 3k
            dense = _upsample3(dense, axis)
        pad = [(0, max(n - d, 0)) for n, d in zip(p.shape[1:], dense.shape)]
        return np.pad(dense, pad, mode="edge")[: p.shape[1], : p.shape[2], : p.shape[3]]

    # -- surfaces ---------------------------------------------------------------------------------
    def surface(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(depth below the outer brain surface in mm, normalised radius) at points (3, ...)."""
        a, b, c = (np.float32(v) for v in self.semi_axes)
        x, y, z = p
        a_eff = a * (1.0 - 0.06 * y / b)  # wider posteriorly
        c_eff = np.where(z > 0, c, np.float32(0.85) * c)  # flatter base
        phi = np.sqrt((x / a_eff) ** 2 + (y / b) ** 2 + (z / c_eff) ** 2)
        phi = phi * (1.0 + 0.025 * self.smooth(p, BOUNDARY))
        phi = np.maximum(phi, np.float32(1e-3))
        r = np.sqrt(x * x + y * y + z * z)
        return (r * (1.0 / phi - 1.0)).astype(np.float32), phi

    def fissure_distance(self, p: np.ndarray) -> np.ndarray:
        """mm to the interhemispheric fissure (a wavy midline sheet above the corpus callosum)."""
        _, b, c = self.semi_axes
        x, y, z = p
        wobble = 0.7 * np.sin(y / 6.0 + self.fissure_phase[0]) + 0.4 * np.sin(y / 2.7 + self.fissure_phase[1])
        t = np.abs(y) / b
        floor = c * (0.42 - t * t - 6.0 * np.maximum(t - 0.45, 0.0) ** 2)  # arched over the callosum
        below = np.maximum(floor - z, 0.0)
        return np.sqrt((x - wobble) ** 2 + below**2).astype(np.float32)

    def _structures(self, p: np.ndarray, ellipsoids, grid: Grid | None, fill: float | None) -> tuple[np.ndarray | None, list]:
        """Min signed distance over ``ellipsoids`` (evaluated only in their boxes on a grid)."""
        out = np.full(p.shape[1:], np.float32(fill), dtype=np.float32) if fill is not None else None
        per = []
        for e in ellipsoids:
            sl = (slice(None),) * (p.ndim - 1) if grid is None else grid.box(e.center, e.semi_axes.max() + _BOX_MARGIN_MM)
            if sl is None:
                per.append((None, None))
                continue
            d = e.signed_distance(p[(slice(None), *sl)])
            if out is not None:
                out[sl] = np.minimum(out[sl], d)
            per.append((sl, d))
        return out, per

    # -- tissue -----------------------------------------------------------------------------------
    def tissue(self, p: np.ndarray, grid: Grid | None = None) -> Tissue:
        """Tissue fractions at brain-frame points ``p`` (3, ...); pass ``grid`` when ``p`` is a
        grid's coordinates, so small structures are evaluated only near them."""
        depth_surface, phi = self.surface(p)
        depth = depth_surface.copy()
        near = np.abs(p[0]) < self.sulcal_depth_mm + self.cortex_mm + 4.0  # the fissure's reach
        depth[near] = np.minimum(depth[near], self.fissure_distance(p[:, near]) - np.float32(0.6))

        # cortical folding: sulci are the zero sheets of a random field sampled near the surface
        # (drifting with depth, so they bend), reaching a variable depth below the outer surface
        csf_sulcal = np.zeros_like(depth)
        gm_raw = sigmoid(self.cortex_mm - depth, _EDGE_MM)
        shell = (depth_surface > -1.0) & (depth_surface < self.sulcal_depth_mm * 1.6 + self.cortex_mm + 2.0)
        if shell.any():
            ps = p[:, shell]
            fold = self.fine.sample(ps / phi[shell] * np.float32(0.7) + ps * np.float32(0.3), FOLDING)
            sulcus_mm = np.abs(fold) * np.float32(self.fold_correlation_mm)
            local_depth = self.sulcal_depth_mm * (1.0 + 0.3 * self.coarse.sample(ps, SULCAL_DEPTH))
            below = sigmoid(local_depth - depth_surface[shell], 0.5)
            csf_sulcal[shell] = sigmoid(0.5 - sulcus_mm, 0.25) * below
            along = sigmoid(self.cortex_mm + 0.3 - sulcus_mm, _EDGE_MM) * sigmoid(
                local_depth + self.cortex_mm - depth_surface[shell], 0.5
            )
            gm_raw[shell] = np.maximum(gm_raw[shell], along)

        grid_mode = grid is not None
        vent_distance, _ = self._structures(p, self.ventricles, grid, np.inf if grid_mode else 1e3)
        ventricle = sigmoid(-vent_distance, _EDGE_MM)
        parenchyma = sigmoid(depth, _EDGE_MM) * (1.0 - csf_sulcal) * (1.0 - ventricle)
        parenchyma = np.where(depth_surface > -3.0, parenchyma, np.float32(0.0))

        nuclei = []
        total = np.zeros_like(depth)
        for name in NUCLEI:
            _, per = self._structures(p, self.nuclei[name], grid, None)
            for box, d in per:
                if box is not None:
                    fraction = sigmoid(-d, 0.4)
                    total[box] += fraction
                    nuclei.append((name, box, fraction))
        scale = parenchyma / np.maximum(total, 1.0)
        nuclei = [(name, box, fraction * scale[box]) for name, box, fraction in nuclei]
        total = np.minimum(total, 1.0) * parenchyma
        gm = (parenchyma - total) * gm_raw
        wm = parenchyma - total - gm
        return Tissue(
            surface_depth=depth_surface,
            csf=(1.0 - parenchyma).astype(np.float32),
            gm=gm.astype(np.float32),
            wm=np.maximum(wm, 0.0).astype(np.float32),
            nuclei=nuclei,
            ventricle=ventricle * (depth_surface > -3.0),
            ventricle_distance=vent_distance,
        )


def _upsample3(values: np.ndarray, axis: int) -> np.ndarray:
    """Linear interpolation onto a 3x finer lattice along ``axis`` (m -> 3(m-1)+1 points)."""
    values = np.moveaxis(values, axis, 0)
    weight = (np.arange(3, dtype=np.float32) / 3).reshape((1, 3) + (1,) * (values.ndim - 1))
    fine = values[:-1, None] * (1 - weight) + values[1:, None] * weight
    fine = np.concatenate([fine.reshape((-1,) + values.shape[1:]), values[-1:]])
    return np.moveaxis(fine, 0, axis)


def _jitter(rng: np.random.Generator, values, spread: float) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    return values * (1.0 + rng.uniform(-spread, spread, size=values.shape))


def make_anatomy(rng: np.random.Generator, fov_mm: np.ndarray, age: float) -> Anatomy:
    """Draw one subject's brain that fits a field of view of ``fov_mm``."""
    size = 0.41 * min(fov_mm[0] / 0.82, fov_mm[1], fov_mm[2] / 0.70)
    semi = size * np.array([0.82, 1.0, 0.70]) * rng.uniform(0.95, 1.05, size=3)
    a, b, c = semi
    center_world = np.array([rng.uniform(-3, 3), rng.uniform(5, 15), rng.uniform(10, 25)])
    rotation = rotation_matrix(rng.uniform(-8, 8), rng.uniform(-3, 3), rng.uniform(-4, 4))
    v = float(np.clip(0.8 + 0.01 * (age - 20) + rng.uniform(-0.1, 0.35), 0.7, 1.6))  # ventricle size

    def pair(center, half, spread=0.04):
        center = np.asarray(center, dtype=float) * np.array([a, b, c])
        half = _jitter(rng, np.asarray(half, dtype=float) * np.array([a, b, c]), spread)
        return tuple(
            Ellipsoid(np.array([side * center[0], center[1], center[2]]) + rng.uniform(-0.01, 0.01, 3) * semi, half)
            for side in (-1.0, 1.0)
        )

    ventricles = (
        *pair((0.12, 0.22, 0.12), (0.085 * v, 0.21, 0.12 * v)),  # frontal horns
        *pair((0.13, -0.08, 0.20), (0.085 * v, 0.28, 0.085 * v)),  # bodies
        *pair((0.20, -0.38, 0.10), (0.085 * v, 0.14, 0.12 * v)),  # atria / occipital horns
        Ellipsoid(np.array([0.0, -0.05 * b, -0.02 * c]), np.array([0.018 * a * v, 0.14 * b, 0.12 * c])),  # third
    )
    caudate_x = 0.12 + 0.085 * v + 0.05
    nuclei = {
        "caudate": pair((caudate_x, 0.20, 0.12), (0.06, 0.17, 0.12)),
        "putamen": pair((0.42, 0.05, -0.02), (0.085, 0.22, 0.18)),
        "pallidus": pair((0.30, 0.0, -0.05), (0.055, 0.12, 0.11)),
        "thalamus": pair((0.14 + 0.018 * (v - 1), -0.17, 0.02), (0.12, 0.18, 0.14)),
        "red_nucleus": pair((0.06, -0.14, -0.33), (0.035, 0.045, 0.045)),
        "nigra": pair((0.11, -0.10, -0.40), (0.03, 0.08, 0.03)),
    }
    years = age - 20.0
    qsm_ppb = {
        "wm": rng.normal(-22, 3), "gm": rng.normal(6, 3), "csf": 0.0,
        "caudate": rng.normal(55 + 0.6 * years, 8), "putamen": rng.normal(35 + 1.0 * years, 8),
        "pallidus": rng.normal(110 + 1.3 * years, 12), "thalamus": rng.normal(8, 4),
        "red_nucleus": rng.normal(110, 15), "nigra": rng.normal(130, 15),
    }
    flair = {
        "wm": rng.normal(300, 12), "gm": rng.normal(370, 12), "csf": rng.normal(45, 6),
        "caudate": 350.0, "putamen": 335.0, "pallidus": 270.0, "thalamus": 320.0,
        "red_nucleus": 250.0, "nigra": 250.0, "skull": 25.0, "scalp": rng.normal(380, 20), "cap": 35.0,
    }
    coarse = make_smooth_field(rng, semi * 1.3 + 10.0, 4.0, 12.0, 5)
    fold_correlation_mm = 3.0
    fine = make_smooth_field(rng, semi * 1.15 + 5.0, 1.25, fold_correlation_mm, 2)
    return Anatomy(
        semi_axes=semi,
        center_world=center_world,
        rotation=rotation,
        ventricles=ventricles,
        nuclei=nuclei,
        cortex_mm=float(min(2.2, 0.1 * a)),
        sulcal_depth_mm=float(0.15 * a),
        fold_correlation_mm=fold_correlation_mm,
        fissure_phase=rng.uniform(0, 2 * np.pi, 2),
        coarse=coarse,
        fine=fine,
        qsm_ppb={k: float(val) for k, val in qsm_ppb.items()},
        flair={k: float(val) for k, val in flair.items()},
    )
