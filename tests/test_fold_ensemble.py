"""The fold ensemble of RimModel: the threshold-CV fold models and the final model, averaged."""

from __future__ import annotations

import shutil
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from rimclf.errors import DataWarning, ModelFileError, ParameterError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@lru_cache(maxsize=None)
def _ensemble_model():
    from rimclf import RimModel
    from tests.model_builders import tiny_estimators, tiny_table

    featurizer, classifier = tiny_estimators()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return RimModel(featurizer, classifier, threshold_cv=2, random_state=0, ensemble=True).fit(tiny_table())


@pytest.mark.slow
def test_the_ensemble_predicts_the_calibrated_mean_of_its_models() -> None:
    from tests.model_builders import tiny_model, tiny_table

    model, table = _ensemble_model(), tiny_table()
    assert len(model.ensemble_) == 2 and model.calibration_ is not None
    features = model.transform(table)
    raw = np.mean([net.predict_proba(features)[:, 1] for net in (model.classifier_, *model.ensemble_)], axis=0)
    np.testing.assert_allclose(model.predict_proba(table)[:, 1], model.calibration_.apply(raw), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(model.predict(table), (model.predict_proba(table)[:, 1] >= model.threshold_).astype(int))
    # the same fits as the single model: only the prediction differs
    single = tiny_model()
    assert model.threshold_ == single.threshold_ and model.calibration_ == single.calibration_
    assert not np.allclose(model.predict_proba(table), single.predict_proba(table))
    assert single.ensemble_ == []


@pytest.mark.slow
def test_the_ensemble_survives_a_save_and_load(tmp_path: Path) -> None:
    from rimclf import load_model, save_model
    from tests.model_builders import read_settings, tiny_table, write_settings

    folder = save_model(_ensemble_model(), tmp_path / "model")
    settings = read_settings(folder)
    assert settings["model"]["ensemble"] is True and len(settings["ensemble"]) == 2
    loaded = load_model(folder)
    assert loaded.ensemble and len(loaded.ensemble_) == 2
    np.testing.assert_allclose(loaded.predict_proba(tiny_table()), _ensemble_model().predict_proba(tiny_table()),
                               rtol=1e-5, atol=1e-6)
    # a member missing from the settings (its tensors left in weights.pt) is refused
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    write_settings(broken, {**settings, "ensemble": settings["ensemble"][:1]})
    with pytest.raises(ModelFileError, match="one member per threshold-CV fold"):
        load_model(broken)
    write_settings(broken, {**settings, "model": {**settings["model"], "ensemble": False}})
    with pytest.raises(ModelFileError, match="ensemble must be null"):
        load_model(broken)


@pytest.mark.slow
def test_a_model_without_an_ensemble_saves_none(tmp_path: Path) -> None:
    from tests.model_builders import read_settings, tiny_model_dir

    settings = read_settings(tiny_model_dir())
    assert settings["ensemble"] is None and settings["model"]["ensemble"] is False


@pytest.mark.slow
@pytest.mark.parametrize("params", [{"threshold_cv": 0}, {"threshold": 0.3}])
def test_the_ensemble_needs_the_threshold_cv(params: dict) -> None:
    from rimclf import RimModel
    from tests.model_builders import tiny_table

    with pytest.raises(ParameterError, match="ensemble=True .* threshold_cv >= 2"):
        RimModel(ensemble=True, **params).fit(tiny_table())


def test_train_refuses_an_ensemble_without_the_threshold_cv_before_reading(tmp_path: Path, capsys) -> None:
    from rimclf.cli import main

    missing = tmp_path / "no-such-cohort"  # never read: the options are refused first
    assert main(["train", str(missing), "-o", str(tmp_path / "model"), "--ensemble", "--threshold-cv", "0"]) == 2
    assert "ensemble=True" in capsys.readouterr().err and not (tmp_path / "model").exists()
