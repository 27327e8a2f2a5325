"""Geometry helpers of the phantom: voxel grids, smooth random fields, ellipsoids, splatting."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.special import expit


def sigmoid(x: np.ndarray, width: float) -> np.ndarray:
    """A soft step 0 -> 1 around ``x = 0`` over about ``width`` (float32)."""
    return expit(np.asarray(x, dtype=np.float32) / np.float32(width)).astype(np.float32, copy=False)


@dataclass(frozen=True)
class Grid:
    """A voxel grid placed in the subject's brain frame.

    ``affine`` maps voxel indices to scanner world coordinates (RAS+ mm); ``to_brain`` (3x3) and
    ``brain_origin`` (3,) map voxel indices to brain-frame mm: ``p = to_brain @ ijk + brain_origin``.
    """

    shape: tuple[int, int, int]
    affine: np.ndarray
    to_brain: np.ndarray
    brain_origin: np.ndarray

    @property
    def voxel_mm(self) -> np.ndarray:
        return np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))

    def brain_coordinates(self) -> np.ndarray:
        """Brain-frame coordinates of every voxel centre, shape (3, X, Y, Z) float32."""
        axes = [np.arange(n, dtype=np.float32) for n in self.shape]
        coords = np.empty((3, *self.shape), dtype=np.float32)
        m = self.to_brain.astype(np.float32)
        for row in range(3):
            coords[row] = (
                m[row, 0] * axes[0][:, None, None]
                + m[row, 1] * axes[1][None, :, None]
                + m[row, 2] * axes[2][None, None, :]
                + np.float32(self.brain_origin[row])
            )
        return coords

    def subdivide(self, k: int) -> Grid:
        """The grid with each slice (array axis 2) cut into ``k`` sub-slices covering it exactly:
        the mean of sub-slices ``k j .. k j + k - 1`` is slice ``j`` with a box slice profile."""
        step = self.affine[:3, 2] / k
        shift = -0.5 + 0.5 / k  # of a thick slice, from its centre to its first sub-slice's centre
        affine = self.affine.copy()
        affine[:3, 2] = step
        affine[:3, 3] = self.affine[:3, 3] + self.affine[:3, 2] * shift
        to_brain = self.to_brain.copy()
        to_brain[:, 2] = self.to_brain[:, 2] / k
        shape = (self.shape[0], self.shape[1], self.shape[2] * k)
        return Grid(shape, affine, to_brain, self.brain_origin + self.to_brain[:, 2] * shift)

    def to_index(self, points: np.ndarray) -> np.ndarray:
        """Continuous voxel indices (N, 3) of brain-frame points (N, 3)."""
        return np.linalg.solve(self.to_brain, (np.asarray(points) - self.brain_origin).T).T

    def box(self, center: np.ndarray, radius_mm: float) -> tuple[slice, slice, slice] | None:
        """Index slices of the voxels within ``radius_mm`` (per axis) of a brain-frame point.

        ``None`` when the box lies entirely outside the grid.
        """
        index = self.to_index(np.asarray(center)[None])[0]
        half = radius_mm / self.voxel_mm
        slices = []
        for axis in range(3):
            lo = max(int(np.floor(index[axis] - half[axis])), 0)
            hi = min(int(np.ceil(index[axis] + half[axis])) + 1, self.shape[axis])
            if hi <= lo:
                return None
            slices.append(slice(lo, hi))
        return tuple(slices)  # type: ignore[return-value]


def make_grid(
    shape: tuple[int, int, int],
    voxel_mm: tuple[float, float, float],
    axes: np.ndarray,
    fov_center_world: np.ndarray,
    brain_center_world: np.ndarray,
    brain_rotation: np.ndarray,
) -> Grid:
    """A grid of ``shape`` voxels centred on ``fov_center_world`` with array axes along ``axes``.

    ``brain_rotation`` (columns: brain-frame axes in world) and ``brain_center_world`` place the
    subject's brain in the scanner.
    """
    linear = np.asarray(axes, dtype=float) @ np.diag(voxel_mm)
    origin = np.asarray(fov_center_world, dtype=float) - linear @ ((np.asarray(shape) - 1) / 2.0)
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = origin
    to_brain = brain_rotation.T @ linear
    brain_origin = brain_rotation.T @ (origin - brain_center_world)
    return Grid(tuple(int(n) for n in shape), affine, to_brain, brain_origin)  # type: ignore[arg-type]


@dataclass(frozen=True)
class SmoothField:
    """Smooth Gaussian random fields (unit standard deviation) on a regular brain-frame lattice."""

    values: np.ndarray  # (C, X, Y, Z) float32
    origin_mm: np.ndarray  # brain-frame position of lattice point [0, 0, 0]
    spacing_mm: float

    def sample(self, points: np.ndarray, channel: int, shift_mm: np.ndarray | None = None) -> np.ndarray:
        """Values at brain-frame ``points`` of shape (3, ...); outside the lattice it mirrors."""
        origin = self.origin_mm if shift_mm is None else self.origin_mm - np.asarray(shift_mm)
        coords = (points - origin.reshape((3,) + (1,) * (points.ndim - 1)).astype(np.float32)) / np.float32(
            self.spacing_mm
        )
        return ndimage.map_coordinates(
            self.values[channel], coords, order=1, mode="mirror", prefilter=False, output=np.float32
        )


def make_smooth_field(
    rng: np.random.Generator, half_extent_mm: np.ndarray, spacing_mm: float, correlation_mm: float, n_channels: int
) -> SmoothField:
    """White noise smoothed with a Gaussian of ``correlation_mm``, rescaled to unit variance."""
    shape = tuple(int(np.ceil(2 * h / spacing_mm)) + 1 for h in half_extent_mm)
    values = rng.standard_normal((n_channels, *shape), dtype=np.float32)
    for c in range(n_channels):
        values[c] = ndimage.gaussian_filter(values[c], correlation_mm / spacing_mm, mode="wrap")
        values[c] /= values[c].std() + np.float32(1e-12)
    return SmoothField(values, -np.asarray(half_extent_mm, dtype=float), float(spacing_mm))


@dataclass(frozen=True)
class Ellipsoid:
    """An ellipsoid in the brain frame; ``rotation`` columns are its axes (identity when None)."""

    center: np.ndarray
    semi_axes: np.ndarray
    rotation: np.ndarray | None = None

    def local(self, points: np.ndarray) -> np.ndarray:
        """Coordinates of ``points`` (3, ...) in the ellipsoid's own frame (mm)."""
        q = points - self.center.reshape((3,) + (1,) * (points.ndim - 1)).astype(np.float32)
        if self.rotation is not None:
            q = np.tensordot(self.rotation.T.astype(np.float32), q, axes=1)
        return q

    def signed_distance(self, points: np.ndarray) -> np.ndarray:
        """Approximate signed distance to the surface (mm, positive outside), measured along rays
        from the centre."""
        q = self.local(points)
        return ray_distance(q, self.semi_axes)


def ray_distance(q: np.ndarray, semi_axes: np.ndarray, scale: np.ndarray | float = 1.0) -> np.ndarray:
    """Signed distance (mm) along the ray from the centre to the surface of an ellipsoid.

    ``q`` are centred local coordinates (3, ...); ``scale`` multiplies the normalised radius
    (values above 1 shrink the ellipsoid locally: the irregular boundary of a lesion).
    """
    s = np.asarray(semi_axes, dtype=np.float32).reshape((3,) + (1,) * (q.ndim - 1))
    rho = np.sqrt(((q / s) ** 2).sum(axis=0))
    r = np.sqrt((q**2).sum(axis=0))
    ray = np.where(rho > 1e-6, r / np.maximum(rho, 1e-6), np.float32(np.min(semi_axes)))
    return ((rho * scale - 1.0) * ray).astype(np.float32, copy=False)


def splat_lines(grid: Grid, points: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Trilinear splatting of weighted brain-frame points (N, 3) onto ``grid`` (float32 volume)."""
    out = np.zeros(int(np.prod(grid.shape)), dtype=np.float64)
    if len(points):
        index = grid.to_index(points)
        base = np.floor(index).astype(np.int64)
        frac = index - base
        for corner in np.ndindex(2, 2, 2):
            offset = np.array(corner)
            cell = base + offset
            w = weights * np.prod(np.where(offset == 1, frac, 1.0 - frac), axis=1)
            inside = np.all((cell >= 0) & (cell < np.array(grid.shape)), axis=1)
            flat = np.ravel_multi_index(tuple(cell[inside].T), grid.shape)
            out += np.bincount(flat, weights=w[inside], minlength=out.size)
    return out.reshape(grid.shape).astype(np.float32)


def gaussian_blur_mm(volume: np.ndarray, sigma_mm: float, voxel_mm: np.ndarray) -> np.ndarray:
    """Isotropic Gaussian blur of ``sigma_mm`` on an (orthogonal, possibly anisotropic) grid."""
    return ndimage.gaussian_filter(volume, sigma_mm / np.asarray(voxel_mm), mode="nearest", output=np.float32)
