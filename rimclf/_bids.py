"""The one place rimclf touches pybids: the QSM, FLAIR and lesion mask of every scan of a BIDS dataset.

A *scan* is one subject of a dataset without sessions, or one session of a subject. For each,
:func:`find_scans` looks for (any other entities, such as ``acq-`` or ``run-``, may stand
between the subject/session and the suffix; ``.nii`` and ``.nii.gz`` alike)::

    sub-<s>/[ses-<t>/]anat/sub-<s>[_ses-<t>]_Chimap.nii[.gz]      the QSM (one per scan)
    sub-<s>/[ses-<t>/]anat/sub-<s>[_ses-<t>]_FLAIR.nii[.gz]       the FLAIR (one per scan)
    the lesion mask, ``*_desc-lesions_mask.nii[.gz]`` or ``*_desc-lesions_dseg.nii[.gz]``, either
      sub-<s>/[ses-<t>/]anat/                                       in the raw dataset (as rimclf always read it)
      derivatives/<pipeline>/sub-<s>/[ses-<t>/]anat/                or in any derivatives pipeline

A scan whose mask is found in more than one place (two pipelines, or a pipeline and the raw
folder) needs a choice, ``derivatives="<pipeline>"`` (``--derivatives``), which then is the only
place masks are read from. The raw dataset is indexed with :class:`bids.BIDSLayout`
(``validate=False``: a dataset need not be perfect BIDS to be read) and so is each folder under
``derivatives/`` (``is_derivative=True``, even without a ``dataset_description.json``). The
QSM's ``Units`` come from its JSON sidecars with BIDS inheritance (pybids' ``get_metadata``).

Labels (subject and session) name output files, so they are BIDS labels: letters and digits only
(:func:`check_label`); a ``sub-*`` or ``ses-*`` folder with any other name is an error.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from rimclf.errors import CohortError

#: A BIDS label: letters and digits, nothing that could lead elsewhere in a path.
_LABEL = re.compile(r"[A-Za-z0-9]+")
#: Suffixes of the lesion masks (``desc-lesions``): instance labels (dseg) or a binary mask.
MASK_SUFFIXES = ("dseg", "mask")
_NIFTI = (".nii", ".nii.gz")
_DESC = re.compile(r"_desc-([A-Za-z0-9]+)_")


def check_label(value: object, where: str, *, entity: str = "participant_id", prefix: str = "sub-") -> str:
    """``value`` without its ``prefix``, checked to be a BIDS label (it names output files).

    Raises
    ------
    CohortError
        Naming ``where`` and the value, when anything but letters and digits remains.
    """
    text = str(value).strip()
    label = text[len(prefix):] if text.startswith(prefix) else text
    if not _LABEL.fullmatch(label):
        raise CohortError(
            f"{where}: {entity} {str(value)!r} is not a valid label: after an optional {prefix!r} "
            "prefix it must be letters and digits only ([A-Za-z0-9]+, as in BIDS), since it names "
            "output files"
        )
    return label


def scan_name(participant_id: str, session: str = "") -> str:
    """``sub-<participant>[_ses-<session>]``: the BIDS name prefix of a scan's files."""
    return f"sub-{participant_id}" + (f"_ses-{session}" if session else "")


@dataclass(frozen=True)
class Scan:
    """The files of one scan (a subject, or a session of one) of a BIDS dataset."""

    participant_id: str
    session: str  # "" without sessions
    qsm: str
    flair: str | None
    mask: str | None
    #: The ``Units`` the QSM's sidecars declare (BIDS inheritance), None when none does.
    qsm_units: object
    #: Where the mask was found: "" for the raw ``anat/`` folder, else the derivatives pipeline folder.
    mask_source: str | None


@dataclass(frozen=True)
class BIDSFiles:
    """What :func:`find_scans` found: every scan, and the pipelines under ``derivatives/``."""

    scans: list[Scan]
    #: The pipelines (folder names under ``derivatives/``) that hold lesion masks.
    mask_pipelines: list[str]
    #: The pipeline every mask was read from, when it is one (None for raw masks or a mix).
    pipeline: str | None


def _layout(root: Path, **options):
    from bids import BIDSLayout
    from bids.layout import BIDSLayoutIndexer

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pybids' notes on imperfect datasets: rimclf says what it needs
            # pybids' default ignores only: its regular expressions meet absolute paths in some
            # places, so a pattern for, e.g., func/ folders would also drop a dataset under /data/func/
            return BIDSLayout(
                root, validate=False, indexer=BIDSLayoutIndexer(validate=False, **options.pop("indexer", {})), **options,
            )
    except Exception as exc:  # pybids raises many kinds for unreadable datasets (bad JSON, ...)
        raise CohortError(f"{root}: pybids cannot index this BIDS dataset ({type(exc).__name__}: {exc})") from exc


def _checked_folders(root: Path) -> list[str]:
    """The subject labels of the ``sub-*`` folders, each ``sub-*``/``ses-*`` folder name checked."""
    labels = []
    for folder in sorted(p for p in root.glob("sub-*") if p.is_dir()):
        labels.append(check_label(folder.name, f"{root}: folder {folder.name}"))
        for session in sorted(p for p in folder.glob("ses-*") if p.is_dir()):
            check_label(session.name, f"{folder}: folder {session.name}", entity="session", prefix="ses-")
    return labels


def subject_folders(root: Path) -> list[str]:
    """The checked labels of ``root``'s ``sub-*`` folders (see :func:`check_label`)."""
    return _checked_folders(root)


@dataclass(frozen=True)
class _Image:
    """A NIfTI file of an ``anat/`` folder, its BIDS entities read from its path below the dataset root."""

    bids_file: object  # the pybids BIDSFile (for its sidecar metadata)
    path: str
    subject: str
    session: str
    suffix: str
    desc: str | None


def _where(root: Path, participant_id: str, session: str) -> Path:
    return root / f"sub-{participant_id}" / (f"ses-{session}" if session else "") / "anat"


def _anat_images(layout, root: Path) -> list[_Image]:
    """The NIfTI files ``sub-<s>/[ses-<t>/]anat/sub-<s>[_ses-<t>]_..._<suffix>.nii[.gz]`` below ``root``.

    pybids lists them; their subject, session and datatype are read here from the path relative
    to ``root``, because pybids searches its entity patterns in the absolute path, where a parent
    folder (``/data/func/study``, ``/projects/sub-x/bids``) would give them wrong values.
    """
    images = []
    for bids_file in layout.get(return_type="object", extension=list(_NIFTI)):
        path = Path(bids_file.path)
        try:
            parts = path.relative_to(root).parts
        except ValueError:
            continue
        if len(parts) not in (3, 4) or parts[-2] != "anat" or not parts[0].startswith("sub-"):
            continue
        subject = parts[0][len("sub-"):]
        session = parts[1][len("ses-"):] if len(parts) == 4 and parts[1].startswith("ses-") else ""
        prefix = f"sub-{subject}" + (f"_ses-{session}" if session else "") + "_"
        name = parts[-1]
        stem = name[: -len(".nii.gz")] if name.endswith(".nii.gz") else name[: -len(".nii")]
        if (len(parts) == 4 and not session) or not stem.startswith(prefix) or not _LABEL.fullmatch(subject):
            continue
        desc = _DESC.search(stem)
        images.append(_Image(bids_file, str(path), subject, session, stem.rsplit("_", 1)[-1],
                             desc.group(1) if desc else None))
    return images


def _lesion_masks(images: list[_Image]) -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for image in images:
        if image.suffix in MASK_SUFFIXES and image.desc == "lesions":
            found.setdefault((image.subject, image.session), []).append(image.path)
    return found


def _one(paths: list[str], what: str, where: Path) -> str:
    if len(paths) > 1:
        names = ", ".join(sorted(Path(p).name for p in paths))
        raise CohortError(f"{where}: {len(paths)} {what} files ({names}); rimclf reads one per subject and session")
    return paths[0]


def _pipelines(root: Path) -> list[Path]:
    folder = root / "derivatives"
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")) if folder.is_dir() else []


def find_scans(root: str | Path, participants: list[str] | None = None, *, derivatives: str | None = None) -> BIDSFiles:
    """Find the QSM, FLAIR and lesion mask of every scan (see the module docstring).

    Parameters
    ----------
    root : str or path
        The BIDS dataset.
    participants : list of str, optional
        Subject labels to read (e.g. from ``participants.tsv``); default: every ``sub-*`` folder.
    derivatives : str, optional
        The pipeline (folder under ``derivatives/``) whose lesion masks to read.

    Returns
    -------
    BIDSFiles
        One :class:`Scan` per subject (and session), ordered by subject then session; ``flair``
        or ``mask`` is None when missing (the caller names the file it expected).

    Raises
    ------
    CohortError
        A ``sub-*``/``ses-*`` folder whose label is not letters and digits, an unreadable dataset,
        an unknown ``derivatives`` pipeline, a scan with two QSM (or FLAIR, or masks in one place),
        or masks in several places without a ``derivatives`` choice.
    """
    root = Path(root)
    folders = _checked_folders(root)
    labels = folders if participants is None else list(participants)
    pipelines = {p.name: p for p in _pipelines(root)}
    if derivatives is not None and derivatives not in pipelines:
        raise CohortError(
            f"{root}: derivatives={derivatives!r} is not a pipeline of this dataset; "
            f"{'its derivatives/ holds ' + ', '.join(sorted(pipelines)) if pipelines else 'it has no derivatives/ folder'}"
        )
    raw = _anat_images(_layout(root), root)
    by_kind: dict[str, dict[tuple[str, str], list[str]]] = {"Chimap": {}, "FLAIR": {}}
    for image in raw:
        if image.suffix in by_kind:
            by_kind[image.suffix].setdefault((image.subject, image.session), []).append(image.path)
    metadata = {image.path: image.bids_file.get_metadata() for image in raw if image.suffix == "Chimap"}
    masks: dict[str, dict[tuple[str, str], list[str]]] = {}
    if derivatives is None:
        masks[""] = _lesion_masks(raw)
    for name, path in pipelines.items():
        if derivatives is None or name == derivatives:
            layout = _layout(path, is_derivative=True, indexer={"index_metadata": False})
            masks[name] = _lesion_masks(_anat_images(layout, path))
    mask_pipelines = sorted(name for name, found in masks.items() if name and found)

    wanted = set(labels)
    keys = sorted({key for key in by_kind["Chimap"] if key[0] in wanted} | {(label, "") for label in labels})
    sessions = {label for label, session in keys if session}
    scans, sources = [], set()
    for participant_id, session in keys:
        if session == "" and participant_id in sessions and (participant_id, "") not in by_kind["Chimap"]:
            continue  # the subject's sessions stand for it
        where = _where(root, participant_id, session)
        qsm_paths = by_kind["Chimap"].get((participant_id, session), [])
        if not qsm_paths:
            scans.append(Scan(participant_id, session, str(where / f"{scan_name(participant_id, session)}_Chimap.nii.gz"),
                              None, None, None, None))
            continue
        qsm = _one(qsm_paths, "Chimap", where)
        flair_paths = by_kind["FLAIR"].get((participant_id, session), [])
        flair = _one(flair_paths, "FLAIR", where) if flair_paths else None
        found = {source: paths for source, by_scan in masks.items() if (paths := by_scan.get((participant_id, session)))}
        if len(found) > 1:
            places = ", ".join("anat/ of the raw dataset" if not source else f"derivatives/{source}" for source in sorted(found))
            choices = " or ".join(repr(source) for source in sorted(found) if source)
            raise CohortError(
                f"{scan_name(participant_id, session)}: lesion masks in {len(found)} places ({places}); choose the "
                f"pipeline to read them from with derivatives={choices} (--derivatives on the command line)"
            )
        source, mask = None, None
        if found:
            source, paths = next(iter(found.items()))
            mask = _one(paths, "lesion mask (desc-lesions)", where if not source else pipelines[source] / where.relative_to(root))
            sources.add(source)
        scans.append(Scan(participant_id, session, qsm, flair, mask, metadata.get(qsm, {}).get("Units"), source))
    pipeline = next(iter(sources)) if len(sources) == 1 and "" not in sources else None
    return BIDSFiles(scans, mask_pipelines, pipeline if pipeline else derivatives)


def sidecar_path(image: str | Path) -> Path:
    """The JSON sidecar beside a NIfTI file (``x.nii.gz`` -> ``x.json``)."""
    image = Path(image)
    name = image.name
    for extension in (".nii.gz", ".nii"):
        if name.endswith(extension):
            return image.with_name(name[: -len(extension)] + ".json")
    return image.with_suffix(".json")


def read_sidecar(image: str | Path) -> dict:
    """The JSON sidecar beside ``image`` as a dict (empty when there is none).

    Raises
    ------
    CohortError
        When the sidecar exists but is not a JSON object.
    """
    path = sidecar_path(image)
    if not path.is_file():
        return {}
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CohortError(f"{path}: not a readable JSON sidecar ({exc})") from exc
    if not isinstance(content, dict):
        raise CohortError(f"{path}: a JSON sidecar must hold an object, got {type(content).__name__}")
    return content
