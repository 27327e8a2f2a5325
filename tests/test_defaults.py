"""One table of choices and defaults: the library, the command line and the demo read rimclf.defaults."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from rimclf import defaults
from rimclf.cli import build_parser
from rimclf.defaults import DEFAULT_MODEL


def subparser(name: str):
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return action.choices[name]


def options(name: str) -> dict:
    """dest -> argparse action of a subcommand (the documented ones: hidden aliases left out)."""
    return {action.dest: action for action in subparser(name)._actions if action.help != argparse.SUPPRESS}


#: CLI dest -> (ModelConfig field, choices in rimclf.defaults or None)
MODEL_OPTIONS = {
    "depth": ("depth", defaults.DEPTHS),
    "width": ("width", None),
    "max_epochs": ("max_epochs", None),
    "batch_size": ("batch_size", None),
    "lr": ("lr", None),
    "imbalance": ("imbalance", defaults.IMBALANCE_CHOICES),
    "fusion": ("fusion", defaults.FUSIONS),
    "radiomics_params": ("radiomics_params", None),
    "region": ("region", defaults.REGIONS),
    "shell_mm": ("shell_mm", None),
    "patch_size_mm": ("patch_size_mm", None),
    "patch_shape": ("patch_shape", None),
    "normalize": ("normalize", defaults.NORMALIZATIONS),
    "feature_set": ("feature_set", defaults.FEATURE_SETS),
    "branches": ("branches", defaults.BRANCHES),
    "augment": ("augment", defaults.AUGMENTATIONS),
    "target_specificity": ("target_specificity", None),
    "threshold_cv": ("threshold_cv", None),
}
FEATURE_OPTIONS = ("feature_set", "radiomics_params", "region", "shell_mm", "patch_size_mm", "patch_shape", "normalize")


@pytest.mark.parametrize("dest", sorted(MODEL_OPTIONS))
def test_train_options_are_the_default_model(dest: str) -> None:
    field, choices = MODEL_OPTIONS[dest]
    action = options("train")[dest]
    assert action.default == getattr(DEFAULT_MODEL, field)
    assert (tuple(action.choices) if action.choices else None) == choices


@pytest.mark.parametrize("command", ["extract", "tune"])
def test_feature_options_of_other_commands_match_train(command: str) -> None:
    train, other = options("train"), options(command)
    for dest in FEATURE_OPTIONS:
        assert other[dest].default == train[dest].default
        assert other[dest].choices == train[dest].choices


@pytest.mark.parametrize("command", ["train", "demo"])
def test_train_and_demo_share_the_default_model(command: str) -> None:
    """``rimclf train`` and ``rimclf demo`` parse every model option to the same DEFAULT_MODEL."""
    from rimclf.cli._options import model_config

    args = build_parser().parse_args(["demo"] if command == "demo" else ["train", "cohort", "-o", "model"])
    assert model_config(args) == DEFAULT_MODEL
    for dest, (field, choices) in MODEL_OPTIONS.items():
        action = options(command)[dest]
        assert action.default == getattr(DEFAULT_MODEL, field) or list(action.default) == list(getattr(DEFAULT_MODEL, field))


def test_the_benchmark_reference_is_the_default_model() -> None:
    from rimclf.benchmark import ABLATION_METHODS, ABLATION_REFERENCE, BenchmarkSettings

    reference = ABLATION_METHODS[ABLATION_REFERENCE]
    config = reference.config(BenchmarkSettings())
    assert dataclasses.replace(config, shell_mm=DEFAULT_MODEL.shell_mm) == DEFAULT_MODEL
    assert reference.features == DEFAULT_MODEL.feature_set


@pytest.mark.parametrize("command", ["train", "predict", "extract", "tune", "benchmark", "cv"])
def test_cohort_options(command: str) -> None:
    found = options(command)
    assert found["min_voxels"].default == defaults.MIN_VOXELS
    assert found["qsm_unit"].default == defaults.QSM_UNIT and tuple(found["qsm_unit"].choices) == defaults.QSM_UNIT_CHOICES
    assert defaults.QSM_UNIT == "auto"
    from rimclf.cohort import CohortOptions

    # one group builds CohortOptions on every command that reads a cohort: each field is an option
    # whose default is the field's (require_flair follows the model, not an option)
    for field in dataclasses.fields(CohortOptions):
        if field.name != "require_flair":
            default = found[field.name].default  # None stands for "none given" (an empty tuple)
            assert (() if default is None and field.default == () else default) == field.default, field.name
    if "connectivity" in found:
        assert found["connectivity"].default == defaults.CONNECTIVITY
        assert tuple(found["connectivity"].choices) == defaults.CONNECTIVITIES


def test_other_command_choices() -> None:
    from rimclf.phantom._config import DIFFICULTIES
    from rimclf.tuning import MODELS, SPACES

    assert tuple(options("phantom")["difficulty"].choices) == defaults.DIFFICULTIES == tuple(DIFFICULTIES)
    tune = options("tune")["model"]
    assert tuple(tune.choices) == defaults.TUNING_MODELS == MODELS == tuple(SPACES)
    assert tune.type("network") == "qsmrimnet"  # the old name still works on the command line


def test_library_defaults_are_the_default_model() -> None:
    from rimclf import PatchExtractor, QSMRimNetClassifier, RadiomicsExtractor, RimModel
    from rimclf.nn import QSMRimNet

    patches = PatchExtractor().get_params()
    assert (patches["size_mm"], patches["shape"]) == (DEFAULT_MODEL.patch_size_mm, DEFAULT_MODEL.patch_shape)
    assert (patches["channels"], patches["normalize"]) == (DEFAULT_MODEL.channels, DEFAULT_MODEL.normalize)
    radiomics = RadiomicsExtractor().get_params()
    assert (radiomics["params"], radiomics["region"], radiomics["shell_mm"]) == (
        DEFAULT_MODEL.radiomics_params, DEFAULT_MODEL.region, DEFAULT_MODEL.shell_mm)
    net = QSMRimNetClassifier().get_params()
    for name in ("lr", "max_epochs", "batch_size", "imbalance", "smote_k"):
        assert net[name] == getattr(DEFAULT_MODEL, name)
    module = QSMRimNet(n_radiomics=4)
    assert (module.branches, module.fusion, module.feature_dim) == (
        DEFAULT_MODEL.branches, DEFAULT_MODEL.fusion, 8 * DEFAULT_MODEL.width)
    model = RimModel().get_params()
    assert (model["target_specificity"], model["threshold_cv"]) == (
        DEFAULT_MODEL.target_specificity, DEFAULT_MODEL.threshold_cv)


def test_factories_follow_the_configuration() -> None:
    from rimclf.classifier import make_classifier
    from rimclf.features import make_featurizer

    config = dataclasses.replace(
        DEFAULT_MODEL, feature_set="rim+radiomics", region="both", patch_shape=12, depth=18, fusion="concat",
        branches="both", augment="flips",
    )
    extractors = make_featurizer(config).extractors()
    assert sorted(extractors) == ["patches", "radiomics", "rim"]
    assert extractors["radiomics"].region == "both" and extractors["patches"].shape == 12
    assert sorted(make_featurizer(config, features=False).extractors()) == ["patches"]
    rim_only = dataclasses.replace(config, feature_set="rim", branches="radiomics")
    assert sorted(make_featurizer(rim_only).extractors()) == ["rim"]  # no CNN branch: no patches
    params = make_classifier(config, random_state=3).get_params()
    assert (params["module__depth"], params["module__fusion"], params["random_state"]) == (18, "concat", 3)
    assert params["module__augment"] == "flips"


def test_choice_tables_agree_with_the_code_that_uses_them() -> None:
    from rimclf.baselines import SAMPLERS
    from rimclf.classifier import IMBALANCE_CHOICES
    from rimclf.classifier.inputs import KEYS_FOR_BRANCHES
    from rimclf.nn import BLOCKS_PER_STAGE, BRANCHES, FUSIONS
    from rimclf.threshold import THRESHOLD_METHODS

    assert tuple(BLOCKS_PER_STAGE) == defaults.DEPTHS
    assert tuple(KEYS_FOR_BRANCHES) == BRANCHES == defaults.BRANCHES
    assert FUSIONS == defaults.FUSIONS and IMBALANCE_CHOICES == defaults.IMBALANCE_CHOICES
    assert SAMPLERS == defaults.SAMPLERS and THRESHOLD_METHODS == defaults.THRESHOLD_METHODS
