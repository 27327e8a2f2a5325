"""JSON sidecars: the one beside a NIfTI file, and those that apply to it by BIDS inheritance.

BIDS inheritance principle: a ``.json`` file applies to a data file when it lies in the data
file's folder or in one above it, up to the dataset root, has its suffix, and names only entities
the data file has, with the same values; a deeper file overrides a shallower one. Only the files
that apply to one image are parsed (:func:`inherited_metadata`): a broken sidecar of another file
never matters.
"""

from __future__ import annotations

import json
from pathlib import Path

from rimclf.errors import CohortError


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
    return _read_json(path) if path.is_file() else {}


def _name_entities(name: str) -> tuple[dict[str, str], str]:
    """The ``key-value`` entities and the suffix of a BIDS file name (``sub-01_acq-gre_Chimap.json``)."""
    *pairs, suffix = name.split(".", 1)[0].split("_")
    return dict(pair.partition("-")[::2] for pair in pairs), suffix


def inherited_sidecars(image: Path, dataset: Path) -> list[Path]:
    """The JSON sidecars that apply to ``image`` of ``dataset`` (see the module docstring), the shallowest first.

    In one folder (where BIDS allows one that applies) the name with more entities comes later, so
    it overrides the others.

    Examples
    --------
    >>> import tempfile
    >>> folder = tempfile.TemporaryDirectory()
    >>> root = Path(folder.name)
    >>> (root / "sub-01" / "anat").mkdir(parents=True)
    >>> for name in ("Chimap.json", "acq-fast_Chimap.json", "sub-01/anat/sub-01_Chimap.json", "sub-01/anat/sub-01_T1w.json"):
    ...     _ = (root / name).write_text("{}")
    >>> found = inherited_sidecars(root / "sub-01" / "anat" / "sub-01_acq-gre_Chimap.nii.gz", root)
    >>> [path.relative_to(root).as_posix() for path in found]   # not acq-fast_, not _T1w
    ['Chimap.json', 'sub-01/anat/sub-01_Chimap.json']
    >>> folder.cleanup()
    """
    entities, suffix = _name_entities(image.name)
    parts = image.parent.relative_to(dataset).parts
    found = []
    for depth in range(len(parts) + 1):
        applying = []
        for path in dataset.joinpath(*parts[:depth]).glob(f"*{suffix}.json"):
            names, json_suffix = _name_entities(path.name)
            if json_suffix == suffix and path.is_file() and all(entities.get(k) == v for k, v in names.items()):
                applying.append((len(names), path.name, path))
        found += [path for *_, path in sorted(applying)]
    return found


def inherited_metadata(image: Path, dataset: Path) -> dict:
    """The metadata of ``image``: its :func:`inherited_sidecars` merged, the deeper overriding.

    Raises
    ------
    CohortError
        Naming the file, when one of those sidecars is not a JSON object.
    """
    metadata = {}
    for path in inherited_sidecars(image, dataset):
        metadata.update(_read_json(path))
    return metadata


def _read_json(path: Path) -> dict:
    """The JSON object of sidecar ``path``; a CohortError naming it when it is anything else."""
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CohortError(f"{path}: not a readable JSON sidecar ({exc})") from exc
    if not isinstance(content, dict):
        raise CohortError(f"{path}: a JSON sidecar must hold an object, got {type(content).__name__}")
    return content
