"""Model files: round trip to identical predictions, and refusal of changed or foreign files."""

from __future__ import annotations

import copy
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from rimclf import load_model, save_model
from rimclf._records import file_sha256 as _sha256
from rimclf.errors import ModelFileError, ParameterError
from rimclf.errors import ModelVersionWarning
from rimclf.model_files import FORMAT, FORMAT_VERSION
from tests.model_builders import read_settings, tiny_model, tiny_model_dir, tiny_table, write_settings

pytestmark = pytest.mark.slow


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A private copy of the saved tiny model, free to damage."""
    return Path(shutil.copytree(tiny_model_dir(), tmp_path / "model"))




def test_round_trip_gives_identical_predictions() -> None:
    model, table = tiny_model(), tiny_table()
    loaded = load_model(tiny_model_dir())
    np.testing.assert_array_equal(loaded.predict_proba(table), model.predict_proba(table))
    np.testing.assert_array_equal(loaded.predict(table), model.predict(table))
    assert loaded.threshold_ == model.threshold_
    assert loaded.threshold_choice_ == model.threshold_choice_
    assert loaded.training_ == model.training_ == {"n_subjects": 6, "n_lesions": len(table), "n_rim_pos": int(table["rim"].sum()),
                                                   "skipped_scans": []}
    assert loaded.classifier_.get_params()["module__width"] == 4
    extractors = model.featurizer_.extractors()
    assert {name: e.cache_key() for name, e in loaded.featurizer_.extractors().items()} == {
        name: e.cache_key() for name, e in extractors.items()}
    assert list(extractors) == ["rim", "radiomics", "patches"]


def test_model_directory_contents() -> None:
    folder = tiny_model_dir()
    assert sorted(path.name for path in folder.iterdir()) == ["settings.json", "weights.pt"]
    settings = read_settings(folder)
    assert settings["format"] == FORMAT and settings["format_version"] == FORMAT_VERSION
    assert {"rimclf", "torch", "pyradiomics"} <= set(settings["versions"])
    assert settings["weights"]["sha256"] == _sha256(folder / "weights.pt")
    assert settings["threshold"]["method"] == "cv" and settings["threshold"]["target_specificity"] == 0.9
    assert settings["classifier"]["in_channels"] == 4 and settings["classifier"]["patch_shape"] == [8, 8, 8]
    assert settings["classifier"]["feature_keys"] == ["rim", "radiomics"]
    n_rim = len(tiny_model().featurizer_.extractors()["rim"].get_feature_names_out())
    assert len(settings["radiomics_feature_names"]) + n_rim == settings["classifier"]["n_radiomics"]
    assert settings["featurizer"]["rim"] is not None
    tensors = torch.load(folder / "weights.pt", weights_only=True)
    assert all(isinstance(value, torch.Tensor) for value in tensors.values())
    assert tensors["radiomics_mean"].dtype == torch.float64
    np.testing.assert_array_equal(tensors["radiomics_scale"].numpy(), tiny_model().classifier_.radiomics_scale_)


def test_no_overwrite_without_force(model_dir: Path) -> None:
    before = (model_dir / "settings.json").read_text()
    with pytest.raises(FileExistsError, match="--force"):
        save_model(tiny_model(), model_dir)
    assert (model_dir / "settings.json").read_text() == before
    save_model(tiny_model(), model_dir, force=True)
    assert load_model(model_dir).threshold_ == tiny_model().threshold_


def test_changed_weights_are_refused(model_dir: Path) -> None:
    tensors = torch.load(model_dir / "weights.pt", weights_only=True)
    name = next(key for key in tensors if key.startswith("module."))
    tensors[name] = tensors[name] + 1.0
    torch.save(tensors, model_dir / "weights.pt")
    with pytest.raises(ModelFileError, match="SHA-256 .* differs"):
        load_model(model_dir)


class _Payload:
    """Unpickling this runs ``os.mkdir(path)``: the model loader must never let that happen."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
@pytest.mark.parametrize("update_hash", [False, True])
def test_malicious_pickle_is_refused_without_running(model_dir: Path, tmp_path: Path, writer: str, update_hash: bool) -> None:
    sentinel = tmp_path / "payload-ran"
    payload = {"module.trunk.weight": _Payload(str(sentinel))}
    if writer == "pickle":
        (model_dir / "weights.pt").write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, model_dir / "weights.pt")
    if update_hash:  # an attacker who rewrites settings.json too still gets past the hash
        settings = read_settings(model_dir)
        settings["weights"]["sha256"] = _sha256(model_dir / "weights.pt")
        write_settings(model_dir, settings)
    with pytest.raises(ModelFileError, match="refused" if update_hash else "SHA-256"):
        load_model(model_dir)
    assert not sentinel.exists()


def _set(path: tuple, value):
    def edit(settings: dict) -> None:
        target = settings
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return edit


def _delete(path: tuple):
    def edit(settings: dict) -> None:
        target = settings
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_set(("format",), "sklearn-pickle"), "not a rimclf model"),
        (_set(("format_version",), FORMAT_VERSION + 1), "newer rimclf"),
        (_set(("format_version",), "1"), "format_version must be"),
        (_set(("surprise",), 1), r"unknown keys \['surprise'\]"),
        (_delete(("threshold",)), r"lacks the keys \['threshold'\]"),
        (_set(("classifier", "extra"), 1), r"unknown keys \['extra'\]"),
        (_set(("classifier", "in_channels"), "3"), r"\['in_channels'\] must be int"),
        (_set(("classifier", "params", "module"), "os.system"), "unknown or non-JSON parameter 'module'"),
        (_set(("featurizer", "patches", "exec"), "print"), r"unknown keys \['exec'\]"),
        (_set(("featurizer", "patches", "normalize"), "magic"), "normalize='magic' is not valid"),
        (_set(("threshold", "value"), True), "must be a finite number"),
        (_set(("threshold", "method"), "oracle"), "not one of"),
        (_set(("weights", "file"), "../elsewhere.pt"), "weights file must be"),
        (_set(("radiomics_feature_names",), ["a", "b"]), "radiomics features"),
        # values of the right JSON type that the estimator would only reject later, at predict
        (_set(("classifier", "params", "batch_size"), 0), "batch_size=0 is not valid"),
        (_set(("classifier", "params", "predict_nonlinearity"), "bogus"), "predict_nonlinearity='bogus' is not valid"),
        (_set(("classifier", "params", "imbalance"), "bogus"), "imbalance='bogus' is not valid"),
        (_set(("classifier", "params", "lr"), -1.0), "lr=-1.0 is not valid"),
        (_set(("threshold", "value"), -5), r"threshold\['value'\]=-5 is not valid; it must be a probability"),
        (_set(("classifier", "feature_keys"), ["patches"]), "feature_keys must list"),
        # a model file never points rimclf at files elsewhere on the machine
        (_set(("featurizer", "radiomics", "params"), "/etc/passwd"), "never a path to read elsewhere"),
    ],
)
def test_bad_settings_are_refused(model_dir: Path, edit, message: str) -> None:
    settings = read_settings(model_dir)
    edit(settings)
    write_settings(model_dir, settings)
    with pytest.raises(ModelFileError, match=message):
        load_model(model_dir)


def test_non_json_settings_file(model_dir: Path) -> None:
    (model_dir / "settings.json").write_text('{"format": "rimclf-model", "format_version": NaN')
    with pytest.raises(ModelFileError, match="not valid JSON"):
        load_model(model_dir)
    (model_dir / "settings.json").write_bytes(b"\x80\x04\x95 pickle, not JSON")
    with pytest.raises(ModelFileError, match="not valid JSON"):
        load_model(model_dir)


def test_missing_or_wrong_paths(tmp_path: Path, model_dir: Path) -> None:
    with pytest.raises(ModelFileError, match="no such model directory"):
        load_model(tmp_path / "nowhere")
    (tmp_path / "file.pt").write_bytes(b"")
    with pytest.raises(ModelFileError, match="is a directory"):
        load_model(tmp_path / "file.pt")
    (model_dir / "weights.pt").unlink()
    with pytest.raises(ModelFileError, match="weights.pt: missing"):
        load_model(model_dir)


def test_a_model_giving_nan_probabilities_is_an_error_not_an_output(model_dir: Path, tmp_path: Path) -> None:
    """NaN weights (hash updated) make NaN probabilities: refused, nothing written."""
    from rimclf.cli import main
    from rimclf.errors import PredictionError

    tensors = torch.load(model_dir / "weights.pt", weights_only=True)
    head = sorted(key for key in tensors if key.startswith("module.head") and key.endswith("bias"))[-1]
    tensors[head] = torch.full_like(tensors[head], float("nan"))
    torch.save(tensors, model_dir / "weights.pt")
    settings = read_settings(model_dir)
    settings["weights"]["sha256"] = _sha256(model_dir / "weights.pt")
    write_settings(model_dir, settings)
    with pytest.raises(PredictionError, match="NaN, infinite or out-of-range"):
        load_model(model_dir).predict_proba(tiny_table())
    assert main(["predict", str(model_dir), str(tiny_table()["qsm"].map(lambda p: Path(p).parents[2]).iloc[0]),
                 "-o", str(tmp_path / "out"), "-q"]) == 1
    assert not (tmp_path / "out").exists()


def test_a_zero_standardisation_scale_is_refused(model_dir: Path) -> None:
    tensors = torch.load(model_dir / "weights.pt", weights_only=True)
    tensors["radiomics_scale"] = torch.zeros_like(tensors["radiomics_scale"])
    torch.save(tensors, model_dir / "weights.pt")
    settings = read_settings(model_dir)
    settings["weights"]["sha256"] = _sha256(model_dir / "weights.pt")
    write_settings(model_dir, settings)
    with pytest.raises(ModelFileError, match="radiomics_scale must be finite and positive"):
        load_model(model_dir)


def test_empty_weights_with_a_matching_hash_are_refused(model_dir: Path) -> None:
    (model_dir / "weights.pt").write_bytes(b"")
    settings = read_settings(model_dir)
    settings["weights"]["sha256"] = _sha256(model_dir / "weights.pt")
    write_settings(model_dir, settings)
    with pytest.raises(ModelFileError, match="weights.pt"):
        load_model(model_dir)


def test_weights_that_do_not_fit_the_network(model_dir: Path) -> None:
    tensors = torch.load(model_dir / "weights.pt", weights_only=True)
    name = next(key for key in tensors if key.startswith("module.") and tensors[key].ndim > 1)
    tensors[name] = torch.zeros(2, 2)
    tensors["bonus"] = torch.zeros(1)
    torch.save(tensors, model_dir / "weights.pt")
    settings = read_settings(model_dir)
    settings["weights"]["sha256"] = _sha256(model_dir / "weights.pt")
    write_settings(model_dir, settings)
    with pytest.raises(ModelFileError, match=r"unknown tensors \['bonus'\]"):
        load_model(model_dir)
    del tensors["bonus"]
    torch.save(tensors, model_dir / "weights.pt")
    settings["weights"]["sha256"] = _sha256(model_dir / "weights.pt")
    write_settings(model_dir, settings)
    with pytest.raises(ModelFileError, match="do not fit the network"):
        load_model(model_dir)


def test_other_versions_warn_but_load(model_dir: Path) -> None:
    settings = read_settings(model_dir)
    settings["versions"]["torch"] = "1.0.0"
    write_settings(model_dir, settings)
    with pytest.warns(ModelVersionWarning, match=r"torch 1\.0\.0 -> "):
        loaded = load_model(model_dir)
    np.testing.assert_array_equal(loaded.predict_proba(tiny_table()), tiny_model().predict_proba(tiny_table()))


def test_save_refuses_what_json_cannot_hold(tmp_path: Path) -> None:
    from rimclf import RimModel

    with pytest.raises(ParameterError, match="fitted RimModel"):
        save_model(RimModel(), tmp_path / "unfitted")
    custom = copy.deepcopy(tiny_model())
    custom.classifier_.module = torch.nn.Linear  # a network class a model file cannot describe
    with pytest.raises(ModelFileError, match="classifier parameter module="):
        save_model(custom, tmp_path / "custom")
    assert not (tmp_path / "custom").exists() and not (tmp_path / "unfitted").exists()
