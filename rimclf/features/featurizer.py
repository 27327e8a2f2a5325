"""LesionFeaturizer: radiomics and patches of a lesion table, per subject, parallel and cached;
:func:`make_featurizer`: the featurizer a model configuration describes."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass

import numpy as np
from joblib import Memory, Parallel, delayed
from sklearn.base import BaseEstimator, TransformerMixin
from tqdm.auto import tqdm

from rimclf._orphans import exit_with_parent, in_loky_worker
from rimclf._validation import N_JOBS, Bools, Options, Types, validate_params
from rimclf.defaults import DEFAULT_MODEL, ModelConfig
from rimclf.errors import OutputError, ParameterError, RimclfWarning
from rimclf.features._cache import CorruptEntry, FeatureCache, warn_corrupt
from rimclf.features._subject import (
    Note,
    SubjectTask,
    SubjectVolumes,
    check_lesion_table,
    emit_notes,
    file_sha256,
    group_by_subject,
)
from rimclf.features.patches import PatchExtractor
from rimclf.features.radiomics import RadiomicsExtractor

logger = logging.getLogger(__name__)

#: Bump when a change of the extraction code changes cached results.
CACHE_VERSION = 1


@dataclass
class SubjectFeatures:
    """One subject's results, per distinct lesion of its task, with the warnings to re-issue."""

    radiomics: np.ndarray | None
    patches: np.ndarray | None
    notes: list[Note]


def _featurize_subject(key: str | None, task: SubjectTask, radiomics, patches) -> SubjectFeatures:
    """Read one subject's volumes once and run both extractors (``key`` only serves the cache)."""
    logger.debug("extracting features of sub-%s (%d lesions)", task.participant_id, len(task.lesion_ids))
    notes: list[Note] = []
    volumes = SubjectVolumes(task, notes)
    radiomics_values = radiomics.extract_subject(volumes, notes) if radiomics is not None else None
    patch_values = patches.extract_subject(volumes, notes) if patches is not None else None
    return SubjectFeatures(radiomics_values, patch_values, notes)


def _featurize_cached(
    folder: str | None, key: str | None, task: SubjectTask, radiomics, patches, expected: dict[str, tuple[int, ...]]
) -> SubjectFeatures:
    """One subject's features from the cache ``folder`` when it holds a sound entry, else extracted
    and stored there. Runs in the worker (joblib or Dask); warnings travel back as notes."""
    if in_loky_worker():
        exit_with_parent()  # a killed rimclf leaves no loky worker behind
    if folder is None:
        return _featurize_subject(key, task, radiomics, patches)
    cache = FeatureCache(folder)
    notes: list[Note] = []
    try:
        entry = cache.load(key, expected)
    except CorruptEntry as exc:
        warn_corrupt(cache.paths(key)[0].with_suffix(""), str(exc), notes)
        entry = None
    if entry is not None:
        arrays, cached_notes = entry
        return SubjectFeatures(arrays.get("radiomics"), arrays.get("patches"), cached_notes)
    result = _featurize_subject(key, task, radiomics, patches)
    arrays = {name: value for name, value in (("radiomics", result.radiomics), ("patches", result.patches)) if value is not None}
    try:
        cache.save(key, arrays, result.notes)
    except OSError as exc:
        notes.append((RimclfWarning, f"feature cache {folder}: entry {key} not written ({exc.strerror or exc}); features not cached"))
    return SubjectFeatures(result.radiomics, result.patches, notes + result.notes)


class LesionFeaturizer(TransformerMixin, BaseEstimator):
    """Stateless transformer from the lesion table to ``SliceDict(patches=..., radiomics=...)``.

    Parameters
    ----------
    radiomics : RadiomicsExtractor, "default" or None, default="default"
        The radiomics extractor; "default" is ``RadiomicsExtractor()`` (QSMRim-Net settings),
        None leaves the "radiomics" entry out.
    patches : PatchExtractor, "default" or None, default="default"
        The patch extractor; "default" is ``PatchExtractor()``, None leaves "patches" out.
    n_jobs : int or None, default=None
        Subjects processed in parallel with joblib (None: one, unless inside a
        ``joblib.parallel_backend`` context; -1: all cores). Any joblib backend works, e.g.
        ``with joblib.parallel_backend("dask"):`` on a Dask cluster. Results do not depend on it.
    memory : str, path-like, joblib.Memory or None, default=None
        Folder caching per-subject results; a ``joblib.Memory`` stands for its ``location``
        (only the folder is used, not joblib's pickle-based cache). The key is the SHA-256 of
        the subject's files' bytes (within a process, re-hashed only when a file's size, mtime or
        inode changes), its participant id, lesion ids and centroids, every extractor parameter
        and the pyradiomics version: a changed file is extracted again, an unchanged one (even if
        touched or copied elsewhere) is loaded from the cache. Lesion-level warnings are cached
        with the results and issued again. Entries are plain ``.npz`` arrays (read without
        pickle) and ``.json`` metadata holding their SHA-256: a damaged or foreign entry is
        extracted again and overwritten, with a ``DataWarning`` naming it (see
        :mod:`rimclf.features._cache`).
    progress : bool, default=True
        Show a tqdm progress bar over subjects.

    Notes
    -----
    ``transform`` reads each subject's QSM, FLAIR and mask once, extracts its lesions and puts the
    rows back in table order; a subset of the table (``table.iloc[idx]``, as cross-validation
    passes) gives the matching subset of rows. ``fit`` only checks parameters.
    """

    def __init__(
        self, *, radiomics="default", patches="default", n_jobs=None, memory=None, progress: bool = True
    ) -> None:
        self.radiomics = radiomics
        self.patches = patches
        self.n_jobs = n_jobs
        self.memory = memory
        self.progress = progress

    _parameter_constraints = {
        "radiomics": [Options("default", None), Types(RadiomicsExtractor, description="a RadiomicsExtractor")],
        "patches": [Options("default", None), Types(PatchExtractor, description="a PatchExtractor")],
        "n_jobs": list(N_JOBS),
        "progress": [Bools()],
    }

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.two_d_array = False
        return tags

    def extractors(self) -> tuple[RadiomicsExtractor | None, PatchExtractor | None]:
        """The (radiomics, patches) extractors in use, "default" resolved, after checking every parameter."""
        return self._validate()

    def _validate(self) -> tuple[RadiomicsExtractor | None, PatchExtractor | None]:
        validate_params(self)
        extractors = []
        for name, kind in (("radiomics", RadiomicsExtractor), ("patches", PatchExtractor)):
            value = getattr(self, name)
            if isinstance(value, str) and value == "default":
                value = kind()
            if value is not None:
                value.fit()
            extractors.append(value)
        if extractors == [None, None]:
            raise ParameterError("radiomics=None and patches=None: nothing to extract; keep at least one")
        self._memory()
        return extractors[0], extractors[1]

    def _memory(self) -> str | None:
        """The cache folder, or None."""
        memory = self.memory
        if isinstance(memory, Memory):
            memory = memory.location
        if isinstance(memory, os.PathLike):
            memory = os.fspath(memory)
        if memory is not None and (not isinstance(memory, str) or not memory):
            raise ParameterError(f"memory={memory!r} is not valid; use None, a cache folder or a joblib.Memory")
        return memory

    def _cache_folder(self) -> str | None:
        """The cache folder, created and checked writable before any extraction (or None)."""
        folder = self._memory()
        if folder is not None:
            try:
                os.makedirs(folder, exist_ok=True)
            except OSError as exc:
                raise OutputError(f"memory={folder}: the feature cache folder cannot be created ({exc.strerror or exc})") from exc
            if not os.access(folder, os.W_OK | os.X_OK):
                raise OutputError(f"memory={folder}: the feature cache folder is not writable")
            FeatureCache(folder).remove_stale_temporaries()
        return folder

    def _required_columns(self, radiomics, patches) -> list[str]:
        columns = [
            *(radiomics.required_columns() if radiomics else ()),
            *(patches.required_columns() if patches else ()),
        ]
        return list(dict.fromkeys(columns))

    def fit(self, X=None, y=None):
        """Check the parameters (and the table's columns when given). Nothing is learnt."""
        radiomics, patches = self._validate()
        if X is not None:
            check_lesion_table(X, self._required_columns(radiomics, patches))
        return self

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Names of the radiomics columns (pyradiomics' own); empty without radiomics."""
        radiomics, _ = self._validate()
        return radiomics.get_feature_names_out() if radiomics is not None else np.array([], dtype=object)

    def transform(self, X):
        """Features of every row of the lesion table, in table order.

        Returns
        -------
        skorch.helper.SliceDict
            ``patches``: float32 (n, C, D, H, W); ``radiomics``: float32 (n, F); either left out
            when its extractor is None.
        """
        from skorch.helper import SliceDict

        radiomics, patches = self._validate()
        table = check_lesion_table(X, self._required_columns(radiomics, patches))
        need_flair = "flair" in self._required_columns(radiomics, patches)
        tasks = group_by_subject(table, with_flair=need_flair, with_centroids=patches is not None)
        settings = {
            "version": CACHE_VERSION,
            "radiomics": radiomics.cache_key() if radiomics is not None else None,
            "patches": patches.cache_key() if patches is not None else None,
        }
        folder = self._cache_folder()
        # largest subjects first, so that with n_jobs > 1 no worker is left with a big one at the end
        tasks = sorted(tasks, key=lambda entry: -len(entry[0].lesion_ids))
        n_rows = len(table)
        row_shapes = {}
        if radiomics is not None:
            row_shapes["radiomics"] = (len(radiomics.get_feature_names_out()),)
        if patches is not None:
            patch_settings = patches.cache_key()
            row_shapes["patches"] = (len(patch_settings["channels"]), *patch_settings["shape"])
        calls = (
            delayed(_featurize_cached)(
                folder,
                _cache_key(task, settings) if folder is not None else None,
                task,
                radiomics,
                patches,
                {name: (len(task.lesion_ids), *shape) for name, shape in row_shapes.items()},
            )
            for task, _, _ in tasks
        )
        out_radiomics = out_patches = None
        if radiomics is not None:
            out_radiomics = np.full((n_rows, *row_shapes["radiomics"]), np.nan, dtype=np.float32)
        if patches is not None:
            out_patches = np.zeros((n_rows, *row_shapes["patches"]), dtype=np.float32)
        notes: list[Note] = []
        results = Parallel(n_jobs=self.n_jobs, return_as="generator")(calls)
        with tqdm(
            total=len(tasks), desc="lesion features", unit="subject", disable=not self.progress or not tasks
        ) as bar:
            for (task, rows, lesion_index), result in zip(tasks, results):
                if out_radiomics is not None:
                    _place(out_radiomics, rows, result.radiomics, lesion_index)
                if out_patches is not None:
                    _place(out_patches, rows, result.patches, lesion_index)
                notes.extend(result.notes)
                bar.update(1)
        emit_notes(notes, stacklevel=2)
        outputs = {}
        if out_patches is not None:
            outputs["patches"] = out_patches
        if out_radiomics is not None:
            outputs["radiomics"] = out_radiomics
        return SliceDict(**outputs)


def make_featurizer(
    config: ModelConfig = DEFAULT_MODEL,
    *,
    radiomics: bool = True,
    patches: bool = True,
    n_jobs: int | None = None,
    memory=None,
    progress: bool = True,
) -> LesionFeaturizer:
    """The featurizer a model configuration describes.

    The one place where feature settings become extractors: ``rimclf train``, ``rimclf
    extract``, ``rimclf tune``, the demo and the benchmark all build their featurizer here.

    Parameters
    ----------
    config : ModelConfig, default=rimclf.defaults.DEFAULT_MODEL
        Gives the radiomics settings (``radiomics_params``, ``region``, ``shell_mm``) and the
        patch settings (``patch_size_mm``, ``patch_shape``, ``normalize``, ``channels``).
        Change some with ``dataclasses.replace(DEFAULT_MODEL, region="both")``.
    radiomics, patches : bool, default=True
        Build the radiomics and the patch extractor (at least one).
    n_jobs, memory, progress
        Runtime settings of :class:`LesionFeaturizer` (they do not change the features).

    Returns
    -------
    LesionFeaturizer
    """
    radiomics_extractor = (
        RadiomicsExtractor(params=config.radiomics_params, region=config.region, shell_mm=config.shell_mm)
        if radiomics
        else None
    )
    patch_extractor = (
        PatchExtractor(
            size_mm=config.patch_size_mm, shape=config.patch_shape, channels=config.channels,
            normalize=config.normalize,
        )
        if patches
        else None
    )
    return LesionFeaturizer(
        radiomics=radiomics_extractor, patches=patch_extractor, n_jobs=n_jobs, memory=memory, progress=progress
    )


def _place(out: np.ndarray, rows: np.ndarray, values: np.ndarray, lesion_index: np.ndarray) -> None:
    """``out[rows] = values[lesion_index]``, without temporary copies in the usual sorted case."""
    contiguous = len(rows) and rows[-1] - rows[0] + 1 == len(rows)
    if contiguous and len(lesion_index) == len(values) and np.array_equal(lesion_index, np.arange(len(values))):
        out[rows[0] : rows[-1] + 1] = values
    else:
        out[rows] = values[lesion_index]


def _cache_key(task: SubjectTask, settings: dict) -> str:
    """What a subject's features depend on (file contents, lesions, settings; not the paths), as a digest."""
    files = {"qsm": task.qsm, "mask": task.mask, **({"flair": task.flair} if task.flair is not None else {})}
    key = {
        **settings,
        "participant_id": task.participant_id,
        **({"session": task.session} if task.session else {}),  # keys without sessions unchanged
        "files": {kind: file_sha256(path) for kind, path in files.items()},
        "qsm_unit": task.qsm_unit,
        "connectivity": task.connectivity,
        "lesion_ids": task.lesion_ids.tolist(),
        "centroids_mm": task.centroids_mm.tolist(),
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
