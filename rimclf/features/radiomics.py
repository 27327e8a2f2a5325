"""pyradiomics features of the QSM inside each lesion and/or a peri-lesional shell.

The only module of rimclf that imports pyradiomics and SimpleITK, and only when features are
asked for: pyradiomics is the optional extra ``rimclf[radiomics]`` (the default model uses the
rim-profile features), so importing this module never needs it. Without it, checking a
:class:`RadiomicsExtractor`'s settings (its ``fit``, ``transform``, feature names or cache key,
hence a featurizer or baseline that holds one, before any feature is extracted) raises a
one-line :class:`~rimclf.errors.MissingDependencyError` saying how to install it
(:func:`require_pyradiomics`).

Speed without changing a value
------------------------------
A plain pyradiomics run (``RadiomicsFeatureExtractor(params).execute(qsm_path, mask_path,
label=i)``) reads both files, filters the *whole* volume with the 8 wavelets and only then crops
to the lesion, once per lesion. :class:`RadiomicsExtractor` reads each subject once and hands
pyradiomics a small crop per lesion: the lesion's bounding box plus the wavelet footprint on
every side (2 voxels before and 3 after for the default coif1 wavelet, see
:func:`~rimclf.features._regions.wavelet_footprint`; the whole axis where that margin would
leave the volume). The filtered values inside the bounding box, hence all features, are those
of the full-volume extraction, bit for bit. Settings whose values depend on the whole
image (image types other than Original and Wavelet, ``normalize``, resampling) cannot be cropped
exactly: with them each lesion is extracted from the whole in-memory volume (still read once).
SimpleITK filters run single-threaded during extraction, which is several times faster on
lesion-sized images.
"""

from __future__ import annotations

import json
import logging
import threading
import warnings
from collections.abc import Mapping
from contextlib import contextmanager
from functools import lru_cache
from importlib import resources
from pathlib import Path

from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml

from rimclf._validation import Options, check_real, validate_params
from rimclf.defaults import DEFAULT_MODEL, IMAGES, REGIONS
from rimclf.errors import DataWarning, MissingDependencyError, ParameterError
from rimclf.features._base import LesionExtractor
from rimclf.features._regions import (
    bounding_boxes,
    crop_with_margin,
    shell_margin_voxels,
    shell_mask,
    wavelet_footprint,
)
from rimclf.features._subject import (
    BASE_COLUMNS,
    Note,
    SubjectVolumes,
)

if TYPE_CHECKING:  # pragma: no cover
    import SimpleITK as sitk

#: Image types whose lesion values can be computed exactly from a crop.
_CROPPABLE_IMAGE_TYPES = {"Original", "Wavelet"}
#: How to install the optional pyradiomics (3.0.1 has no binary wheel and must be built against
#: an installed numpy, without build isolation).
PYRADIOMICS_INSTALL = "pip install numpy setuptools wheel && pip install --no-build-isolation pyradiomics==3.0.1"
_NAN_NOTE = "its radiomics features are NaN"



def require_pyradiomics() -> tuple[ModuleType, ModuleType]:
    """pyradiomics and SimpleITK, imported on first use.

    Raises
    ------
    MissingDependencyError
        When either cannot be imported: one line naming the extra and the install recipe.

    Examples
    --------
    >>> radiomics, sitk = require_pyradiomics()      # doctest: +SKIP
    """
    try:
        import radiomics
        import radiomics.featureextractor
        import SimpleITK
    except ImportError as exc:
        raise MissingDependencyError(
            f"radiomics features need pyradiomics, which is not installed ({exc}); install the extra "
            f"rimclf[radiomics] with: {PYRADIOMICS_INSTALL}; the default rim-profile features do not need it"
        ) from None
    return radiomics, SimpleITK


def pyradiomics_version() -> str:
    """The installed pyradiomics version (raises :class:`~rimclf.errors.MissingDependencyError` without it)."""
    return str(require_pyradiomics()[0].__version__)


def __getattr__(name: str) -> Any:
    # PYRADIOMICS_VERSION was a module constant; it is computed on use so that importing this module
    # does not import pyradiomics
    if name == "PYRADIOMICS_VERSION":
        return pyradiomics_version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_lock = threading.Lock()
_n_active = 0
_saved_state: tuple[int, int] = (0, logging.NOTSET)


@contextmanager
def _quiet_single_threaded():
    """Run SimpleITK filters on one thread; keep pyradiomics' INFO and WARNING chatter out of the logs.

    (Its warnings repeat per lesion, e.g. "GLCM is symmetrical"; its errors still show.) Both are
    process-wide settings: they are restored when the last concurrent extraction ends.
    """
    global _n_active, _saved_state
    _, sitk = require_pyradiomics()
    logger = logging.getLogger("radiomics")
    with _lock:
        if _n_active == 0:
            _saved_state = (sitk.ProcessObject.GetGlobalDefaultNumberOfThreads(), logger.level)
            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
            logger.setLevel(logging.ERROR)
        _n_active += 1
    try:
        yield
    finally:
        with _lock:
            _n_active -= 1
            if _n_active == 0:
                sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(_saved_state[0])
                logger.setLevel(_saved_state[1])


@contextmanager
def _logger_level(name: str, level: int):
    logger = logging.getLogger(name)
    saved = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(saved)


def load_params(params: object) -> dict:
    """Resolve ``params`` to a pyradiomics parameter dict.

    Parameters
    ----------
    params : "qsmrim", str, path-like or dict
        "qsmrim": the QSMRim-Net settings shipped with rimclf (``rimclf/data/qsmrim_params.yaml``);
        another string or path: a pyradiomics parameter file (YAML or JSON); a dict: parameters as
        pyradiomics' ``RadiomicsFeatureExtractor`` takes them.
    """
    if isinstance(params, Mapping):
        return json.loads(json.dumps(dict(params), default=str))
    if isinstance(params, str) and params == "qsmrim":
        text = resources.files("rimclf").joinpath("data/qsmrim_params.yaml").read_text(encoding="utf-8")
        return yaml.safe_load(text)
    if isinstance(params, (str, Path)):
        path = Path(params)
        if not path.is_file():
            raise ParameterError(f"params={str(params)!r}: no such pyradiomics parameter file (or use 'qsmrim' or a dict)")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ParameterError(f"params={str(params)!r}: cannot be read as a YAML/JSON parameter file ({exc})") from exc
        if not isinstance(loaded, dict):
            raise ParameterError(f"params={str(params)!r}: a pyradiomics parameter file must hold a mapping")
        return loaded
    raise ParameterError(f"params={params!r} is not valid; use 'qsmrim', a parameter file path or a dict")


@lru_cache(maxsize=16)
def _make_extractor(params_json: str):
    radiomics, _ = require_pyradiomics()
    try:
        # pyradiomics and its validator pykwalify log every construction at INFO
        with _logger_level("radiomics", logging.WARNING), _logger_level("pykwalify", logging.WARNING):
            with warnings.catch_warnings():  # pykwalify's, on every parameter validation
                warnings.filterwarnings("ignore", "the load_module", DeprecationWarning)
                extractor = radiomics.featureextractor.RadiomicsFeatureExtractor(json.loads(params_json))
    except Exception as exc:  # pykwalify raises its own error types for invalid parameters
        raise ParameterError(f"invalid pyradiomics parameters {params_json}: {exc}") from exc
    extractor.settings["additionalInfo"] = False
    return extractor


def _crop_margin(extractor) -> tuple[np.ndarray, np.ndarray] | None:
    """Voxels to keep before/after the region on each axis, or None when cropping would change values."""
    settings = extractor.settings
    if set(extractor.enabledImagetypes) - _CROPPABLE_IMAGE_TYPES:
        return None
    if settings.get("normalize") or settings.get("resampledPixelSpacing") is not None:
        return None
    before, after = 0, 0
    if "Wavelet" in extractor.enabledImagetypes:
        wavelet_settings = {**settings, **(extractor.enabledImagetypes["Wavelet"] or {})}
        before, after = wavelet_footprint(
            str(wavelet_settings.get("wavelet", "coif1")),
            int(wavelet_settings.get("level", 1)),
            int(wavelet_settings.get("start_level", 0)),
        )
    # at least one voxel of background: pyradiomics refuses a mask without any 0 voxel
    return np.full(3, max(before, 1)), np.full(3, max(after, 1))


def _to_sitk(array_xyz: np.ndarray, spacing_mm: np.ndarray) -> sitk.Image:
    _, sitk = require_pyradiomics()
    image = sitk.GetImageFromArray(np.ascontiguousarray(array_xyz.transpose(2, 1, 0)))
    image.SetSpacing([float(s) for s in spacing_mm])
    return image


@lru_cache(maxsize=16)
def _probe_feature_names(params_json: str) -> tuple[str, ...]:
    """pyradiomics' output names for these settings, from one extraction on a synthetic lesion."""
    extractor = _make_extractor(params_json)
    rng = np.random.default_rng(0)
    grid = np.indices((24, 24, 24)) - 11.5
    mask = (np.sqrt((grid**2).sum(axis=0)) <= 6).astype(np.uint8)
    image = rng.normal(0.0, 60.0, mask.shape).astype(np.float32)
    with _quiet_single_threaded():
        result = extractor.execute(_to_sitk(image, np.ones(3)), _to_sitk(mask, np.ones(3)), label=1)
    return tuple(name for name in result if not name.startswith("diagnostics_"))


class RadiomicsExtractor(LesionExtractor):
    """pyradiomics features of each lesion's QSM, cropped for speed, equal to full-volume values.

    The defaults of ``params``, ``region`` and ``shell_mm`` come from
    :data:`rimclf.defaults.DEFAULT_MODEL`.

    Parameters
    ----------
    params : "qsmrim", str, path-like or dict, default="qsmrim"
        pyradiomics settings. "qsmrim": QSMRim-Net's (bin width 25 ppb; Original and Wavelet
        images; shape, first-order, GLCM and GLRLM classes), shipped as package data. Otherwise a
        pyradiomics parameter file or a dict of the same structure. Its ``label`` setting is
        ignored: lesions come from the table.
    image : {"qsm", "flair"}, default="qsm"
        The image the features describe. A FLAIR on another grid is first resampled onto the QSM
        grid (trilinear, world space).
    region : {"lesion", "shell", "both"}, default="both"
        "lesion": the lesion mask (QSMRim-Net's setting). "shell": a ring ``shell_mm`` wide around
        the lesion, leaving out this and every other lesion and voxels outside the QSM's support
        (the brain), where a paramagnetic rim drawn partly outside the FLAIR mask shows. "both": the
        two, with columns prefixed ``lesion_`` and ``shell_``. "shell" columns are prefixed ``shell_``.
    shell_mm : float, default=2.0
        Width of the ring in millimetres (distances on the anisotropic voxel grid, measured
        between voxel centres).

    Notes
    -----
    A lesion pyradiomics cannot handle (e.g. a line of voxels, or an empty shell) gets a NaN row
    (or NaN shell columns) and a :class:`~rimclf.errors.DataWarning` naming subject and lesion;
    the rest of the cohort is extracted normally. pyradiomics' own NaN results (e.g. a feature
    undefined for a flat lesion) are kept as they are.

    ``transform`` returns float64 ``(n_lesions, n_features)``; ``set_output(transform="pandas")``
    (or ``sklearn.set_config(transform_output="pandas")``) makes it a DataFrame with the columns
    of ``get_feature_names_out()`` and the lesion table's index.

    Examples
    --------
    >>> from rimclf.features import RadiomicsExtractor
    >>> extractor = RadiomicsExtractor(region="both", shell_mm=2.0)
    >>> names = extractor.get_feature_names_out()
    >>> len(names), names[0]
    (1072, 'lesion_original_shape_Elongation')
    >>> len(RadiomicsExtractor(region="lesion").get_feature_names_out())   # QSMRim-Net's input
    536
    >>> features = extractor.set_output(transform="pandas").fit_transform(table)  # doctest: +SKIP
    """

    def __init__(
        self, *, params=DEFAULT_MODEL.radiomics_params, image: str = "qsm", region: str = DEFAULT_MODEL.region,
        shell_mm: float = DEFAULT_MODEL.shell_mm,
    ) -> None:
        self.params = params
        self.image = image
        self.region = region
        self.shell_mm = shell_mm

    _parameter_constraints = {"image": [Options(*IMAGES)], "region": [Options(*REGIONS)]}

    # -- validation ---------------------------------------------------------------------------
    def _params_json(self) -> str:
        return json.dumps(load_params(self.params), sort_keys=True)

    def _validate(self) -> str:
        validate_params(self)
        require_pyradiomics()
        if self.region != "lesion":
            check_real(self.shell_mm, "shell_mm", min=0.0, closed="neither", owner="RadiomicsExtractor")
        params_json = self._params_json()
        _make_extractor(params_json)
        return params_json

    def required_columns(self) -> tuple[str, ...]:
        """Lesion-table columns this extractor reads."""
        return BASE_COLUMNS + (("flair",) if self.image == "flair" else ())

    def cache_key(self) -> dict:
        """Everything the features depend on besides the files: settings with the parameters resolved."""
        return {
            "params": json.loads(self._validate()),
            "image": self.image,
            "region": self.region,
            "shell_mm": float(self.shell_mm) if self.region != "lesion" else None,
            "pyradiomics": pyradiomics_version(),
        }

    # -- sklearn API --------------------------------------------------------------------------
    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """pyradiomics' feature names (e.g. "original_firstorder_Mean"), prefixed for the shell."""
        names = _probe_feature_names(self._validate())
        prefixes = {"lesion": [""], "shell": ["shell_"], "both": ["lesion_", "shell_"]}[self.region]
        return np.array([prefix + name for prefix in prefixes for name in names], dtype=object)

    # -- per-subject work ---------------------------------------------------------------------
    def extract_subject(
        self, volumes: SubjectVolumes, notes: list[Note], *, params_json: str | None = None
    ) -> np.ndarray:
        """Features of the subject's distinct lesions (``volumes.task.lesion_ids``), float64 (k, F)."""
        params_json = params_json or self._validate()
        extractor = _make_extractor(params_json)
        names = _probe_feature_names(params_json)
        regions = ("lesion", "shell") if self.region == "both" else (self.region,)
        task = volumes.task
        image = volumes.qsm if self.image == "qsm" else volumes.flair_on_qsm_grid
        labels = volumes.labels
        spacing = volumes.spacing_mm
        boxes = bounding_boxes(labels, task.lesion_ids)
        margin = _crop_margin(extractor)
        full_image = _to_sitk(image, spacing) if margin is None else None
        n_names = len(names)
        out = np.full((len(task.lesion_ids), n_names * len(regions)), np.nan)
        # numpy's "invalid value" warnings inside pyradiomics (e.g. GLCM MCC) repeat per lesion
        with _quiet_single_threaded(), np.errstate(divide="ignore", invalid="ignore"):
            for row, lesion_id in enumerate(task.lesion_ids):
                low, high = boxes[int(lesion_id)]
                for column, region in enumerate(regions):
                    where = f"{task.name} lesion {int(lesion_id)}" + (
                        " shell" if region == "shell" else ""
                    )
                    mask, mask_low = self._region_mask(volumes, int(lesion_id), low, high, region)
                    if not mask.any():
                        message = "has no voxel outside the lesions and inside the QSM support"
                        notes.append((DataWarning, f"{where}: the {self.shell_mm:g} mm shell {message}; {_NAN_NOTE}"))
                        continue
                    try:
                        features = _extract_region(extractor, image, full_image, mask, mask_low, spacing, margin)
                    except (ValueError, RuntimeError, ArithmeticError) as exc:
                        notes.append(
                            (DataWarning, f"{where}: pyradiomics cannot extract features ({exc}); {_NAN_NOTE}")
                        )
                        continue
                    out[row, column * n_names : (column + 1) * n_names] = [features.get(n, np.nan) for n in names]
        return out

    def _region_mask(self, volumes: SubjectVolumes, lesion_id: int, low: np.ndarray, high: np.ndarray, region: str):
        """The region's mask, cropped to its own bounding box, and that box's low corner."""
        labels = volumes.labels
        if region == "lesion":
            crop = tuple(slice(a, b + 1) for a, b in zip(low, high))
            return labels[crop] == lesion_id, low
        reach = shell_margin_voxels(volumes.spacing_mm, self.shell_mm)
        start = np.maximum(low - reach, 0)
        stop = np.minimum(high + reach + 1, labels.shape)
        crop = tuple(slice(a, b) for a, b in zip(start, stop))
        ring = shell_mask(
            labels[crop] == lesion_id, labels[crop] != 0, volumes.support[crop], volumes.spacing_mm, self.shell_mm
        )
        if not ring.any():
            return ring, start
        where = np.argwhere(ring)
        ring_low, ring_high = where.min(axis=0), where.max(axis=0)
        return ring[tuple(slice(a, b + 1) for a, b in zip(ring_low, ring_high))], start + ring_low


def _extract_region(extractor, image, full_image, mask, mask_low, spacing, margin) -> dict:
    """Run pyradiomics on one region (``mask`` is its bounding-box crop starting at ``mask_low``)."""
    if margin is None:
        full_mask = np.zeros(image.shape, dtype=np.uint8)
        full_mask[tuple(slice(a, a + n) for a, n in zip(mask_low, mask.shape))] = mask
        return extractor.execute(full_image, _to_sitk(full_mask, spacing), label=1)
    high = np.asarray(mask_low) + np.asarray(mask.shape) - 1
    start, stop = crop_with_margin(np.asarray(mask_low), high, image.shape, *margin)
    image_crop = image[tuple(slice(a, b) for a, b in zip(start, stop))]
    offset = np.asarray(mask_low) - start
    mask_crop = np.zeros(image_crop.shape, dtype=np.uint8)
    mask_crop[tuple(slice(o, o + n) for o, n in zip(offset, mask.shape))] = mask
    return extractor.execute(_to_sitk(image_crop, spacing), _to_sitk(mask_crop, spacing), label=1)


def radiomics_frame(table: pd.DataFrame, values: np.ndarray, names) -> pd.DataFrame:
    """A radiomics table with ``participant_id``, ``session`` (when ``table`` has one) and ``lesion_id``
    first, rows as in ``table``."""
    frame = pd.DataFrame(np.asarray(values), columns=list(names))
    frame.insert(0, "lesion_id", table["lesion_id"].to_numpy())
    if "session" in table:
        frame.insert(0, "session", table["session"].to_numpy())
    frame.insert(0, "participant_id", table["participant_id"].astype(str).to_numpy())
    return frame
