"""How a cohort is read: one frozen object instead of keywords threaded through every workflow.

:class:`CohortOptions` holds every cohort-reading setting: lesion filtering, units, which BIDS
files to read (pipelines, descriptions, entity filters), which scans to read (participant and
session labels, as BIDS Apps select them) and what to do with incomplete scans. The CLI builds
it from one argparse group (``rimclf.cli._options.add_cohort_options``); :func:`rimclf.load_cohort`,
the workflows, :func:`rimclf.features.save_features` and tuning take it as ``cohort_options``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from rimclf._bids import entity_names
from rimclf._validation import check_bool, check_choice, check_int
from rimclf.defaults import CONNECTIVITIES, CONNECTIVITY, MIN_VOXELS, QSM_UNIT, QSM_UNIT_CHOICES
from rimclf.errors import ParameterError

__all__ = ["FILE_KINDS", "CohortOptions"]

#: The files of a scan that discovery looks for (the keys of pipelines and BIDS filters).
FILE_KINDS = ("qsm", "flair", "mask")


def _labels(value: object, name: str, prefix: str) -> tuple[str, ...]:
    """A tuple of labels without ``prefix`` (a string stands for one label)."""
    values = (value,) if isinstance(value, str) else tuple(value or ())
    labels = []
    for item in values:
        text = str(item).strip()
        label = text[len(prefix):] if text.startswith(prefix) else text
        if not label.isalnum() or not label.isascii():
            raise ParameterError(f"{name}={item!r} is not valid; it must be a BIDS label (letters and digits, "
                                 f"with or without {prefix!r})")
        labels.append(label)
    return tuple(dict.fromkeys(labels))


#: The entities that ``participant_label``/``session_label`` choose, never ``bids_filters``.
_SELECTED = ("subject", "session")


def _entity(name: str, item: object) -> str:
    """pybids' name of the entity ``name`` of filter ``item`` (``acq`` -> ``acquisition``); a ParameterError
    naming the entities when it is none."""
    names = {key: entity for key, entity in entity_names().items() if entity not in _SELECTED}
    if name in names:
        return names[name]
    if entity_names().get(name) in _SELECTED:
        raise ParameterError(f"bids_filters={item!r} (--bids-filter) is not valid; choose subjects and sessions with "
                             "participant_label/session_label (--participant-label, --session-label)")
    keys = {entity: key for key, entity in names.items() if key != entity}
    valid = ", ".join(entity + (f" ({keys[entity]})" if entity in keys else "")
                      for entity in dict.fromkeys(names.values()))
    raise ParameterError(f"bids_filters={item!r} (--bids-filter) is not valid; {name!r} is not a BIDS entity; ENTITY "
                         f"must be one of pybids' entity names or, in parentheses, the key file names carry: {valid}")


def _filters(value: object) -> tuple[tuple[str, str, str], ...]:
    """``bids_filters`` as ``(kind, entity, value)`` triples, entities by pybids' names; strings read
    ``KIND:ENTITY=VALUE``, ENTITY a pybids name or the key of file names (``acquisition`` or ``acq``)."""
    items = (value,) if isinstance(value, str) else tuple(value or ())
    triples = []
    for item in items:
        if isinstance(item, str):
            kind, _, rest = item.partition(":")
            entity, _, text = rest.partition("=")
            triple = (kind.strip(), entity.strip(), text.strip())
        else:
            triple = tuple(str(part) for part in item)
        if len(triple) != 3 or triple[0] not in FILE_KINDS or not triple[1] or not triple[2]:
            raise ParameterError(f"bids_filters={item!r} is not valid; each filter must read KIND:ENTITY=VALUE with "
                                 f"KIND one of {', '.join(FILE_KINDS)} (e.g. qsm:acquisition=gre, mask:desc=lstai)")
        triples.append((triple[0], _entity(triple[1], item), triple[2]))
    return tuple(triples)


@dataclass(frozen=True)
class CohortOptions:
    """Every setting of how a cohort is read (frozen; build a changed copy with ``replace``).

    Parameters
    ----------
    min_voxels : int, default=8
        Lesions with fewer voxels are left out (counted in the log).
    connectivity : {6, 18, 26}, default=26
        Splits a binary (0/1) mask into lesions.
    qsm_unit : {"auto", "ppm", "ppb"}, default="auto"
        The QSM's unit: "auto" reads each QSM's sidecar ``Units`` (else ppm, as BIDS defines Chimap).
    qsm_pipeline, flair_pipeline, mask_pipeline : str, optional
        Where to read that file from when several places hold one for a scan: the name of a folder
        under ``COHORT/derivatives/``, or ``"raw"`` for the raw dataset. Not needed when only one
        place holds it.
    mask_desc : str, optional
        The ``desc-`` of the lesion masks. Default: any mask (``_mask``/``_dseg``) whose ``desc-``
        or ``label-`` contains "lesion" (so a QSM pipeline's ``desc-brain_mask`` is never read).
        A ``bids_filters`` entry on the mask's ``desc`` or ``label`` (``"mask:label=WMH"``)
        chooses the masks the same way.
    bids_filters : tuple of (kind, entity, value), default=()
        More BIDS entity filters, e.g. ``(("qsm", "acquisition", "gre"),)``; strings
        ``"qsm:acquisition=gre"`` are accepted. Entities are pybids' names (``acquisition``,
        ``run``, ``desc``, ``space``, ``label``, ...) or the keys file names carry (``acq``,
        ``rec``, ...), which become pybids' names; any other name is a ParameterError.
    participant_label, session_label : tuple of str, default=()
        Read only these participants / sessions (with or without ``sub-``/``ses-``); empty: all.
        Rows of ``rims.tsv`` for other scans are ignored.
    strict : bool, default=False
        A scan missing a required file is an error; by default it is skipped with one warning
        and listed in the outputs.
    require_flair : bool, default=True
        Whether a scan without FLAIR is incomplete; the workflows turn it off for models whose
        features never read the FLAIR.

    Examples
    --------
    >>> from rimclf.cohort import CohortOptions
    >>> options = CohortOptions(participant_label=("sub-01", "02"), mask_desc="lstai").validated()
    >>> options.participant_label
    ('01', '02')
    >>> CohortOptions(min_voxels=0).validated()
    Traceback (most recent call last):
    ...
    rimclf.errors.ParameterError: min_voxels=0 is not valid; it must be a positive integer
    """

    min_voxels: int = MIN_VOXELS
    connectivity: int = CONNECTIVITY
    qsm_unit: str = QSM_UNIT
    qsm_pipeline: str | None = None
    flair_pipeline: str | None = None
    mask_pipeline: str | None = None
    mask_desc: str | None = None
    bids_filters: tuple = ()
    participant_label: tuple = ()
    session_label: tuple = ()
    strict: bool = False
    require_flair: bool = True

    def replace(self, **changes: object) -> CohortOptions:
        """A copy with ``changes`` (field names), e.g. ``options.replace(strict=True)``."""
        names = {field.name for field in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ParameterError(f"{unknown[0]} is not a cohort option; the options are {', '.join(sorted(names))}")
        return dataclasses.replace(self, **changes)

    def validated(self) -> CohortOptions:
        """A checked copy: labels without prefixes, filters as triples.

        Raises
        ------
        ParameterError
            Naming the bad field and value.
        """
        check_int(self.min_voxels, "min_voxels", min=1)
        check_choice(self.connectivity, "connectivity", CONNECTIVITIES)
        qsm_unit = "auto" if self.qsm_unit is None else self.qsm_unit
        check_choice(qsm_unit, "qsm_unit", QSM_UNIT_CHOICES)
        for name in ("qsm_pipeline", "flair_pipeline", "mask_pipeline", "mask_desc"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value or "/" in value or value in (".", "..")):
                raise ParameterError(f"{name}={value!r} is not valid; it must be a folder name under derivatives/ "
                                     + ("or 'raw'" if name.endswith("pipeline") else "(a desc- label)"))
        check_bool(self.strict, "strict")
        check_bool(self.require_flair, "require_flair")
        return dataclasses.replace(
            self, qsm_unit=qsm_unit, connectivity=int(self.connectivity), bids_filters=_filters(self.bids_filters),
            participant_label=_labels(self.participant_label, "participant_label", "sub-"),
            session_label=_labels(self.session_label, "session_label", "ses-"),
        )

    def pipeline(self, kind: str) -> str | None:
        """The chosen pipeline of ``kind`` ("qsm", "flair" or "mask"), None when not chosen."""
        return getattr(self, f"{kind}_pipeline")

    def filters(self, kind: str) -> dict[str, str]:
        """The BIDS entity filters of ``kind`` (``mask_desc`` included for masks)."""
        found = {entity: value for k, entity, value in _filters(self.bids_filters) if k == kind}
        if kind == "mask" and self.mask_desc is not None:
            found.setdefault("desc", self.mask_desc)
        return found
