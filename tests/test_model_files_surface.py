"""A model with the surface-map branch saves and loads like any other."""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pytest

from rimclf import RimModel, load_model, save_model
from rimclf.classifier import make_classifier
from rimclf.errors import DataWarning
from rimclf.features import make_featurizer
from tests.model_builders import tiny_config, tiny_table


@pytest.mark.slow
def test_surface_map_model_round_trip(tmp_path):
    config = replace(tiny_config(), feature_set=("rim",), image="surface_map")
    table = tiny_table()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        model = RimModel(make_featurizer(config, progress=False), make_classifier(config, random_state=0),
                         threshold_cv=2, random_state=0).fit(table)
        loaded = load_model(save_model(model, tmp_path / "model"))
        assert loaded.featurizer.get_output_shapes() == {"rim": (20,), "surface_map": (2, 7, 32)}
        np.testing.assert_allclose(loaded.predict_proba(table), model.predict_proba(table), rtol=1e-5, atol=1e-6)
