"""White-matter lesions of the phantom: sizes, shapes, placement and QSM patterns (rim+ and mimics)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from rimclf.phantom._anatomy import LESION_TEXTURE, Anatomy
from rimclf.phantom._config import RIM_NEGATIVE_PATTERNS, Difficulty
from rimclf.phantom._geometry import Ellipsoid, SmoothField, ray_distance, sigmoid
from rimclf.phantom._veins import Vein, polyline, unit

_LATTICE_MM = 2.0  # spacing of the candidate lesion centres
_TEXTURE_ZOOM = 1.6  # lesion texture correlation = folding correlation / this


@dataclass(frozen=True)
class Lesion:
    """One lesion in the brain frame and its QSM appearance."""

    body: Ellipsoid
    lobes: tuple[Ellipsoid, ...]
    irregularity: float
    texture_shift_mm: np.ndarray
    rim: bool
    pattern: str  # "rim" or one of RIM_NEGATIVE_PATTERNS
    core_ppb: float  # homogeneous susceptibility change inside the lesion
    flair_ratio: float  # lesion / white-matter FLAIR intensity
    shell_ppb: float  # contrast of the paramagnetic shell once blurred (rim, or faint ring); 0 = none
    shell_completeness: float  # fraction of the edge the shell covers
    shell_direction: np.ndarray  # centre of the covered arc (unit vector, lesion frame)
    shell_offset_mm: float  # shell centre relative to the lesion boundary (+ = outside)
    shell_width_mm: float  # Gaussian sigma of the shell profile
    spot_center: np.ndarray
    spot_sigma_mm: float
    spot_ppb: float  # off-centre paramagnetic spot (mimic); 0 = none
    veins: tuple[Vein, ...]
    central_vein: bool
    mask_threshold: float  # where the rater's FLAIR outline falls on the blurred lesion
    radius_mm: float  # equivalent radius of the main body

    @property
    def reach_mm(self) -> float:
        """Distance from the centre beyond which the lesion (with shell and spot) has no effect."""
        reach = float(self.body.semi_axes.max())
        for lobe in self.lobes:
            reach = max(reach, float(np.linalg.norm(lobe.center - self.body.center) + lobe.semi_axes.max()))
        reach *= float(np.exp(2.0 * self.irregularity))  # the largest bulge of the irregular boundary
        return reach + max(self.shell_offset_mm, 0.0) + 3.0 * self.shell_width_mm + 1.5

    def fields(self, p: np.ndarray, texture: SmoothField) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(occupancy 0..1, QSM change in ppb, FLAIR change as a fraction of white matter) at ``p``."""
        fine = p * np.float32(_TEXTURE_ZOOM)  # a finer texture than the folding field's
        tex = texture.sample(fine, LESION_TEXTURE, self.texture_shift_mm)
        scale = np.exp(np.float32(self.irregularity) * np.clip(tex, -2.0, 2.0))
        q = self.body.local(p)
        distance = ray_distance(q, self.body.semi_axes, scale)
        for lobe in self.lobes:
            distance = np.minimum(distance, ray_distance(lobe.local(p), lobe.semi_axes, scale))
        occupancy = sigmoid(-distance, 0.35)
        qsm = occupancy * np.float32(self.core_ppb + 2.0 * tex)
        if self.shell_ppb > 0:
            profile = np.exp(-0.5 * ((distance - self.shell_offset_mm) / self.shell_width_mm) ** 2)
            if self.shell_completeness < 0.97:
                norm = np.maximum(np.sqrt((q**2).sum(axis=0)), np.float32(1e-6))
                cosine = np.tensordot(self.shell_direction.astype(np.float32), q, axes=(0, 0)) / norm
                profile = profile * sigmoid(cosine - (1.0 - 2.0 * self.shell_completeness), 0.12)
            patchy = np.clip(1.0 + 0.3 * texture.sample(fine, LESION_TEXTURE, self.texture_shift_mm + 17.0), 0.4, 1.4)
            # ``shell_ppb`` is the contrast seen after a ~0.6 mm partial-volume blur: boost the thin shell
            peak = self.shell_ppb * np.sqrt(1.0 + (0.6 / self.shell_width_mm) ** 2)
            qsm = qsm + np.float32(peak) * profile * patchy
        if self.spot_ppb > 0:
            r2 = ((p - self.spot_center.reshape((3,) + (1,) * (p.ndim - 1)).astype(np.float32)) ** 2).sum(axis=0)
            qsm = qsm + np.float32(self.spot_ppb) * np.exp(-0.5 * r2 / self.spot_sigma_mm**2)
        flair = occupancy * np.float32(self.flair_ratio - 1.0) * (1.0 + 0.08 * tex)
        return occupancy, qsm.astype(np.float32), flair.astype(np.float32)


def sample_rim_labels(rng: np.random.Generator, n_lesions: int, rim_prevalence: float) -> np.ndarray:
    """Rim status of a subject's lesions: a subject-level rate (gamma-distributed around
    ``rim_prevalence``, so many subjects have no rim+ lesion) times a binomial draw."""
    rate = min(rim_prevalence * rng.gamma(0.6, 1.0 / 0.6), 0.6) if rim_prevalence > 0 else 0.0
    n_rim = int(rng.binomial(n_lesions, rate))
    labels = np.zeros(n_lesions, dtype=bool)
    labels[rng.choice(n_lesions, n_rim, replace=False)] = True
    return labels


def _basis(rng: np.random.Generator, axis: np.ndarray) -> np.ndarray:
    """Orthonormal basis (columns) whose first column is ``axis``."""
    other = unit(np.cross(axis, rng.standard_normal(3)))
    return np.stack([axis, other, np.cross(axis, other)], axis=1)


def _edge_vein(rng: np.random.Generator, body: Ellipsoid) -> Vein:
    """A vein grazing the lesion edge: straight or bent around it along an arc (a rim mimic)."""
    normal = unit(rng.standard_normal(3))
    tangent = unit(np.cross(normal, rng.standard_normal(3)))
    edge = 1.0 / np.linalg.norm((body.rotation.T @ normal) / body.semi_axes)  # body radius along ``normal``
    radius = edge + rng.uniform(0.2, 1.0)
    arc = np.deg2rad(rng.uniform(0.0, 110.0))
    angles = np.linspace(-arc / 2, arc / 2, 7)
    bend = [body.center + radius * (np.cos(s) * normal + np.sin(s) * tangent) for s in angles]
    heading = [-np.sin(s) * normal + np.cos(s) * tangent for s in (angles[0], angles[-1])]
    extend = rng.uniform(3.0, 8.0, 2)
    control = np.array([bend[0] - extend[0] * heading[0], *bend, bend[-1] + extend[1] * heading[1]])
    return Vein(polyline(control), float(rng.uniform(0.35, 0.65)), float(rng.uniform(280, 420)))


def _central_vein(rng: np.random.Generator, body: Ellipsoid) -> Vein:
    axis = body.rotation[:, 0]
    half = body.semi_axes[0] + rng.uniform(2.0, 8.0)
    bend = rng.normal(0.0, 0.6, 3)
    control = np.array([body.center - half * axis, body.center + bend, body.center + half * axis])
    return Vein(polyline(control), float(rng.uniform(0.3, 0.5)), float(rng.uniform(250, 400)))


def _appearance(rng: np.random.Generator, rim: bool, difficulty: Difficulty) -> dict:
    """QSM pattern and its parameters."""
    look = dict(shell_ppb=0.0, shell_completeness=1.0, shell_offset_mm=0.0, shell_width_mm=0.7, spot_ppb=0.0)
    if rim:
        look.update(
            pattern="rim",
            core_ppb=rng.uniform(-6.0, 6.0),
            shell_ppb=rng.uniform(*difficulty.rim_amplitude_ppb),
            shell_completeness=rng.uniform(*difficulty.rim_completeness),
            shell_offset_mm=rng.uniform(-0.3, 0.9),
            shell_width_mm=rng.uniform(0.6, 0.9),
        )
        return look
    names = [n for n in RIM_NEGATIVE_PATTERNS if difficulty.pattern_probabilities.get(n, 0) > 0]
    weights = np.array([difficulty.pattern_probabilities[n] for n in names])
    pattern = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    core_range = {"iso": (-3.0, 3.0), "hyper": (8.0, 25.0), "hypo": (-15.0, -5.0), "faint_ring": (-3.0, 6.0)}
    if pattern not in core_range:  # a vein or a spot on an iso- or hyperintense lesion
        core_range[pattern] = (-3.0, 3.0) if rng.random() < 0.5 else (8.0, 20.0)
    look.update(pattern=pattern, core_ppb=rng.uniform(*core_range[pattern]))
    if pattern == "faint_ring":
        look.update(
            shell_ppb=rng.uniform(4.0, 9.0),
            shell_completeness=rng.uniform(0.7, 1.0),
            shell_offset_mm=rng.uniform(-0.3, 0.6),
            shell_width_mm=rng.uniform(0.6, 0.9),
        )
    elif pattern == "spot":
        look.update(spot_ppb=rng.uniform(25.0, 70.0))
    return look


def _sizes(rng: np.random.Generator, rim: np.ndarray, max_radius_mm: float) -> np.ndarray:
    """Equivalent radii (mm): log-normal, rim+ lesions larger on average (as in real cohorts)."""
    radius = np.where(rim, np.exp(rng.normal(np.log(4.2), 0.3, rim.size)), np.exp(rng.normal(np.log(3.3), 0.38, rim.size)))
    low = np.where(rim, 2.5, 2.0)
    return np.clip(radius, np.minimum(low, max_radius_mm), max_radius_mm)


def place_lesions(
    rng: np.random.Generator, anatomy: Anatomy, n_lesions: int, rim_prevalence: float, difficulty: Difficulty
) -> list[Lesion]:
    """Draw ``n_lesions`` lesions in the white matter, periventricular-biased, not touching.

    Candidate centres are white-matter points of a 2 mm lattice (jittered); a lesion fits where
    its radius is below the distance to the nearest non-white-matter tissue (ventricles excepted:
    periventricular lesions abut them). Fewer lesions are returned when no room is left.
    """
    semi = anatomy.semi_axes
    rim = sample_rim_labels(rng, n_lesions, rim_prevalence)
    radius = _sizes(rng, rim, max_radius_mm=min(9.0, 0.2 * float(semi.min())))
    order = np.argsort(-radius, kind="stable")  # large lesions first: they are the hardest to fit

    axes = [np.arange(-h, h + 1e-9, _LATTICE_MM) for h in semi]
    lattice = np.stack(np.meshgrid(*axes, indexing="ij")).astype(np.float32)
    tissue = anatomy.tissue(lattice)
    allowed = (tissue.wm + tissue.ventricle > 0.5) & (tissue.surface_depth > anatomy.cortex_mm + 1.0)
    clearance = ndimage.distance_transform_edt(allowed) * _LATTICE_MM
    center_ok = (tissue.wm > 0.6) & allowed
    candidates = lattice[:, center_ok].T + rng.uniform(-_LATTICE_MM / 2, _LATTICE_MM / 2, (int(center_ok.sum()), 3))
    clearance = clearance[center_ok]
    vent_mm = np.maximum(tissue.ventricle_distance[center_ok], 0.0)
    weight = 0.35 + 1.5 * np.exp(-vent_mm / 4.0)

    gap = np.full(len(candidates), np.inf)  # distance to the nearest placed lesion's extent
    lesions: list[Lesion] = []
    for k in order:
        shape = _draw_shape(rng, float(radius[k]))
        # lesions never touch, so their masks stay separate components
        free = weight * (clearance >= shape.radius_mm * (1.0 + shape.irregularity)) * (vent_mm >= 0.5 * shape.radius_mm)
        free = free * (gap >= shape.extent_mm + 1.5)
        if free.sum() <= 0:
            continue
        i = int(rng.choice(len(candidates), p=free / free.sum()))
        gap = np.minimum(gap, np.sqrt(((candidates - candidates[i]) ** 2).sum(axis=1)) - shape.extent_mm)
        lesions.append(_make_lesion(rng, anatomy, candidates[i], shape, bool(rim[k]), difficulty))
    return lesions


@dataclass(frozen=True)
class _Shape:
    """A lesion's geometry in its own frame: a perturbed ellipsoid, sometimes with side lobes."""

    radius_mm: float
    semi_axes: np.ndarray
    irregularity: float
    lobes: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]  # (offset, semi-axes, axes)

    @property
    def extent_mm(self) -> float:
        """Typical reach of the boundary from the centre (used to keep lesions apart)."""
        reach = float(self.semi_axes.max())
        for offset, semi, _ in self.lobes:
            reach = max(reach, float(np.linalg.norm(offset) + semi.max()))
        return reach * (1.0 + self.irregularity)


def _draw_shape(rng: np.random.Generator, r: float) -> _Shape:
    elongation = rng.uniform(1.0, 1.8)
    semi_axes = r * np.array([elongation ** (2 / 3), elongation ** (-1 / 3), elongation ** (-1 / 3)])
    semi_axes = semi_axes * rng.uniform(0.85, 1.15, 3)
    lobes = []
    if rng.random() < 0.3:
        for _ in range(int(rng.integers(1, 3))):
            direction = unit(rng.standard_normal(3))
            offset = semi_axes * direction * rng.uniform(0.55, 0.85)
            lobes.append((offset, r * rng.uniform(0.45, 0.7) * rng.uniform(0.8, 1.2, 3), _basis(rng, direction)))
    return _Shape(r, semi_axes, float(rng.uniform(0.12, 0.3)), tuple(lobes))


def _make_lesion(
    rng: np.random.Generator, anatomy: Anatomy, center: np.ndarray, shape: _Shape, rim: bool, difficulty: Difficulty
) -> Lesion:
    """Orient ``shape`` at ``center`` (long axis roughly radial from the ventricles, like Dawson's
    fingers along medullary veins) and give it a QSM appearance."""
    c = anatomy.semi_axes[2]
    radial = unit(center * np.array([1.0, 0.25, 1.0]) - np.array([0.0, 0.0, 0.1 * c]))
    rotation = _basis(rng, unit(radial + 0.35 * rng.standard_normal(3)))
    center = np.asarray(center, dtype=float)
    body = Ellipsoid(center, shape.semi_axes, rotation)
    lobes = tuple(Ellipsoid(center + rotation @ offset, semi, rotation @ axes) for offset, semi, axes in shape.lobes)
    look = _appearance(rng, rim, difficulty)
    direction = unit(rng.standard_normal(3))
    spot_center = center + rotation @ (shape.semi_axes * unit(rng.standard_normal(3))) * rng.uniform(0.2, 0.6)
    veins = []
    central = bool(rng.random() < difficulty.central_vein_probability)
    if central:
        veins.append(_central_vein(rng, body))
    if look["pattern"] == "vein_edge":
        veins.append(_edge_vein(rng, body))
    return Lesion(
        body=body,
        lobes=lobes,
        irregularity=shape.irregularity,
        texture_shift_mm=rng.uniform(-30.0, 30.0, 3),
        rim=rim,
        pattern=look["pattern"],
        core_ppb=float(look["core_ppb"]),
        flair_ratio=float(rng.uniform(1.35, 1.9)),
        shell_ppb=float(look["shell_ppb"]),
        shell_completeness=float(look["shell_completeness"]),
        shell_direction=direction,
        shell_offset_mm=float(look["shell_offset_mm"]),
        shell_width_mm=float(look["shell_width_mm"]),
        spot_center=spot_center,
        spot_sigma_mm=float(rng.uniform(0.7, 1.3)),
        spot_ppb=float(look["spot_ppb"]),
        veins=tuple(veins),
        central_vein=central,
        mask_threshold=float(rng.uniform(0.35, 0.6)),
        radius_mm=shape.radius_mm,
    )
