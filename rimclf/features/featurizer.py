"""LesionFeaturizer: the registered features of a lesion table, per subject, parallel and cached;
:func:`make_featurizer`: the featurizer a model configuration describes."""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import sys
from dataclasses import dataclass

import numpy as np
from joblib import Memory, Parallel, delayed
from sklearn.base import TransformerMixin
from sklearn.utils.metaestimators import _BaseComposition
from tqdm.auto import tqdm

from rimclf._orphans import exit_with_parent, in_loky_worker
from rimclf._validation import N_JOBS, Bools, Options, Types, validate_params
from rimclf.defaults import DEFAULT_MODEL, ModelConfig
from rimclf.feature_registry import IMAGE, TABULAR, Feature, check_feature_set, feature_names, get_feature
from rimclf.errors import OutputError, ParameterError, RimclfWarning
from rimclf.features._cache import CorruptEntry, FeatureCache, warn_corrupt
from rimclf.features._output import DictOutputMixin, LesionFeatures
from rimclf._data_checks import check_lesion_table
from rimclf.features._subject import (
    CENTROID_COLUMNS,
    Note,
    SubjectTask,
    SubjectVolumes,
    emit_notes,
    remembered_sha256,
    group_by_subject,
)

logger = logging.getLogger(__name__)

#: Bump when a change of the extraction code changes cached results.
CACHE_VERSION = 2


@dataclass
class SubjectFeatures:
    """One subject's results (per distinct lesion of its task, by output key), with the warnings to re-issue."""

    arrays: dict[str, np.ndarray]
    notes: list[Note]


def _featurize_subject(key: str | None, task: SubjectTask, extractors: dict) -> SubjectFeatures:
    """Read one subject's volumes once and run every extractor (``key`` only serves the cache)."""
    logger.debug("extracting features of sub-%s (%d lesions)", task.participant_id, len(task.lesion_ids))
    notes: list[Note] = []
    volumes = SubjectVolumes(task, notes)
    arrays = {name: extractor.extract_subject(volumes, notes) for name, extractor in extractors.items()}
    return SubjectFeatures(arrays, notes)


def _featurize_cached(
    folder: str | None, key: str | None, task: SubjectTask, extractors: dict, expected: dict[str, tuple[int, ...]]
) -> SubjectFeatures:
    """One subject's features from the cache ``folder`` when it holds a sound entry, else extracted
    and stored there. Runs in the worker (joblib or Dask); warnings travel back as notes."""
    if in_loky_worker():
        exit_with_parent()  # a killed rimclf leaves no loky worker behind
    if folder is None:
        return _featurize_subject(key, task, extractors)
    cache = FeatureCache(folder)
    notes: list[Note] = []
    try:
        entry = cache.load(key, expected)
    except CorruptEntry as exc:
        warn_corrupt(cache.paths(key)[0].with_suffix(""), str(exc), notes)
        entry = None
    if entry is not None:
        arrays, cached_notes = entry
        return SubjectFeatures(arrays, cached_notes)
    result = _featurize_subject(key, task, extractors)
    try:
        cache.save(key, result.arrays, result.notes)
    except OSError as exc:
        notes.append((RimclfWarning, f"feature cache {folder}: entry {key} not written ({exc.strerror or exc}); features not cached"))
    return SubjectFeatures(result.arrays, notes + result.notes)


class LesionFeaturizer(DictOutputMixin, TransformerMixin, _BaseComposition, auto_wrap_output_keys=None):
    """Stateless transformer from the lesion table to a ``SliceDict`` of lesion features.

    Parameters
    ----------
    features : list of (str, extractor) tuples or None, default=None
        The extractors, each under its name in :mod:`rimclf.feature_registry` (``"rim"``,
        ``"radiomics"``, ``"patches"`` or one registered since), which is also its key in the
        output. None: the default model's (:func:`make_featurizer` of
        :data:`rimclf.defaults.DEFAULT_MODEL`: the rim-profile features). Nested parameters
        use the names: ``set_params(radiomics__region="lesion")``.
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
    ``transform`` reads each subject's QSM, FLAIR and mask once, runs every extractor on its
    lesions and puts the rows back in table order; a subset of the table (``table.iloc[idx]``, as
    cross-validation passes) gives the matching subset of rows. ``fit`` only checks parameters.
    The tabular entries (registry block "tabular": "rim", "radiomics") are what the network's
    MLP branch and the baselines take; the image entry "patches" feeds its CNN branch.

    The output is a :class:`~rimclf.features.LesionFeatures`, a ``SliceDict`` that also carries
    the names of the tabular columns (``X.feature_names``), so that a baseline fitted on it can
    name its columns (``pipe[:-1].get_feature_names_out()``). It is no table:
    ``set_output(transform="pandas")`` raises a :class:`~rimclf.errors.ParameterError`
    (:class:`RimProfileExtractor` and :class:`RadiomicsExtractor` alone support it), and the
    global ``sklearn.set_config(transform_output="pandas")`` leaves it as it is.

    Examples
    --------
    >>> from rimclf.features import LesionFeaturizer, PatchExtractor, RimProfileExtractor
    >>> sorted(LesionFeaturizer().extractors())          # the default model's features
    ['rim', 'rim_fit']
    >>> featurizer = LesionFeaturizer([("rim", RimProfileExtractor()), ("patches", PatchExtractor(shape=8))])
    >>> featurizer.get_output_shapes()
    {'rim': (20,), 'patches': (4, 8, 8, 8)}
    >>> X = featurizer.fit_transform(table)  # doctest: +SKIP
    >>> X["rim"].shape  # doctest: +SKIP
    (1004, 20)
    """

    def __init__(self, features=None, *, n_jobs=None, memory=None, progress: bool = True) -> None:
        self.features = features
        self.n_jobs = n_jobs
        self.memory = memory
        self.progress = progress

    _parameter_constraints = {
        "features": [Options(None), Types(list, tuple, description="a list of (name, extractor) tuples")],
        "n_jobs": list(N_JOBS),
        "progress": [Bools()],
    }

    _output_description = "a SliceDict of arrays (tabular 'rim'/'radiomics' entries, 5-D 'patches' or 4-D 'surface_map')"
    _table_alternative = (
        "RimProfileExtractor or RadiomicsExtractor, which support set_output(transform='pandas'), or "
        "pandas.DataFrame(np.hstack([X['rim'], X['radiomics']]), columns=featurizer.get_feature_names_out())"
    )

    def get_params(self, deep: bool = True) -> dict:
        """Parameters, with each extractor's as ``<name>__<parameter>`` when ``deep``."""
        return self._get_params("features", deep=deep)

    def set_params(self, **params) -> LesionFeaturizer:
        """Set parameters, an extractor's as ``<name>__<parameter>`` (or replace it as ``<name>=...``)."""
        self._set_params("features", **params)
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.two_d_array = False  # X is the lesion table (a DataFrame of paths and ids)
        tags.input_tags.string = True
        tags.transformer_tags.preserves_dtype = []  # float32 features whatever the input
        return tags

    def extractors(self) -> dict:
        """The extractors in use by output key (registry order), after checking every parameter."""
        return self._validate()

    def _validate(self) -> dict:
        validate_params(self)
        pairs = default_features() if self.features is None else self.features
        given = {}
        for pair in pairs:
            if not (isinstance(pair, tuple) and len(pair) == 2):
                raise ParameterError(
                    f"LesionFeaturizer: features={self.features!r} is not valid; it must be a list of (name, extractor) "
                    f"tuples with names among {feature_names()}"
                )
            name, extractor = pair
            kind = extractor_class(get_feature(name))
            if not isinstance(extractor, kind):
                raise ParameterError(
                    f"LesionFeaturizer: features entry {name!r} is {extractor!r}; it must be a {kind.__name__}"
                )
            if name in given:
                raise ParameterError(f"LesionFeaturizer: features names {name!r} twice; each feature is extracted once")
            given[name] = extractor
        if not given:
            raise ParameterError("LesionFeaturizer: features=[] extracts nothing; give at least one (name, extractor)")
        extractors = {name: given[name].fit() for name in feature_names() if name in given}
        self._memory()
        return extractors

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

    @staticmethod
    def _required_columns(extractors: dict) -> list[str]:
        columns = [column for extractor in extractors.values() for column in extractor.required_columns()]
        return list(dict.fromkeys(columns))

    def fit(self, X=None, y=None):
        """Check the parameters (and the table's columns when given). Nothing is learnt."""
        extractors = self._validate()
        if X is not None:
            check_lesion_table(X, self._required_columns(extractors))
        return self

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Names of the tabular columns, extractor by extractor in registry order.

        These are the columns of the tabular entries (``X["rim"]``, ``X["radiomics"]``) in the
        order in which :class:`~rimclf.classifier.QSMRimNetClassifier` and the baselines join
        them (and ``X.feature_names`` gives them per entry). Image entries (patches) are not
        columns and are not named here: :meth:`get_output_shapes` gives their shape.
        ``input_features`` is ignored (the input is the lesion table).
        """
        names = list(_tabular_names(self._validate()).values())
        return np.concatenate(names).astype(object) if names else np.array([], dtype=object)

    def get_output_shapes(self) -> dict[str, tuple[int, ...]]:
        """The shape of one lesion's entry of each output key, e.g. ``{"rim": (22,), "patches": (3, 32, 32, 32)}``."""
        return {name: extractor.output_shape() for name, extractor in self._validate().items()}

    def transform(self, X):
        """Features of every row of the lesion table, in table order.

        Returns
        -------
        LesionFeatures
            A ``skorch.helper.SliceDict`` with one entry per extractor: float32 ``(n, F)`` for a
            tabular one (NaN where a lesion could not be measured), float32 ``(n, C, D, H, W)``
            for the patches; ``feature_names`` holds the tabular columns' names.
        """
        extractors = self._validate()
        columns = self._required_columns(extractors)
        table = check_lesion_table(X, columns)
        tasks = group_by_subject(
            table, with_flair="flair" in columns, with_centroids=set(CENTROID_COLUMNS) <= set(columns)
        )
        settings = {
            "version": CACHE_VERSION,
            **{name: extractor.cache_key() for name, extractor in extractors.items()},
        }
        folder = self._cache_folder()
        # largest subjects first, so that with n_jobs > 1 no worker is left with a big one at the end
        tasks = sorted(tasks, key=lambda entry: -len(entry[0].lesion_ids))
        row_shapes = {name: extractor.output_shape() for name, extractor in extractors.items()}
        calls = (
            delayed(_featurize_cached)(
                folder,
                _cache_key(task, settings) if folder is not None else None,
                task,
                extractors,
                {name: (len(task.lesion_ids), *shape) for name, shape in row_shapes.items()},
            )
            for task, _, _ in tasks
        )
        outputs = {
            name: np.full((len(table), *shape), extractors[name]._fill, dtype=np.float32)
            for name, shape in row_shapes.items()
        }
        notes: list[Note] = []
        results = Parallel(n_jobs=self.n_jobs, return_as="generator")(calls)
        # the bar is drawn on a terminal only: in a log file it would be a wall of carriage returns
        shown = bool(self.progress) and bool(tasks) and hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
        with tqdm(total=len(tasks), desc="lesion features", unit="subject", file=sys.stderr, disable=not shown) as bar:
            for (task, rows, lesion_index), result in zip(tasks, results):
                for name, out in outputs.items():
                    _place(out, rows, result.arrays[name], lesion_index)
                notes.extend(result.notes)
                bar.update(1)
        emit_notes(notes, stacklevel=2)
        return LesionFeatures(feature_names=_tabular_names(extractors), **outputs)


def _tabular_names(extractors: dict) -> dict[str, np.ndarray]:
    """The column names of each tabular extractor."""
    tabular = feature_names(TABULAR)
    return {name: extractor.get_feature_names_out() for name, extractor in extractors.items() if name in tabular}


def extractor_class(feature: Feature) -> type:
    """The extractor class of a registered feature (imported when the entry names it as ``"module:Class"``)."""
    if isinstance(feature.extractor, type):
        return feature.extractor
    module, _, name = feature.extractor.partition(":")
    return getattr(importlib.import_module(module), name)


def extractor_from_config(name: str, config: ModelConfig = DEFAULT_MODEL):
    """The extractor of the registered feature ``name`` with the settings of ``config``."""
    feature = get_feature(name)
    return extractor_class(feature)(**{param: getattr(config, field) for param, field in feature.config.items()})


def default_features() -> list[tuple[str, object]]:
    """The ``features`` of the default model's featurizer (what ``LesionFeaturizer()`` extracts)."""
    return make_featurizer().features


def make_featurizer(
    config: ModelConfig = DEFAULT_MODEL,
    *,
    features: bool = True,
    patches: bool | None = None,
    n_jobs: int | None = None,
    memory=None,
    progress: bool = True,
) -> LesionFeaturizer:
    """The featurizer a model configuration describes.

    The one place where feature settings become extractors: ``rimclf train``, ``rimclf
    extract``, ``rimclf tune``, the demo and the benchmark all build their featurizer here.
    Each extractor takes the :class:`~rimclf.defaults.ModelConfig` fields its registry entry
    names (:mod:`rimclf.feature_registry`).

    Parameters
    ----------
    config : ModelConfig, default=rimclf.defaults.DEFAULT_MODEL
        ``feature_set`` names the tabular features (a tuple of registered names such as
        ``("rim", "radiomics")``), with the radiomics settings ``radiomics_params``,
        ``region``, ``shell_mm``; the patch settings are ``patch_size_mm``, ``patch_shape``,
        ``normalize`` and ``channels``. Change some with
        ``dataclasses.replace(DEFAULT_MODEL, feature_set=("rim", "radiomics"))``.
    features : bool, default=True
        Build the extractors of ``config.feature_set``.
    patches : bool or None, default=None
        Build the image extractor ``config.image`` (the patches, or the surface maps); None: when
        the network uses it (``config.branches != "tabular"``).
    n_jobs, memory, progress
        Runtime settings of :class:`LesionFeaturizer` (they do not change the features).

    Returns
    -------
    LesionFeaturizer

    Examples
    --------
    >>> from dataclasses import replace
    >>> from rimclf.defaults import DEFAULT_MODEL
    >>> featurizer = make_featurizer(replace(DEFAULT_MODEL, feature_set=("rim", "radiomics")))
    >>> sorted(featurizer.extractors())
    ['radiomics', 'rim']
    """
    names = list(check_feature_set(config.feature_set)) if features else []
    use_images = config.branches != "tabular" if patches is None else patches
    if use_images:
        if config.image not in feature_names(IMAGE):
            raise ParameterError(f"image={config.image!r} is not valid; it must be one of the image features {feature_names(IMAGE)}")
        names.append(config.image)
    return LesionFeaturizer(
        [(name, extractor_from_config(name, config)) for name in names], n_jobs=n_jobs, memory=memory, progress=progress
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
        "files": {kind: remembered_sha256(path) for kind, path in files.items()},
        "qsm_unit": task.qsm_unit,
        "connectivity": task.connectivity,
        "lesion_ids": task.lesion_ids.tolist(),
        "centroids_mm": task.centroids_mm.tolist(),
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
