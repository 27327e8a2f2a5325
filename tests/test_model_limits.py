"""Model files that try to steer rimclf: huge or compressed weights, runtime settings, negative
sizes, control characters, edited settings. Each is refused with one clear line before any
tensor is read or any feature is extracted."""

from __future__ import annotations

import io
import json
import shutil
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from rimclf import load_model, save_model
from rimclf._model_checks import WEIGHTS_ALLOWANCE
from rimclf._records import file_sha256
from rimclf.defaults import MAX_WIDTH
from rimclf.errors import ModelFileError, ModelVersionWarning
from rimclf.model_files import FORMAT_VERSION
from tests.model_builders import network_alone, older_model_dir, read_settings, tiny_model, tiny_model_dir, tiny_table, write_settings

pytestmark = pytest.mark.slow


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_model_dir(), tmp_path / "model"))




def replace_weights(folder: Path, data: bytes) -> None:
    """New weights.pt bytes, with their SHA-256 recorded (as a deliberate editor would)."""
    (folder / "weights.pt").write_bytes(data)
    settings = read_settings(folder)
    settings["weights"]["sha256"] = file_sha256(folder / "weights.pt")
    write_settings(folder, settings)


def recompressed(data: bytes, extra: tuple[str, bytes] | None = None) -> bytes:
    """The zip archive ``data`` with every entry deflate-compressed (and optionally one more entry)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info))
        if extra is not None:
            target.writestr(*extra)
    return out.getvalue()


# ------------------------------------------------------------------------- bounded memory (defect 4)
def test_a_deflate_compressed_weights_file_is_refused_before_torch_reads_it(model_dir: Path) -> None:
    """torch.save never compresses; a compressed entry can unpack to gigabytes (a 1 MB file
    holding a 1 GiB tensor), so it is refused from the zip directory alone."""
    original = (model_dir / "weights.pt").read_bytes()
    name = zipfile.ZipFile(io.BytesIO(original)).namelist()[0].split("/")[0]
    bomb = recompressed(original, (f"{name}/data/999", bytes(64 * 2**20)))  # 64 MiB of zeros in ~64 KB
    assert len(bomb) < len(original) + 2**20
    replace_weights(model_dir, bomb)
    with pytest.raises(ModelFileError, match=r"weights.pt: refused: entry .* is compressed"):
        load_model(model_dir)
    replace_weights(model_dir, recompressed(original))  # even the same tensors, compressed
    with pytest.raises(ModelFileError, match="is compressed"):
        load_model(model_dir)


def test_an_entry_claiming_more_bytes_than_the_file_is_refused(model_dir: Path) -> None:
    data = bytearray((model_dir / "weights.pt").read_bytes())
    archive = zipfile.ZipFile(io.BytesIO(bytes(data)))
    entry = max(archive.infolist(), key=lambda info: info.file_size)
    # patch the central directory record of ``entry``: sizes at offsets 20 (compressed) and 24
    start = 0
    while True:
        start = data.find(b"PK\x01\x02", start)
        name_length = int.from_bytes(data[start + 28:start + 30], "little")
        if data[start + 46:start + 46 + name_length].decode() == entry.filename:
            break
        start += 4
    huge = (2**31 - 1).to_bytes(4, "little")
    data[start + 20:start + 24] = huge
    data[start + 24:start + 28] = huge
    replace_weights(model_dir, bytes(data))
    with pytest.raises(ModelFileError, match="weights.pt: (refused|larger)"):
        load_model(model_dir)


def test_a_weights_file_larger_than_the_network_needs_is_refused_unread(model_dir: Path) -> None:
    size = (model_dir / "weights.pt").stat().st_size
    replace_weights(model_dir, bytes(size + WEIGHTS_ALLOWANCE + 1))
    with pytest.raises(ModelFileError, match="larger than the .* bytes of tensors the network described needs"):
        load_model(model_dir)


@pytest.mark.parametrize(("name", "value"), [("module__width", 10**8), ("module__width", MAX_WIDTH + 1),
                                              ("module__width", 0), ("module__depth", 50)])
def test_network_sizes_have_upper_bounds(model_dir: Path, name: str, value: int) -> None:
    settings = read_settings(model_dir)
    settings["classifier"]["params"][name] = value
    write_settings(model_dir, settings)
    with pytest.raises(ModelFileError, match=f"{name}={value} is not valid"):
        load_model(model_dir)


def test_a_network_too_large_for_a_model_file_is_refused_before_reading(model_dir: Path, monkeypatch) -> None:
    import rimclf._model_checks as checks

    monkeypatch.setattr(checks, "MAX_WEIGHTS_BYTES", 1000)
    with pytest.raises(ModelFileError, match="needs 0.00 GiB of weights, more than"):
        load_model(model_dir)


# ---------------------------------------------------------------- runtime settings (defect 5)
@pytest.mark.parametrize(("name", "value"), [
    ("iterator_valid__num_workers", 3),
    ("iterator_valid__timeout", -5),
    ("iterator_valid__batch_size", 0),
    ("iterator_train__num_workers", 2),
    ("dataset__length", 5),
    ("criterion__pos_weight", 3.0),
    ("optimizer__weight_decay", 0.1),
    ("callbacks__print_log__sink", "print"),
    ("module__smote_k", 3),
    ("module__exec", "rm"),
])
def test_runtime_and_unknown_settings_are_refused(model_dir: Path, name: str, value) -> None:
    settings = read_settings(model_dir)
    settings["classifier"]["params"][name] = value
    write_settings(model_dir, settings)
    with pytest.raises(ModelFileError, match=f"unknown or non-JSON parameter '{name}'"):
        load_model(model_dir)


@pytest.mark.parametrize(("name", "value", "message"), [
    ("torch_load_kwargs", {"weights_only": False}, "torch_load_kwargs=.* is not valid; it must be None"),
    ("compile", True, "compile=True is not valid"),
    ("batch_size", 0, "batch_size=0 is not valid"),
    ("max_epochs", -1, "max_epochs=-1 is not valid"),
    ("device", "cuda; rm -rf", "device='cuda; rm -rf' is not valid"),
    ("random_state", -1, "random_state=-1 is not valid"),
])
def test_setting_values_out_of_range_are_refused(model_dir: Path, name: str, value, message: str) -> None:
    settings = read_settings(model_dir)
    settings["classifier"]["params"][name] = value
    write_settings(model_dir, settings)
    with pytest.raises(ModelFileError, match=message):
        load_model(model_dir)


def test_runtime_settings_are_not_saved(tmp_path: Path) -> None:
    from copy import deepcopy

    model = deepcopy(tiny_model())
    for name, value in {"iterator_valid__num_workers": 0, "optimizer__weight_decay": 0.01, "torch_load_kwargs": {}}.items():
        setattr(model.classifier_, name, value)  # as if given to the constructor
    assert "iterator_valid__num_workers" in model.classifier_.get_params()
    save_model(model, tmp_path / "model")
    settings = read_settings(tmp_path / "model")
    params = settings["classifier"]["params"]
    assert not {"iterator_valid__num_workers", "optimizer__weight_decay", "torch_load_kwargs", "compile"} & set(params)
    assert {"iterator_valid__num_workers", "optimizer__weight_decay", "torch_load_kwargs"} <= set(settings["classifier"]["omitted_params"])
    np.testing.assert_array_equal(load_model(tmp_path / "model").predict_proba(tiny_table()),
                                  tiny_model().predict_proba(tiny_table()))


# ------------------------------------------------------------- sizes and counts (defect 7)
@pytest.mark.parametrize(("path", "value", "message"), [
    (("classifier", "in_channels"), -4, "in_channels=-4 is not valid"),
    (("classifier", "in_channels"), 0, "in_channels=0 is not valid"),
    (("classifier", "patch_shape"), [8, -8, 8], "patch_shape=.* is not valid"),
    (("classifier", "patch_shape"), [8, 8], "patch_shape=.* is not valid"),
    (("classifier", "n_radiomics"), 0, "n_radiomics=0 is not valid"),
    (("classifier", "pos_weight"), -1.0, "pos_weight=-1.0 is not valid"),
    (("training", "n_subjects"), -6, "n_subjects=-6 is not valid"),
    (("training", "n_lesions"), 0, "n_lesions=0 is not valid"),
    (("training", "n_rim_pos"), 100, "n_rim_pos=100 exceeds"),
    (("model", "threshold_cv"), -2, "threshold_cv=-2 is not valid"),
    (("model", "threshold_cv"), 1, "threshold_cv=1 is not valid"),
    (("model", "target_specificity"), 1.5, "target_specificity=1.5 is not valid"),
    (("threshold", "n_splits"), -2, "n_splits=-2 is not valid"),
    (("featurizer", "patches", "shape"), 100000, "shape=100000 is not valid"),
    (("featurizer", "patches", "size_mm"), 1e9, "size_mm=1000000000.0 is not valid"),
    (("featurizer", "patches", "shape"), 10, r"network takes patches of shape \[4, 8, 8, 8\] but the featurizer gives"),
    (("classifier", "n_radiomics"), 61, "network takes 61 tabular features"),
])
def test_negative_zero_or_inconsistent_sizes_are_refused(model_dir: Path, path: tuple, value, message: str) -> None:
    settings = read_settings(model_dir)
    target = settings
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    write_settings(model_dir, settings)
    with pytest.raises(ModelFileError, match=message):
        load_model(model_dir)


# ----------------------------------------------------------- control characters (defect 6)
def test_control_characters_from_the_file_are_escaped(model_dir: Path) -> None:
    settings = read_settings(model_dir)
    settings["versions"]["torch"] = "1.0\x1b[2J\x1b[H\rrimclf predict: error: forged\n"
    write_settings(model_dir, settings)
    with pytest.warns(ModelVersionWarning) as caught:
        load_model(model_dir)
    message = str(caught[0].message)
    assert "\x1b" not in message and "\r" not in message and "\n" not in message
    assert r"1.0\x1b[2J" in message


def test_the_cli_prints_errors_and_warnings_on_one_escaped_line(model_dir: Path, tmp_path: Path, capsys) -> None:
    from rimclf.cli import main

    settings = read_settings(model_dir)
    settings["classifier"]["params"]["iterator_valid__\x1b[31mnum_workers"] = 3
    write_settings(model_dir, settings)
    (tmp_path / "cohort").mkdir()
    assert main(["predict", str(model_dir), str(tmp_path / "cohort"), "-o", str(tmp_path / "out"), "-q"]) == 1
    err = capsys.readouterr().err
    assert "\x1b" not in err and len(err.strip().splitlines()) == 1 and r"\x1b[31m" in err


# --------------------------------------------------------------------- settings digest (worry)
def test_edited_settings_are_refused(model_dir: Path) -> None:
    settings = read_settings(model_dir)
    settings["featurizer"]["rim"]["edge_mm"] = 2.5  # a plausible hand edit that changes probabilities
    write_settings(model_dir, settings, reseal=False)
    with pytest.raises(ModelFileError, match="differ from the settings_sha256 recorded when the model was saved"):
        load_model(model_dir)
    del settings["settings_sha256"]
    write_settings(model_dir, settings, reseal=False)
    with pytest.raises(ModelFileError, match="lacks settings_sha256"):
        load_model(model_dir)


def test_files_of_format_version_3_load_after_the_same_checks(model_dir: Path) -> None:
    assert read_settings(model_dir)["format_version"] == FORMAT_VERSION == 8
    settings = older_model_dir(model_dir, 3)  # the MLP input "radiomics", no settings digest, no calibration
    with warnings.catch_warnings():
        warnings.simplefilter("error", ModelVersionWarning)
        loaded = load_model(model_dir)
    model = tiny_model()  # a version-3 file holds the network without a calibration
    np.testing.assert_array_equal(loaded.predict_proba(tiny_table()), network_alone(model.classifier_).predict_proba(model.transform(tiny_table())))
    settings["classifier"]["params"]["iterator_valid__num_workers"] = 3
    (model_dir / "settings.json").write_text(json.dumps(settings))
    with pytest.raises(ModelFileError, match="iterator_valid__num_workers"):
        load_model(model_dir)


def test_a_huge_settings_file_is_refused_unread(model_dir: Path) -> None:
    with open(model_dir / "settings.json", "a") as handle:
        handle.write(" " * (9 * 2**20))
    with pytest.raises(ModelFileError, match="larger than 8 MiB"):
        load_model(model_dir)
    (model_dir / "settings.json").write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(ModelFileError, match="nested too deeply|not valid JSON"):
        load_model(model_dir)


def test_an_edited_weights_layout_is_refused_before_load_state_dict(model_dir: Path) -> None:
    tensors = torch.load(model_dir / "weights.pt", weights_only=True)
    name = next(key for key in tensors if key.startswith("module.") and tensors[key].dtype == torch.float32)
    tensors[name] = tensors[name].double()
    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    replace_weights(model_dir, buffer.getvalue())
    with pytest.raises(ModelFileError, match=f"do not fit the network .*{name} is float64"):
        load_model(model_dir)


def test_a_model_saved_with_device_cuda_loads_on_the_cpu(model_dir: Path) -> None:
    """The saved device is a name that load_model's ``device`` replaces; it is not resolved."""
    settings = read_settings(model_dir)
    settings["classifier"]["params"]["device"] = "cuda:0"
    write_settings(model_dir, settings)
    loaded = load_model(model_dir, device="cpu")
    np.testing.assert_array_equal(loaded.predict_proba(tiny_table()), tiny_model().predict_proba(tiny_table()))


def test_files_of_format_version_4_load_with_the_tabular_input_renamed(model_dir: Path) -> None:
    """Before version 5 the network's MLP input was "radiomics" (branches, weights): read under today's names."""
    older_model_dir(model_dir, 4)
    assert any(key.startswith("module.radiomics_encoder.") for key in torch.load(model_dir / "weights.pt", weights_only=True))
    loaded = load_model(model_dir)
    model = tiny_model()  # a version-4 file holds the network without a calibration (version 6)
    np.testing.assert_array_equal(loaded.predict_proba(tiny_table()), network_alone(model.classifier_).predict_proba(model.transform(tiny_table())))
