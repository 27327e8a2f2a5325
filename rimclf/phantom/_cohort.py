"""Writing a phantom cohort to disk in the BIDS-like layout that :func:`rimclf.load_cohort` reads."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed

from rimclf._atomic import atomic_output_dir
from rimclf._nifti import save_nifti
from rimclf._records import installed_versions
from rimclf._version import __version__
from rimclf._validation import check_choice, check_int, check_real, is_int
from rimclf.errors import ParameterError
from rimclf.phantom._config import DEFAULT_SHAPE, DIFFICULTIES, REFERENCE_VOXEL_MM, SITES
from rimclf.phantom._render import render_subject

logger = logging.getLogger(__name__)

#: columns of ``phantom_lesions.tsv``, the generator's ground truth beyond the rim label
LESION_COLUMNS = (
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
    rim_prevalence : float, default=0.04
        Expected fraction of rim+ lesions.
    lesions_per_subject : (int, int), default=(10, 40)
        Inclusive range of lesions drawn per subject. Small brains may hold fewer.
    force : bool, default=False
        Replace an existing ``out``.
    n_jobs : int, optional
        Subjects rendered in parallel with joblib (``None``: 1 unless in a ``parallel_config``).

    Returns
    -------
    pathlib.Path
        ``out``, holding ``participants.tsv``, ``rims.tsv``, ``phantom_lesions.tsv``,
        ``phantom.json``, ``dataset_description.json`` and ``sub-XXX/anat/sub-XXX_{Chimap,FLAIR,
        desc-lesions_mask}.nii.gz``.
    """
    settings = _check_parameters(n_subjects, difficulty, shape, n_sites, rim_prevalence, lesions_per_subject)
    seed = _seed(random_state)
    out = Path(out)
    width = max(3, len(str(n_subjects)))
    with atomic_output_dir(out, force=force) as tmp:
        results = Parallel(n_jobs=n_jobs)(
            delayed(_write_subject)(str(tmp), f"{i + 1:0{width}d}", i, seed, settings) for i in range(n_subjects)
        )
        _write_tables(tmp, results)
        n_lesions = sum(len(r["lesions"]) for r in results)
        n_rim = sum(lesion["rim"] for r in results for lesion in r["lesions"])
        provenance = {
            "generator": "rimclf.phantom.make_phantom_cohort",
            "versions": installed_versions(("rimclf", "numpy")),
            "parameters": {
                "n_subjects": n_subjects, "random_state": seed, "difficulty": difficulty,
                "shape": list(settings["shape"]), "n_sites": n_sites, "rim_prevalence": rim_prevalence,
                "lesions_per_subject": list(lesions_per_subject),
            },
            "sites": {
                site.name: {
                    "qsm_voxel_mm": list(site.qsm_voxel_mm),
                    "flair_voxel_mm": list(site.flair_voxel_mm or site.qsm_voxel_mm),
                    "flair_on_qsm_grid": site.flair_voxel_mm is None,
                    "qsm_scale": site.qsm_scale,
                    "qsm_offset_ppb": site.qsm_offset_ppb,
                    "flair_gain": site.flair_gain,
                }
                for site in SITES[:n_sites]
            },
            "summary": {"n_subjects": n_subjects, "n_lesions": n_lesions, "n_rim": int(n_rim)},
        }
        (tmp / "phantom.json").write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
        description = {
            "Name": f"rimclf phantom cohort (seed {seed}, {difficulty})",
            "BIDSVersion": "1.9.0",
            "DatasetType": "raw",
            "GeneratedBy": [{"Name": "rimclf", "Version": __version__}],
        }
        (tmp / "dataset_description.json").write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
    logger.debug("phantom cohort: %d subjects, %d lesions, %d rim+ in %s", n_subjects, n_lesions, n_rim, out)
    return out


def _check_parameters(n_subjects, difficulty, shape, n_sites, rim_prevalence, lesions_per_subject) -> dict:
    check_int(n_subjects, "n_subjects", min=1)
    check_choice(difficulty, "difficulty", tuple(DIFFICULTIES))
    shape = DEFAULT_SHAPE if shape is None else shape
    if len(tuple(shape)) != 3 or not all(is_int(n) and n >= 24 for n in shape):
        raise ParameterError(f"shape={shape!r} is not valid; it must be 3 integers of at least 24 voxels")
    check_int(n_sites, "n_sites", min=1, max=len(SITES))
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


def _write_subject(root: str, label: str, index: int, seed: int, settings: dict) -> dict:
    """Render subject ``index`` and write its three NIfTI files; return its table rows."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))
    site = SITES[index % settings["n_sites"]]
    fov_mm = np.asarray(settings["shape"], dtype=float) * np.asarray(REFERENCE_VOXEL_MM)
    low, high = settings["lesions"]
    n_lesions = int(rng.integers(low, high + 1))
    images = render_subject(rng, site, fov_mm, DIFFICULTIES[settings["difficulty"]], n_lesions, settings["rim_prevalence"])
    anat = Path(root) / f"sub-{label}" / "anat"
    save_nifti(anat / f"sub-{label}_Chimap.nii.gz", images.qsm, images.qsm_affine)
    save_nifti(anat / f"sub-{label}_FLAIR.nii.gz", images.flair, images.flair_affine)
    save_nifti(anat / f"sub-{label}_desc-lesions_mask.nii.gz", images.labels, images.qsm_affine)
    return {
        "participant": {"participant_id": f"sub-{label}", "site": site.name, "age": round(images.age), "sex": images.sex},
        "lesions": [{"participant_id": f"sub-{label}", **row} for row in images.lesions],
    }


def _write_tables(root: Path, results: list[dict]) -> None:
    def tsv(name: str, columns, rows) -> None:
        lines = ["\t".join(columns)] + ["\t".join(str(row[c]) for c in columns) for row in rows]
        (root / name).write_text("\n".join(lines) + "\n", encoding="utf-8")

    tsv("participants.tsv", ("participant_id", "site", "age", "sex"), [r["participant"] for r in results])
    lesions = [row for r in results for row in r["lesions"]]
    tsv("rims.tsv", ("participant_id", "lesion_id", "rim"), lesions)
    tsv("phantom_lesions.tsv", LESION_COLUMNS, lesions)
