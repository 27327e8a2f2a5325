"""The cohort's tables and file lists: participants, manifests, rim labels (see :mod:`rimclf.cohort`)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

from rimclf._bids import RAW, check_label, find_scans, scan_name, subject_folders
from rimclf._sidecars import read_sidecar, sidecar_path
from rimclf.cohort._units import resolve_unit
from rimclf.errors import CohortError, DataWarning

#: What identifies a lesion in the table, in ``rims.tsv`` and in every output.
LESION_KEY = ["participant_id", "session", "lesion_id"]
#: Columns of the per-scan table that :func:`scans_from_directory`/:func:`scans_from_manifest` give.
_SCAN_COLUMNS = ["participant_id", "session", "qsm", "flair", "mask", "qsm_unit"]


def check_participant_label(value: object, where: str) -> str:
    """``value`` without its ``sub-`` prefix, checked to be a BIDS label (it names output files).

    Examples
    --------
    >>> check_participant_label("sub-07", "participants.tsv")
    '07'
    >>> check_participant_label("07_a", "participants.tsv")
    Traceback (most recent call last):
    ...
    rimclf.errors.CohortError: participants.tsv: ...
    """
    return check_label(value, where)


def check_session_label(value: object, where: str) -> str:
    """``value`` without its ``ses-`` prefix, checked to be a BIDS label; ``""`` (no session) stays ``""``.

    Examples
    --------
    >>> check_session_label("ses-01", "rims.tsv"), check_session_label("n/a", "rims.tsv")
    ('01', '')
    """
    if pd.isna(value) or str(value).strip() in ("", "n/a"):
        return ""
    return check_label(value, where, entity="session", prefix="ses-")


def _strip_sub(label: object) -> str:
    text = str(label).strip()
    return text[4:] if text.startswith("sub-") else text


def _table_labels(table: pd.DataFrame, path: Path) -> list[str]:
    """The checked participant labels of a table's ``participant_id`` column (line 1 is the header)."""
    return [check_participant_label(value, f"{path}: line {row + 2}") for row, value in enumerate(table["participant_id"])]


def _table_sessions(table: pd.DataFrame, path: Path) -> list[str]:
    """The checked session labels of a table's optional ``session`` column (``""`` without)."""
    if "session" not in table.columns:
        return [""] * len(table)
    return [check_session_label(value, f"{path}: line {row + 2}") for row, value in enumerate(table["session"])]


def _read_table(path: Path) -> pd.DataFrame:
    sep = "," if path.suffix.lower() == ".csv" else "\t"
    try:
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise CohortError(f"{path}: cannot be read as a {'CSV' if sep == ',' else 'TSV'} table ({exc})") from exc


def _require_columns(table: pd.DataFrame, columns: list[str], path: Path) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise CohortError(f"{path}: missing column(s) {missing}; found {list(table.columns)}")


#: What each kind of file is called in a skipped scan's reason.
_MISSING = {"qsm": "no QSM (*_Chimap)", "flair": "no FLAIR (*_FLAIR)", "mask": "no lesion mask"}


def _missing(kind: str, name: str, looked: str, strict: bool, filters: dict | None = None,
             misnamed: list[str] | None = None) -> str:
    """The reason a scan is skipped (a CohortError naming the file with ``strict``); ``filters``: the
    BIDS entity filters the file had to match (a file that exists but does not match is missing);
    ``misnamed``: files of the scan's folders that would count but whose names lack the scan's name."""
    reason = _MISSING[kind] + ("".join(f" matching {kind}:{entity}={value}" for entity, value in filters.items())
                               if filters else "")
    why = ""
    if misnamed:
        its = "its name" if len(misnamed) == 1 else "their names"
        why = (f": {', '.join(misnamed)} {'is' if len(misnamed) == 1 else 'are'} not read, {its} must start with "
               f"{name}_ as BIDS requires")
    if strict:
        raise CohortError(f"{name}: {reason} found ({looked}){why}; without --strict (strict=False) such a scan is "
                          "skipped with a warning")
    return reason + why


def _skip(skipped: list[dict], participant_id: str, session: str, reasons: list[str]) -> None:
    reason = "; ".join(reasons)
    skipped.append({"participant_id": participant_id, "session": session, "reason": reason})
    warnings.warn(f"{scan_name(participant_id, session)}: skipped, {reason}", DataWarning, stacklevel=4)


def _where(root: Path, scan, kind: str, pipeline: str | None) -> str:
    folder = f"sub-{scan.participant_id}/" + (f"ses-{scan.session}/" if scan.session else "") + "anat"
    if kind == "mask":
        looked = f"*_mask/_dseg whose desc- or label- contains 'lesion' (or --mask-desc) in {root / folder}"
    else:
        looked = f"*_{'Chimap' if kind == 'qsm' else 'FLAIR'}.nii[.gz] in {root / folder}"
    places = f"derivatives/{pipeline}" if pipeline not in (None, RAW) else "derivatives/<pipeline>"
    return looked + ("" if pipeline == RAW else f" and {places}/{folder}")


def _required(options) -> tuple[str, ...]:
    return ("qsm", "flair", "mask") if options.require_flair else ("qsm", "mask")


def _participants_tsv(root: Path) -> list[str] | None:
    participants = root / "participants.tsv"
    if not participants.is_file():
        return None
    table = _read_table(participants)
    _require_columns(table, ["participant_id"], participants)
    labels = _table_labels(table, participants)
    duplicated = pd.Series(labels).duplicated()
    if duplicated.any():
        raise CohortError(f"{participants}: participant sub-{pd.Series(labels)[duplicated].iloc[0]} is listed twice")
    return labels


def scans_from_directory(root: Path, options) -> tuple[pd.DataFrame, list[dict], Path | None]:
    """The complete scans of a BIDS directory, the skipped ones (with reasons) and the default rims file."""
    labels = _participants_tsv(root)
    if labels is None and not subject_folders(root) and not (root / "derivatives").is_dir():
        raise CohortError(f"{root}: no participants.tsv and no sub-* folders; not a rimclf cohort directory")
    found = find_scans(root, labels, options)
    if not found.scans:
        raise CohortError(f"{root}: no participants.tsv and no sub-* folders; not a rimclf cohort directory")
    rows, skipped = [], []
    for scan in found.scans:
        name = scan_name(scan.participant_id, scan.session)
        misnamed = found.misnamed.get((scan.participant_id, scan.session), {})
        reasons = [_missing(kind, name, _where(root, scan, kind, options.pipeline(kind)), options.strict,
                            options.filters(kind), misnamed.get(kind))
                   for kind in _required(options) if getattr(scan, kind) is None]
        if reasons:
            _skip(skipped, scan.participant_id, scan.session, reasons)
            continue
        rows.append(
            {
                "participant_id": scan.participant_id,
                "session": scan.session,
                "qsm": scan.qsm,
                "flair": scan.flair or "",
                "mask": scan.mask,
                "qsm_unit": resolve_unit(options.qsm_unit, scan.qsm_units, f"the JSON sidecar(s) of {Path(scan.qsm).name}"),
            }
        )
    rims = root / "rims.tsv"
    if not rims.is_file() and found.pipeline:
        rims = root / "derivatives" / found.pipeline / "rims.tsv"
    return pd.DataFrame(rows, columns=_SCAN_COLUMNS), skipped, rims


def _selected_rows(subjects: pd.DataFrame, options, where: Path) -> pd.DataFrame:
    """The rows of ``participant_label``/``session_label`` (all when empty); unknown labels are errors."""
    for name, labels, column in (("participant_label", options.participant_label, "participant_id"),
                                 ("session_label", options.session_label, "session")):
        known = {value for value in subjects[column] if value}
        unknown = [label for label in labels if label not in known]
        if unknown:
            raise CohortError(f"{where}: {name} {', '.join(unknown)} (--{name.replace('_', '-')}) not found; "
                              f"it lists {', '.join(sorted(known)[:20]) or 'none'}")
    keep = pd.Series(True, index=subjects.index)
    if options.participant_label:
        keep &= subjects["participant_id"].isin(options.participant_label)
    if options.session_label:
        keep &= subjects["session"].isin(options.session_label)
    return subjects[keep].reset_index(drop=True)


def scans_from_manifest(manifest: Path, options) -> tuple[pd.DataFrame, list[dict], Path]:
    """The complete scans of a manifest, the skipped ones (missing files, with reasons) and its rims file."""
    table = _read_table(manifest)
    _require_columns(table, ["participant_id", "qsm", "flair", "mask"], manifest)
    subjects = pd.DataFrame({"participant_id": _table_labels(table, manifest), "session": _table_sessions(table, manifest)})
    for kind in ("qsm", "flair", "mask"):
        paths = []
        for value in table[kind].str.strip():  # an empty cell: the scan has no such file
            path = Path(value)
            paths.append(str(path if path.is_absolute() else (manifest.parent / path).resolve()) if value else "")
        subjects[kind] = paths
    subjects = _selected_rows(subjects, options, manifest)
    complete, skipped = [], []
    for index, row in subjects.iterrows():
        name = scan_name(row["participant_id"], row["session"])
        reasons = [_missing(kind, name, f"{row[kind]}: file not found" if row[kind] else
                            f"{manifest}: empty '{kind}' cell", options.strict)
                   for kind in _required(options) if not row[kind] or not Path(row[kind]).exists()]
        if reasons:
            _skip(skipped, row["participant_id"], row["session"], reasons)
        else:
            complete.append(index)
    subjects = subjects.loc[complete].reset_index(drop=True)
    subjects["qsm_unit"] = [
        resolve_unit(options.qsm_unit, read_sidecar(path).get("Units") if options.qsm_unit == "auto" else None,
                     str(sidecar_path(path)))
        for path in subjects["qsm"]
    ]
    return subjects[_SCAN_COLUMNS], skipped, manifest.parent / "rims.tsv"


def read_rims(path: Path, lesion_ids: dict[tuple[str, str], set[int]], ignored=None) -> pd.DataFrame:
    """The rim labels of ``path`` for the scans read (``lesion_ids``), each row checked.

    Rows of scans for which ``ignored((participant, session))`` is true (scans not selected, or
    skipped) are dropped before the checks.
    """
    table = _read_table(path)
    _require_columns(table, ["participant_id", "lesion_id", "rim"], path)
    table["participant_id"] = pd.Series(
        [_strip_sub(p) for p in table["participant_id"]], index=table.index, dtype=object
    )
    table["session"] = pd.Series(_table_sessions(table, path), index=table.index, dtype=object)
    if ignored is not None:
        keep = [not ignored(key) for key in zip(table["participant_id"], table["session"])]
        table = table.loc[pd.Series(keep, index=table.index, dtype=bool)].copy()
    try:
        table["lesion_id"] = table["lesion_id"].astype(int)
    except ValueError as exc:
        raise CohortError(f"{path}: lesion_id must be integers ({exc})") from exc
    table["rim"] = table["rim"].str.strip().replace("n/a", "")  # BIDS writes a missing value as n/a
    bad_rim = ~table["rim"].isin(["0", "1", ""])
    if bad_rim.any():
        raise CohortError(f"{path}: rim must be 0 or 1 (or empty or n/a for unlabeled), got {table['rim'][bad_rim].iloc[0]!r}")
    duplicated = table.duplicated(LESION_KEY)
    if duplicated.any():
        row = table[duplicated].iloc[0]
        has_sessions = any(session for _, session in lesion_ids)
        hint = "; it has no 'session' column: add one for a dataset with sessions" if has_sessions and not row["session"] else ""
        raise CohortError(
            f"{path}: lesion {scan_name(row['participant_id'], row['session'])} {row['lesion_id']} is listed more than once{hint}"
        )
    sessions: dict[str, list[str]] = {}
    for participant, session in lesion_ids:
        sessions.setdefault(participant, []).append(session)
    for row in table.itertuples(index=False):
        if row.participant_id not in sessions:
            raise CohortError(f"{path}: participant sub-{row.participant_id} is not in the cohort")
        key = (row.participant_id, row.session)
        if key not in lesion_ids:
            known = ", ".join(f"ses-{s}" if s else "no session" for s in sorted(sessions[row.participant_id]))
            hint = "; add a 'session' column" if not row.session else ""
            raise CohortError(
                f"{path}: sub-{row.participant_id} {'ses-' + row.session if row.session else 'without a session'} "
                f"is not in the cohort (it has {known}){hint}"
            )
        if row.lesion_id not in lesion_ids[key]:
            raise CohortError(
                f"{path}: lesion {row.lesion_id} of {scan_name(*key)} does not exist in its mask "
                f"(labels present: {sorted(lesion_ids[key])[:20]})"
            )
    return pd.DataFrame(
        {
            "participant_id": pd.array(table["participant_id"].tolist(), dtype=object),
            "session": pd.array(table["session"].tolist(), dtype=object),
            "lesion_id": table["lesion_id"].to_numpy(dtype=int),
            "rim": pd.array([int(v) if v else pd.NA for v in table["rim"]], dtype="Int64"),
        }
    )


def warn_dropped_rim_positive(labels: pd.DataFrame, table: pd.DataFrame, rims_path: Path, min_voxels: int) -> None:
    """A :class:`DataWarning` when ``min_voxels`` left out lesions that ``rims_path`` labels rim+."""
    kept = set(zip(table["participant_id"], table["session"], table["lesion_id"].astype(int)))
    positive = labels[labels["rim"].fillna(0).astype(int) == 1]
    dropped = [
        (p, s, int(i)) for p, s, i in zip(positive["participant_id"], positive["session"], positive["lesion_id"])
        if (p, s, int(i)) not in kept
    ]
    if dropped:
        examples = ", ".join(f"{scan_name(p, s)} lesion {i}" for p, s, i in dropped[:5])
        warnings.warn(
            f"{rims_path}: {len(dropped)} rim+ lesion(s) left out because they have fewer than "
            f"min_voxels={min_voxels} voxels ({examples}{', ...' if len(dropped) > 5 else ''}); "
            "lower min_voxels (--min-voxels) to keep them",
            DataWarning,
            stacklevel=3,
        )
