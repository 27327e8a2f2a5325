"""The cohort's tables and file lists: participants, manifests, rim labels (see :mod:`rimclf.cohort`)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

from rimclf._bids import check_label, find_scans, read_sidecar, scan_name, sidecar_path, subject_folders
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


def _expected(scan, kind: str, root: Path, derivatives: str | None) -> str:
    """A scan's file of ``kind``, or a CohortError naming where it was looked for."""
    path = getattr(scan, kind)
    if path is not None:
        return path
    name = scan_name(scan.participant_id, scan.session)
    anat = Path(scan.qsm).parent
    if kind == "flair":
        raise CohortError(f"{anat / (name + '_FLAIR.nii.gz')}: file not found (nor {name}_FLAIR.nii)")
    where = (
        f"in derivatives/{derivatives}/{anat.relative_to(root)} (derivatives={derivatives!r})"
        if derivatives
        else f"in {anat} and in derivatives/<pipeline>/{anat.relative_to(root)}"
    )
    raise CohortError(
        f"{name}: no lesion mask found: looked for {name}[_<entities>]_desc-lesions_mask.nii[.gz] or "
        f"..._desc-lesions_dseg.nii[.gz] {where}"
    )


def scans_from_directory(root: Path, qsm_unit: str, derivatives: str | None) -> tuple[pd.DataFrame, Path | None]:
    participants = root / "participants.tsv"
    if participants.is_file():
        table = _read_table(participants)
        _require_columns(table, ["participant_id"], participants)
        labels = _table_labels(table, participants)
        duplicated = pd.Series(labels).duplicated()
        if duplicated.any():
            raise CohortError(f"{participants}: participant sub-{pd.Series(labels)[duplicated].iloc[0]} is listed twice")
    else:
        labels = subject_folders(root)
        if not labels:
            raise CohortError(f"{root}: no participants.tsv and no sub-* folders; not a rimclf cohort directory")
    found = find_scans(root, labels, derivatives=derivatives)
    rows = []
    for scan in found.scans:
        if not Path(scan.qsm).exists():
            raise CohortError(f"{scan.qsm}: file not found (nor .nii; no *_Chimap.nii[.gz] for {scan_name(scan.participant_id, scan.session)})")
        rows.append(
            {
                "participant_id": scan.participant_id,
                "session": scan.session,
                "qsm": scan.qsm,
                "flair": _expected(scan, "flair", root, derivatives),
                "mask": _expected(scan, "mask", root, derivatives),
                "qsm_unit": resolve_unit(qsm_unit, scan.qsm_units, f"the JSON sidecar(s) of {Path(scan.qsm).name}"),
            }
        )
    rims = root / "rims.tsv"
    if not rims.is_file() and found.pipeline:
        rims = root / "derivatives" / found.pipeline / "rims.tsv"
    return pd.DataFrame(rows, columns=_SCAN_COLUMNS), rims


def scans_from_manifest(manifest: Path, qsm_unit: str) -> tuple[pd.DataFrame, Path]:
    table = _read_table(manifest)
    _require_columns(table, ["participant_id", "qsm", "flair", "mask"], manifest)
    subjects = pd.DataFrame({"participant_id": _table_labels(table, manifest), "session": _table_sessions(table, manifest)})
    for kind in ("qsm", "flair", "mask"):
        paths = []
        for value in table[kind]:
            if not value:
                raise CohortError(f"{manifest}: empty '{kind}' path for a participant")
            path = Path(value)
            paths.append(str(path if path.is_absolute() else (manifest.parent / path).resolve()))
        subjects[kind] = paths
    subjects["qsm_unit"] = [
        resolve_unit(qsm_unit, read_sidecar(path).get("Units") if qsm_unit == "auto" else None, str(sidecar_path(path)))
        for path in subjects["qsm"]
    ]
    return subjects[_SCAN_COLUMNS], manifest.parent / "rims.tsv"


def read_rims(path: Path, lesion_ids: dict[tuple[str, str], set[int]]) -> pd.DataFrame:
    table = _read_table(path)
    _require_columns(table, ["participant_id", "lesion_id", "rim"], path)
    table["participant_id"] = pd.Series(
        [_strip_sub(p) for p in table["participant_id"]], index=table.index, dtype=object
    )
    table["session"] = pd.Series(_table_sessions(table, path), index=table.index, dtype=object)
    try:
        table["lesion_id"] = table["lesion_id"].astype(int)
    except ValueError as exc:
        raise CohortError(f"{path}: lesion_id must be integers ({exc})") from exc
    bad_rim = ~table["rim"].isin(["0", "1", ""])
    if bad_rim.any():
        raise CohortError(f"{path}: rim must be 0 or 1 (or empty for unlabeled), got {table['rim'][bad_rim].iloc[0]!r}")
    duplicated = table.duplicated(LESION_KEY)
    if duplicated.any():
        row = table[duplicated].iloc[0]
        raise CohortError(
            f"{path}: lesion {scan_name(row['participant_id'], row['session'])} {row['lesion_id']} is listed more than once"
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
