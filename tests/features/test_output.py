"""scikit-learn's output API on the lesion transformers: pandas output where the output is a
table, a clear refusal where it is not, names of every tabular column, and the featurizer's
output carrying those names through row selection."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import sklearn
from skorch.helper import SliceDict

from rimclf.errors import ParameterError
from rimclf.features import (
    LesionFeatures,
    LesionFeaturizer,
    PatchExtractor,
    RadiomicsExtractor,
    RimProfileExtractor,
)

FEW = {"imageType": {"Original": {}}, "featureClass": {"firstorder": ["Mean", "Maximum"]}, "setting": {"binWidth": 25}}


def featurizer(**params) -> LesionFeaturizer:
    features = [("rim", RimProfileExtractor()), ("radiomics", RadiomicsExtractor(params=FEW, region="lesion")),
                ("patches", PatchExtractor(size_mm=8.0, shape=4))]
    return LesionFeaturizer(features, **{"progress": False, **params})


@pytest.fixture
def subset(table: pd.DataFrame) -> pd.DataFrame:
    part = table.iloc[:6]
    part.index = [f"row{i}" for i in range(len(part))]  # the output keeps the table's own index
    return part


@pytest.mark.parametrize("make", [RimProfileExtractor, lambda: RadiomicsExtractor(params=FEW, region="lesion")])
def test_tabular_extractors_give_dataframes(subset: pd.DataFrame, make) -> None:
    plain = make().transform(subset)
    frame = make().set_output(transform="pandas").transform(subset)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == list(make().get_feature_names_out()) and list(frame.index) == list(subset.index)
    np.testing.assert_array_equal(frame.to_numpy(), plain)
    with sklearn.config_context(transform_output="pandas"):
        assert isinstance(make().fit_transform(subset), pd.DataFrame)


@pytest.mark.parametrize("make", [featurizer, lambda: PatchExtractor(size_mm=8.0, shape=4)])
def test_dict_and_patch_outputs_refuse_pandas_clearly(make) -> None:
    transformer = make()
    assert transformer.set_output(transform="default") is transformer and transformer.set_output() is transformer
    for container in ("pandas", "polars"):
        with pytest.raises(ParameterError, match=rf"set_output\(transform='{container}'\) is not supported.*RimProfileExtractor"):
            transformer.set_output(transform=container)


def test_global_pandas_output_leaves_dict_and_patch_outputs_alone(subset: pd.DataFrame) -> None:
    with sklearn.config_context(transform_output="pandas"):
        features = featurizer().fit_transform(subset)
        patches = PatchExtractor(size_mm=8.0, shape=4).fit_transform(subset)
    n_channels = len(PatchExtractor().channels)
    assert isinstance(features, LesionFeatures) and features["patches"].shape == (6, n_channels, 4, 4, 4)
    assert isinstance(patches, np.ndarray) and patches.shape == (6, n_channels, 4, 4, 4)


def test_feature_names_name_every_tabular_column_rim_first(subset: pd.DataFrame) -> None:
    model = featurizer()
    features = model.fit_transform(subset)
    names = model.get_feature_names_out()
    n_rim, n_radiomics = features["rim"].shape[1], features["radiomics"].shape[1]
    assert len(names) == n_rim + n_radiomics
    assert list(names[:n_rim]) == list(RimProfileExtractor().get_feature_names_out())
    assert list(names[n_rim:]) == ["original_firstorder_Mean", "original_firstorder_Maximum"]
    assert {key: list(value) for key, value in features.feature_names.items()} == {
        "rim": list(names[:n_rim]), "radiomics": list(names[n_rim:])}
    n_channels = len(PatchExtractor().channels)
    assert model.get_output_shapes() == {"rim": (n_rim,), "radiomics": (2,), "patches": (n_channels, 4, 4, 4)}
    assert {key: value.shape[1:] for key, value in features.items()} == model.get_output_shapes()


def test_lesion_features_keep_their_names_through_selection_copy_and_pickle() -> None:
    names = {"rim": ["a", "b"], "radiomics": ["c"]}
    X = LesionFeatures(feature_names=names, rim=np.ones((5, 2)), radiomics=np.zeros((5, 1)))
    assert isinstance(X, SliceDict) and len(X) == 5
    for part in (X[np.array([0, 3])], X[1:4], X.copy(), pickle.loads(pickle.dumps(X))):
        assert isinstance(part, LesionFeatures) and list(part.feature_names["rim"]) == ["a", "b"]
    assert X[np.array([0, 3])]["rim"].shape == (2, 2)
