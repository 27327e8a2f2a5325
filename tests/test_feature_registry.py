"""The feature registry: one entry makes a new extractor usable everywhere.

A toy tabular extractor (one class, one :func:`register_feature` call, nothing else touched) is
extracted by ``make_featurizer``, trained on by the network, saved in a model file and loaded
back; its name joins the feature sets the command line offers.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from scipy import ndimage

from rimclf import RimModel, load_model, save_model
from rimclf._validation import Interval, validate_params
from rimclf.classifier import make_classifier
from rimclf.defaults import DEFAULT_MODEL
from rimclf.errors import DataWarning, ParameterError
from rimclf.feature_registry import (
    FEATURES,
    TABULAR,
    Feature,
    check_feature_set,
    feature_names,
    feature_sets,
    format_feature_set,
    parse_feature_set,
    register_feature,
    unregister_feature,
)
from rimclf.features import make_featurizer
from rimclf.features._base import LesionExtractor
from rimclf.features._subject import BASE_COLUMNS
from tests.model_builders import tiny_table


class ToyExtractor(LesionExtractor):
    """Log voxel count and mean QSM of each lesion (what a new extractor module would hold)."""

    def __init__(self, *, scale: float = 1.0) -> None:
        self.scale = scale

    _parameter_constraints = {"scale": [Interval(float, 0, None, closed="neither")]}

    def _validate(self) -> None:
        validate_params(self)

    def required_columns(self) -> tuple[str, ...]:
        return BASE_COLUMNS

    def cache_key(self) -> dict:
        self._validate()
        return {"scale": float(self.scale)}

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return np.array(["toy_log_voxels", "toy_qsm_mean"], dtype=object)

    def extract_subject(self, volumes, notes) -> np.ndarray:
        ids = volumes.task.lesion_ids
        counts = ndimage.sum(np.ones(volumes.labels.shape), volumes.labels, ids)
        means = ndimage.mean(volumes.qsm, volumes.labels, ids)
        return np.column_stack([self.scale * np.log(np.maximum(counts, 1)), means])


@pytest.fixture
def toy():
    feature = register_feature(Feature("toy", TABULAR, ToyExtractor, description="a toy"))
    yield feature
    unregister_feature("toy")
    assert "toy" not in FEATURES


def test_feature_sets_are_tuples_and_text_only_at_the_edges() -> None:
    assert feature_names(TABULAR) == ("rim", "rim_fit", "radiomics") and feature_names("image") == ("patches", "surface_map")
    assert parse_feature_set("radiomics+rim") == ("rim", "radiomics") == check_feature_set(["radiomics", "rim"])
    assert format_feature_set(("radiomics", "rim")) == "rim+radiomics"
    assert feature_sets()[:3] == (("rim",), ("rim_fit",), ("radiomics",)) and len(feature_sets()) == 7
    assert ("rim", "rim_fit") in feature_sets() and feature_sets()[-1] == ("rim", "rim_fit", "radiomics")
    for bad, message in (("rim", "must be a tuple"), ((), "it is empty"), (("patches",), r"\['patches'\] not among"),
                         (("rim", "rim"), "a name repeats")):
        with pytest.raises(ParameterError, match=message):
            check_feature_set(bad)
    with pytest.raises(ParameterError, match="is registered already"):
        register_feature(Feature("rim", TABULAR, ToyExtractor))
    with pytest.raises(ParameterError, match="block='table' is not valid"):
        Feature("toy", "table", ToyExtractor)


@pytest.mark.slow
def test_a_registered_toy_extractor_trains_and_saves(toy, tmp_path) -> None:
    assert "rim+toy" in [format_feature_set(names) for names in feature_sets()]
    table = tiny_table()
    config = dataclasses.replace(DEFAULT_MODEL, feature_set=("rim", "toy"), width=4, max_epochs=2, batch_size=16)
    featurizer = make_featurizer(config, progress=False)
    assert featurizer.get_output_shapes() == {"rim": (20,), "toy": (2,)}
    model = RimModel(featurizer, make_classifier(config, random_state=0), threshold_cv=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        model.fit(table)
        assert model.classifier_.feature_keys_ == ("rim", "toy")
        assert list(model.featurizer_.get_feature_names_out()[-2:]) == ["toy_log_voxels", "toy_qsm_mean"]
        save_model(model, tmp_path / "model")
        loaded = load_model(tmp_path / "model", device="cpu")
        np.testing.assert_array_equal(loaded.predict_proba(table), model.predict_proba(table))
    assert loaded.featurizer_.extractors()["toy"].get_params() == {"scale": 1.0}


def test_the_worked_example_of_docs_architecture_runs() -> None:
    """docs/architecture.md's new extractor, as printed there, plugs into a featurizer."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    module, entry = re.findall(r"```python\n(.*?)```", text.split("## The feature registry", 1)[1], re.S)[:2]
    namespace: dict = {}
    exec(compile(module, "lesion_size.py", "exec"), namespace)  # the new module
    assert "register_feature(Feature(\"size\", TABULAR" in entry
    register_feature(Feature("size", TABULAR, namespace["LesionSizeExtractor"]))
    try:
        featurizer = make_featurizer(dataclasses.replace(DEFAULT_MODEL, feature_set=("rim", "size")))
        assert featurizer.get_output_shapes() == {"rim": (20,), "size": (2,)}
        assert list(featurizer.get_feature_names_out()[-2:]) == ["size_log_voxels", "size_qsm_mean"]
    finally:
        unregister_feature("size")
