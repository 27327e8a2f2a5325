"""Shape tables and checks for rimclf.nn.ResNet3D."""

import pytest
import torch

from rimclf.nn import BLOCKS_PER_STAGE, ResNet3D


@pytest.mark.parametrize("depth", [10, 18, 34])
@pytest.mark.parametrize("width", [2, 4])
@pytest.mark.parametrize(
    ("input_shape", "feature_shape"),
    [((8, 8, 8), (1, 1, 1)), ((16, 16, 16), (1, 1, 1)), ((24, 24, 24), (2, 2, 2)),
     ((32, 32, 32), (2, 2, 2)), ((12, 16, 20), (1, 1, 2))],
)
def test_shapes(depth, width, input_shape, feature_shape):
    net = ResNet3D(in_channels=3, depth=depth, width=width).eval()
    x = torch.randn(2, 3, *input_shape)
    with torch.no_grad():
        features = net.forward_features(x)
        pooled = net(x)
    assert features.shape == (2, 8 * width, *feature_shape)
    assert ResNet3D.feature_shape(input_shape) == feature_shape
    assert pooled.shape == (2, 8 * width)
    assert net.out_channels == 8 * width


def test_blocks_per_depth():
    for depth, blocks in BLOCKS_PER_STAGE.items():
        net = ResNet3D(in_channels=1, depth=depth, width=2)
        assert tuple(len(stage) for stage in net.stages) == blocks
        n_convs = 1 + 2 * sum(blocks)  # stem + two per basic block
        assert n_convs + 1 == depth  # the name counts a final linear layer too


@pytest.mark.slow
def test_paper_size_parameter_count():
    net = ResNet3D(in_channels=2, depth=18, width=64)
    n_parameters = sum(p.numel() for p in net.parameters())
    assert 33.0e6 < n_parameters < 33.3e6  # the seed's 3D resnet18 trunk
    assert net.out_channels == 512


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"depth": 50}, "depth"), ({"width": 0}, "width"), ({"in_channels": 0}, "in_channels")],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ResNet3D(**{"in_channels": 3, **kwargs})


def test_gradients_reach_the_stem():
    net = ResNet3D(in_channels=1, depth=10, width=2)
    net(torch.randn(2, 1, 8, 8, 8)).sum().backward()
    assert net.stem[0].weight.grad is not None
    assert net.stem[0].weight.grad.abs().sum() > 0
