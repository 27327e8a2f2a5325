"""QSM units: which unit a QSM file is in, and reading it in ppb, background at 0 (see :mod:`rimclf.cohort`)."""

from __future__ import annotations

import logging
import os

import numpy as np

from rimclf._nifti import background_value, brain_support, read_volume
from rimclf._sidecars import read_sidecar, sidecar_path
from rimclf._validation import check_choice
from rimclf.defaults import QSM_UNIT, QSM_UNIT_CHOICES, QSM_UNITS
from rimclf.errors import CohortError

#: A QSM whose 1st-99th percentile range of brain voxels stays within +-this is in ppm; one
#: reaching beyond it is in ppb (brain susceptibility spans about +-0.3 ppm, i.e. +-300 ppb).
PPM_SUSPICION_LIMIT = 2.0

logger = logging.getLogger(__name__)

#: The QSM files whose non-zero background :func:`read_qsm` has logged (once per file and value).
_LOGGED_BACKGROUNDS: set[tuple[str, float]] = set()


def resolve_unit(requested: str, declared: object, where: str) -> str:
    """The QSM unit: ``requested`` unless "auto", else the sidecar's ``declared`` Units, else ppm (BIDS)."""
    if requested != "auto":
        return requested
    if declared is None:
        return "ppm"
    unit = str(declared).strip().lower()
    if unit not in QSM_UNITS:
        raise CohortError(
            f"{where}: \"Units\": {declared!r} is not a QSM unit rimclf reads; write \"ppm\" (the BIDS unit of "
            "Chimap) or \"ppb\", or pass qsm_unit='ppm'/'ppb' (--qsm-unit) to override it"
        )
    return unit


def _file_unit(path: str | os.PathLike, unit: str | None) -> str:
    """``unit``, or for "auto"/None the ``Units`` of the sidecar beside ``path``, else ppm (BIDS)."""
    unit = "auto" if unit is None else unit
    check_choice(unit, "qsm_unit", QSM_UNIT_CHOICES)
    return resolve_unit(unit, read_sidecar(path).get("Units") if unit == "auto" else None, str(sidecar_path(path)))


def check_qsm_unit(data: np.ndarray, unit: str, path: str | os.PathLike, support: np.ndarray | None = None) -> None:
    """Raise a :class:`CohortError` when a QSM's values contradict its unit, saying how to declare it.

    The 1st-99th percentile range of the brain's voxels (:func:`~rimclf._nifti.brain_support`)
    within +-:data:`PPM_SUSPICION_LIMIT` is ppm, beyond it ppb (brain susceptibility spans about
    +-0.3 ppm). ``support``: those voxels when the caller has them already (:func:`read_qsm`).

    Examples
    --------
    >>> import numpy as np
    >>> check_qsm_unit(np.array([0.05, -0.02, 0.11]), "ppm", "sub-01_Chimap.nii.gz")   # fits: nothing happens
    >>> check_qsm_unit(np.array([50.0, -20.0, 110.0]), "ppm", "sub-01_Chimap.nii.gz")
    Traceback (most recent call last):
    ...
    rimclf.errors.CohortError: sub-01_Chimap.nii.gz: QSM values span -18.6..109 (...), which is ppb, but its unit is ppm ... add "Units": "ppb" to sub-01_Chimap.json ...
    """
    brain = data[brain_support(data) if support is None else support]
    if not brain.size:
        return
    low, high = (float(v) for v in np.percentile(brain, [1, 99]))
    looks = "ppm" if max(abs(low), abs(high)) < PPM_SUSPICION_LIMIT else "ppb"
    if looks == unit:
        return
    sidecar = sidecar_path(path)
    try:
        declared = read_sidecar(path).get("Units")
    except CohortError:
        declared = None
    if declared is not None and str(declared).strip().lower() == unit:
        source = f"'Units' in {sidecar.name}"
    elif unit == "ppm":
        source = "the BIDS default for Chimap: no 'Units' in its sidecar"
    else:
        source = f"qsm_unit='{unit}' or a dataset-level sidecar"
    raise CohortError(
        f"{path}: QSM values span {low:.3g}..{high:.3g} (1st-99th percentile of brain voxels), which is "
        f"{looks}, but its unit is {unit} ({source}); declare the unit: add \"Units\": \"{looks}\" to "
        f"{sidecar.name} or pass qsm_unit='{looks}' (--qsm-unit {looks})"
    )


def _log_background(path: str | os.PathLike, background: float, unit: str, support: np.ndarray) -> None:
    """Log (INFO, once per file and value) that a QSM's background is not 0 and is read as 0."""
    key = (os.path.abspath(path), background)
    if key in _LOGGED_BACKGROUNDS:
        return
    _LOGGED_BACKGROUNDS.add(key)
    logger.info("%s: the QSM's background (outside the brain, %.0f%% of the voxels) is %.6g %s, not 0; "
                "it is read as 0", path, 100.0 * (1.0 - support.mean()), background, unit)


def read_qsm(path: str | os.PathLike, unit: str | None = QSM_UNIT) -> tuple[np.ndarray, np.ndarray]:
    """Read a QSM volume in ppb with its background at 0, checking that its values fit its unit.

    Outside the brain a QSM holds one repeated value, its background (:func:`~rimclf._nifti.background_value`):
    0 for most, but e.g. 0.002 for a map stored as integers with a scale and an offset. The
    features take the nonzero voxels of the volume returned as the brain, so a background other
    than 0 is set to 0, and logged (INFO, once per file).

    Parameters
    ----------
    path : str or path-like
    unit : {"auto", "ppb", "ppm"} or None, default="auto"
        The unit the file is stored in ("ppm" is multiplied by 1000). "auto" (or None): the
        ``Units`` of the JSON sidecar beside the file, else ppm, the BIDS unit of ``Chimap``
        (:func:`load_cohort` resolves BIDS inheritance and records the unit in the table).

    Raises
    ------
    CohortError
        When the values contradict the unit (:func:`check_qsm_unit`), e.g. a ppb map read as
        ppm; the message says how to declare the unit. When every voxel is the background value
        (or NaN/Inf, which are outside the brain then): an empty map, whose lesions would all
        look rim-.

    Examples
    --------
    >>> import tempfile
    >>> import nibabel as nib
    >>> import numpy as np
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = f"{folder.name}/sub-01_Chimap.nii.gz"
    >>> volume = np.full((4, 4, 4), 0.002, dtype=np.float32)     # outside the brain: 0.002
    >>> volume[1:3, 1:3, 1:3] = 0.05
    >>> nib.save(nib.Nifti1Image(volume, np.eye(4)), path)
    >>> qsm, affine = read_qsm(path)            # no sidecar: ppm, as BIDS defines Chimap
    >>> float(qsm.max()), float(qsm.min())      # in ppb, the background at 0
    (50.0, 0.0)
    >>> folder.cleanup()
    """
    unit = _file_unit(path, unit)
    data, affine = read_volume(path)
    background = background_value(data)
    support = brain_support(data, background)
    if not support.any():
        raise CohortError(f"{path}: every voxel of the QSM is {background:g} (after NaN/Inf outside the brain are set "
                          f"to {background:g}): an empty or failed reconstruction; fix it or leave this scan out")
    if background != 0:
        _log_background(path, background, unit, support)
        data = np.where(support, data, np.float32(0.0))
    check_qsm_unit(data, unit, path, support)
    if unit == "ppm":
        return data * np.float32(1000.0), affine
    return data, affine
