"""The classifier's image branch on surface maps: configuration, inputs, fit and predict."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from rimclf.classifier import make_classifier
from rimclf.defaults import DEFAULT_MODEL, IMAGE_INPUTS, describe_config
from rimclf.errors import CohortError, ParameterError
from rimclf.feature_registry import IMAGE, feature_names
from rimclf.features import make_featurizer
from rimclf.nn import SurfaceMapEncoder

SURFACE = replace(DEFAULT_MODEL, branches="both", image="surface_map", max_epochs=20, width=4, lr=1e-2)


def data(n: int = 120, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.tile([0, 0, 0, 1], n // 4)
    maps = rng.normal(size=(n, 2, 7, 16)).astype(np.float32)
    maps[y == 1, 0, 2:4, :6] += 4.0  # a bright row over some directions
    return {"rim": rng.normal(size=(n, 20)), "surface_map": maps}, y


def test_image_inputs_are_the_registered_image_features():
    assert IMAGE_INPUTS == feature_names(IMAGE)


def test_configuration_builds_the_surface_map_featurizer_and_network():
    assert make_featurizer(SURFACE).get_output_shapes() == {"rim": (20,), "rim_fit": (6,), "surface_map": (2, 7, 32)}
    assert make_featurizer(replace(SURFACE, branches="patches"), features=False).get_output_shapes() == {
        "surface_map": (2, 7, 32)}
    assert "patches" not in make_featurizer(SURFACE).extractors()
    assert "surface-map encoder" in describe_config(SURFACE)
    with pytest.raises(ParameterError, match="image='voxels'"):
        make_featurizer(replace(SURFACE, image="voxels"))


@pytest.mark.slow
@pytest.mark.parametrize("branches", ["both", "patches"])
def test_fit_and_predict_on_surface_maps(branches):
    X, y = data()
    config = replace(SURFACE, branches=branches, blend="none" if branches == "patches" else "logistic")
    net = make_classifier(config, random_state=0, verbose=0).fit(X, y)
    assert isinstance(net.module_.patch_encoder, SurfaceMapEncoder)
    assert net.in_channels_ == 2 and net.patch_shape_ == (7, 16)
    proba = net.predict_proba(X)[:, 1]
    assert proba.shape == (len(y),) and proba[y == 1].mean() > proba[y == 0].mean()
    again = make_classifier(config, random_state=0, verbose=0).fit(X, y)
    np.testing.assert_array_equal(again.predict_proba(X), net.predict_proba(X))  # seeded


def test_surface_map_inputs_are_checked():
    X, y = data()
    net = make_classifier(SURFACE, random_state=0, verbose=0)
    with pytest.raises(CohortError, match="no 'surface_map' entry"):
        net.fit({"rim": X["rim"]}, y)
    with pytest.raises(CohortError, match="depths, directions"):
        net.fit({"rim": X["rim"], "surface_map": X["surface_map"][:, 0]}, y)
    bad = X["surface_map"].copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(CohortError, match="NaN"):
        net.fit({"rim": X["rim"], "surface_map": bad}, y)
