"""Shape tables and checks for rimclf.nn.TabularEncoder."""

import pytest
import torch

from rimclf.nn import TabularEncoder


@pytest.mark.parametrize(
    ("n_features", "out_features", "hidden_features", "n_rows"),
    [(1, 8, None, 2), (20, 32, None, 5), (527, 512, 1024, 3), (7, 16, 5, 4)],
)
def test_shapes(n_features, out_features, hidden_features, n_rows):
    encoder = TabularEncoder(n_features, out_features, hidden_features)
    x = torch.randn(n_rows, n_features)
    assert encoder(x).shape == (n_rows, out_features)
    assert encoder.eval()(x[:1]).shape == (1, out_features)  # one row is fine in eval mode
    hidden = 2 * out_features if hidden_features is None else hidden_features
    assert encoder.layers[0].out_features == hidden


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"n_features": 0}, "n_features"), ({"out_features": -1}, "out_features"),
     ({"dropout": 1.0}, "dropout")],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TabularEncoder(**{"n_features": 4, **kwargs})


def test_swish_activations():
    encoder = TabularEncoder(4, 8)
    assert sum(isinstance(layer, torch.nn.SiLU) for layer in encoder.layers) == 2
