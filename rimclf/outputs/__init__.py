"""What ``rimclf predict`` writes: a BIDS derivative dataset of lesion tables, maps and montages.

Layout of an output directory (``[ses-<s>/]``, ``[_ses-<s>]`` only for scans with a session)::

    OUT/dataset_description.json        DatasetType "derivative", GeneratedBy rimclf (with version)
    OUT/lesions.tsv + lesions.json      one row per lesion: participant_id (sub-<p>), session (ses-<s> or n/a),
                                        lesion_id, centroid, volume, probability, decision [, rim], mask_grid,
                                        mask_source_grid; the .json is the data dictionary (descriptions,
                                        units, levels)
    OUT/subjects.tsv + subjects.json    per scan: rim+ counts at the threshold and expected (90 % interval,
                                        P(>= 1), P(>= 4)) (and, if labelled, true)
    OUT/subjects.png                    those counts per scan, with intervals (with the montages)
    OUT/sub-<p>/[ses-<s>/]anat/sub-<p>[_ses-<s>]_desc-rimprob_probseg.nii.gz (+ .json)
        float32 on the QSM grid (its affine, qform and sform with their codes): each lesion's voxels
        carry its rim+ probability, 0 elsewhere; cal_min 0, cal_max 1, descrip "rimclf rim+ probability
        (0-1)", so that a viewer opens it in the 0-1 window; the sidecar gives the unit, the threshold
        and how it was chosen
    OUT/sub-<p>/[ses-<s>/]anat/sub-<p>[_ses-<s>]_desc-lesions_dseg.nii.gz (+ .json, .tsv)
        int16/int32 lesion labels on the QSM grid whose values are the lesion_id of lesions.tsv (lesions
        that load_cohort left out are 0), NIfTI intent "label"; the .tsv is the BIDS look-up table
        (index, name, probability, decision)
    OUT/sub-<p>/figures/sub-<p>[_ses-<s>]_desc-rimprob_montage.png
        QSM/FLAIR through each lesion, ranked by probability (:mod:`rimclf.outputs._montage`)

A scan read without lesions (an empty mask, or every lesion below ``min_voxels``) gets the same
files: its ``subjects.tsv`` row is that of a rim+ count of 0 for certain (:data:`NO_LESION_COUNTS`),
its map and label image are all 0 on its QSM grid, and its montage says "no lesions".

Missing values in the TSV files are ``n/a`` (BIDS). The directory is built in a temporary
sibling and moved into place when complete, so an interrupted run leaves nothing half-written;
an existing ``OUT`` is replaced only with ``force`` (see :mod:`rimclf._atomic`). Participant and
session labels must be letters and digits, and every path is checked to stay inside ``OUT``;
probabilities must be finite and within [0, 1] (:func:`check_probabilities`). Nothing is written
otherwise.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from rimclf._atomic import atomic_output_dir, safe_child
from rimclf._bids import bids_identifiers, scan_name
from rimclf._nifti import read_volume, save_on_grid
from rimclf._records import write_json
from rimclf._validation import check_int, check_n_jobs
from rimclf._version import __version__
from rimclf.cohort import (
    SCAN_COLUMNS,
    ScanStore,
    active_store,
    check_participant_label,
    check_session_label,
    read_lesion_labels,
    read_qsm,
)
from rimclf.defaults import BIDS_VERSION, MONTAGE_LESIONS
from rimclf.errors import CohortError, PredictionError
from rimclf.outputs._figures import subject_counts_figure
from rimclf.outputs._montage import axial_plane, write_montage, write_no_lesion_montage
from rimclf.outputs._parallel import for_each_scan

__all__ = [
    "LESION_COLUMNS", "NO_LESION_COUNTS", "axial_plane", "check_probabilities", "label_image", "lesion_predictions",
    "output_paths", "probability_map", "read_lesions", "subject_counts_figure", "subject_summary", "with_every_scan",
    "write_montage", "write_prediction_outputs",
]

LESION_COLUMNS = [
    "participant_id",
    "session",
    "lesion_id",
    "centroid_x",
    "centroid_y",
    "centroid_z",
    "volume_mm3",
    "probability",
    "decision",
]
#: Columns of the lesion table that ``lesions.tsv`` carries after them (and ``rim``) when present.
MASK_COLUMNS = ("mask_grid", "mask_source_grid")
#: The probability map's NIfTI ``descrip`` (what a viewer shows as the image's description).
MAP_DESCRIP = "rimclf rim+ probability (0-1)"
LABELS_DESCRIP = "rimclf lesion ids (lesion_id of lesions.tsv)"
#: ``subjects.tsv`` of a scan read without lesions: its rim+ count is 0 for certain (the count
#: distribution of no lesions is P(0) = 1), so the 90 % interval is 0-0 and holds it with probability 1.
NO_LESION_COUNTS = {"n_lesions": 0, "n_rim_pos_predicted": 0, "expected_rim_pos": 0.0, "rim_pos_low_90": 0,
                    "rim_pos_high_90": 0, "p_rim_pos_in_interval": 1.0, "p_any_rim_pos": 0.0, "p_rim_pos_4plus": 0.0,
                    "n_rim_pos_true": 0}

#: ``lesions.json`` and ``subjects.json``: the data dictionaries of the two tables (BIDS).
COLUMN_DESCRIPTIONS = {
    "participant_id": {"Description": "BIDS participant label of the scan"},
    "session": {"Description": "BIDS session label of the scan (n/a: the dataset has no sessions)"},
    "lesion_id": {"Description": "the lesion's label in the lesion mask and in *_desc-lesions_dseg.nii.gz "
                                 "(instance label, or connected-component number of a binary mask)"},
    "centroid_x": {"Description": "lesion centroid, world x (RAS+, scanner space of the QSM)", "Units": "mm"},
    "centroid_y": {"Description": "lesion centroid, world y (RAS+)", "Units": "mm"},
    "centroid_z": {"Description": "lesion centroid, world z (RAS+)", "Units": "mm"},
    "volume_mm3": {"Description": "lesion volume", "Units": "mm^3"},
    "probability": {"Description": "rim+ (paramagnetic rim, chronic active lesion) probability of the model, calibrated "
                                   "on out-of-fold probabilities of its training subjects (see the model's calibration in "
                                   "the probability map's sidecar; uncalibrated only for a model trained without): of "
                                   "lesions given 0.2, about one in five is rim+ on data like the training data",
                    "Units": "probability (0-1)"},
    "decision": {"Description": "the model's call at its threshold (probability >= threshold)",
                 "Levels": {"0": "rim-", "1": "rim+"}},
    "rim": {"Description": "reference rim label of the cohort (rims.tsv)", "Levels": {"0": "rim-", "1": "rim+"}},
    "mask_grid": {"Description": "the grid the scan's lesion mask was given on",
                  "Levels": {"qsm": "the QSM grid (read as it is)",
                             "resampled": "another grid (e.g. the FLAIR's), resampled onto the QSM grid: instance "
                                          "labels by nearest neighbour, a binary mask by partial-volume fraction "
                                          ">= 0.5 before the split into lesions"}},
    "mask_source_grid": {"Description": "the lesion mask file's own grid: shape and voxel size, e.g. "
                                        "\"182x218x182 at 1x1x1 mm\""},
    "n_lesions": {"Description": "lesions of the scan"},
    "n_rim_pos_predicted": {"Description": "lesions called rim+ at the threshold"},
    "expected_rim_pos": {"Description": "sum of the (calibrated) rim+ probabilities: the expected number of rim+ lesions"},
    "rim_pos_low_90": {"Description": "lower end of the 90 % interval of the number of rim+ lesions: the most probable "
                                      "counts of the Poisson-binomial distribution of the lesion probabilities (lesions "
                                      "independent) whose total probability is nearest to 90 % (see p_rim_pos_in_interval)"},
    "rim_pos_high_90": {"Description": "upper end of the 90 % interval of the number of rim+ lesions"},
    "p_rim_pos_in_interval": {"Description": "probability that the number of rim+ lesions lies in the 90 % interval "
                                             "(the interval's own probability: about 0.9, higher when few counts are "
                                             "possible)", "Units": "probability (0-1)"},
    "p_any_rim_pos": {"Description": "probability that the scan has at least one rim+ lesion (from the lesion probabilities)",
                      "Units": "probability (0-1)"},
    "p_rim_pos_4plus": {"Description": "probability that the scan has four or more rim+ lesions (a prognostic cut-off "
                                       "in the literature)", "Units": "probability (0-1)"},
    "n_rim_pos_true": {"Description": "rim+ lesions by the reference labels"},
    "status": {"Description": "whether the scan was predicted or skipped (a required file missing)",
               "Levels": {"predicted": "read and predicted (n_lesions may be 0)", "skipped": "not read; see reason"}},
    "reason": {"Description": "what a skipped scan lacks (n/a for predicted scans)"},
}


def _named(table: pd.DataFrame, row: int) -> str:
    session = table["session"].iloc[row] if "session" in table else ""
    return f"{scan_name(table['participant_id'].iloc[row], '' if pd.isna(session) else session)} lesion {table['lesion_id'].iloc[row]}"


def check_probabilities(probability: object, table: pd.DataFrame | None = None) -> np.ndarray:
    """Rim+ probabilities as a float array, refused when any is NaN, infinite or outside [0, 1].

    Call it wherever probabilities are about to be reported or written.

    Parameters
    ----------
    probability : array-like of shape (n_lesions,)
    table : pandas.DataFrame, optional
        The lesion table of the same rows, to name the lesions concerned.

    Returns
    -------
    ndarray of float64, shape (n_lesions,)

    Raises
    ------
    PredictionError
        Naming how many lesions (and, with ``table``, which) have an unusable probability.

    Examples
    --------
    >>> check_probabilities([0.2, 0.9])
    array([0.2, 0.9])
    >>> check_probabilities([0.2, float("nan"), 1.3])
    Traceback (most recent call last):
    ...
    rimclf.errors.PredictionError: the model gave 2 of 3 lesion(s) a NaN, infinite or out-of-range rim+ probability: ...
    """
    values = np.asarray(probability, dtype=float).reshape(-1)
    bad = ~np.isfinite(values) | (values < 0) | (values > 1)
    if bad.any():
        rows = np.flatnonzero(bad)
        if table is not None and {"participant_id", "lesion_id"} <= set(table.columns) and len(table) == len(values):
            named = [_named(table, r) for r in rows[:5]]
        else:
            named = [f"row {r}" for r in rows[:5]]
        examples = ", ".join(f"{name} ({values[r]:g})" for name, r in zip(named, rows[:5]))
        raise PredictionError(
            f"the model gave {len(rows)} of {len(values)} lesion(s) a NaN, infinite or out-of-range "
            f"rim+ probability: {examples}{', ...' if len(rows) > 5 else ''}. Their features may hold "
            "NaN/Inf, or the model may be damaged; nothing was written"
        )
    return values


def _with_session(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with a ``session`` column ("" where missing), for tables made before sessions."""
    if "session" in table:
        return table.assign(session=table["session"].fillna("").astype(str))
    return table.assign(session="")


def lesion_predictions(table: pd.DataFrame, probability: np.ndarray, threshold: float) -> pd.DataFrame:
    """The per-lesion prediction table: identifiers, geometry, rim+ probability and decision.

    Parameters
    ----------
    table : pandas.DataFrame
        The lesion table of :func:`rimclf.load_cohort`.
    probability : array-like of shape (n_lesions,)
        Rim+ probability of each row of ``table``.
    threshold : float
        A lesion is called rim+ (``decision = 1``) when its probability is at least this.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`LESION_COLUMNS`, plus ``rim`` (the reference label) when ``table`` has one,
        and ``mask_grid``, ``mask_source_grid`` (the grid the lesion mask came from) when ``table``
        has them, as :func:`rimclf.load_cohort`'s has; labels as in the lesion table (``participant_id`` without ``sub-``, ``session`` without
        ``ses-``, ``""`` without sessions). :func:`write_prediction_outputs` writes them in BIDS form.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> import rimclf
    >>> from rimclf.phantom import make_phantom_cohort
    >>> folder = tempfile.TemporaryDirectory()
    >>> table = rimclf.load_cohort(make_phantom_cohort(f"{folder.name}/phantom", n_subjects=2, shape=(48, 56, 32)))
    >>> probability = np.linspace(0.0, 1.0, len(table))      # a model's predict_proba(table)[:, 1]
    >>> predictions = lesion_predictions(table, probability, threshold=0.5)
    >>> predictions.columns.tolist()
    ['participant_id', 'session', 'lesion_id', 'centroid_x', 'centroid_y', 'centroid_z', 'volume_mm3', 'probability', 'decision', 'rim', 'mask_grid', 'mask_source_grid']
    >>> int(predictions["decision"].sum())
    13
    >>> folder.cleanup()
    """
    probability = np.asarray(probability, dtype=float).reshape(-1)
    if probability.shape[0] != len(table):
        raise CohortError(f"probability has {probability.shape[0]} values for {len(table)} lesions")
    probability = check_probabilities(probability, table)
    predictions = _with_session(table)[LESION_COLUMNS[:7]].reset_index(drop=True).copy()
    predictions["probability"] = probability
    predictions["decision"] = (probability >= threshold).astype(int)
    if "rim" in table and table["rim"].notna().any():
        predictions["rim"] = table["rim"].to_numpy()
    for column in MASK_COLUMNS:
        if column in table:
            predictions[column] = table[column].to_numpy()
    return predictions


def subject_summary(predictions: pd.DataFrame) -> pd.DataFrame:
    """Per-scan (participant and session) rim+ counts: at the threshold (decisions), expected (sum
    of the probabilities) with a 90 % interval, P(at least one rim+ lesion), P(four or more), and
    the true count if known.

    The interval and the two probabilities come from the Poisson-binomial distribution of the
    lesion probabilities (lesions taken as independent; :func:`rimclf.metrics.subject_counts`):
    they mean what they say when the probabilities are calibrated, as a
    :class:`~rimclf.RimModel`'s are by default.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> import rimclf
    >>> from rimclf.phantom import make_phantom_cohort
    >>> folder = tempfile.TemporaryDirectory()
    >>> table = rimclf.load_cohort(make_phantom_cohort(f"{folder.name}/phantom", n_subjects=2, shape=(48, 56, 32)))
    >>> probability = np.linspace(0.0, 1.0, len(table))      # a model's predict_proba(table)[:, 1]
    >>> summary = subject_summary(lesion_predictions(table, probability, threshold=0.5))
    >>> print(summary.drop(columns="session").to_string(index=False))
    participant_id  n_lesions  n_rim_pos_predicted  expected_rim_pos  rim_pos_low_90  rim_pos_high_90  p_rim_pos_in_interval  p_any_rim_pos  p_rim_pos_4plus  n_rim_pos_true
               001         13                    0              3.12               1                5                  0.924          0.978            0.381               0
               002         13                   13              9.88               8               12                  0.924          1.000            1.000               0
    >>> folder.cleanup()
    """
    from rimclf.metrics import subject_counts

    frame = _with_session(predictions).reset_index(drop=True)
    scans = frame.groupby(["participant_id", "session"], sort=True)
    scan = scans.ngroup().to_numpy()
    counts = subject_counts(frame["probability"].to_numpy(dtype=float), scan, threshold=None).sort_index()
    summary = scans.size().rename("n_lesions").reset_index()
    summary["n_rim_pos_predicted"] = scans["decision"].sum().to_numpy()
    summary["expected_rim_pos"] = counts["expected_rim_pos"].to_numpy()
    summary["rim_pos_low_90"] = counts["rim_pos_low"].to_numpy()
    summary["rim_pos_high_90"] = counts["rim_pos_high"].to_numpy()
    summary["p_rim_pos_in_interval"] = counts["p_rim_pos_in_interval"].to_numpy()
    summary["p_any_rim_pos"] = counts["p_any_rim_pos"].to_numpy()
    summary["p_rim_pos_4plus"] = counts["p_rim_pos_4plus"].to_numpy()
    if "rim" in frame:
        summary["n_rim_pos_true"] = scans["rim"].sum().astype("Int64").to_numpy()
    return summary


def with_every_scan(summary: pd.DataFrame, scans: list[dict] | None) -> pd.DataFrame:
    """``summary`` (per scan) with a row for every scan of ``scans``, and ``status``/``reason`` columns.

    A scan that was read but has no lesion gets the values of :data:`NO_LESION_COUNTS` (a rim+
    count of 0 for certain: interval 0-0 at probability 1); a skipped scan gets ``status``
    "skipped", its ``reason`` and missing counts (``n/a`` in the TSV). Without ``scans`` the summary
    is returned unchanged.

    Examples
    --------
    >>> import pandas as pd
    >>> summary = pd.DataFrame({"participant_id": ["01"], "session": [""], "n_lesions": [3],
    ...                         "expected_rim_pos": [1.2], "p_rim_pos_in_interval": [0.93]})
    >>> scans = [{"participant_id": "01", "session": "", "status": "read", "reason": ""},
    ...          {"participant_id": "02", "session": "", "status": "read", "reason": ""},
    ...          {"participant_id": "03", "session": "", "status": "skipped", "reason": "no FLAIR (*_FLAIR)"}]
    >>> print(with_every_scan(summary, scans).to_string())
      participant_id session  n_lesions  expected_rim_pos  p_rim_pos_in_interval     status              reason
    0             01                  3               1.2                   0.93  predicted                 n/a
    1             02                  0               0.0                   1.00  predicted                 n/a
    2             03               <NA>               NaN                    NaN    skipped  no FLAIR (*_FLAIR)
    """
    if scans is None:
        return summary
    listed = pd.DataFrame(list(scans), columns=["participant_id", "session", "status", "reason"])
    listed["status"] = listed["status"].map({"read": "predicted", "skipped": "skipped"}).fillna(listed["status"])
    listed["reason"] = listed["reason"].replace("", "n/a")
    merged = listed.merge(summary, on=["participant_id", "session"], how="outer", sort=False)
    merged["status"] = merged["status"].fillna("predicted")
    merged["reason"] = merged["reason"].fillna("n/a")
    read = merged["status"] == "predicted"
    for column in summary.columns.drop(["participant_id", "session"]):
        values = merged[column].where(~(read & merged[column].isna()), NO_LESION_COUNTS.get(column, np.nan))
        merged[column] = values.astype("Int64") if column.startswith("n_") else values.astype(float)
    merged = merged.sort_values(["participant_id", "session"], kind="stable").reset_index(drop=True)
    return merged[[*summary.columns, "status", "reason"]]


def probability_map(labels: np.ndarray, lesion_ids: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """A float32 volume where each listed lesion's voxels carry its probability, 0 elsewhere.

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.array([[0, 1, 1], [2, 2, 0], [3, 0, 0]])    # lesion ids on the QSM grid
    >>> probability_map(labels, lesion_ids=[1, 2], probability=[0.9, 0.2])
    array([[0. , 0.9, 0.9],
           [0.2, 0.2, 0. ],
           [0. , 0. , 0. ]], dtype=float32)
    """
    lookup = np.zeros(int(labels.max(initial=0)) + 1, dtype=np.float32)
    lookup[np.asarray(lesion_ids, dtype=int)] = np.asarray(probability, dtype=np.float32)
    return lookup[labels]


def label_image(labels: np.ndarray, lesion_ids: np.ndarray) -> np.ndarray:
    """The lesion labels with only ``lesion_ids`` kept (others 0), as int16 (int32 above 32767).

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.array([[0, 1, 1], [2, 2, 0], [3, 0, 0]])
    >>> label_image(labels, lesion_ids=[1, 3])                  # lesion 2 was left out
    array([[0, 1, 1],
           [0, 0, 0],
           [3, 0, 0]], dtype=int16)
    """
    keep = np.zeros(int(labels.max(initial=0)) + 1, dtype=bool)
    keep[np.asarray(lesion_ids, dtype=int)] = True
    dtype = np.int16 if labels.max(initial=0) <= np.iinfo(np.int16).max else np.int32
    return np.where(keep[labels], labels, 0).astype(dtype)


def output_paths(out: str | os.PathLike, participant_id: str, session: str = "") -> dict[str, Path]:
    """Where :func:`write_prediction_outputs` puts a scan's files (see the module docstring).

    Keys ``"probseg"``, ``"dseg"`` (NIfTI; their sidecars and the look-up table share the name
    with ``.json``/``.tsv``) and ``"montage"``; ``participant_id``/``session`` without prefixes.

    Examples
    --------
    >>> paths = output_paths("predictions", "07", session="01")
    >>> paths["probseg"].as_posix()
    'predictions/sub-07/ses-01/anat/sub-07_ses-01_desc-rimprob_probseg.nii.gz'
    >>> paths["montage"].as_posix()
    'predictions/sub-07/figures/sub-07_ses-01_desc-rimprob_montage.png'
    """
    out = Path(out)
    participant_id = check_participant_label(participant_id, "the lesion table")
    session = check_session_label(session, "the lesion table")
    name = scan_name(participant_id, session)
    anat = safe_child(out, f"sub-{participant_id}", *([f"ses-{session}"] if session else []), "anat")
    return {
        "probseg": safe_child(anat, f"{name}_desc-rimprob_probseg.nii.gz"),
        "dseg": safe_child(anat, f"{name}_desc-lesions_dseg.nii.gz"),
        "montage": safe_child(out, f"sub-{participant_id}", "figures", f"{name}_desc-rimprob_montage.png"),
    }


def _bids_labels(frame: pd.DataFrame) -> pd.DataFrame:
    """``participant_id`` as ``sub-<p>`` and ``session`` as ``ses-<s>`` (``n/a`` without), for TSV files."""
    return bids_identifiers(frame)


def _write_tsv(path: Path, frame: pd.DataFrame) -> None:
    frame.to_csv(path, sep="\t", index=False, float_format="%.6g", na_rep="n/a")
    descriptions = {column: COLUMN_DESCRIPTIONS[column] for column in frame.columns if column in COLUMN_DESCRIPTIONS}
    write_json(path.with_suffix(".json"), descriptions)


#: The ``CodeURL`` of ``GeneratedBy``: the code by package name and version (a package URL, purl).
CODE_URL = f"pkg:pypi/rimclf@{__version__}"


def _dataset_description(out: Path, source: Path | None, model_identity: dict | None) -> dict:
    """BIDS ``dataset_description.json``: the source as a path relative to ``out``, the code, the model."""
    generated = {"Name": "rimclf", "Version": __version__, "CodeURL": CODE_URL,
                 "Description": "rimclf predict: rim+ (chronic active) probability of each MS lesion on QSM"}
    if model_identity:
        generated["Model"] = dict(model_identity)
    description = {
        "Name": "rimclf rim+ lesion predictions",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [generated],
    }
    if source is not None:
        start = out.expanduser().parent.resolve() / out.name  # out itself may not exist yet
        link = Path(os.path.relpath(source, start)).as_posix() + ("/" if source.is_dir() else "")
        description["SourceDatasets"] = [{"URL": link}]
        if source.is_dir():
            description["DatasetLinks"] = {"raw": link}
    return description


def _sources(paths: list[str], source: Path | None) -> dict:
    """``{"Sources": [BIDS URIs]}`` for the files under the source dataset (BIDS 1.9 ``bids:raw:``)."""
    uris = []
    for path in paths:
        try:
            uris.append(f"bids:raw:{Path(path).resolve().relative_to(source).as_posix()}")
        except (ValueError, TypeError):
            return {}
    return {"Sources": uris} if source is not None else {}


def write_prediction_outputs(
    out: str | os.PathLike,
    table: pd.DataFrame,
    probability: np.ndarray,
    threshold: float,
    *,
    montage: bool = True,
    max_montage_lesions: int = MONTAGE_LESIONS,
    force: bool = False,
    model_info: dict | None = None,
    source: str | os.PathLike | None = None,
    n_jobs: int | None = None,
    scans: list[dict] | None = None,
    model_identity: dict | None = None,
    progress: bool = False,
) -> dict[str, Path]:
    """Write the BIDS derivative of the module docstring: tables, maps, label images, montages.

    Parameters
    ----------
    out : str or path-like
        Output directory; must not exist unless ``force``.
    table : pandas.DataFrame
        Lesion table of :func:`rimclf.load_cohort`.
    probability : array-like of shape (n_lesions,)
        Rim+ probability of each row.
    threshold : float
        Decision threshold.
    montage : bool, default=True
        Also draw the per-scan PNG montages and the per-scan counts figure (``subjects.png``).
    max_montage_lesions : int, default=12
        Most probable lesions shown per montage, besides every lesion called rim+; 0 draws no
        montage (as ``montage=False``).
    force : bool, default=False
        Replace an existing ``out``.
    model_info : dict, optional
        What the map sidecars record about the model (e.g. how the threshold was chosen).
    source : str or path-like, optional
        The cohort directory (or manifest) the table was read from: ``dataset_description.json``
        gives it as a path relative to ``out`` (``SourceDatasets``) and, for a directory, the
        sidecars name their source files as ``bids:raw:`` URIs.
    scans : list of dict, optional
        Every scan read or skipped (``load_cohort``'s ``table.attrs["scans"]``): ``subjects.tsv``
        then has a row for each, a read scan without lesions with ``n_lesions`` 0 (and the other
        values of :data:`NO_LESION_COUNTS`), a skipped one with ``status`` "skipped" and its
        ``reason``. A read scan without lesions that carries its files
        (:data:`rimclf.cohort.SCAN_COLUMNS`, as ``load_cohort``'s do) also gets an all-zero map and
        label image and a "no lesions" montage. Default: the scans of ``table``, predicted.
    model_identity : dict, optional
        The model's format version and weights hash (``load_model`` sets ``model_identity_``),
        recorded in ``dataset_description.json``.
    n_jobs : int or None, default=None
        Scans written in parallel worker processes (joblib; -1: all cores). Each worker holds one
        scan's volumes at a time, so memory does not grow with the number of scans; the files do
        not depend on ``n_jobs``. While a scan store is open (:func:`rimclf.cohort.scan_store`, as
        :func:`rimclf.workflows.predict_cohort` opens one), the workers take the scans' labels,
        QSM and FLAIR from it, else they read the files.
    progress : bool, default=False
        Show a progress bar over scans (on a terminal).

    Returns
    -------
    dict
        ``{"lesions": path, "subjects": path, "maps": folder, "description": path}``.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> import rimclf
    >>> from rimclf.phantom import make_phantom_cohort
    >>> folder = tempfile.TemporaryDirectory()
    >>> table = rimclf.load_cohort(make_phantom_cohort(f"{folder.name}/phantom", n_subjects=2, shape=(48, 56, 32)))
    >>> probability = np.linspace(0.0, 1.0, len(table))      # a model's predict_proba(table)[:, 1]
    >>> paths = write_prediction_outputs(f"{folder.name}/predictions", table, probability, threshold=0.5,
    ...                                  montage=False)
    >>> sorted(paths)
    ['description', 'lesions', 'maps', 'subjects']
    >>> sorted(p.name for p in (paths["maps"] / "sub-001" / "anat").iterdir())
    ['sub-001_desc-lesions_dseg.json', 'sub-001_desc-lesions_dseg.nii.gz', 'sub-001_desc-lesions_dseg.tsv', 'sub-001_desc-rimprob_probseg.json', 'sub-001_desc-rimprob_probseg.nii.gz']
    >>> folder.cleanup()
    """
    n_jobs = check_n_jobs(n_jobs, owner="write_prediction_outputs")
    max_montage_lesions = check_int(max_montage_lesions, "max_montage_lesions", min=0, owner="write_prediction_outputs",
                                    hint="0 draws no montage")
    predictions = lesion_predictions(table, probability, threshold)
    out = Path(out)
    for participant, session in zip(predictions["participant_id"], predictions["session"]):
        check_participant_label(participant, "the lesion table")
        check_session_label(session, "the lesion table")
    source = Path(source).expanduser().resolve() if source is not None and Path(source).exists() else None
    description = _dataset_description(out, source, model_identity)
    source = source if source is not None and source.is_dir() else None
    table = _with_session(table).reset_index(drop=True)
    with atomic_output_dir(out, force=force) as tmp:
        write_json(tmp / "dataset_description.json", description)
        _write_tsv(tmp / "lesions.tsv", _bids_labels(predictions))
        if scans is None:  # a lesion table given as such: its scans, all predicted
            scans = [{"participant_id": p, "session": t, "status": "read", "reason": ""}
                     for p, t in dict.fromkeys(zip(predictions["participant_id"], predictions["session"]))]
        summary = with_every_scan(subject_summary(predictions), scans)
        _write_tsv(tmp / "subjects.tsv", _bids_labels(summary))
        if montage and max_montage_lesions > 0:
            predicted = summary[summary["status"] == "predicted"]
            figure = subject_counts_figure(_bids_labels(predicted), title="rim+ lesions per scan")
            figure.savefig(tmp / "subjects.png", dpi=110)
        tasks = [(tmp, rows.iloc[0], predictions.loc[rows.index], threshold, model_info, source)
                 for _, rows in table.groupby(["participant_id", "session"], sort=True)]
        tasks += [(tmp, first, predictions.iloc[:0], threshold, model_info, source)
                  for first in _scans_without_lesions(scans, table)]
        tasks.sort(key=lambda task: -len(task[2]))  # most lesions first: no worker left with a big one at the end
        for_each_scan(_write_scan, tasks, n_jobs=n_jobs, progress=progress, desc="maps and montages",
                      montage=montage and max_montage_lesions > 0, max_lesions=max_montage_lesions,
                      store=active_store())
    return {"lesions": out / "lesions.tsv", "subjects": out / "subjects.tsv", "maps": out,
            "description": out / "dataset_description.json"}


def _scans_without_lesions(scans: list[dict], table: pd.DataFrame) -> list[pd.Series]:
    """The read scans of ``scans`` without rows in ``table`` that carry their files (:data:`SCAN_COLUMNS`),
    each as the row its per-scan files are written from (as a scan's first lesion row is)."""
    listed = set(zip(table["participant_id"], table["session"]))
    return [pd.Series(scan) for scan in scans
            if scan.get("status") == "read" and (scan["participant_id"], scan["session"]) not in listed
            and all(column in scan for column in SCAN_COLUMNS)]


def _mask_resampled(first: pd.Series) -> dict:
    """The label image sidecar's record of a lesion mask that load_cohort resampled onto the QSM grid."""
    if first.get("mask_grid") != "resampled":
        return {}
    return {"MaskResampledFrom": str(first.get("mask_source_grid", "another grid")),
            "MaskResampling": "the lesion mask was on another grid than the QSM; rimclf resampled it onto the QSM grid "
                              "(instance labels by nearest neighbour, a binary mask by partial-volume fraction >= 0.5)"}


def _volume(store: ScanStore | None, kind: str, path: str, settings: dict, read) -> tuple[np.ndarray, np.ndarray]:
    """A scan's QSM or FLAIR from the run's scan store (put there by the feature worker that read it), else read."""
    return read() if store is None else store.array(kind, [path], settings, read, keep=False)


def _write_scan(tmp: Path, first: pd.Series, scan: pd.DataFrame, threshold: float, model_info: dict | None,
                source: Path | None, *, montage: bool, max_lesions: int, store: ScanStore | None = None) -> None:
    """One scan's probability map, label image (with sidecars and look-up table) and montage.

    Its arrays come from the run's scan store when there is one (:func:`rimclf.cohort.scan_store`):
    the lesion labels that :func:`rimclf.load_cohort` put there, the QSM and FLAIR that the feature
    worker read; what is not there is read from the files.
    """
    participant, session = str(first["participant_id"]), str(first["session"])
    paths = output_paths(tmp, participant, session)
    paths["probseg"].parent.mkdir(parents=True)
    labels, qsm_affine = read_lesion_labels(first["mask"], int(first["connectivity"]), first["qsm"], store=store)
    lesion_ids = scan["lesion_id"].to_numpy()
    sources = _sources([first["qsm"], first["mask"]], source)
    save_on_grid(paths["probseg"], probability_map(labels, lesion_ids, scan["probability"].to_numpy()), first["qsm"],
                 descrip=MAP_DESCRIP, cal=(0.0, 1.0))
    write_json(_sidecar(paths["probseg"]), {
        "Description": "rim+ probability of each lesion, painted on the lesion's voxels (0 outside lesions), "
                       "on the grid of the QSM",
        "Units": "probability (0-1)",
        "Threshold": float(threshold),
        "ThresholdRule": "a lesion is called rim+ (decision 1 in lesions.tsv) when its probability >= Threshold",
        **({"Model": model_info} if model_info else {}),
        **sources,
    })
    ids = label_image(labels, lesion_ids)
    save_on_grid(paths["dseg"], ids, first["qsm"], descrip=LABELS_DESCRIP, cal=(0.0, float(ids.max(initial=0))),
                 intent="label")
    write_json(_sidecar(paths["dseg"]), {
        "Description": "lesion labels whose values are the lesion_id of lesions.tsv (0: background or a lesion "
                       "left out by load_cohort)",
        **_sources([first["mask"]], source),
        **_mask_resampled(first),
    })
    lookup = pd.DataFrame({"index": lesion_ids, "name": [f"lesion {i}" for i in lesion_ids],
                           "probability": scan["probability"].to_numpy(), "decision": scan["decision"].to_numpy()})
    lookup.to_csv(paths["dseg"].with_name(paths["dseg"].name.replace(".nii.gz", ".tsv")), sep="\t", index=False,
                  float_format="%.6g")
    if montage:
        paths["montage"].parent.mkdir(parents=True, exist_ok=True)
        if scan.empty:  # nothing to show: a montage that says so, without reading the QSM and FLAIR
            write_no_lesion_montage(paths["montage"], title=scan_name(participant, session))
            return
        unit = str(first["qsm_unit"])
        qsm, _ = _volume(store, "qsm", first["qsm"], {"unit": unit}, lambda: read_qsm(first["qsm"], unit))
        if first["flair"]:
            flair, flair_affine = _volume(store, "flair", first["flair"], {}, lambda: read_volume(first["flair"]))
        else:  # a scan without FLAIR (a model that does not read it): the FLAIR row stays blank
            flair, flair_affine = np.zeros_like(qsm), qsm_affine
        write_montage(paths["montage"], scan, qsm=qsm, qsm_affine=qsm_affine, flair=flair, flair_affine=flair_affine,
                      labels=labels, max_lesions=max_lesions, title=scan_name(participant, session))


def _sidecar(image: Path) -> Path:
    return image.with_name(image.name.replace(".nii.gz", ".json"))


def read_lesions(out: str | os.PathLike) -> pd.DataFrame:
    """``lesions.tsv`` of an output directory, as written (``sub-``/``ses-`` labels, ``n/a`` missing).

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> import rimclf
    >>> from rimclf.phantom import make_phantom_cohort
    >>> folder = tempfile.TemporaryDirectory()
    >>> table = rimclf.load_cohort(make_phantom_cohort(f"{folder.name}/phantom", n_subjects=2, shape=(48, 56, 32)))
    >>> probability = np.linspace(0.0, 1.0, len(table))      # a model's predict_proba(table)[:, 1]
    >>> out = write_prediction_outputs(f"{folder.name}/predictions", table, probability, 0.5, montage=False)["maps"]
    >>> lesions = read_lesions(out)
    >>> lesions[["participant_id", "lesion_id", "probability", "decision"]].head(2)
      participant_id  lesion_id  probability  decision
    0        sub-001          1         0.00         0
    1        sub-001          2         0.04         0
    >>> folder.cleanup()
    """
    return pd.read_csv(Path(out) / "lesions.tsv", sep="\t", dtype={"participant_id": str, "session": str},
                       na_values=["n/a"], keep_default_na=False)
