"""Write a cohort's features to a folder (``rimclf extract``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from rimclf._atomic import atomic_output_dir, reserving_output
from rimclf._records import installed_versions
from rimclf.errors import ParameterError
from rimclf.feature_registry import IMAGE, TABULAR, feature_names
from rimclf.features.featurizer import LesionFeaturizer, make_featurizer
from rimclf.features.radiomics import radiomics_frame


@reserving_output("out")
def save_features(
    cohort: str | os.PathLike | pd.DataFrame,
    out: str | os.PathLike,
    *,
    featurizer: LesionFeaturizer | None = None,
    cohort_options=None,
    force: bool = False,
) -> Path:
    """Extract a cohort's lesion features and write them to the folder ``out``.

    Parameters
    ----------
    cohort : str, path-like or pandas.DataFrame
        A cohort directory or manifest (read with :func:`rimclf.load_cohort`), or a lesion table.
    out : str or path-like
        Output folder, written atomically (complete or not at all). It holds
        ``lesions.tsv`` (the lesion table; its row order is the row order of the other files),
        ``rim.tsv`` (``participant_id``, ``session``, ``lesion_id``, then the rim-profile features),
        ``rim_fit.tsv`` (the same, then the rim-fit features),
        ``radiomics.tsv`` (``participant_id``, ``session``, ``lesion_id``, then pyradiomics' feature columns),
        ``patches.npy`` (float32, shape (n_lesions, C, D, H, W), patch axes along world x, y, z),
        ``surface_map.npy`` (float32, shape (n_lesions, C, depths, directions)) and
        ``features.json`` (settings and package versions).
    featurizer : LesionFeaturizer, optional
        Default: ``make_featurizer()`` (the default model's features). A file is written for each
        extractor the featurizer has.
    cohort_options : rimclf.cohort.CohortOptions, optional
        How :func:`rimclf.load_cohort` reads ``cohort`` when it is a path; scans it skips are
        listed in ``out/skipped_scans.tsv`` with the reason.
    force : bool, default=False
        Replace an existing ``out``; without it an existing ``out`` is an error. This, a location
        where ``out`` cannot be created, another process writing ``out`` and an unusable
        ``memory`` cache folder are all reported before the extraction starts.

    Returns
    -------
    pathlib.Path
        ``out``.

    Examples
    --------
    >>> from rimclf.features import make_featurizer, save_features
    >>> out = save_features("COHORT", "features", force=True)   # doctest: +SKIP
    >>> sorted(path.name for path in out.iterdir())            # doctest: +SKIP
    ['features.json', 'lesions.tsv', 'rim.tsv']
    >>> save_features("COHORT", "features-all", featurizer=make_featurizer(patches=True, n_jobs=2))  # doctest: +SKIP
    """
    from rimclf._bids import bids_identifiers
    from rimclf.cohort import cohort_scans, load_cohort

    out = Path(out)
    featurizer = make_featurizer() if featurizer is None else featurizer
    if not isinstance(featurizer, LesionFeaturizer):
        raise ParameterError(
            f"featurizer={featurizer!r} is not valid; it must be a LesionFeaturizer (e.g. make_featurizer(config))"
        )
    table = (
        cohort
        if isinstance(cohort, pd.DataFrame)
        else load_cohort(cohort, cohort_options)
    )
    extractors = featurizer.extractors()
    features = featurizer.fit(table).transform(table)
    settings = {
        **installed_versions(("rimclf", "pyradiomics", "numpy")),
        "n_lesions": len(table),
        **{name: extractor.cache_key() for name, extractor in extractors.items()},
    }
    if "patches" in settings:
        settings["patches"]["axes"] = "lesion, channel, world x, y, z (RAS)"
    if "surface_map" in settings:
        settings["surface_map"]["axes"] = "lesion, channel, depth bin, direction bin"
    with atomic_output_dir(out, force=force) as tmp:
        bids_identifiers(table).to_csv(tmp / "lesions.tsv", sep="\t", index=False, na_rep="n/a")
        for name in feature_names(TABULAR):
            if name in extractors:
                frame = radiomics_frame(table, features[name], extractors[name].get_feature_names_out())
                bids_identifiers(frame).to_csv(tmp / f"{name}.tsv", sep="\t", index=False, float_format="%.9g")
        scans = None if isinstance(cohort, pd.DataFrame) else cohort_scans(table)
        if scans is not None and scans["status"].eq("skipped").any():
            skipped = bids_identifiers(scans[scans["status"] == "skipped"][["participant_id", "session", "reason"]])
            skipped.to_csv(tmp / "skipped_scans.tsv", sep="\t", index=False)
        for name in feature_names(IMAGE):
            if name in extractors:
                np.save(tmp / f"{name}.npy", features[name])
        (tmp / "features.json").write_text(json.dumps(settings, indent=2, default=str) + "\n", encoding="utf-8")
    return out
