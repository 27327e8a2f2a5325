"""One table of choices and defaults: the library, the command line and the demo read rimclf.defaults."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io

import pytest

from rimclf import defaults
from rimclf.cli import build_parser
from rimclf.defaults import DEFAULT_MODEL
from rimclf.errors import ParameterError
from rimclf.feature_registry import feature_sets, format_feature_set, parse_feature_set


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
    "branches": ("branches", defaults.BRANCHES),
    "augment": ("augment", defaults.AUGMENTATIONS),
    "image": ("image", defaults.IMAGE_INPUTS),
    "image_weights": ("image_weights", defaults.IMAGE_WEIGHTS),
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


@pytest.mark.slow
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
    assert reference.features == format_feature_set(DEFAULT_MODEL.feature_set)


def test_feature_set_option_is_the_registry() -> None:
    action = options("train")["feature_set"]
    assert action.default == format_feature_set(DEFAULT_MODEL.feature_set) == "rim+rim_fit"
    assert list(action.choices) == ["rim", "rim_fit", "radiomics", "rim+rim_fit", "rim+radiomics", "rim_fit+radiomics",
                                    "rim+rim_fit+radiomics"]
    assert [parse_feature_set(choice) for choice in action.choices] == list(feature_sets())


def test_estimators_without_arguments_are_the_default_model() -> None:
    """LesionFeaturizer(), QSMRimNetClassifier() and RimModel() build DEFAULT_MODEL, and so does a bare Pipeline."""
    import inspect

    from sklearn.pipeline import Pipeline

    from rimclf import RimModel
    from rimclf.classifier import QSMRimNetClassifier, make_classifier
    from rimclf.features import LesionFeaturizer, make_featurizer
    from rimclf.nn import QSMRimNet

    def features(featurizer) -> dict:
        return {name: extractor.cache_key() for name, extractor in featurizer.extractors().items()}

    def network(net) -> tuple:
        net = net.set_params(module__n_tabular=20, module__in_channels=4).initialize()
        training = {name: getattr(net, name) for name in ("max_epochs", "lr", "batch_size", "imbalance", "smote_k")}
        return repr(net.module_), training

    default_features = features(make_featurizer(DEFAULT_MODEL))
    assert list(default_features) == list(DEFAULT_MODEL.feature_set)  # no patches: the default network has no CNN
    assert features(LesionFeaturizer()) == default_features
    module_defaults = inspect.signature(QSMRimNet).parameters
    for field in ("depth", "width", "branches", "fusion", "augment", "smote_k"):
        assert module_defaults[field].default == getattr(DEFAULT_MODEL, field), field
    assert network(QSMRimNetClassifier()) == network(make_classifier(DEFAULT_MODEL))
    assert network(QSMRimNetClassifier())[1] == {
        "max_epochs": DEFAULT_MODEL.max_epochs, "lr": DEFAULT_MODEL.lr, "batch_size": DEFAULT_MODEL.batch_size,
        "imbalance": DEFAULT_MODEL.imbalance, "smote_k": DEFAULT_MODEL.smote_k,
    }
    pipeline = Pipeline([("features", LesionFeaturizer()), ("net", QSMRimNetClassifier())])
    assert features(pipeline[0]) == default_features and network(pipeline[1]) == network(make_classifier())
    model = RimModel()
    assert features(model._featurizer()) == default_features
    assert network(model._classifier()) == network(make_classifier())
    assert (model.target_specificity, model.threshold_cv) == (DEFAULT_MODEL.target_specificity, DEFAULT_MODEL.threshold_cv)


def test_one_threshold_the_classifier_s_own_is_refused() -> None:
    import pandas as pd

    from rimclf import RimModel
    from rimclf.classifier import make_classifier

    model = RimModel().set_params(classifier=make_classifier()).set_params(classifier__threshold=0.3)
    with pytest.raises(ParameterError, match=r"classifier__threshold=0.3 is not used.*RimModel\(threshold=...\)"):
        model.fit(pd.DataFrame({"participant_id": ["01"], "lesion_id": [1]}))


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
    from rimclf.phantom._config import DIFFICULTY_PRESETS
    from rimclf.tuning import MODELS, SPACES

    assert tuple(options("phantom")["difficulty"].choices) == defaults.DIFFICULTIES == tuple(DIFFICULTY_PRESETS)
    tune = options("tune")["model"]
    assert tuple(tune.choices) == defaults.TUNING_MODELS == MODELS == tuple(SPACES)
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()):  # no old names kept
        build_parser().parse_args(["tune", "COHORT", "-o", "OUT", "--model", "network"])


def test_library_defaults_are_the_default_model() -> None:
    from rimclf import QSMRimNetClassifier, RimModel
    from rimclf.feature_registry import FEATURES
    from rimclf.features.featurizer import extractor_class
    from rimclf.nn import QSMRimNet

    for feature in FEATURES.values():  # every extractor's defaults are the ModelConfig fields its entry names
        params = extractor_class(feature)().get_params()
        assert {p: params[p] for p in feature.config} == {p: getattr(DEFAULT_MODEL, f) for p, f in feature.config.items()}
    net = QSMRimNetClassifier().get_params()
    for name in ("lr", "max_epochs", "batch_size", "imbalance", "smote_k"):
        assert net[name] == getattr(DEFAULT_MODEL, name)
    module = QSMRimNet(n_tabular=4)
    assert (module.branches, module.fusion, module.feature_dim) == (
        DEFAULT_MODEL.branches, DEFAULT_MODEL.fusion, 8 * DEFAULT_MODEL.width)
    model = RimModel().get_params()
    assert (model["target_specificity"], model["threshold_cv"]) == (
        DEFAULT_MODEL.target_specificity, DEFAULT_MODEL.threshold_cv)


def test_factories_follow_the_configuration() -> None:
    from rimclf.classifier import make_classifier
    from rimclf.features import make_featurizer

    config = dataclasses.replace(
        DEFAULT_MODEL, feature_set=("rim", "radiomics"), region="both", patch_shape=12, depth=18, fusion="concat",
        branches="both", augment="flips",
    )
    extractors = make_featurizer(config).extractors()
    assert sorted(extractors) == ["patches", "radiomics", "rim"]
    assert extractors["radiomics"].region == "both" and extractors["patches"].shape == 12
    assert sorted(make_featurizer(config, features=False).extractors()) == ["patches"]
    rim_only = dataclasses.replace(config, feature_set=("rim",), branches="tabular")
    assert sorted(make_featurizer(rim_only).extractors()) == ["rim"]  # no CNN branch: no patches
    params = make_classifier(config, random_state=3).get_params()
    assert (params["module__depth"], params["module__fusion"], params["random_state"]) == (18, "concat", 3)
    assert params["module__augment"] == "flips"


def test_choice_tables_agree_with_the_code_that_uses_them() -> None:
    from rimclf.baselines import SAMPLERS
    from rimclf.classifier import IMBALANCE_CHOICES
    from rimclf.nn import BLOCKS_PER_STAGE, BRANCHES, FUSIONS
    from rimclf.threshold import THRESHOLD_METHODS

    assert tuple(BLOCKS_PER_STAGE) == defaults.DEPTHS
    assert BRANCHES == defaults.BRANCHES
    assert FUSIONS == defaults.FUSIONS and IMBALANCE_CHOICES == defaults.IMBALANCE_CHOICES
    assert SAMPLERS == defaults.SAMPLERS and THRESHOLD_METHODS == defaults.THRESHOLD_METHODS
