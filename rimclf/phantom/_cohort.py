"""Writing a phantom cohort to disk as a BIDS dataset that :func:`rimclf.load_cohort` reads.

Layout (``[ses-<label>/]`` only with ``n_sessions > 1``)::

    OUT/dataset_description.json                          DatasetType "raw"
    OUT/README, participants.tsv, participants.json
    OUT/sub-<label>/[ses-<label>/]anat/sub-<label>[_ses-<label>]_Chimap.nii.gz (+ .json: "Units": "ppb")
    OUT/sub-<label>/[ses-<label>/]anat/sub-<label>[_ses-<label>]_FLAIR.nii.gz  (+ .json)
    OUT/derivatives/phantom/dataset_description.json       DatasetType "derivative", GeneratedBy rimclf
    OUT/derivatives/phantom/rims.tsv                       rim labels (load_cohort finds them here)
    OUT/derivatives/phantom/phantom_lesions.tsv            the generator's ground truth per lesion
    OUT/derivatives/phantom/phantom.json                   parameters, seed, sites, versions, summary
    OUT/derivatives/phantom/sub-<label>/[ses-<label>/]anat/sub-<label>[_ses-<label>]_desc-lesions_dseg.nii.gz (+ .json)

The lesion masks are instance labels 1..K, a discrete segmentation in BIDS terms (``dseg``; a
``mask`` is binary), drawn by the "rater" rather than acquired: a derivative.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed

from rimclf._atomic import atomic_output_dir
from rimclf._nifti import save_nifti
from rimclf._records import installed_versions, write_json
from rimclf._version import __version__
from rimclf._validation import check_choice, check_int, check_real, is_int
from rimclf.defaults import BIDS_VERSION, DIFFICULTIES, PHANTOM_ACQUISITIONS
from rimclf.errors import ParameterError
from rimclf.phantom._acquisition import draw_varied_site, site_record
from rimclf.phantom._config import DEFAULT_SHAPE, DIFFICULTY_PRESETS, REFERENCE_VOXEL_MM, SITES, Site
from rimclf.phantom._render import render_subject

logger = logging.getLogger(__name__)

#: Where the lesion masks, rim labels and ground truth go: a derivatives pipeline of the dataset.
PIPELINE_FOLDER = Path("derivatives") / "phantom"
PARTICIPANT_COLUMNS = ("participant_id", "site", "age", "sex")
#: At most this many sites with ``acquisition="varied"``.
MAX_VARIED_SITES = 26
#: ``participants.tsv`` columns added with ``acquisition="varied"``: each scan's protocol.
ACQUISITION_COLUMNS = {
    "orientation": "voxel axes as stored on disk (where each array axis points: RAS, LPS, ...)",
    "tilt_deg": "angle between the slice axis and the scanner's z axis (degrees; oblique slabs)",
    "voxel_mm": "QSM voxel size along the stored array axes (mm)",
    "slice_mm": "slice thickness (mm; thick slices are rendered on sub-slices and averaged)",
    "noise_factor": "QSM noise as a multiple of the difficulty's QSM noise",
    "noise_texture": "smooth: correlated Gaussian noise; streaky: noise shaped like dipole-inversion errors",
    "streak_ppb": "standard deviation of dipole streaks around strong paramagnetic sources (0: none)",
    "background_ppb": "amplitude of a smooth low-order background-field residual",
    "qsm_scale": "the site's QSM scale (dipole-inversion regularisation)",
    "qsm_offset_ppb": "the site's QSM reference offset",
}
#: ``participants.json``: the data dictionary of ``participants.tsv``.
PARTICIPANTS_JSON = {
    "site": {"Description": "acquisition site of the phantom (see derivatives/phantom/phantom.json)",
             "Levels": {"A": "axial RAS+, 1 x 1 x 1.5 mm", "B": "LPS storage, 0.9 x 0.9 x 2 mm, sagittal FLAIR",
                        "C": "oblique axial, 1.1 x 1.1 x 1.6 mm"}},
    "age": {"Description": "age of the (synthetic) participant", "Units": "year"},
    "sex": {"Description": "sex of the (synthetic) participant", "Levels": {"F": "female", "M": "male"}},
}
README = """{name}

Synthetic QSM (Chimap, in ppb as its JSON sidecars say) and T2-FLAIR images of multiple-sclerosis
lesions, written by rimclf.phantom.make_phantom_cohort. The lesion masks (instance labels,
desc-lesions_dseg), the rim+/rim- labels (rims.tsv), each lesion's ground truth
(phantom_lesions.tsv) and the generator's settings (phantom.json) are in derivatives/phantom/.
No real person's data is in it.
"""

#: columns of ``phantom_lesions.tsv``, the generator's ground truth beyond the rim label
PHANTOM_LESION_COLUMNS = (
    "participant_id", "lesion_id", "rim", "pattern", "central_vein", "radius_mm", "n_voxels", "rim_ppb",
    "rim_completeness",
)


def make_phantom_cohort(
    out: str | os.PathLike,
    n_subjects: int = 40,
    random_state: int | np.random.Generator | None = 0,
    difficulty: str = "default",
    *,
    shape: tuple[int, int, int] | None = None,
    n_sites: int = 3,
    rim_prevalence: float = 0.04,
    lesions_per_subject: tuple[int, int] = (10, 40),
    n_sessions: int = 1,
    acquisition: str = "sites",
    force: bool = False,
    n_jobs: int | None = None,
) -> Path:
    """Write a synthetic QSM/FLAIR cohort with labelled rim+ and rim- lesions.

    Parameters
    ----------
    out : str or path-like
        The cohort folder to create. It must not exist unless ``force``.
    n_subjects : int, default=40
    random_state : int, numpy Generator or None, default=0
        Seed. Subject ``i`` draws from ``SeedSequence(seed, spawn_key=(i,))``, so a cohort is
        byte-identical for a seed whatever ``n_jobs``, and its first subjects do not depend on
        ``n_subjects``. With ``None`` a fresh seed is drawn and recorded in ``phantom.json``.
    difficulty : {"easy", "default", "hard"}, default="default"
        Rim contrast and completeness, noise, and how often rim- lesions mimic a rim.
    shape : tuple of 3 int, optional
        QSM grid of the reference site (1 x 1 x 1.5 mm voxels); every site covers the same field
        of view and the brain is scaled to it. Default ``(96, 112, 64)``; e.g. ``(40, 48, 28)`` for
        tiny test cohorts.
    n_sites : int, default=3
        Sites A, B, C (see :mod:`rimclf.phantom`); subject ``i`` is scanned at site ``i % n_sites``.
        With ``acquisition="varied"``, up to 26 sites ``V1``, ``V2``, ...
    rim_prevalence : float, default=0.04
        Expected fraction of rim+ lesions.
    lesions_per_subject : (int, int), default=(10, 40)
        Inclusive range of lesions drawn per subject. Small brains may hold fewer.
    n_sessions : int, default=1
        Sessions per subject. With 1 the layout has no ``ses-`` level; with more, each subject has
        ``ses-01`` .. ``ses-NN``, each an independent draw at the subject's site (session ``ses-01``
        is the subject a one-session cohort has): a layout for tests, not a longitudinal model.
    acquisition : {"sites", "varied"}, default="sites"
        ``"sites"``: the three fixed sites A, B, C. ``"varied"``: every site draws its own
        protocol from the seed (see :mod:`rimclf.phantom._acquisition`): oblique slabs, axes
        permuted and flipped on disk, voxels of 0.5-1.2 mm in plane and slices of up to 3 mm with
        partial volume, three noise levels and two textures, dipole streaks, a background-field
        residual, reference offsets and scales. ``participants.tsv`` then records each scan's
        protocol (``orientation``, ``tilt_deg``, ``voxel_mm``, ``slice_mm``, ``noise_factor``,
        ``noise_texture``, ``streak_ppb``, ``background_ppb``, ``qsm_scale``, ``qsm_offset_ppb``),
        and ``site`` groups scans by protocol (a leave-one-acquisition-out split groups by it).
    force : bool, default=False
        Replace an existing ``out``.
    n_jobs : int, optional
        Subjects rendered in parallel with joblib (``None``: 1 unless in a ``parallel_config``).

    Returns
    -------
    pathlib.Path
        ``out``, a BIDS dataset (see :mod:`rimclf.phantom._cohort`): raw QSM and FLAIR with JSON
        sidecars, and ``derivatives/phantom/`` with the lesion masks, ``rims.tsv``,
        ``phantom_lesions.tsv`` and ``phantom.json``.

    Examples
    --------
    >>> import tempfile
    >>> from rimclf.phantom import make_phantom_cohort
    >>> folder = tempfile.TemporaryDirectory()
    >>> cohort = make_phantom_cohort(f"{folder.name}/phantom", n_subjects=2, random_state=0, shape=(48, 56, 32))
    >>> import rimclf
    >>> table = rimclf.load_cohort(cohort)
    >>> len(table), table["participant_id"].unique().tolist()
    (26, ['001', '002'])
    >>> folder.cleanup()

    The demo's cohorts (about 0.5 s of CPU per subject at the default grid):

    >>> make_phantom_cohort("phantom_cohort", n_subjects=40, random_state=0, n_jobs=2)   # doctest: +SKIP
    """
    check_choice(acquisition, "acquisition", PHANTOM_ACQUISITIONS)
    settings = _check_parameters(n_subjects, difficulty, shape, n_sites, rim_prevalence, lesions_per_subject, acquisition)
    check_int(n_sessions, "n_sessions", min=1, max=99)
    seed = _seed(random_state)
    sites = _sites(acquisition, n_sites, seed)
    out = Path(out)
    width = max(3, len(str(n_subjects)))
    sessions = [f"{j + 1:02d}" for j in range(n_sessions)] if n_sessions > 1 else [""]
    with atomic_output_dir(out, force=force) as tmp:
        results = Parallel(n_jobs=n_jobs)(
            delayed(_write_subject)(str(tmp), f"{i + 1:0{width}d}", i, session, j, seed, settings, sites)
            for i in range(n_subjects)
            for j, session in enumerate(sessions)
        )
        derivatives = tmp / PIPELINE_FOLDER
        _write_tables(tmp, derivatives, results, with_sessions=n_sessions > 1, sites=sites if acquisition == "varied" else None)
        n_lesions = sum(len(r["lesions"]) for r in results)
        n_rim = sum(lesion["rim"] for r in results for lesion in r["lesions"])
        provenance = {
            "generator": "rimclf.phantom.make_phantom_cohort",
            "versions": installed_versions(("rimclf", "numpy")),
            "parameters": {
                "n_subjects": n_subjects, "random_state": seed, "difficulty": difficulty,
                "shape": list(settings["shape"]), "n_sites": n_sites, "rim_prevalence": rim_prevalence,
                "lesions_per_subject": list(lesions_per_subject),
                **({"n_sessions": n_sessions} if n_sessions > 1 else {}),
                **({"acquisition": acquisition} if acquisition != "sites" else {}),
            },
            "sites": {site.name: site_record(site) for site in sites} if acquisition == "varied" else {
                site.name: {
                    "qsm_voxel_mm": list(site.qsm_voxel_mm),
                    "flair_voxel_mm": list(site.flair_voxel_mm or site.qsm_voxel_mm),
                    "flair_on_qsm_grid": site.flair_voxel_mm is None,
                    "qsm_scale": site.qsm_scale,
                    "qsm_offset_ppb": site.qsm_offset_ppb,
                    "flair_gain": site.flair_gain,
                }
                for site in sites
            },
            "summary": {"n_subjects": n_subjects, "n_lesions": n_lesions, "n_rim": int(n_rim),
                        **({"n_sessions": n_sessions} if n_sessions > 1 else {})},
        }
        write_json(derivatives / "phantom.json", provenance)
        name = f"rimclf phantom cohort (seed {seed}, {difficulty})"
        generated_by = [{"Name": "rimclf", "Version": __version__, "Description": "rimclf.phantom.make_phantom_cohort"}]
        write_json(tmp / "dataset_description.json", {
            "Name": name, "BIDSVersion": BIDS_VERSION, "DatasetType": "raw", "License": "CC0",
            "GeneratedBy": generated_by,
        })
        write_json(derivatives / "dataset_description.json", {
            "Name": f"{name}: lesion masks and rim labels", "BIDSVersion": BIDS_VERSION, "DatasetType": "derivative",
            "GeneratedBy": generated_by, "DatasetLinks": {"raw": "../../"},
        })
        (tmp / "README").write_text(README.format(name=name), encoding="utf-8")
    logger.debug("phantom cohort: %d subjects, %d lesions, %d rim+ in %s", n_subjects, n_lesions, n_rim, out)
    return out


def read_provenance(cohort: str | os.PathLike) -> dict | None:
    """The ``phantom.json`` record of a phantom cohort (parameters, versions, summary), or None.

    It sits in ``COHORT/derivatives/phantom/``; None when there is none (not a phantom, or one
    written in the layout of earlier rimclf versions) or it cannot be read.

    Examples
    --------
    >>> import tempfile
    >>> from rimclf.phantom import make_phantom_cohort
    >>> folder = tempfile.TemporaryDirectory()
    >>> cohort = make_phantom_cohort(f"{folder.name}/phantom", n_subjects=2, random_state=0, shape=(48, 56, 32))
    >>> record = read_provenance(cohort)
    >>> sorted(record)
    ['generator', 'parameters', 'sites', 'summary', 'versions']
    >>> record["summary"]
    {'n_subjects': 2, 'n_lesions': 26, 'n_rim': 0}
    >>> read_provenance(folder.name) is None                 # not a phantom
    True
    >>> folder.cleanup()
    """
    path = Path(cohort) / PIPELINE_FOLDER / "phantom.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _check_parameters(n_subjects, difficulty, shape, n_sites, rim_prevalence, lesions_per_subject, acquisition) -> dict:
    check_int(n_subjects, "n_subjects", min=1)
    check_choice(difficulty, "difficulty", DIFFICULTIES)
    shape = DEFAULT_SHAPE if shape is None else shape
    if len(tuple(shape)) != 3 or not all(is_int(n) and n >= 24 for n in shape):
        raise ParameterError(f"shape={shape!r} is not valid; it must be 3 integers of at least 24 voxels")
    check_int(n_sites, "n_sites", min=1, max=MAX_VARIED_SITES if acquisition == "varied" else len(SITES))
    check_real(rim_prevalence, "rim_prevalence", min=0.0, max=0.5)
    low, high = (tuple(lesions_per_subject) + (None, None))[:2]
    if not (is_int(low) and is_int(high) and 0 <= low <= high):
        raise ParameterError(
            f"lesions_per_subject={lesions_per_subject!r} is not valid; it must be (low, high) with 0 <= low <= high"
        )
    return {
        "shape": tuple(int(n) for n in shape),
        "difficulty": difficulty,
        "n_sites": int(n_sites),
        "rim_prevalence": float(rim_prevalence),
        "lesions": (int(low), int(high)),
    }


def _sites(acquisition: str, n_sites: int, seed: int) -> tuple[Site, ...]:
    """The cohort's sites: the fixed A, B, C, or protocols drawn from the seed (a stream of their
    own, so subjects' draws are the same as without them)."""
    if acquisition == "sites":
        return SITES[:n_sites]
    return tuple(
        draw_varied_site(np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(j, 0xAC, 0))), f"V{j + 1}")
        for j in range(n_sites)
    )


def _seed(random_state) -> int:
    if random_state is None:
        return int(np.random.SeedSequence().entropy)
    if is_int(random_state) and random_state >= 0:
        return int(random_state)
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**63))
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(2**31))
    raise ParameterError(
        f"random_state={random_state!r} is not valid; it must be a non-negative int, a numpy Generator or None"
    )


def _write_subject(
    root: str, label: str, index: int, session: str, session_index: int, seed: int, settings: dict, sites: tuple[Site, ...],
) -> dict:
    """Render one session of subject ``index`` and write its files; return its table rows."""
    spawn_key = (index,) if session_index == 0 else (index, session_index)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=spawn_key))
    site = sites[index % len(sites)]
    fov_mm = np.asarray(settings["shape"], dtype=float) * np.asarray(REFERENCE_VOXEL_MM)
    low, high = settings["lesions"]
    n_lesions = int(rng.integers(low, high + 1))
    images = render_subject(rng, site, fov_mm, DIFFICULTY_PRESETS[settings["difficulty"]], n_lesions, settings["rim_prevalence"])
    relative = Path(f"sub-{label}") / (f"ses-{session}" if session else "") / "anat"
    name = f"sub-{label}" + (f"_ses-{session}" if session else "")
    anat, derived = Path(root) / relative, Path(root) / PIPELINE_FOLDER / relative
    save_nifti(anat / f"{name}_Chimap.nii.gz", images.qsm, images.qsm_affine)
    write_json(anat / f"{name}_Chimap.json", {"Units": "ppb", "InstitutionName": f"phantom site {site.name}"})
    save_nifti(anat / f"{name}_FLAIR.nii.gz", images.flair, images.flair_affine)
    write_json(anat / f"{name}_FLAIR.json", {"Units": "arbitrary", "InstitutionName": f"phantom site {site.name}"})
    save_nifti(derived / f"{name}_desc-lesions_dseg.nii.gz", images.labels, images.qsm_affine)
    write_json(derived / f"{name}_desc-lesions_dseg.json", {
        "Description": "MS lesion instance labels 1..K (0: background) on the Chimap grid, drawn on the FLAIR; "
                       "rims.tsv labels them rim+ or rim-",
        "Sources": [f"bids:raw:{(relative / f'{name}_FLAIR.nii.gz').as_posix()}"],
    })
    ids = {"participant_id": f"sub-{label}", **({"session": f"ses-{session}"} if session else {})}
    return {
        "participant": {"participant_id": f"sub-{label}", "site": site.name, "age": round(images.age), "sex": images.sex,
                        **_acquisition_columns(site, images.qsm_affine)},
        "first_session": session_index == 0,
        "lesions": [{**ids, **row} for row in images.lesions],
    }


def _acquisition_columns(site: Site, stored_affine: np.ndarray) -> dict:
    """The ``participants.tsv`` columns of a varied acquisition (none for the fixed sites)."""
    if not site.description:
        return {}
    record = site_record(site)
    sizes = np.sqrt((stored_affine[:3, :3] ** 2).sum(axis=0))
    return {
        "orientation": record["orientation"], "tilt_deg": record["tilt_deg"],
        "voxel_mm": "x".join(f"{v:.3g}" for v in sizes), "slice_mm": site.qsm_voxel_mm[2],
        "noise_factor": site.qsm_noise_factor, "noise_texture": site.noise_texture, "streak_ppb": site.streak_ppb,
        "background_ppb": site.background_ppb, "qsm_scale": site.qsm_scale, "qsm_offset_ppb": site.qsm_offset_ppb,
    }


def _write_tables(
    root: Path, derivatives: Path, results: list[dict], *, with_sessions: bool, sites: tuple[Site, ...] | None = None,
) -> None:
    def tsv(path: Path, columns, rows) -> None:
        lines = ["\t".join(columns)] + ["\t".join(str(row[c]) for c in columns) for row in rows]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    participants = [r["participant"] for r in results if r["first_session"]]
    if sites is None:
        tsv(root / "participants.tsv", PARTICIPANT_COLUMNS, participants)
        write_json(root / "participants.json", PARTICIPANTS_JSON)
    else:
        tsv(root / "participants.tsv", (*PARTICIPANT_COLUMNS, *ACQUISITION_COLUMNS), participants)
        described = {
            **PARTICIPANTS_JSON,
            "site": {"Description": "acquisition protocol of the phantom (derivatives/phantom/phantom.json)",
                     "Levels": {site.name: site.description for site in sites}},
            **{name: {"Description": text} for name, text in ACQUISITION_COLUMNS.items()},
        }
        for name, unit in (("tilt_deg", "degree"), ("slice_mm", "mm"), ("streak_ppb", "ppb"),
                           ("background_ppb", "ppb"), ("qsm_offset_ppb", "ppb")):
            described[name]["Units"] = unit
        write_json(root / "participants.json", described)
    lesions = [row for r in results for row in r["lesions"]]
    key = ("participant_id", "session") if with_sessions else ("participant_id",)
    tsv(derivatives / "rims.tsv", (*key, "lesion_id", "rim"), lesions)
    tsv(derivatives / "phantom_lesions.tsv", (*key, *PHANTOM_LESION_COLUMNS[1:]), lesions)
