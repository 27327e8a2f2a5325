"""The one place rimclf touches nibabel: reading and writing NIfTI volumes with clear errors.

Every function raises :class:`~rimclf.errors.CohortError` naming the file for bad input
(missing, unreadable, not 3D, NaN inside the brain) instead of a traceback from nibabel or numpy.

Full reads of a ``.nii.gz`` (:func:`read_array` and the readers built on it) decompress the
whole file and check its gzip CRC-32 and length, so a damaged file (a flipped bit, a truncated
copy) is an error naming it rather than silently altered voxels: nibabel alone stops reading at
the end of the voxel data and never reaches the checksum at the end of the stream. Decompressing
once in memory costs about what nibabel's own reading does.

The brain is a volume's finite voxels other than its background value (:func:`brain_support`):
0 for most maps, but a QSM stored as scaled integers reads its 0 back as, say, 0.002 ppb.

Memory is bounded by what the header declares, checked before any voxel is read
(:func:`load_header`): at most :data:`~rimclf.defaults.MAX_VOXELS` voxels of a plain numeric
type, and a ``.nii.gz`` is decompressed only up to the size its header declares (a small file
whose gzip stream unpacks to gigabytes is refused, not unpacked).
"""

from __future__ import annotations

import gzip
import os
import tempfile
import warnings
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from rimclf._atomic import public_permissions
from rimclf._atomic._rename import rename_noreplace
from rimclf.defaults import MAX_VOXELS
from rimclf.errors import CohortError, DataWarning, OutputExistsError, printable

#: Two affines are "the same grid" when no entry differs by more than this (mm).
AFFINE_TOLERANCE_MM = 1e-3

#: Largest lesion label a mask may hold (the uint16 range). Lesion ids index per-label arrays
#: (counts, probability lookups), so a label of 2**31 would ask for gigabytes; no lesion mask
#: needs more than 65535 lesions per subject.
MAX_LABEL = 65535

#: Bytes a ``.nii.gz`` may unpack to beyond the end of the voxel data its header declares.
TRAILING_BYTES = 2**20

#: A volume's most frequent value is its background (outside the brain, masked to one value) when
#: it fills at least this fraction of the voxels: a masked map's outside fills about half of them,
#: while float tissue values essentially never repeat and an integer-coded map's commonest level
#: holds a few percent.
BACKGROUND_MIN_FRACTION = 0.10

#: The candidate background value is the mode of a strided subsample of about this many voxels
#: (every 8th voxel along each axis of a 512^3 volume), then counted exactly on the whole volume.
BACKGROUND_SAMPLE_VOXELS = 2**18


def load_header(path: str | os.PathLike) -> nib.Nifti1Image:
    """Open a NIfTI file lazily (header only; voxel data is read on first access).

    Parameters
    ----------
    path : str or path-like
        A ``.nii`` or ``.nii.gz`` file.

    Returns
    -------
    nibabel.Nifti1Image
        The proxy image; ``image.shape`` and ``image.affine`` are available without reading voxels.

    Raises
    ------
    CohortError
        If the file is missing, cannot be parsed as NIfTI, is not 3D (a 4D image with a single
        volume is accepted and squeezed by :func:`read_volume`), declares more than
        :data:`~rimclf.defaults.MAX_VOXELS` voxels or voxels of a type that is not a plain number
        (complex, RGB), or has a non-invertible affine. Nothing but the header is read.
    """
    path = Path(path)
    if not path.is_file():
        raise CohortError(f"{path}: file not found")
    try:
        image = nib.load(str(path))
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise CohortError(f"{path}: not a readable NIfTI file ({type(exc).__name__}: {exc})") from exc
    shape = tuple(image.shape)
    if len(shape) == 4 and shape[3] == 1:
        pass
    elif len(shape) != 3:
        raise CohortError(f"{path}: expected a 3D volume, got {len(shape)}D with shape {shape}")
    n_voxels = int(np.prod(shape, dtype=object))
    if n_voxels > MAX_VOXELS or min(shape) < 1:
        raise CohortError(
            f"{path}: its header declares a grid of {' x '.join(map(str, shape))} = {n_voxels:,} voxels; rimclf reads "
            f"images of 1 to {MAX_VOXELS:,} voxels (512^3; a QSM has at most about 512 x 512 x 256), so it is not read"
        )
    dtype = image.header.get_data_dtype()
    if dtype.kind not in "biuf" or dtype.fields is not None:
        raise CohortError(f"{path}: its voxels are of type {printable(dtype)}; rimclf reads real-valued (integer or float) images")
    affine = np.asarray(image.affine, dtype=float)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        rows = "; ".join(" ".join(f"{value:g}" for value in row) for row in affine)
        raise CohortError(f"{path}: the affine is not a valid voxel-to-world transform: [{rows}]")
    return image


def spatial_shape(image: nib.Nifti1Image) -> tuple[int, int, int]:
    """The 3D grid shape of an image (a trailing singleton 4th axis is ignored)."""
    return tuple(int(s) for s in image.shape[:3])  # type: ignore[return-value]


def read_array(path: str | os.PathLike, *, dtype: type = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Read a 3D volume's voxels and affine, without any NaN repair.

    Raises
    ------
    CohortError
        For the reasons of :func:`load_header`, or when the voxel data cannot be decoded
        (e.g. a truncated ``.nii.gz``).
    """
    image = load_header(path)
    full = _verified_image(Path(path), image)
    try:
        data = np.asarray(full.dataobj, dtype=dtype)
    except Exception as exc:
        raise CohortError(f"{path}: voxel data cannot be read ({type(exc).__name__}: {exc})") from exc
    return data.reshape(spatial_shape(image)), np.asarray(image.affine, dtype=float)


def _verified_image(path: Path, image: nib.Nifti1Image) -> nib.Nifti1Image:
    """``image`` itself for a ``.nii``; for a ``.nii.gz``, the image rebuilt from the whole file,
    decompressed with its CRC-32 and length checked (:func:`gzip.decompress` checks both)."""
    if not path.name.endswith(".gz"):
        return image
    header = image.header
    offset = getattr(image.dataobj, "offset", None)  # where the voxels start (the loaded header may say 0)
    declared = int(offset if offset is not None else header.get_data_offset()) + int(np.prod(spatial_shape(image), dtype=np.int64)) * header.get_data_dtype().itemsize
    limit = declared + TRAILING_BYTES
    try:
        with gzip.open(path, "rb") as handle:  # reads to the end of the stream (CRC-32 and length checked) when under the limit
            content = handle.read(limit + 1)
    except FileNotFoundError as exc:
        raise CohortError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile (CRC, length, header) is an OSError
        raise CohortError(
            f"{path}: the file is damaged: its gzip data is corrupt ({exc}); copy or export it again"
        ) from exc
    if len(content) > limit:
        raise CohortError(
            f"{path}: its gzip data unpacks to more than the {declared:,} bytes its header declares; "
            "not a NIfTI file rimclf reads (refused without unpacking the rest)"
        )
    try:
        return type(image).from_bytes(content)
    except Exception as exc:
        raise CohortError(f"{path}: not a readable NIfTI file ({type(exc).__name__}: {exc})") from exc


def background_value(data: np.ndarray) -> float:
    """The value outside the brain: the most frequent finite value when it fills at least
    :data:`BACKGROUND_MIN_FRACTION` of the voxels (and more than one), else 0.

    0 is what a map masked to 0 has, and what a map without background (tissue everywhere, no
    value repeated that often) gets, so that :func:`brain_support` is then its nonzero voxels.
    The candidate is the mode of a strided subsample (:data:`BACKGROUND_SAMPLE_VOXELS`), counted
    exactly on the whole volume: a few tens of milliseconds on a 512^3 volume.

    Examples
    --------
    >>> import numpy as np
    >>> brain = np.linspace(-50.0, 80.0, 1000).reshape(10, 10, 10)
    >>> background_value(np.where(brain > 0, brain, 0.0021))        # an int16-scaled zero
    0.0021
    >>> background_value(brain)                                      # tissue everywhere
    0.0
    """
    data = np.asarray(data)
    if not data.size:
        return 0.0
    step = max(1, int(np.ceil((data.size / BACKGROUND_SAMPLE_VOXELS) ** (1.0 / max(data.ndim, 1)))))
    sample = data[(slice(None, None, step),) * data.ndim].ravel()
    sample = sample[np.isfinite(sample)]
    if not sample.size:
        return 0.0
    values, counts = np.unique(sample, return_counts=True)
    candidate = values[np.argmax(counts)]
    if candidate == 0:
        return 0.0
    n_background = np.count_nonzero(data == candidate)
    # a value seen once is no background, however few the voxels (a tiny array's every value is 10 %)
    return float(candidate) if n_background > 1 and n_background >= BACKGROUND_MIN_FRACTION * data.size else 0.0


def brain_support(data: np.ndarray, background: float | None = None) -> np.ndarray:
    """The voxels with data (the brain): finite and different from the background value.

    Parameters
    ----------
    data : ndarray
        A QSM (or another masked map).
    background : float, optional
        Its :func:`background_value`, when already known.

    Returns
    -------
    ndarray of bool, the shape of ``data``

    Notes
    -----
    A brain voxel that happens to hold exactly the background value is left out too, as a brain
    voxel of exactly 0 always was; in float data that is a voxel or two, which no feature notices.

    Examples
    --------
    >>> import numpy as np
    >>> qsm = np.array([[0.002, 0.002, 0.002, 0.002], [0.002, 12.5, -3.25, np.nan]])
    >>> brain_support(np.tile(qsm, (3, 1, 1))).sum(axis=0)
    array([[0, 0, 0, 0],
           [0, 3, 3, 0]])
    """
    data = np.asarray(data)
    background = background_value(data) if background is None else background
    return np.isfinite(data) & (data != data.dtype.type(background))


def read_volume(path: str | os.PathLike, *, dtype: type = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Read an intensity volume (QSM or FLAIR), repairing non-finite voxels outside the brain.

    Non-finite voxels (NaN, ±Inf) connected to the edge of the volume through other non-finite
    or background voxels (:func:`background_value`, 0 for most) lie outside the brain: they are
    set to the background value with a :class:`~rimclf.errors.DataWarning`. Non-finite voxels
    enclosed by tissue lie inside the brain and are an error, since any value put there would be
    invented.

    Returns
    -------
    data : ndarray of shape (X, Y, Z)
    affine : ndarray of shape (4, 4)
    """
    data, affine = read_array(path, dtype=dtype)
    bad = ~np.isfinite(data)
    if bad.any():
        value = background_value(data)
        background = ~brain_support(data, value)
        labels, _ = ndimage.label(background)
        edge = np.zeros_like(bad)
        edge[[0, -1], :, :] = edge[:, [0, -1], :] = edge[:, :, [0, -1]] = True
        outside_labels = np.unique(labels[edge & background])
        outside = np.isin(labels, outside_labels[outside_labels > 0])
        inside_bad = bad & ~outside
        if inside_bad.any():
            first = tuple(int(i) for i in np.argwhere(inside_bad)[0])
            raise CohortError(
                f"{path}: {int(inside_bad.sum())} NaN/Inf voxels inside the brain "
                f"(first at voxel {first}); fix or mask them before running rimclf"
            )
        warnings.warn(
            f"{path}: {int(bad.sum())} NaN/Inf voxels outside the brain were set to {value:g}",
            DataWarning,
            stacklevel=2,
        )
        data = np.where(bad, data.dtype.type(value), data).astype(dtype, copy=False)
    return data, affine


def read_labels(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a lesion mask as integer labels (0 = background).

    Raises
    ------
    CohortError
        If any voxel is non-finite, negative, not an integer value or above :data:`MAX_LABEL`.
    """
    header = load_header(path).header
    stored = header.get_data_dtype()
    # stored integers are read as integers (no float64 copy of a large mask); others as floats wide enough
    integers = stored.kind in "biu" and header.get_slope_inter() in ((None, None), (1.0, 0.0))
    data, affine = read_array(path, dtype=(np.int64 if stored.itemsize >= 4 else np.int32) if integers else
                              np.float32 if stored.itemsize <= 4 and stored.kind == "f" else np.float64)
    if integers:
        low, high = (int(data.min()), int(data.max())) if data.size else (0, 0)
        if low < 0:
            raise CohortError(f"{path}: the lesion mask has negative labels (min {low}); labels must be 0..K")
        if high > MAX_LABEL:
            raise CohortError(
                f"{path}: the lesion mask has label {high}; rimclf reads labels 0..{MAX_LABEL} only. "
                "Number the lesions 1..K (and rims.tsv with them), or give a binary 0/1 mask"
            )
        return data.astype(np.int32, copy=False), affine
    if not np.all(np.isfinite(data)):
        raise CohortError(f"{path}: the lesion mask contains NaN/Inf voxels")
    if (data < 0).any():
        raise CohortError(f"{path}: the lesion mask has negative labels (min {data.min():g}); labels must be 0..K")
    if data.max(initial=0) > MAX_LABEL:
        raise CohortError(
            f"{path}: the lesion mask has label {data.max():.15g}; rimclf reads labels 0..{MAX_LABEL} only. "
            "Number the lesions 1..K (and rims.tsv with them), or give a binary 0/1 mask"
        )
    rounded = np.rint(data)
    off = np.abs(data - rounded) > 1e-4
    if off.any():
        bad = data[off]
        raise CohortError(
            f"{path}: the lesion mask has non-integer values (e.g. {bad[0]:g}); "
            "expected instance labels 1..K or a binary 0/1 mask"
        )
    return rounded.astype(np.int32), affine


def voxel_sizes(affine: np.ndarray) -> np.ndarray:
    """Voxel edge lengths in mm along the three array axes."""
    return np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))


def save_on_grid(
    path: str | os.PathLike,
    data: np.ndarray,
    reference: str | os.PathLike,
    *,
    descrip: str,
    cal: tuple[float, float],
    intent: str | None = None,
) -> Path:
    """Write ``data`` as a NIfTI on the grid of the image ``reference`` (e.g. a map on the QSM grid).

    The new file keeps the reference's geometry exactly: its qform and sform with their codes,
    voxel sizes and units, so that every viewer places it where the reference is. It gets its own
    data type (``data``'s, unscaled), ``descrip`` (at most 79 characters) and display window
    ``cal_min, cal_max = cal``, and optionally a NIfTI intent (e.g. ``"label"``), so that a viewer
    does not show it as the reference image. Written as :func:`save_nifti` writes (atomically,
    never over an existing file).
    """
    source = load_header(reference)
    data = np.asarray(data)
    if data.shape != spatial_shape(source):
        raise CohortError(f"{path}: data of shape {data.shape} is not on the grid of {reference} {spatial_shape(source)}")
    header = source.header.copy()
    image = nib.Nifti1Image(data, None, header=header)
    qform, qform_code = source.header.get_qform(coded=True)
    sform, sform_code = source.header.get_sform(coded=True)
    if qform is None and sform is None:  # neither coded: the reference's (fallback) affine, as scanner space
        qform, qform_code = np.asarray(source.affine), 1
    image.set_qform(qform, code=int(qform_code) if qform is not None else 0)
    image.set_sform(sform, code=int(sform_code) if sform is not None else 0)
    image.set_data_dtype(data.dtype)
    image.header.set_slope_inter(None, None)
    image.header.set_intent(intent or "none")
    image.header["descrip"] = descrip[:79].encode("ascii", "replace")
    image.header["cal_min"], image.header["cal_max"] = float(cal[0]), float(cal[1])
    image.header["aux_file"] = b""
    return _save(path, image)


def _save(path: str | os.PathLike, image: nib.Nifti1Image, *, overwrite: bool = False) -> Path:
    """Save ``image`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} exists; pass overwrite=True (--force on the command line) to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".nii.gz" if path.name.endswith(".nii.gz") else ".nii"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        nib.save(image, tmp)
        public_permissions(Path(tmp))
        if overwrite:
            os.replace(tmp, path)
        else:  # never replace a file another process wrote meanwhile
            rename_noreplace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_nifti(
    path: str | os.PathLike,
    data: np.ndarray,
    affine: np.ndarray,
    *,
    header: nib.Nifti1Header | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a NIfTI file atomically (temporary file in the same folder, then rename).

    Parameters
    ----------
    path : str or path-like
        Destination (``.nii`` or ``.nii.gz``); parent folders are created.
    data : ndarray
        Voxel data; its dtype is kept.
    affine : ndarray of shape (4, 4)
    header : nibabel.Nifti1Header, optional
        A header to copy (e.g. the QSM's, for a probability map on the QSM grid).
    overwrite : bool, default=False
        Replace an existing file. Without it an existing file is an error.
    """
    image = nib.Nifti1Image(np.asarray(data), np.asarray(affine, dtype=float), header=header)
    if header is not None:
        image.set_data_dtype(np.asarray(data).dtype)
    image.set_qform(np.asarray(affine, dtype=float), code=1)
    image.set_sform(np.asarray(affine, dtype=float), code=1)
    return _save(path, image, overwrite=overwrite)
