"""A tiny phantom cohort and a tiny trained RimModel, built once per test session.

Six 40x48x28 phantom subjects with 4-8 lesions each and ~30 % rim+; rim-profile features and
radiomics without wavelets (first-order and two shape features) in the MLP branch, 8^3 patches
of 16 mm in a width-4 ResNet-10 (both branches, so that every part of a model file is exercised),
trained for 2 epochs, threshold from a 2-fold subject-grouped CV.
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path

import pandas as pd

#: pyradiomics settings for tests: no wavelets, few features, fast
RADIOMICS_PARAMS = {
    "imageType": {"Original": {}},
    "featureClass": {"firstorder": None, "shape": ["VoxelVolume", "Sphericity"]},
    "setting": {"binWidth": 25},
}
RADIOMICS_YAML = """imageType: {Original: {}}
featureClass: {firstorder: , shape: [VoxelVolume, Sphericity]}
setting: {binWidth: 25}
"""
PHANTOM_OPTIONS = {"shape": (40, 48, 28), "lesions_per_subject": (4, 8), "rim_prevalence": 0.3}
#: ``rimclf train`` options giving the same tiny model as :func:`tiny_estimators`
TRAIN_ARGS = ["--feature-set", "rim+radiomics", "--branches", "both", "--patch-shape", "8", "--patch-size-mm", "16",
              "--width", "4", "--epochs", "2", "--batch-size", "16", "--threshold-cv", "2", "--seed", "0", "--quiet"]


def tiny_config():
    """The :class:`~rimclf.defaults.ModelConfig` that ``rimclf train ... TRAIN_ARGS`` trains."""
    from dataclasses import replace

    from rimclf.defaults import DEFAULT_MODEL

    return replace(DEFAULT_MODEL, feature_set=("rim", "radiomics"), branches="both", radiomics_params=RADIOMICS_PARAMS,
                   patch_shape=8, patch_size_mm=16.0, width=4, max_epochs=2, batch_size=16, threshold_cv=2)


@lru_cache(maxsize=None)
def _session_folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="rimclf-tests-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


@lru_cache(maxsize=None)
def tiny_cohort() -> Path:
    """Six labelled phantom subjects (both classes present)."""
    from rimclf.phantom import make_phantom_cohort

    return make_phantom_cohort(_session_folder() / "cohort", n_subjects=6, random_state=0, **PHANTOM_OPTIONS)


def tiny_table() -> pd.DataFrame:
    from rimclf import load_cohort

    return load_cohort(tiny_cohort())


def tiny_estimators(**classifier_params):
    """(featurizer, classifier) of the tiny model."""
    from rimclf.classifier import make_classifier
    from rimclf.features import make_featurizer

    featurizer = make_featurizer(tiny_config(), progress=False)
    return featurizer, make_classifier(tiny_config(), **{"random_state": 0, **classifier_params})


@lru_cache(maxsize=None)
def tiny_model():
    """The tiny RimModel fitted on :func:`tiny_table` (shared: do not modify it)."""
    from rimclf.errors import DataWarning
    from rimclf import RimModel

    featurizer, classifier = tiny_estimators()
    with warnings.catch_warnings(), torch_threads(1):  # a 2-epoch network may reach no threshold with specificity 0.9
        warnings.simplefilter("ignore", DataWarning)
        return RimModel(featurizer, classifier, threshold_cv=2, random_state=0).fit(tiny_table())


@contextlib.contextmanager
def torch_threads(n_threads: int):
    """Train at ``n_threads`` torch threads (restored after). Models compared across test modules are
    trained at one thread count, whichever module builds them first: torch sums in another order at
    another count, and a tiny network's probabilities then move by about 1e-5."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@lru_cache(maxsize=None)
def tiny_model_dir() -> Path:
    """:func:`tiny_model` saved (shared: copy it before changing files)."""
    from rimclf import save_model

    return save_model(tiny_model(), _session_folder() / "model")


def older_model_dir(folder: Path, version: int) -> dict:
    """Turn the model directory ``folder`` (saved now) into one of format ``version`` (2-7), as an
    older rimclf wrote it: no logistic blend before version 8, the MLP input called "radiomics" (``module__branches``,
    ``radiomics_encoder.*`` weights), no ``settings_sha256`` before version 4, no ``kind`` before 3.
    Returns the settings written."""
    import json

    import torch

    from rimclf._model_checks import settings_digest
    from rimclf._records import file_sha256

    settings = json.loads((folder / "settings.json").read_text())
    del settings["settings_sha256"]
    tensors = torch.load(folder / "weights.pt", weights_only=True)
    new, old = "module.tabular_encoder.", "module.radiomics_encoder."
    if version < 5:  # version 5 renamed the MLP's input "tabular"
        tensors = {(old + key[len(new):] if key.startswith(new) else key): value for key, value in tensors.items()}
    if version < 8:  # version 8 added the logistic blend: an older file holds the network alone
        tensors = {key: value for key, value in tensors.items() if not key.startswith("blend_") and ".blend_" not in key}
    torch.save(tensors, folder / "weights.pt")
    settings["weights"]["sha256"] = file_sha256(folder / "weights.pt")
    params = settings["classifier"]["params"]
    if version < 5 and params.get("module__branches") == "tabular":
        params["module__branches"] = "radiomics"
    if version < 8:
        params.pop("blend", None)
    settings["format_version"] = version
    if version < 7:  # version 7 added the fold ensemble
        settings.pop("ensemble", None)
        settings["model"].pop("ensemble", None)
    if version < 6 and "calibration" in settings:  # version 6 added the calibration and these model keys
        del settings["calibration"]
        for key in ("operating_point", "target_sensitivity", "calibration"):
            settings["model"].pop(key, None)
    if version < 3:
        del settings["kind"]
    if version >= 4:
        settings["settings_sha256"] = settings_digest(settings)
    (folder / "settings.json").write_text(json.dumps(settings))
    return settings


def network_alone(classifier):
    """A copy of a fitted classifier without its logistic blend: what a file written before the
    blend (format version < 8) holds of it."""
    import copy

    twin = copy.deepcopy(classifier)
    twin.blend, twin.blend_coef_, twin.blend_intercept_ = "none", None, None
    return twin


def read_settings(folder: Path) -> dict:
    """A model directory's settings.json as a dict."""
    import json

    return json.loads((folder / "settings.json").read_text())


def write_settings(folder: Path, settings: dict, *, reseal: bool = True) -> None:
    """Write ``settings``; ``reseal`` records their new SHA-256 (as someone who edits the file
    knowingly can) on files of the current format, so that the checks behind the digest are what
    a test sees."""
    import json

    from rimclf._model_checks import settings_digest
    from rimclf.model_files import FORMAT_VERSION

    if reseal and settings.get("format_version") == FORMAT_VERSION:
        settings = {**settings, "settings_sha256": settings_digest(settings)}
    (folder / "settings.json").write_text(json.dumps(settings))
