"""Cubic QSM/FLAIR/mask patches around each lesion, sampled in world (RAS) coordinates.

Patch geometry
--------------
A patch is a cube of ``size_mm`` centred on the lesion's world centroid (the table's
``centroid_x/y/z``), sampled at the centres of a ``shape`` grid whose axes are the world axes:
patch axis 0 runs along x (left to right), axis 1 along y (posterior to anterior), axis 2 along z
(inferior to superior), whatever the scan's voxel order or orientation. Images are sampled
trilinearly (:func:`scipy.ndimage.map_coordinates`, ``order=1``), the lesion mask by nearest
neighbour; points outside the image volume are 0. The FLAIR is sampled on its own grid, so a
registered FLAIR at another resolution gives the patches of a FLAIR resampled onto the QSM grid,
without that extra interpolation.

Normalisation (``normalize=``)
------------------------------
QSM values of the same tissue differ between sites by an offset (the reference region of the QSM
pipeline) and a scale (its regularisation), FLAIR intensities by an arbitrary scale.
"Normal-appearing tissue" below means the QSM's support (the brain: the voxels other than its
background value, :func:`rimclf._nifti.brain_support`) minus every lesion.

``"nawm"``
    QSM: subtract the median QSM of normal-appearing tissue inside the patch's extent (the
    lesion's surroundings, mostly white matter for MS lesions), then divide by the subject's
    robust QSM spread, 1.4826 x the median absolute deviation of all its normal-appearing tissue:
    rim and lesion contrast in units of the subject's tissue variability. FLAIR: divide by the
    median FLAIR of the subject's normal-appearing tissue (so that it reads ~1).
``"ring"`` (the default of :data:`rimclf.defaults.DEFAULT_MODEL`)
    Referenced like the rim-profile features (:mod:`rimclf.features.rim_profile`): QSM minus the
    median QSM of the lesion's reference ring (normal-appearing tissue 3-6 mm outside it),
    divided by the subject's robust QSM spread (as for "nawm"); FLAIR divided by the median
    FLAIR of the same ring. A lesion without enough ring voxels falls back to "nawm".
``"zscore"``
    Each patch and image channel separately: subtract its mean, divide by its standard deviation
    (both over the patch's points inside the image volume).
``"none"``
    QSM in ppb and FLAIR as stored.

The mask channel is 0/1 and never normalised. The ``"distance"`` channel is the signed distance
(mm, negative inside) of each patch point to this lesion's boundary, measured on the patch grid
from the nearest-neighbour mask and clipped to +-``MAX_DISTANCE_MM``: it tells the CNN where the
edge is, whatever the lesion's size. Points outside the image volume stay 0 after normalisation
(for "nawm" and "ring" QSM, 0 is the normal-appearing tissue level).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from rimclf._validation import Options, is_int, is_real, validate_params
from rimclf.defaults import CHANNELS, DEFAULT_MODEL, NORMALIZATIONS
from rimclf.errors import DataWarning, ParameterError
from rimclf.features._base import LesionExtractor
from rimclf.features._regions import signed_distance_mm
from rimclf.features._output import DictOutputMixin
from rimclf.features._referencing import lesion_distance_mm, normal_tissue, reference_ring
from rimclf.features.rim_profile import MAD_TO_SD, MIN_REFERENCE_VOXELS, REFERENCE_MM as RING_MM, lesion_crop
from rimclf.features._subject import (
    BASE_COLUMNS,
    CENTROID_COLUMNS,
    Note,
    SubjectVolumes,
    sample_world,
    world_to_voxel,
)

#: The ``"distance"`` channel is clipped to +- this many millimetres.
MAX_DISTANCE_MM = 10.0
#: At most this many normal-appearing voxels are used for the subject's FLAIR median.
_MAX_REFERENCE_VOXELS = 500_000


def _triple(value: object, name: str, *, integer: bool) -> tuple:
    """A positive number or three of them, as a 3-tuple; ParameterError naming ``name`` otherwise."""
    kind = "integer" if integer else "number"
    items = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    if len(items) == 1:
        items = items * 3

    def ok(item: object) -> bool:
        if integer:
            return is_int(item) and item > 0
        return is_real(item) and math.isfinite(float(item)) and item > 0

    if len(items) != 3 or not all(ok(item) for item in items):
        raise ParameterError(f"{name}={value!r} is not valid; it must be a positive {kind} or three of them")
    return tuple(int(i) for i in items) if integer else tuple(float(i) for i in items)


class PatchExtractor(DictOutputMixin, LesionExtractor, auto_wrap_output_keys=None):
    """QSM, FLAIR and lesion-mask cubes around each lesion, on world axes, for the CNN.

    The defaults come from :data:`rimclf.defaults.DEFAULT_MODEL`.

    Parameters
    ----------
    size_mm : float or tuple of 3 floats, default=24.0
        Edge lengths of the cube along world x, y, z, in millimetres (one number: a cube).
    shape : int or tuple of 3 ints, default=16
        Samples along each edge; the voxel size of a patch is ``size_mm / shape``.
    channels : tuple of {"qsm", "flair", "mask", "distance"}, default=("qsm", "flair", "mask", "distance")
        Channels, in this order. "mask" holds this lesion only (not its neighbours); "distance" is
        the signed distance (mm) to its boundary.
    normalize : {"nawm", "ring", "zscore", "none"}, default="ring"
        Intensity normalisation of the image channels; see the module documentation.

    Notes
    -----
    ``transform`` returns float32 of shape ``(n_lesions, n_channels, *shape)``, rows in table order:
    images, not a table, so ``set_output(transform="pandas")`` raises a
    :class:`~rimclf.errors.ParameterError` and the global
    ``sklearn.set_config(transform_output="pandas")`` leaves the output as it is.

    Examples
    --------
    >>> from rimclf.features import LesionFeaturizer, PatchExtractor
    >>> extractor = PatchExtractor(size_mm=24.0, shape=16, channels=("qsm", "flair", "mask"), normalize="nawm")
    >>> extractor.cache_key()["size_mm"]                 # one number is a cube
    (24.0, 24.0, 24.0)
    >>> patches = extractor.fit_transform(table)         # doctest: +SKIP
    >>> patches.shape                                    # doctest: +SKIP
    (1004, 3, 16, 16, 16)

    In a featurizer, the patches are the ``"patches"`` entry:

    >>> LesionFeaturizer([("patches", extractor)]).get_output_shapes()
    {'patches': (3, 16, 16, 16)}
    """

    _output_description = "patches of shape (n_lesions, n_channels, *shape), images rather than columns"

    def __init__(
        self,
        *,
        size_mm=DEFAULT_MODEL.patch_size_mm,
        shape=DEFAULT_MODEL.patch_shape,
        channels=DEFAULT_MODEL.channels,
        normalize: str = DEFAULT_MODEL.normalize,
    ) -> None:
        self.size_mm = size_mm
        self.shape = shape
        self.channels = channels
        self.normalize = normalize

    _fill = 0.0
    _dtype = np.float32

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = []  # float32 patches whatever the input
        return tags

    #: size_mm, shape and channels (a number or three, a tuple of channels) are checked in _validate
    _parameter_constraints = {"normalize": [Options(*NORMALIZATIONS)]}

    def _validate(self) -> tuple[tuple[float, ...], tuple[int, ...], tuple[str, ...]]:
        validate_params(self)
        size_mm = _triple(self.size_mm, "size_mm", integer=False)
        shape = _triple(self.shape, "shape", integer=True)
        channels = self.channels
        if isinstance(channels, str) or not isinstance(channels, Sequence) or not channels:
            raise ParameterError(
                f"channels={channels!r} is not valid; give a non-empty tuple of {CHANNELS}, e.g. ('qsm', 'mask')"
            )
        unknown = [c for c in channels if c not in CHANNELS]
        if unknown:
            raise ParameterError(f"channels={tuple(channels)!r} is not valid: {unknown} not in the choices {CHANNELS}")
        if len(set(channels)) != len(channels):
            raise ParameterError(f"channels={tuple(channels)!r} is not valid: a channel is repeated")
        return size_mm, shape, tuple(channels)

    def required_columns(self) -> tuple[str, ...]:
        """Lesion-table columns this extractor reads."""
        _, _, channels = self._validate()
        return BASE_COLUMNS + CENTROID_COLUMNS + (("flair",) if "flair" in channels else ())

    def cache_key(self) -> dict:
        """The settings the patches depend on besides the files."""
        size_mm, shape, channels = self._validate()
        return {"size_mm": size_mm, "shape": shape, "channels": channels, "normalize": self.normalize}

    def output_shape(self) -> tuple[int, ...]:
        """``(n_channels, *shape)``: one lesion's patch."""
        _, shape, channels = self._validate()
        return (len(channels), *shape)

    # -- per-subject work ---------------------------------------------------------------------
    def grid_offsets_mm(self) -> np.ndarray:
        """Offsets (P, 3) of the patch's sample points from its centre, world x/y/z, C order."""
        size_mm, shape, _ = self._validate()
        axes = [((np.arange(n) + 0.5) / n - 0.5) * size for size, n in zip(size_mm, shape)]
        return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)

    def extract_subject(self, volumes: SubjectVolumes, notes: list[Note]) -> np.ndarray:
        """Patches of the subject's distinct lesions (``volumes.task.lesion_ids``), float32 (k, C, D, H, W)."""
        size_mm, shape, channels = self._validate()
        task = volumes.task
        offsets = self.grid_offsets_mm()
        out = np.zeros((len(task.lesion_ids), len(channels), *shape), dtype=np.float32)
        if not len(task.lesion_ids):
            return out
        reference = _PatchLevels(volumes, notes) if self.normalize in ("nawm", "ring") else None
        spacing = np.asarray(size_mm) / np.asarray(shape)
        for row, (lesion_id, centre) in enumerate(zip(task.lesion_ids, task.centroids_mm)):
            points = centre + offsets
            mask = None
            if "mask" in channels or "distance" in channels:
                mask = (sample_world(volumes.labels, volumes.affine, points, order=0) == lesion_id).reshape(shape)
            levels = reference.levels(int(lesion_id), centre, size_mm, self.normalize) if reference else None
            for channel_index, channel in enumerate(channels):
                if channel == "mask":
                    values = mask.astype(np.float32)
                elif channel == "distance":
                    values = np.clip(signed_distance_mm(mask, spacing), -MAX_DISTANCE_MM, MAX_DISTANCE_MM)
                else:
                    data, affine = (
                        (volumes.qsm, volumes.affine) if channel == "qsm" else (volumes.flair, volumes.flair_affine)
                    )
                    values, inside = sample_world(data, affine, points, order=1, return_inside=True)
                    values = self._normalized(values, inside, channel, levels).reshape(shape)
                out[row, channel_index] = values
        return out

    def _normalized(self, values, inside, channel, levels) -> np.ndarray:
        values = values.astype(np.float32)
        if self.normalize == "none":
            return values
        if self.normalize == "zscore":
            within = values[inside] if inside.any() else values
            spread = float(within.std())
            values = (values - within.mean()) / (spread if spread > 0 else 1.0)
        elif channel == "qsm":
            offset, scale = levels["qsm"]
            values = (values - offset) / scale
        else:
            values = values / levels["flair"]
        values[~inside] = 0
        return values.astype(np.float32)


class _PatchLevels:
    """Normal-appearing tissue statistics of one subject, for ``normalize="nawm"`` and ``"ring"``."""

    def __init__(self, volumes: SubjectVolumes, notes: list[Note]) -> None:
        self.volumes = volumes
        self.notes = notes
        self._qsm_scale: float | None = None
        self._flair_median: float | None = None
        self.normal = normal_tissue(volumes)[0]  # shared with the rim features' referencing

    def _note(self, message: str) -> None:
        self.notes.append((DataWarning, f"{self.volumes.task.name}: {message}"))

    @property
    def qsm_scale(self) -> float:
        if self._qsm_scale is None:
            values = self.volumes.qsm[self.normal]
            scale = MAD_TO_SD * float(np.median(np.abs(values - np.median(values)))) if values.size else 0.0
            if not scale > 0:
                self._note("no spread of normal-appearing QSM to scale by; QSM patches are only offset")
                scale = 1.0
            self._qsm_scale = scale
        return self._qsm_scale

    @property
    def flair_median(self) -> float:
        if self._flair_median is None:
            if self.volumes.flair_shares_qsm_grid:
                values = self.volumes.flair[self.normal]
            else:
                voxels = np.argwhere(self.normal)
                voxels = voxels[:: max(1, len(voxels) // _MAX_REFERENCE_VOXELS)]
                points = voxels @ self.volumes.affine[:3, :3].T + self.volumes.affine[:3, 3]
                values = sample_world(self.volumes.flair, self.volumes.flair_affine, points, order=1)
            median = float(np.median(values)) if values.size else 0.0
            if not median > 0:
                self._note("the median FLAIR of normal-appearing tissue is not positive; FLAIR patches are not scaled")
                median = 1.0
            self._flair_median = median
        return self._flair_median

    def levels(self, lesion_id: int, centre: np.ndarray, size_mm: tuple[float, ...], normalize: str) -> dict:
        """The (offset, scale) of the QSM and the scale of the FLAIR for one lesion's patch."""
        if normalize == "ring":
            ring = self._ring(lesion_id)
            if ring is not None:
                crop, inside_ring = ring
                qsm = float(np.median(self.volumes.qsm[crop][inside_ring]))
                flair = None
                if self.volumes.task.flair is not None:
                    flair = float(np.median(self.volumes.flair_on_qsm_grid[crop][inside_ring]))
                return {"qsm": (qsm, self.qsm_scale), "flair": flair if flair and flair > 0 else self.flair_median}
        return {"qsm": (self.local_qsm_offset(centre, size_mm), self.qsm_scale), "flair": self._flair_level()}

    def _flair_level(self) -> float | None:
        return self.flair_median if self.volumes.task.flair is not None else None

    def _ring(self, lesion_id: int):
        """(crop, reference-ring mask in it) of a lesion, or None when the ring is too small."""
        if not hasattr(self, "_objects"):
            self._objects = ndimage.find_objects(self.volumes.labels)
        box = self._objects[lesion_id - 1] if 0 < lesion_id <= len(self._objects) else None
        spacing = np.asarray(self.volumes.spacing_mm, dtype=float)
        crop = lesion_crop(box, self.volumes.labels.shape, spacing, RING_MM[1])
        if crop is None:
            return None
        distance = lesion_distance_mm(self.volumes, lesion_id, crop)  # shared with the rim features' referencing
        ring = reference_ring(self.normal[crop], distance, RING_MM)
        return (crop, ring) if int(ring.sum()) >= MIN_REFERENCE_VOXELS else None

    def local_qsm_offset(self, centre: np.ndarray, size_mm: tuple[float, ...]) -> float:
        """Median QSM of normal-appearing voxels within the patch's extent (subject median if none)."""
        half = np.asarray(size_mm) / 2
        corners = centre + half * np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)])
        voxel = world_to_voxel(self.volumes.affine, corners)
        shape = np.array(self.normal.shape)
        low = np.clip(np.floor(voxel.min(axis=1)).astype(int), 0, shape)
        high = np.clip(np.ceil(voxel.max(axis=1)).astype(int) + 1, 0, shape)
        box = tuple(slice(a, b) for a, b in zip(low, high))
        values = self.volumes.qsm[box][self.normal[box]]
        if not values.size:
            values = self.volumes.qsm[self.normal]
        return float(np.median(values)) if values.size else 0.0
