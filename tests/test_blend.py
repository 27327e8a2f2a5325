"""The logistic blend: the network's rim+ probability averaged with a logistic regression's."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from skorch.callbacks import EarlyStopping
from skorch.helper import SliceDict
from sklearn.base import clone
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from rimclf import load_model
from rimclf._validation import check_model_config
from rimclf.classifier import GroupValidSplit, QSMRimNetClassifier
from rimclf.defaults import BLEND_LOGISTIC_C, DEFAULT_MODEL
from rimclf.errors import ModelFileError, ParameterError
from tests.model_builders import network_alone, older_model_dir, read_settings, tiny_model, tiny_model_dir, tiny_table

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py

#: the default model's network (MLP on tabular features) at a tiny size
SMALL = {"module__width": 4, "max_epochs": 3, "batch_size": 16, "random_state": 0}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    n = 120
    groups = np.repeat([f"S{i:02d}" for i in range(12)], 10)
    y = (rng.random(n) < 0.2).astype(int)
    tabular = rng.normal(size=(n, 6))
    tabular[y == 1, :2] += 1.2
    tabular[rng.random((n, 6)) < 0.05] = np.nan  # imputed with the training medians, by both models
    return SliceDict(rim=tabular.astype(np.float32)), y, groups


def test_the_blend_is_the_mean_of_the_network_and_scikit_learns_logistic_regression(data) -> None:
    X, y, _ = data
    assert QSMRimNetClassifier().blend == DEFAULT_MODEL.blend == "logistic"
    blended = QSMRimNetClassifier(**SMALL).fit(X, y)
    alone = QSMRimNetClassifier(**SMALL, blend="none").fit(X, y)
    reference = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(),
                              LogisticRegression(C=BLEND_LOGISTIC_C, max_iter=5000)).fit(X["rim"].astype(np.float64), y)
    expected = (alone.predict_proba(X)[:, 1] + reference.predict_proba(X["rim"].astype(np.float64))[:, 1]) / 2
    np.testing.assert_allclose(blended.predict_proba(X)[:, 1], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(blended.predict_proba(X).sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(blended.blend_coef_, reference[-1].coef_.ravel(), rtol=1e-3, atol=1e-4)
    assert alone.blend_coef_ is None and alone.blend_intercept_ is None
    assert clone(blended).get_params()["blend"] == "logistic"


def test_the_blend_predicts_the_internal_validation_split(data) -> None:
    """skorch scores its validation Dataset with predict_proba: the blend reads its tabular rows."""
    X, y, groups = data
    net = QSMRimNetClassifier(**{**SMALL, "max_epochs": 4}, train_split=GroupValidSplit(4),
                              callbacks=[EarlyStopping(patience=1, load_best=True)])
    net.fit(X, y, groups=groups)
    assert all("valid_loss" in entry and "valid_acc" in entry for entry in net.history)
    dataset = net.get_dataset(X)
    np.testing.assert_allclose(net.predict_proba(dataset), net.predict_proba(X), rtol=1e-6)


def test_the_blend_needs_tabular_features() -> None:
    patches = SliceDict(patches=np.zeros((20, 1, 4, 4, 4), np.float32))
    y = np.tile([0, 1], 10)
    with pytest.raises(ParameterError, match="blend='logistic'.*branches='patches'.*blend='none'"):
        QSMRimNetClassifier(**SMALL, module__branches="patches").fit(patches, y)
    with pytest.raises(ParameterError, match="blend='logistic' is not valid with branches='patches'"):
        check_model_config(replace(DEFAULT_MODEL, branches="patches"))
    with pytest.raises(ParameterError, match="blend"):
        QSMRimNetClassifier(**SMALL, blend="mean").fit(patches, y)
    with pytest.raises(ParameterError, match="predict_nonlinearity='auto'"):
        QSMRimNetClassifier(**SMALL, predict_nonlinearity=None).fit({"rim": np.zeros((20, 2), np.float32)}, y)


def test_a_model_file_keeps_the_blend(tmp_path: Path) -> None:
    model = tiny_model()
    assert model.classifier_.blend == "logistic" and model.classifier_.blend_coef_ is not None
    loaded = load_model(tiny_model_dir())
    np.testing.assert_array_equal(loaded.predict_proba(tiny_table()), model.predict_proba(tiny_table()))
    np.testing.assert_array_equal(loaded.classifier_.blend_coef_, model.classifier_.blend_coef_)
    tensors = torch.load(tiny_model_dir() / "weights.pt", weights_only=True)
    assert tensors["blend_coef"].dtype == torch.float64 and tensors["blend_intercept"].shape == (1,)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: t.update(blend_coef=torch.full_like(t["blend_coef"], float("nan"))), "blend_coef must hold .* finite"),
    (lambda t: t.pop("blend_intercept"), "missing tensors|blend_intercept"),
    (lambda t: t.update(blend_coef=torch.zeros(3, dtype=torch.float64)), "blend_coef"),
])
def test_edited_blend_tensors_are_refused(tmp_path: Path, edit, message) -> None:
    import io
    import shutil

    from rimclf._records import file_sha256
    from tests.model_builders import write_settings

    folder = Path(shutil.copytree(tiny_model_dir(), tmp_path / "model"))
    tensors = torch.load(folder / "weights.pt", weights_only=True)
    edit(tensors)
    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    (folder / "weights.pt").write_bytes(buffer.getvalue())
    settings = read_settings(folder)
    settings["weights"]["sha256"] = file_sha256(folder / "weights.pt")
    write_settings(folder, settings)
    with pytest.raises(ModelFileError, match=message):
        load_model(folder)


def test_a_file_written_before_the_blend_loads_as_the_network_alone(tmp_path: Path) -> None:
    import shutil

    folder = Path(shutil.copytree(tiny_model_dir(), tmp_path / "model"))
    settings = older_model_dir(folder, 7)
    assert "blend" not in settings["classifier"]["params"]
    loaded = load_model(folder)
    assert loaded.classifier_.blend == "none" and loaded.classifier_.blend_coef_ is None
    model = tiny_model()
    expected = network_alone(model.classifier_).predict_proba(model.transform(tiny_table()))[:, 1]
    if model.calibration_ is not None:  # the file keeps the calibration fitted with the blend
        expected = model.calibration_.apply(expected)
    np.testing.assert_allclose(loaded.predict_proba(tiny_table())[:, 1], expected, rtol=1e-6)


def test_the_fitted_state_round_trips_through_json(data) -> None:
    X, y, _ = data
    net = QSMRimNetClassifier(**SMALL).fit(X, y)
    state = json.loads(json.dumps(net.fitted_state(json=True)))
    rebuilt = QSMRimNetClassifier.from_fitted_state(state)
    np.testing.assert_array_equal(rebuilt.predict_proba(X), net.predict_proba(X))
    assert isinstance(rebuilt.blend_intercept_, float)
