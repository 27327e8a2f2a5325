"""Settings of the phantom generator: difficulty presets and acquisition sites."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Voxel size (mm) of the reference site, whose QSM grid has the ``shape`` given by the user.
REFERENCE_VOXEL_MM = (1.0, 1.0, 1.5)

#: Default QSM grid shape of the reference site (a 96 x 112 x 96 mm field of view).
DEFAULT_SHAPE = (96, 112, 64)

#: Lesion patterns on QSM. ``rim`` is the only rim+ pattern; the others are rim- lesions.
RIM_NEGATIVE_PATTERNS = ("iso", "hyper", "hypo", "vein_edge", "spot", "faint_ring")


@dataclass(frozen=True)
class Difficulty:
    """How hard the rim+/rim- distinction is.

    ``rim_amplitude_ppb`` is how far a rim stands out from the white matter around it once
    blurred (before noise and the site's QSM scale).
    """

    rim_amplitude_ppb: tuple[float, float]
    rim_completeness: tuple[float, float]
    qsm_noise_ppb: float
    flair_noise_fraction: float  # Rician sigma as a fraction of the white-matter FLAIR intensity
    pattern_probabilities: dict[str, float] = field(default_factory=dict)  # rim- lesions
    central_vein_probability: float = 0.4


DIFFICULTY_PRESETS: dict[str, Difficulty] = {
    "easy": Difficulty(
        rim_amplitude_ppb=(30.0, 55.0),
        rim_completeness=(0.6, 1.0),
        qsm_noise_ppb=3.5,
        flair_noise_fraction=0.03,
        pattern_probabilities={"iso": 0.45, "hyper": 0.35, "hypo": 0.10, "vein_edge": 0.05, "spot": 0.05},
        central_vein_probability=0.3,
    ),
    "default": Difficulty(
        rim_amplitude_ppb=(16.0, 40.0),
        rim_completeness=(0.3, 1.0),
        qsm_noise_ppb=6.0,
        flair_noise_fraction=0.04,
        pattern_probabilities={
            "iso": 0.32, "hyper": 0.30, "hypo": 0.10, "vein_edge": 0.13, "spot": 0.12, "faint_ring": 0.03,
        },
        central_vein_probability=0.4,
    ),
    "hard": Difficulty(
        rim_amplitude_ppb=(10.0, 28.0),
        rim_completeness=(0.25, 1.0),
        qsm_noise_ppb=9.0,
        flair_noise_fraction=0.05,
        pattern_probabilities={
            "iso": 0.25, "hyper": 0.25, "hypo": 0.08, "vein_edge": 0.18, "spot": 0.14, "faint_ring": 0.10,
        },
        central_vein_probability=0.5,
    ),
}


def rotation_matrix(x_deg: float = 0.0, y_deg: float = 0.0, z_deg: float = 0.0) -> np.ndarray:
    """Rotation matrix R = Rz @ Ry @ Rx (angles in degrees)."""
    ax, ay, az = np.deg2rad([x_deg, y_deg, z_deg])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


@dataclass(frozen=True)
class Site:
    """One scanner/protocol: voxel grids, orientations and intensity calibration.

    ``*_axes`` hold, as columns, the world (RAS+) direction of each array axis, so a grid's affine
    is ``axes @ diag(voxel_mm)`` plus an origin. ``flair_voxel_mm=None`` puts the FLAIR on the QSM grid.
    """

    name: str
    qsm_voxel_mm: tuple[float, float, float]
    qsm_axes: np.ndarray
    flair_voxel_mm: tuple[float, float, float] | None
    flair_axes: np.ndarray | None
    qsm_scale: float  # dipole-inversion regularisation shrinks or stretches contrast
    qsm_offset_ppb: float  # susceptibility reference (CSF, whole brain, ...)
    qsm_noise_factor: float
    flair_gain: float  # scanner units
    psf_sigma_mm: float  # partial-volume / reconstruction blur
    # Settings of the "varied" acquisitions (see ``_acquisition.py``); the defaults leave the
    # three fixed sites' rendering (and random draws) exactly as they were.
    slice_oversampling: int = 1  # >1: render sub-slices along array axis 2, average into thick slices
    storage: tuple[int, int, int] = (0, 1, 2)  # on-disk array axis j holds rendered axis storage[j]
    storage_flips: tuple[bool, bool, bool] = (False, False, False)  # on-disk axes stored reversed
    noise_correlation_voxels: float = 0.45  # Gaussian smoothing of the QSM noise
    noise_texture: str = "smooth"  # "smooth" or "streaky" (noise shaped like dipole-inversion errors)
    streak_ppb: float = 0.0  # standard deviation of the streaks around strong paramagnetic sources
    background_ppb: float = 0.0  # amplitude of a low-order polynomial background-field residual
    description: str = ""


SITES: tuple[Site, ...] = (
    # Axial, RAS+ storage, FLAIR on the QSM grid.
    Site("A", (1.0, 1.0, 1.5), np.eye(3), None, None, 1.0, 0.0, 1.0, 1.0, 0.55),
    # LPS storage (x and y flipped), thicker slices; FLAIR acquired sagittally on its own grid.
    Site(
        "B", (0.9, 0.9, 2.0), np.diag([-1.0, -1.0, 1.0]),
        (1.0, 1.0, 1.2), np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]),
        0.85, 8.0, 1.2, 2.4, 0.65,
    ),
    # Oblique axial (tilted along the AC-PC line), FLAIR on the QSM grid.
    Site("C", (1.1, 1.1, 1.6), rotation_matrix(x_deg=-14.0, z_deg=5.0), None, None, 1.1, -5.0, 0.9, 0.65, 0.6),
)
