"""The "varied" acquisitions of the phantom: drawn protocols, thick slices, streaks, storage order.

``acquisition="varied"`` gives every site its own protocol, drawn from the cohort's seed
(:func:`draw_varied_site`): an oblique slab orientation, an on-disk voxel order (axes permuted and
flipped; the affine keeps world coordinates right), in-plane voxels of 0.5-1.2 mm and slices of up
to 3 mm, a noise level and texture, dipole streaking, a background-field residual and a
reference offset and scale. The pieces that render them are here too:

- thick slices with partial volume: the subject is rendered on sub-slices of at most
  :data:`SUB_SLICE_MM` (:meth:`Grid.subdivide`) and averaged into the acquired slices
  (:func:`average_slices`); the rater's lesion outlines are the majority of the sub-slice outlines
  (:func:`thick_labels`);
- dipole streaking (:func:`dipole_streaks`): strong paramagnetic sources (veins, iron-rich
  nuclei) filtered by a kernel that keeps only the spatial frequencies near the magic-angle cone of
  the dipole kernel around B0 (world z), where a dipole inversion is ill-posed and its errors
  streak;
- a background-field residual (:func:`background_residual`): a random polynomial of degree 2 in the
  brain's coordinates;
- the storage order on disk (:func:`to_storage`).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from scipy import ndimage

from rimclf.phantom._config import Site, rotation_matrix
from rimclf.phantom._geometry import Grid

#: Sub-slices of a thick slice are at most this thick (mm).
SUB_SLICE_MM = 1.0
#: Noise levels of the varied acquisitions (multiples of the difficulty's QSM noise).
NOISE_LEVELS = {"low": 0.6, "mid": 1.0, "high": 1.6}
_AXIS_LETTERS = (("L", "R"), ("P", "A"), ("I", "S"))


def draw_varied_site(rng: np.random.Generator, name: str) -> Site:
    """One acquisition protocol of the "varied" preset, all of it drawn from ``rng``."""
    oblique = rng.random() < 0.6
    tilt = rng.uniform(-25.0, 25.0) if oblique else rng.uniform(-3.0, 3.0)
    axes = rotation_matrix(x_deg=tilt, y_deg=rng.uniform(-10.0, 10.0) if oblique else 0.0,
                           z_deg=rng.uniform(-10.0, 10.0) if oblique else 0.0)
    in_plane = float(rng.uniform(0.5, 1.2))
    thickness = float(rng.uniform(max(in_plane, 0.8), 3.0))
    voxel = (round(in_plane, 2), round(in_plane * float(rng.uniform(0.95, 1.05)), 2), round(thickness, 2))
    storage = tuple(int(a) for a in (rng.permutation(3) if rng.random() < 0.5 else np.arange(3)))
    flips = tuple(bool(f) for f in rng.random(3) < 0.4)
    level = str(rng.choice(list(NOISE_LEVELS)))
    texture = "streaky" if rng.random() < 0.3 else "smooth"
    streak = 0.0 if rng.random() < 0.35 else float(rng.uniform(2.0, 10.0))
    site = Site(
        name, voxel, axes, None, None,
        qsm_scale=round(float(rng.uniform(0.7, 1.3)), 3),
        qsm_offset_ppb=round(float(rng.uniform(-20.0, 20.0)), 1),
        qsm_noise_factor=round(NOISE_LEVELS[level] * float(rng.uniform(0.9, 1.1)), 3),
        flair_gain=round(float(rng.uniform(0.6, 2.5)), 3),
        psf_sigma_mm=round(float(rng.uniform(0.5, 0.7)), 3),
        slice_oversampling=max(1, math.ceil(voxel[2] / SUB_SLICE_MM - 1e-9)),
        storage=storage,  # type: ignore[arg-type]
        storage_flips=flips,  # type: ignore[arg-type]
        noise_correlation_voxels=round(float(rng.uniform(0.3, 1.0)), 3),
        noise_texture=texture,
        streak_ppb=round(streak, 2),
        background_ppb=round(float(rng.uniform(0.0, 15.0)), 2),
    )
    return _described_site(site, oblique, level)


def _described_site(site: Site, oblique: bool, level: str) -> Site:
    words = [
        "oblique" if oblique else "axial",
        axis_codes(storage_affine(site)),
        "x".join(f"{site.qsm_voxel_mm[axis]:g}" for axis in site.storage) + " mm",
        f"{level} {site.noise_texture} noise",
        f"streaks {site.streak_ppb:g} ppb" if site.streak_ppb else "no streaks",
    ]
    return replace(site, description=", ".join(words))


def storage_affine(site: Site) -> np.ndarray:
    """The 3x3 direction part (unit columns) of the site's QSM affine as stored on disk."""
    return site.qsm_axes @ storage_matrix(site.storage, site.storage_flips)


def storage_matrix(storage: tuple[int, ...], flips: tuple[bool, ...]) -> np.ndarray:
    """Signed permutation ``M`` with ``rendered index = M @ stored index`` (+ an offset for flips)."""
    m = np.zeros((3, 3))
    for j, axis in enumerate(storage):
        m[axis, j] = -1.0 if flips[j] else 1.0
    return m


def axis_codes(directions: np.ndarray) -> str:
    """Orientation letters (``"RAS"``, ``"LPS"``, ...): where each array axis points most."""
    letters = []
    for column in np.asarray(directions, dtype=float).T:
        world = int(np.argmax(np.abs(column)))
        letters.append(_AXIS_LETTERS[world][int(column[world] > 0)])
    return "".join(letters)


def to_storage(array: np.ndarray, affine: np.ndarray, site: Site) -> tuple[np.ndarray, np.ndarray]:
    """The array and affine in the site's on-disk voxel order; world coordinates are unchanged.

    Stored axis ``j`` is rendered axis ``site.storage[j]``, reversed when ``site.storage_flips[j]``.
    """
    stored = np.transpose(array, site.storage)
    flipped = [j for j, flip in enumerate(site.storage_flips) if flip]
    if flipped:
        stored = np.flip(stored, axis=flipped)
    index_map = np.eye(4)  # stored index (homogeneous) -> rendered index
    index_map[:3, :3] = storage_matrix(site.storage, site.storage_flips)
    for j, axis in enumerate(site.storage):
        if site.storage_flips[j]:
            index_map[axis, 3] = array.shape[axis] - 1
    return np.ascontiguousarray(stored), affine @ index_map


def average_slices(volume: np.ndarray, k: int) -> np.ndarray:
    """Mean of each run of ``k`` sub-slices along axis 2 (float32)."""
    if k == 1:
        return volume
    x, y, z = volume.shape
    return volume.reshape(x, y, z // k, k).mean(axis=3, dtype=np.float32)


def thick_labels(labels: np.ndarray, k: int, min_voxels: int) -> tuple[np.ndarray, dict[int, tuple[int, int]]]:
    """Instance labels on thick slices from labels on their sub-slices.

    A thick voxel takes the label that fills at least half of it; each label keeps its largest
    26-connected component, and labels left with fewer than ``min_voxels`` voxels or touching
    another label are dropped. Returns the labels (renumbered 1..K in their previous order) and
    ``{old label: (new label, voxel count)}``.
    """
    x, y, z = labels.shape
    n = int(labels.max())
    runs = labels.reshape(x, y, z // k, k)
    out = np.zeros((x, y, z // k), dtype=labels.dtype)
    for label in range(1, n + 1):
        out[(runs == label).sum(axis=3) * 2 >= k] = label
    full = np.ones((3, 3, 3), dtype=bool)
    kept: dict[int, tuple[int, int]] = {}
    result = np.zeros_like(out)
    boxes = ndimage.find_objects(out, max_label=n)
    for label in range(1, n + 1):
        box = boxes[label - 1]
        if box is None:
            continue
        box = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in box)
        components, count = ndimage.label(out[box] == label, structure=full)
        sizes = np.bincount(components.ravel())[1:]
        if not count or sizes.max() < min_voxels:
            continue
        keep = components == int(np.argmax(sizes)) + 1
        grown = ndimage.binary_dilation(keep, structure=full)
        if (result[box][grown] > 0).any():
            continue
        kept[label] = (len(kept) + 1, int(keep.sum()))
        result[box][keep] = len(kept)
    return result, kept


def dipole_streaks(source: np.ndarray, grid: Grid, width: float = 0.06) -> np.ndarray:
    """``source`` filtered to the spatial frequencies near the dipole kernel's magic-angle cone.

    ``D(k) = 1/3 - (k . b0)^2 / |k|^2`` with B0 along world z; the filter is
    ``exp(-(D / width)^2)``, so it keeps what a dipole inversion cannot recover and smears it
    along the cone: the streaks that fan out of veins and iron-rich nuclei on QSM.
    """
    directions = grid.affine[:3, :3] / grid.voxel_mm  # unit columns: world direction of each axis
    b0 = directions.T @ np.array([0.0, 0.0, 1.0])  # B0 in the array's axes
    k = np.meshgrid(*(np.fft.fftfreq(n, d=v) for n, v in zip(grid.shape, grid.voxel_mm)), indexing="ij", sparse=True)
    k2 = k[0] ** 2 + k[1] ** 2 + k[2] ** 2
    kz = b0[0] * k[0] + b0[1] * k[1] + b0[2] * k[2]
    with np.errstate(invalid="ignore", divide="ignore"):
        kernel = np.where(k2 > 0, 1.0 / 3.0 - kz**2 / k2, 1.0 / 3.0)
    filtered = np.fft.ifftn(np.fft.fftn(source) * np.exp(-((kernel / width) ** 2))).real
    return filtered.astype(np.float32)


def background_residual(rng: np.random.Generator, points: np.ndarray, semi_axes: np.ndarray) -> np.ndarray:
    """A random polynomial of degree 2 of the normalised brain coordinates, about unit size at the
    brain's surface (float32, the shape of ``points[0]``)."""
    u = [points[i] / np.float32(semi_axes[i]) for i in range(3)]
    terms = [u[0], u[1], u[2], u[0] * u[1], u[0] * u[2], u[1] * u[2], u[0] ** 2 - 0.3, u[1] ** 2 - 0.3, u[2] ** 2 - 0.3]
    weights = rng.normal(0.0, 1.0, len(terms))
    weights /= np.linalg.norm(weights) + 1e-12
    return sum(np.float32(w) * t for w, t in zip(weights, terms)).astype(np.float32)


def site_record(site: Site) -> dict:
    """What ``phantom.json`` and ``participants.tsv`` record of a varied site's protocol."""
    return {
        "description": site.description,
        "qsm_voxel_mm": list(site.qsm_voxel_mm),
        "orientation": axis_codes(storage_affine(site)),
        "tilt_deg": round(float(np.degrees(np.arccos(np.clip(site.qsm_axes[2, 2], -1.0, 1.0)))), 1),
        "storage": list(site.storage),
        "storage_flips": list(site.storage_flips),
        "slice_oversampling": site.slice_oversampling,
        "qsm_scale": site.qsm_scale,
        "qsm_offset_ppb": site.qsm_offset_ppb,
        "qsm_noise_factor": site.qsm_noise_factor,
        "noise_correlation_voxels": site.noise_correlation_voxels,
        "noise_texture": site.noise_texture,
        "streak_ppb": site.streak_ppb,
        "background_ppb": site.background_ppb,
        "flair_gain": site.flair_gain,
        "psf_sigma_mm": site.psf_sigma_mm,
    }
