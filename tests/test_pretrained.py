"""The pretrained surface-map encoder: its file read safely, ``image_weights`` in training and in model files."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from rimclf import load_model, save_model
from rimclf._validation import check_model_config
from rimclf.classifier import make_classifier
from rimclf.classifier import pretrained
from rimclf.classifier.pretrained import (
    MAX_PRETRAINED_BYTES,
    PRETRAINED_FORMAT,
    PRETRAINED_FORMAT_VERSION,
    load_pretrained_encoder,
    read_pretrained,
)
from rimclf.defaults import DEFAULT_MODEL
from rimclf.errors import ModelFileError, ParameterError
from rimclf.nn import SurfaceMapEncoder

PRETRAINED = replace(DEFAULT_MODEL, branches="both", image="surface_map", image_weights="pretrained", max_epochs=3)


def write_sidecar(path: Path, **sidecar) -> Path:
    """A sidecar for the file at ``path``, recording its SHA-256."""
    record = {"format": PRETRAINED_FORMAT, "format_version": PRETRAINED_FORMAT_VERSION,
              "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
              "encoder": {"in_channels": 2, "out_features": 64}, **sidecar}
    path.with_suffix(".json").write_text(json.dumps(record), encoding="utf-8")
    return path


def write_pretrained(path: Path, tensors: dict) -> Path:
    """``tensors`` saved with ``torch.save`` at ``path``, and their sidecar."""
    torch.save(tensors, path)
    return write_sidecar(path)


def encoder_tensors(out_features: int = 64, seed: int = 5) -> dict:
    torch.manual_seed(seed)
    return {name: tensor.clone() for name, tensor in SurfaceMapEncoder(2, out_features=out_features).state_dict().items()}


@pytest.fixture
def weights(tmp_path, monkeypatch) -> Path:
    """A pretrained file in place of the shipped one."""
    path = write_pretrained(tmp_path / "surface_map_encoder.pt", encoder_tensors())
    monkeypatch.setattr(pretrained, "shipped_weights", lambda: path)
    return path


def data(n: int = 96, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.tile([0, 0, 0, 1], n // 4)
    maps = rng.normal(size=(n, 2, 7, 32)).astype(np.float32)
    maps[y == 1, 0, 2:4, :6] += 4.0
    return {"rim": rng.normal(size=(n, 20)), "surface_map": maps}, y


def test_the_shipped_weights_load_into_the_default_width_encoder():
    tensors, sidecar = read_pretrained()
    assert pretrained.shipped_weights().stat().st_size <= MAX_PRETRAINED_BYTES
    assert sidecar["encoder"] == {**sidecar["encoder"], "in_channels": 2, "out_features": 8 * DEFAULT_MODEL.width}
    assert sum(cohort["lesions"] for cohort in sidecar["phantom"]["cohorts"]) >= 5_000
    assert sidecar["bytes"] == pretrained.shipped_weights().stat().st_size
    encoder = SurfaceMapEncoder(2, out_features=64)
    load_pretrained_encoder(encoder)
    for name, tensor in encoder.state_dict().items():
        assert torch.equal(tensor, tensors[name])


def test_training_starts_from_the_pretrained_encoder(weights):
    X, y = data()
    net = make_classifier(replace(PRETRAINED, max_epochs=0), random_state=0).fit(X, y)
    saved = torch.load(weights, weights_only=True)
    for name, tensor in net.module_.patch_encoder.state_dict().items():
        assert torch.equal(tensor, saved[name]), name
    scratch = make_classifier(replace(PRETRAINED, max_epochs=0, image_weights="random"), random_state=0).fit(X, y)
    assert not torch.equal(scratch.module_.patch_encoder.project[0].weight, saved["project.0.weight"])


@pytest.mark.slow
def test_frozen_encoder_keeps_its_weights_while_the_rest_trains(weights):
    X, y = data()
    net = make_classifier(replace(PRETRAINED, image_weights="pretrained-frozen"), random_state=0).fit(X, y)
    saved = torch.load(weights, weights_only=True)
    for name, tensor in net.module_.patch_encoder.state_dict().items():
        assert torch.equal(tensor, saved[name]), name  # weights and batch-norm statistics
    tuned = make_classifier(PRETRAINED, random_state=0).fit(X, y)
    assert not torch.equal(tuned.module_.patch_encoder.project[0].weight, saved["project.0.weight"])
    assert not torch.equal(net.module_.head[0].weight, tuned.module_.head[0].weight)


@pytest.mark.slow
def test_a_fine_tuned_model_round_trips_without_the_pretrained_file(weights, tmp_path):
    X, y = data()
    net = make_classifier(PRETRAINED, random_state=0).fit(X, y)
    again = make_classifier(PRETRAINED, random_state=0).fit(X, y)
    np.testing.assert_array_equal(again.predict_proba(X), net.predict_proba(X))  # seeded
    folder = save_model(net, tmp_path / "model")
    weights.write_bytes(b"gone")  # loading never reads the pretrained file
    loaded = load_model(folder)
    assert loaded.image_weights == "pretrained"
    np.testing.assert_allclose(loaded.predict_proba(X), net.predict_proba(X), rtol=1e-6, atol=1e-7)


def test_damaged_oversized_and_wrong_shape_files_are_refused(weights, tmp_path):
    encoder = SurfaceMapEncoder(2, out_features=64)
    data_ = bytearray(weights.read_bytes())
    data_[len(data_) // 2] ^= 0xFF
    weights.write_bytes(bytes(data_))
    with pytest.raises(ModelFileError, match="SHA-256 .* damaged or was replaced"):
        load_pretrained_encoder(encoder)

    big = tmp_path / "big.pt"
    big.write_bytes(b"\0" * (MAX_PRETRAINED_BYTES + 1))
    write_sidecar(big)
    with pytest.raises(ModelFileError, match="larger than the 10 MiB"):
        load_pretrained_encoder(encoder, big)

    narrow = write_pretrained(tmp_path / "narrow.pt", encoder_tensors(out_features=32))
    with pytest.raises(ModelFileError, match=r"profile.0.weight is float32 \(8, 3, 3, 1\) but the surface-map encoder needs float32 \(16, 3, 3, 1\)"):
        load_pretrained_encoder(encoder, narrow)
    renamed = write_pretrained(tmp_path / "renamed.pt", {"x" + k: v for k, v in encoder_tensors().items()})
    with pytest.raises(ModelFileError, match="do not fit the surface-map encoder"):
        load_pretrained_encoder(encoder, renamed)

    pickled = tmp_path / "pickled.pt"
    torch.save({"note": Path("x")}, pickled)  # a pickled object, not a tensor
    write_sidecar(pickled)
    with pytest.raises(ModelFileError, match="not a tensors-only weights file"):
        load_pretrained_encoder(encoder, pickled)

    lonely = tmp_path / "lonely.pt"
    torch.save(encoder_tensors(), lonely)
    with pytest.raises(ModelFileError, match="lonely.json: missing"):
        load_pretrained_encoder(encoder, lonely)
    lonely.with_suffix(".json").write_text(json.dumps({"format": PRETRAINED_FORMAT, "format_version": 99, "sha256": ""}))
    with pytest.raises(ModelFileError, match="format_version=99"):
        load_pretrained_encoder(encoder, lonely)


def test_a_damaged_shipped_file_stops_fit_with_a_clear_error(weights):
    weights.write_bytes(weights.read_bytes()[:-10])
    X, y = data()
    with pytest.raises(ModelFileError, match="surface_map_encoder.pt: SHA-256"):
        make_classifier(PRETRAINED, random_state=0).fit(X, y)


def test_image_weights_settings_are_checked(weights):
    X, y = data()
    with pytest.raises(ParameterError, match="image_weights='imagenet' is not valid"):
        make_classifier(replace(PRETRAINED, image_weights="imagenet")).fit(X, y)
    with pytest.raises(ParameterError, match="surface-map encoder only"):
        make_classifier(replace(PRETRAINED, image="patches")).fit(X, y)
    with pytest.raises(ParameterError, match="surface-map encoder only"):
        make_classifier(replace(PRETRAINED, branches="tabular")).fit(X, y)
    with pytest.raises(ParameterError, match="module__width=8"):
        make_classifier(replace(PRETRAINED, width=4)).fit(X, y)
    with pytest.raises(ParameterError, match="image_weights='pretrained' is not valid with image='patches'"):
        check_model_config(replace(PRETRAINED, image="patches"))
    with pytest.raises(ParameterError, match="width=4"):
        check_model_config(replace(PRETRAINED, width=4))
    assert check_model_config(PRETRAINED) is PRETRAINED


def test_command_line_options_choose_the_image_input_and_its_weights(tmp_path, capsys):
    from rimclf.cli import build_parser, main
    from rimclf.cli._options import model_config
    from tests.model_builders import tiny_cohort

    args = build_parser().parse_args(["train", "COHORT", "-o", "out", "--branches", "both", "--image", "surface_map",
                                      "--image-weights", "pretrained-frozen"])
    config = model_config(args)
    assert (config.branches, config.image, config.image_weights) == ("both", "surface_map", "pretrained-frozen")
    assert model_config(build_parser().parse_args(["train", "COHORT", "-o", "out"])) == DEFAULT_MODEL
    out = tmp_path / "model"
    assert main(["train", str(tiny_cohort()), "-o", str(out), "--image-weights", "pretrained"]) == 2
    assert "image_weights='pretrained' is not valid with image='patches'" in capsys.readouterr().err
    assert not out.exists()
