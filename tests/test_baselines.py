"""Tests for rimclf.baselines: factory pipelines, SafeSMOTE, SelectFeatures and SliceDictSMOTE."""

from __future__ import annotations

import pickle
from collections.abc import Mapping

import numpy as np
import pytest
from imblearn.over_sampling import SMOTE
from imblearn.pipeline import Pipeline as ImbPipeline
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict, cross_val_score
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import Pipeline as SkPipeline
from skorch.helper import SliceDict
from threadpoolctl import threadpool_limits

from rimclf.baselines import (
    SAMPLERS,
    SafeSMOTE,
    SelectFeatures,
    SliceDictSMOTE,
    make_gradient_boosting,
    make_logistic_regression,
    make_random_forest,
)
from rimclf.errors import CohortError, DataWarning, ParameterError
from rimclf.metrics import SCORERS

# fast settings: the defaults (500 trees) are for real use
FACTORIES = {
    "random_forest": (make_random_forest, {"n_estimators": 15}),
    "logistic_regression": (make_logistic_regression, {}),
    "gradient_boosting": (make_gradient_boosting, {"max_iter": 15}),
}


@pytest.fixture(autouse=True)
def single_openmp_thread():
    """Tiny gradient-boosting fits crawl when OpenMP threads fight over a busy 2-core machine."""
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def make_radiomics(n_subjects=30, n_per_subject=8, prevalence=0.06, seed=0):
    """Radiomics-like matrix: mixed scales, a few NaN, rim+ shifted on two features."""
    rng = np.random.default_rng(seed)
    groups = np.repeat([f"{i:03d}" for i in range(n_subjects)], n_per_subject)
    y = (rng.random(groups.size) < prevalence).astype(int)
    y[: 3 * n_per_subject : n_per_subject] = 1  # a few subjects surely hold rim+ lesions
    scales = np.array([1.0, 1e3, 0.01, 50.0, 1.0, 1.0])
    X = rng.normal(size=(groups.size, scales.size)) * scales
    X[:, 0] += 2.5 * y
    X[:, 3] += 100.0 * y
    X[rng.random(X.shape) < 0.02] = np.nan
    return X, y, groups


def make_slicedict(n=60, n_positive=8, seed=0):
    """SliceDict with patches independent of radiomics, so a shared λ is a real constraint."""
    rng = np.random.default_rng(seed)
    y = np.zeros(n, dtype=np.int64)
    y[rng.choice(n, n_positive, replace=False)] = 1
    X = SliceDict(
        patches=rng.normal(size=(n, 2, 3, 3, 3)).astype(np.float32),
        radiomics=(rng.normal(size=(n, 5)) * [1, 10, 100, 1, 1]).astype(np.float32),
    )
    return X, y


class RecordingClassifier(ClassifierMixin, BaseEstimator):
    """Records what reaches it; scores lesions by their first radiomics feature."""

    calls: list = []

    def fit(self, X, y):
        RecordingClassifier.calls.append(("fit", X, np.asarray(y)))
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X):
        RecordingClassifier.calls.append(("predict_proba", X, None))
        features = X["radiomics"] if isinstance(X, Mapping) else X
        probability = 1.0 / (1.0 + np.exp(-np.asarray(features, dtype=float)[:, 0]))
        return np.column_stack([1.0 - probability, probability])

    def predict(self, X):
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


@pytest.fixture
def recorder():
    RecordingClassifier.calls = []
    yield RecordingClassifier
    RecordingClassifier.calls = []


class ToyFeaturizer(TransformerMixin, BaseEstimator):
    """Stands in for LesionFeaturizer: a matrix in, SliceDict(patches, radiomics) out."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        patches = np.repeat(X[:, None, :1, None, None], 2, axis=1).astype(np.float32)
        return SliceDict(patches=patches, radiomics=X.astype(np.float32))


# --------------------------------------------------------------------------- factories
@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_factories_in_grouped_cross_validation(name, sampler):
    factory, fast = FACTORIES[name]
    X, y, groups = make_radiomics()
    pipeline = factory(sampler, random_state=0, **fast)
    cv = StratifiedGroupKFold(n_splits=3, shuffle=True, random_state=0)
    scores = cross_val_score(pipeline, X, y, groups=groups, cv=cv, scoring=SCORERS["roc_auc"])
    assert scores.shape == (3,) and np.all(np.isfinite(scores))
    assert scores.mean() > 0.7
    fitted = clone(pipeline).fit(X, y)
    probabilities = fitted.predict_proba(X)
    assert probabilities.shape == (y.size, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    assert list(fitted.named_steps) == ["select", "impute", "scale", "sampler", "model"]


def test_random_forest_defaults_follow_aprl():
    pipeline = make_random_forest()
    assert pipeline.named_steps["model"].n_estimators == 500
    assert isinstance(pipeline.named_steps["sampler"], SafeSMOTE)
    assert make_random_forest(n_estimators=50).named_steps["model"].n_estimators == 50
    assert list(make_random_forest(select_radiomics=False).named_steps)[0] == "impute"


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_class_weight_reaches_the_estimator(name):
    factory, fast = FACTORIES[name]
    weighted = factory("class_weight", random_state=0, **fast)
    plain = factory("none", random_state=0, **fast)
    assert weighted.named_steps["model"].class_weight == "balanced"
    assert weighted.named_steps["sampler"] == "passthrough"
    assert plain.named_steps["model"].class_weight is None
    assert factory("smote", **fast).named_steps["model"].class_weight is None
    X, y, _ = make_radiomics()
    # balanced weights raise the predicted rim+ probability of a ~6 % class
    mean_weighted = weighted.fit(X, y).predict_proba(X)[:, 1].mean()
    mean_plain = plain.fit(X, y).predict_proba(X)[:, 1].mean()
    assert mean_weighted > mean_plain + 0.02


@pytest.mark.parametrize("sampler", ["smot", "SMOTE", None, "class-weight"])
def test_bad_sampler_names_value_and_choices(sampler):
    for factory, _ in FACTORIES.values():
        expected = rf"sampler={sampler!r} is not valid; it must be one of .*'smote'"
        with pytest.raises(ParameterError, match=expected):
            factory(sampler)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_pipelines_clone_and_pickle(name):
    factory, fast = FACTORIES[name]
    X, y, _ = make_radiomics()
    pipeline = factory("smote", random_state=0, **fast)
    cloned = clone(pipeline)
    assert cloned.get_params()["model__random_state"] == 0
    assert cloned.set_params(sampler__k_neighbors=3).named_steps["sampler"].k_neighbors == 3
    fitted = pipeline.fit(X, y)
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.predict_proba(X), fitted.predict_proba(X))


def test_smote_in_pipeline_resamples_training_rows_only(recorder):
    X, y, _ = make_radiomics()
    pipeline = make_logistic_regression("smote", random_state=0).set_params(
        model=RecordingClassifier()
    )
    pipeline.fit(X, y)
    pipeline.predict_proba(X[:10])
    (_, X_fit, y_fit), (_, X_predict, _) = recorder.calls
    assert y_fit.sum() == (y_fit == 0).sum() == (y == 0).sum()  # balanced by SMOTE
    assert X_predict.shape == (10, X.shape[1])  # imputed and scaled, not resampled


# --------------------------------------------------------------------------- SafeSMOTE
def test_safe_smote_lowers_k_when_a_fold_has_few_positives():
    X, y, _ = make_radiomics()
    X = np.nan_to_num(X)
    y = np.zeros_like(y)
    y[:3] = 1
    with pytest.raises(ValueError):  # plain SMOTE cannot cope
        SMOTE(k_neighbors=5).fit_resample(X, y)
    with pytest.warns(DataWarning, match="k_neighbors=2 instead of 5"):
        X_res, y_res = SafeSMOTE(k_neighbors=5, random_state=0).fit_resample(X, y)
    assert y_res.sum() == (y == 0).sum() and X_res.shape[0] == y_res.size
    y[1:3] = 0
    with pytest.warns(DataWarning, match="SMOTE skipped"):
        X_res, y_res = SafeSMOTE(random_state=0).fit_resample(X, y)
    np.testing.assert_array_equal(X_res, X)
    np.testing.assert_array_equal(y_res, y)


def test_safe_smote_matches_smote_when_enough_positives():
    X, y, _ = make_radiomics()
    X = np.nan_to_num(X)
    expected = SMOTE(random_state=3).fit_resample(X, y)
    result = SafeSMOTE(random_state=3).fit_resample(X, y)
    np.testing.assert_array_equal(result[0], expected[0])
    np.testing.assert_array_equal(result[1], expected[1])


# --------------------------------------------------------------------------- SelectFeatures
def test_select_features_takes_the_entries_and_passes_arrays_through():
    X, _ = make_slicedict()
    selector = SelectFeatures(feature_set=("radiomics",))
    np.testing.assert_array_equal(selector.fit_transform(X), X["radiomics"])
    matrix = np.ones((3, 2))
    assert selector.transform(matrix) is matrix
    with pytest.raises(ParameterError, match=r"X has no 'rim' entry"):
        SelectFeatures(feature_set=("rim",)).transform(X)
    with pytest.raises(ParameterError, match=r"feature_set=\('qsm',\) is not valid"):
        SelectFeatures(feature_set=("qsm",)).transform(X)
    with pytest.raises(ParameterError, match=r"feature_set=.rim. is not valid; it must be None or a tuple"):
        SelectFeatures(feature_set="rim").transform(X)


@pytest.mark.parametrize("outer", [SkPipeline, ImbPipeline])
def test_baseline_follows_a_featurizer_in_a_pipeline(outer):
    X, y, groups = make_radiomics()
    nested = outer([("features", ToyFeaturizer()), ("model", make_random_forest(n_estimators=15))])
    flat = ImbPipeline([("features", ToyFeaturizer()), *make_random_forest(n_estimators=15).steps])
    cv = StratifiedGroupKFold(n_splits=3)
    for pipeline in (nested, flat):
        scores = cross_val_score(pipeline, X, y, groups=groups, cv=cv, scoring=SCORERS["pauc"])
        assert np.all(np.isfinite(scores))
        assert pipeline.fit(X, y).predict_proba(X).shape == (y.size, 2)


# --------------------------------------------------------------------------- SliceDictSMOTE
def test_slicedict_smote_shapes_labels_and_dtypes():
    X, y = make_slicedict(n=60, n_positive=8)
    sampler = SliceDictSMOTE(k_neighbors=3, random_state=0)
    X_res, y_res = sampler.fit_resample(X, y)
    n_new = 52 - 8
    assert isinstance(X_res, SliceDict) and len(X_res) == 60 + n_new
    assert X_res["patches"].shape == (60 + n_new, 2, 3, 3, 3)
    assert X_res["radiomics"].shape == (60 + n_new, 5)
    assert X_res["patches"].dtype == X_res["radiomics"].dtype == np.float32
    np.testing.assert_array_equal(X_res["patches"][:60], X["patches"])  # originals first
    np.testing.assert_array_equal(X_res["radiomics"][:60], X["radiomics"])
    np.testing.assert_array_equal(y_res, np.r_[y, np.ones(n_new, int)])
    assert y_res.dtype == y.dtype
    assert (sampler.n_synthetic_, sampler.k_neighbors_) == (n_new, 3)
    _, y_half = SliceDictSMOTE(sampling_strategy=0.5, random_state=0).fit_resample(X, y)
    assert y_half.sum() == int(0.5 * 52)
    _, y_float = SliceDictSMOTE(random_state=0).fit_resample(dict(X), y.astype(np.float32))
    assert y_float.dtype == np.float32 and y_float.sum() == 52


def test_slicedict_smote_rows_lie_on_neighbour_segments_with_one_lambda():
    X, y = make_slicedict(n=60, n_positive=8, seed=1)
    k = 2
    X_res, _ = SliceDictSMOTE(k_neighbors=k, random_state=0).fit_resample(X, y)
    positives = np.flatnonzero(y == 1)
    radiomics = X["radiomics"].astype(np.float64)
    patches = X["patches"].reshape(60, -1).astype(np.float64)
    standardized = (radiomics - radiomics.mean(0)) / radiomics.std(0)
    nearest = NearestNeighbors(n_neighbors=k + 1).fit(standardized[positives])
    neighbor_sets = nearest.kneighbors(standardized[positives], return_distance=False)[:, 1:]
    for row in range(60, len(X_res)):
        synthetic_r = X_res["radiomics"][row].astype(np.float64)
        synthetic_p = X_res["patches"][row].reshape(-1).astype(np.float64)
        matches = []
        for i, a in enumerate(positives):
            for b in positives[neighbor_sets[i]]:
                direction = radiomics[b] - radiomics[a]
                gap = (synthetic_r - radiomics[a]) @ direction / (direction @ direction)
                on_r = np.allclose(synthetic_r, radiomics[a] + gap * direction, atol=1e-3)
                same_gap_p = np.allclose(
                    synthetic_p, patches[a] + gap * (patches[b] - patches[a]), atol=1e-4
                )
                if on_r and same_gap_p and -1e-6 <= gap <= 1 + 1e-6:
                    matches.append((a, b))
        assert matches, f"synthetic row {row} is not an interpolation of a rim+ neighbour pair"


def test_slicedict_smote_is_deterministic_under_random_state():
    X, y = make_slicedict()
    first = SliceDictSMOTE(random_state=4).fit_resample(X, y)
    second = SliceDictSMOTE(random_state=4).fit_resample(X, y)
    other = SliceDictSMOTE(random_state=5).fit_resample(X, y)
    for key in ("patches", "radiomics"):
        np.testing.assert_array_equal(first[0][key], second[0][key])
        assert not np.array_equal(first[0][key], other[0][key])


def test_slicedict_smote_few_positives_and_bad_input():
    X, y = make_slicedict(n_positive=3)
    with pytest.warns(DataWarning, match="k_neighbors=2 instead of 5"):
        X_res, _ = SliceDictSMOTE(random_state=0).fit_resample(X, y)
    assert len(X_res) == 2 * 57
    y_one = np.zeros_like(y)
    y_one[0] = 1
    with pytest.warns(DataWarning, match="SMOTE skipped"):
        X_res, y_res = SliceDictSMOTE().fit_resample(X, y_one)
    assert len(X_res) == 60 and np.array_equal(y_res, y_one)
    with pytest.raises(CohortError, match="X must be a SliceDict/dict .* got ndarray"):
        SliceDictSMOTE().fit_resample(X["radiomics"], y)
    with pytest.raises(CohortError, match="X\\['mask'\\] must be floating point"):
        SliceDictSMOTE().fit_resample({**X, "mask": np.zeros((60, 2), dtype=np.int32)}, y)
    with pytest.raises(ParameterError, match="sampling_strategy='minority' is not valid; it must be 'auto' or a number in"):
        SliceDictSMOTE(sampling_strategy="minority").fit_resample(X, y)
    with pytest.raises(ParameterError, match="neighbor_key='qsm' is not a key"):
        SliceDictSMOTE(neighbor_key="qsm").fit_resample(X, y)
    with pytest.raises(CohortError, match=r"y has shape \(59,\) but X holds 60 rows"):
        SliceDictSMOTE().fit_resample(X, y[:-1])
    with pytest.raises(CohortError, match="different numbers of rows"):
        SliceDictSMOTE().fit_resample({"patches": X["patches"], "radiomics": X["radiomics"][:5]}, y)


def test_slicedict_smote_clone_and_pickle():
    sampler = SliceDictSMOTE(k_neighbors=3, sampling_strategy=0.5, random_state=1)
    assert clone(sampler).get_params() == sampler.get_params()
    X, y = make_slicedict()
    restored = pickle.loads(pickle.dumps(sampler))
    np.testing.assert_array_equal(
        restored.fit_resample(X, y)[0]["patches"], sampler.fit_resample(X, y)[0]["patches"]
    )


def test_slicedict_smote_runs_in_fit_only(recorder):
    X, y = make_slicedict()
    pipeline = ImbPipeline(
        [("smote", SliceDictSMOTE(random_state=0)), ("model", RecordingClassifier())]
    )
    pipeline.fit(X, y)
    test_rows = X[np.arange(10, 25)]
    pipeline.predict_proba(test_rows)
    pipeline.predict(test_rows)
    (_, X_fit, y_fit), (_, X_proba, _), (_, X_predict, _) = recorder.calls
    assert len(X_fit) == y_fit.size == 2 * (y == 0).sum() > len(X)
    for seen in (X_proba, X_predict):
        for key in ("patches", "radiomics"):
            np.testing.assert_array_equal(seen[key], test_rows[key])


def test_no_synthetic_row_reaches_a_test_fold(recorder):
    X, y = make_slicedict(n=90, n_positive=12, seed=2)
    groups = np.repeat(np.arange(30), 3)
    X["row_id"] = np.arange(90, dtype=np.float32)[:, None]  # interpolated like any input
    pipeline = ImbPipeline(
        [("smote", SliceDictSMOTE(random_state=0)), ("model", RecordingClassifier())]
    )
    cv = StratifiedGroupKFold(n_splits=3)
    probabilities = cross_val_predict(pipeline, X, y, groups=groups, cv=cv, method="predict_proba")
    assert probabilities.shape == (90, 2)
    fits = [call for call in recorder.calls if call[0] == "fit"]
    predictions = [call for call in recorder.calls if call[0] == "predict_proba"]
    assert len(fits) == len(predictions) == 3
    for (train, test), (_, X_fit, y_fit), (_, X_test, _) in zip(
        cv.split(X, y, groups), fits, predictions
    ):
        np.testing.assert_array_equal(X_test["row_id"][:, 0], test)  # exactly the test rows
        np.testing.assert_array_equal(X_fit["row_id"][: train.size, 0], train)
        synthetic_ids = X_fit["row_id"][train.size :, 0]
        assert synthetic_ids.size > 0 and np.all(y_fit[train.size :] == 1)
        assert not np.isin(synthetic_ids, test).any()


@pytest.mark.slow
def test_slicedict_smote_feeds_the_network_in_grouped_cross_validation():
    from rimclf.classifier import QSMRimNetClassifier

    X, y = make_slicedict(n=60, n_positive=9, seed=3)
    X["patches"] = np.random.default_rng(3).normal(size=(60, 2, 8, 8, 8)).astype(np.float32)
    groups = np.repeat(np.arange(20), 3)
    net = QSMRimNetClassifier(
        imbalance="none", max_epochs=1, batch_size=32, random_state=0, device="cpu",
        module__depth=10, module__width=2,
    )
    pipeline = ImbPipeline([("smote", SliceDictSMOTE(k_neighbors=2, random_state=0)), ("net", net)])
    scores = cross_val_score(
        pipeline, X, y, groups=groups, cv=StratifiedGroupKFold(n_splits=3),
        scoring=SCORERS["pauc"], error_score="raise",
    )
    assert scores.shape == (3,) and np.all((scores >= 0) & (scores <= 1))


# --------------------------------------------------------------------------- feature names
@pytest.mark.slow
def test_fitted_baseline_names_every_importance():
    """``pipe[:-1].get_feature_names_out()`` names the columns the model saw, from the names the
    featurizer's output carries; the sampler passes them through."""
    import warnings

    from rimclf.features import LesionFeaturizer, RadiomicsExtractor, RimProfileExtractor
    from tests.model_builders import RADIOMICS_PARAMS, tiny_table

    featurizer = LesionFeaturizer([("rim", RimProfileExtractor()), ("radiomics", RadiomicsExtractor(params=RADIOMICS_PARAMS))],
                                  progress=False)
    table = tiny_table()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        X = featurizer.fit_transform(table)
        y = table["rim"].to_numpy(dtype=int)
        for feature_set, expected in ((None, featurizer.get_feature_names_out()),
                                      (("radiomics",), RadiomicsExtractor(params=RADIOMICS_PARAMS).get_feature_names_out())):
            pipe = make_random_forest(n_estimators=5, random_state=0, feature_set=feature_set).fit(X[np.arange(len(y))], y)
            names = pipe[:-1].get_feature_names_out()
            assert list(names) == list(expected)
            assert len(names) == pipe[-1].feature_importances_.size

        # in one pipeline with the featurizer, the names come through the steps as well
        full = ImbPipeline([("features", featurizer), *make_logistic_regression(feature_set=("rim",)).steps]).fit(table, y)
    assert list(full[:-1].get_feature_names_out()) == list(RimProfileExtractor().get_feature_names_out())


def test_select_features_names_without_a_featurizer():
    from rimclf.baselines import SelectFeatures

    X, _ = make_slicedict()
    n = X["radiomics"].shape[1]
    selector = SelectFeatures().fit(X)  # a plain SliceDict carries no names
    assert list(selector.get_feature_names_out()) == [f"radiomics_{i}" for i in range(n)]
    given = [f"f{i}" for i in range(n)]
    assert list(selector.get_feature_names_out(given)) == given  # the featurizer's, in a Pipeline
    assert list(SelectFeatures().fit(np.ones((3, 2))).get_feature_names_out()) == ["x0", "x1"]
