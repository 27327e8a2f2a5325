"""Subject groups reach the network's GroupValidSplit: through scikit-learn's CV tools and
Pipelines with metadata routing on and off, and through rimclf's own CV helpers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import sklearn
from skorch.helper import SliceDict
from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from rimclf import RimModel
from rimclf.baselines import make_logistic_regression
from rimclf.classifier import GroupValidSplit, QSMRimNetClassifier
from rimclf.errors import CohortError, DataWarning
from rimclf.metrics import group_fit_params, subject_folds
from rimclf.threshold import out_of_fold_probabilities

N_SUBJECTS, PER_SUBJECT = 12, 8
ROUTING = [pytest.param(False, id="routing-off"), pytest.param(True, id="routing-on")]


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n = N_SUBJECTS * PER_SUBJECT
    groups = np.repeat([f"S{i:02d}" for i in range(N_SUBJECTS)], PER_SUBJECT)
    y = np.zeros(n, dtype=int)
    y[3::PER_SUBJECT] = 1
    X = SliceDict(radiomics=(rng.normal(size=(n, 6)) + y[:, None]).astype(np.float32))
    return X, y, groups


def net(**params) -> QSMRimNetClassifier:
    return QSMRimNetClassifier(**{"module__branches": "tabular", "module__width": 4, "max_epochs": 2,
                                  "batch_size": 16, "random_state": 0, "device": "cpu",
                                  "train_split": GroupValidSplit(3), **params})


def validated_on_subjects(estimator: QSMRimNetClassifier) -> bool:
    """The net held out a validation set (so GroupValidSplit had the groups)."""
    return "valid_loss" in estimator.history[-1]


@pytest.mark.slow
@pytest.mark.parametrize("routing", ROUTING)
def test_cross_validate_delivers_groups(data, routing: bool) -> None:
    X, y, groups = data
    # with routing on, groups go in params only (sklearn refuses groups= then)
    extra = {} if routing else {"groups": groups}
    with sklearn.config_context(enable_metadata_routing=routing):
        result = cross_validate(net(), X, y, cv=StratifiedGroupKFold(3), params={"groups": groups},
                                return_estimator=True, error_score="raise", **extra)
    assert all(validated_on_subjects(estimator) for estimator in result["estimator"])


@pytest.mark.slow
def test_pipeline_delivers_groups_with_routing_on(data) -> None:
    X, y, groups = data
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = Pipeline([("identity", FunctionTransformer()), ("clf", net())]).fit(X, y, groups=groups)
        proba = cross_val_predict(Pipeline([("clf", net())]), X, y, cv=StratifiedGroupKFold(3),
                                  params={"groups": groups}, method="predict_proba")
    assert validated_on_subjects(pipe[-1]) and proba.shape == (len(y), 2)


def test_pipeline_step_parameter_with_routing_off(data) -> None:
    X, y, groups = data
    pipe = Pipeline([("identity", FunctionTransformer()), ("clf", net())]).fit(X, y, clf__groups=groups)
    assert validated_on_subjects(pipe[-1])


@pytest.mark.parametrize("routing", ROUTING)
def test_group_fit_params(data, routing: bool) -> None:
    _, _, groups = data
    with sklearn.config_context(enable_metadata_routing=routing):
        assert group_fit_params(net(), groups)["groups"] is groups  # GroupValidSplit requests them
        assert group_fit_params(net(train_split=None), groups) == {}  # nothing uses them
        assert group_fit_params(make_logistic_regression(), groups) == {}
        assert group_fit_params(object(), groups) == {}
        if routing:  # a Pipeline routes them to a step that uses them
            assert group_fit_params(Pipeline([("clf", net())]), groups)["groups"] is groups
        else:  # without routing a Pipeline.fit takes <step>__groups only
            assert group_fit_params(Pipeline([("clf", net())]), groups) == {}


@pytest.mark.slow
@pytest.mark.parametrize("routing", ROUTING)
def test_threshold_cv_passes_the_training_subjects(data, routing: bool, monkeypatch) -> None:
    X, y, groups = data
    seen = []
    original = GroupValidSplit.__call__

    def record(self, dataset, y=None, groups=None):
        seen.append(None if groups is None else set(groups))
        return original(self, dataset, y, groups)

    monkeypatch.setattr(GroupValidSplit, "__call__", record)
    folds = subject_folds(y, groups, 3, 0)
    with sklearn.config_context(enable_metadata_routing=routing):
        probability = out_of_fold_probabilities(net(), X, y, groups, folds)
    assert np.isfinite(probability).all()
    assert seen == [set(groups[train]) for train, _ in folds]  # each fold's own training subjects


def test_a_fit_without_groups_says_how_to_pass_them(data) -> None:
    X, y, _ = data
    with pytest.raises(CohortError, match="metadata routing"):
        net().fit(X, y)


@pytest.mark.slow
def test_rim_model_gives_the_subjects_to_its_network(tmp_path) -> None:
    from dataclasses import replace

    from rimclf.defaults import DEFAULT_MODEL
    from rimclf.features import make_featurizer
    from tests.model_builders import tiny_table

    featurizer = make_featurizer(replace(DEFAULT_MODEL, feature_set=("rim",), branches="tabular"), progress=False)
    with warnings.catch_warnings():  # a 2-epoch network may reach no threshold with specificity 0.9
        warnings.simplefilter("ignore", DataWarning)
        model = RimModel(featurizer, net(train_split=GroupValidSplit(2)), threshold_cv=2, random_state=0).fit(tiny_table())
    assert validated_on_subjects(model.classifier_)
