"""Saving a network on its own: a QSMRimNetClassifier, or a Pipeline of rimclf parts, in the
same safe model files as a RimModel (JSON settings and a tensors-only weights file), and the
network's fitted state as plain JSON."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from imblearn.pipeline import Pipeline as ImbPipeline
from skorch.helper import SliceDict
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline

from rimclf import QSMRimNetClassifier, load_model, save_model
from rimclf._model_checks import settings_digest
from rimclf.baselines import make_logistic_regression, make_random_forest
from rimclf.cli import main
from rimclf.errors import DataWarning, ModelFileError, ParameterError
from rimclf.model_files import FORMAT_VERSION
from tests.model_builders import network_alone, older_model_dir, tiny_cohort, tiny_model, tiny_model_dir, tiny_table

pytestmark = pytest.mark.slow


def read_settings(folder) -> dict:
    return json.loads((folder / "settings.json").read_text())


def write_settings(folder, settings: dict) -> None:
    """Write edited settings with their new SHA-256 (so the checks behind the digest are tested)."""
    if settings.get("format_version") == FORMAT_VERSION:
        settings = {**settings, "settings_sha256": settings_digest(settings)}
    (folder / "settings.json").write_text(json.dumps(settings))


@pytest.fixture(scope="module")
def features():
    return tiny_model().transform(tiny_table())


def small_net(**params) -> QSMRimNetClassifier:
    return QSMRimNetClassifier(**{"module__branches": "tabular", "module__width": 4, "max_epochs": 2,
                                  "batch_size": 16, "random_state": 0, "device": "cpu", **params})


@pytest.fixture(scope="module")
def tabular():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(30, int), np.ones(10, int)]
    X = SliceDict(rim=rng.normal(size=(40, 3)).astype(np.float32) + y[:, None],
                  radiomics=rng.normal(size=(40, 5)).astype(np.float32))
    return X, y


def test_a_network_alone_round_trips_without_pickle(tmp_path, features) -> None:
    net = tiny_model().classifier_
    path = save_model(net, tmp_path / "net")
    assert sorted(p.name for p in path.iterdir()) == ["settings.json", "weights.pt"]
    settings = read_settings(path)
    assert settings["kind"] == "classifier" and settings["format_version"] == FORMAT_VERSION
    assert set(settings) == {"format", "format_version", "kind", "versions", "weights", "classifier", "settings_sha256"}
    tensors = torch.load(path / "weights.pt", weights_only=True)  # tensors only: no pickled objects
    assert all(isinstance(value, torch.Tensor) for value in tensors.values())
    loaded = load_model(path, device="cpu")
    assert type(loaded) is QSMRimNetClassifier
    np.testing.assert_array_equal(loaded.predict_proba(features), net.predict_proba(features))
    assert loaded.get_params()["module__width"] == 4 and loaded.feature_keys_ == ("rim", "radiomics")


@pytest.mark.parametrize("pipeline_class", [Pipeline, ImbPipeline])
def test_a_pipeline_of_featurizer_and_network_round_trips(tmp_path, pipeline_class) -> None:
    model, table = tiny_model(), tiny_table()
    pipe = pipeline_class([("features", model.featurizer_), ("net", model.classifier_)])
    save_model(pipe, tmp_path / "pipe")
    settings = read_settings(tmp_path / "pipe")
    assert settings["kind"] == "pipeline"
    assert settings["pipeline"]["steps"] == [{"name": "features", "kind": "featurizer"}, {"name": "net", "kind": "classifier"}]
    loaded = load_model(tmp_path / "pipe", device="cpu")
    assert type(loaded) is pipeline_class and list(loaded.named_steps) == ["features", "net"]
    np.testing.assert_array_equal(loaded.predict_proba(table), pipe.predict_proba(table))


@pytest.mark.parametrize("factory", [make_random_forest, make_logistic_regression])
def test_baseline_pipelines_are_refused_clearly(tmp_path, tabular, factory) -> None:
    X, y = tabular
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        pipe = factory(random_state=0, n_estimators=5) if factory is make_random_forest else factory(random_state=0)
        pipe.fit(X, y)
    with pytest.raises(ModelFileError, match=r"'select' \(SelectFeatures\).*'model' \((RandomForest|LogisticRegression).*pickle"):
        save_model(pipe, tmp_path / "baseline")
    assert not (tmp_path / "baseline").exists()


def test_unfitted_or_foreign_objects_are_refused(tmp_path) -> None:
    with pytest.raises(ParameterError, match="not fitted"):
        save_model(small_net(), tmp_path / "a")
    with pytest.raises(ParameterError, match="save_model takes .* got dict"):
        save_model({}, tmp_path / "b")
    assert list(tmp_path.iterdir()) == []


def test_files_of_format_version_2_still_load_as_rim_models(tmp_path) -> None:
    import shutil

    folder = shutil.copytree(tiny_model_dir(), tmp_path / "old")
    settings = older_model_dir(folder, 2)  # radiomics_encoder weights, no kind, no settings digest
    loaded = load_model(folder)
    model = tiny_model()  # an old file holds the network without a calibration (format version 6)
    np.testing.assert_array_equal(loaded.predict_proba(tiny_table()), network_alone(model.classifier_).predict_proba(model.transform(tiny_table())))
    settings["kind"] = "classifier"  # a version-2 file cannot claim a kind
    (folder / "settings.json").write_text(json.dumps(settings))
    with pytest.raises(ModelFileError, match="have no 'kind'"):
        load_model(folder)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda s: s.update(kind="pickle"), "kind must be one of"),
    (lambda s: s["pipeline"].update({"class": "os.system"}), "pipeline class must be one of"),
    (lambda s: s["pipeline"]["steps"].reverse(), "pipeline steps must be of the kinds"),
    (lambda s: s["pipeline"]["steps"][0].update(name="a__b"), "step names"),
    (lambda s: s.update(threshold={"value": 0.5, "method": "fixed"}), r"unknown keys \['threshold'\]"),
])
def test_bad_pipeline_settings_are_refused(tmp_path, edit, message) -> None:
    model = tiny_model()
    folder = save_model(Pipeline([("features", model.featurizer_), ("net", model.classifier_)]), tmp_path / "pipe")
    settings = read_settings(folder)
    edit(settings)
    write_settings(folder, settings)
    with pytest.raises(ModelFileError, match=message):
        load_model(folder)


def test_fitted_state_is_json_ready(tabular) -> None:
    X, y = tabular
    net = small_net().fit(X, y)
    text = json.dumps(net.fitted_state(json=True))
    rebuilt = QSMRimNetClassifier.from_fitted_state(json.loads(text))
    np.testing.assert_array_equal(rebuilt.predict_proba(X), net.predict_proba(X))
    with pytest.raises(TypeError):
        json.dumps(net.fitted_state())  # the default keeps tensors and arrays (for model files)


def test_skorch_initialize_before_fit_says_what_is_missing(tabular, tmp_path) -> None:
    X, y = tabular
    with pytest.raises(ParameterError, match=r"module__n_tabular is not given.*rimclf.load_model"):
        small_net().initialize()
    with pytest.raises(ParameterError, match=r"module__in_channels and module__n_tabular are not given"):
        small_net(module__branches="both").initialize()
    fitted = small_net().fit(X, y)
    fitted.save_params(f_params=tmp_path / "params.pt")
    bare = small_net(module__n_tabular=8).initialize()  # skorch's route: the sizes given as module__*
    bare.load_params(f_params=tmp_path / "params.pt")
    for key, value in fitted.module_.state_dict().items():
        torch.testing.assert_close(bare.module_.state_dict()[key], value)
    with pytest.raises(NotFittedError, match="load_params restores the network's weights only.*from_fitted_state"):
        bare.predict_proba(X)


def test_rimclf_predict_refuses_a_network_alone(tmp_path, capsys) -> None:
    save_model(tiny_model().classifier_, tmp_path / "net")
    assert main(["predict", str(tmp_path / "net"), str(tiny_cohort()), "-o", str(tmp_path / "out"), "-q"]) == 2
    assert "holds a QSMRimNetClassifier" in capsys.readouterr().err and not (tmp_path / "out").exists()
