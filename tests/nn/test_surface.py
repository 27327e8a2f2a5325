"""Shapes and invariances of rimclf.nn.SurfaceMapEncoder and QSMRimNet(image="surface_map")."""

import pytest
import torch

from rimclf.errors import CohortError
from rimclf.nn import QSMRimNet, ResNet3D, SurfaceMapEncoder


@pytest.mark.parametrize(("channels", "depths", "directions", "out"), [(2, 7, 32, 64), (3, 1, 6, 8), (1, 12, 48, 16)])
def test_shapes(channels, depths, directions, out):
    encoder = SurfaceMapEncoder(channels, out_features=out).eval()
    assert encoder(torch.randn(4, channels, depths, directions)).shape == (4, out)


def test_direction_order_does_not_matter_but_depth_does():
    torch.manual_seed(0)
    encoder = SurfaceMapEncoder(2, out_features=16).eval()
    maps = torch.randn(3, 2, 7, 32)
    with torch.no_grad():
        reference = encoder(maps)
        assert torch.allclose(encoder(maps[..., torch.randperm(32)]), reference, atol=1e-5)
        assert not torch.allclose(encoder(maps.flip(2)), reference, atol=1e-3)


def test_wrong_shape_is_named():
    with pytest.raises(CohortError, match="maps must have shape"):
        SurfaceMapEncoder(2)(torch.zeros(2, 3, 7, 32))


def test_qsmrimnet_reads_surface_maps():
    net = QSMRimNet(in_channels=2, n_tabular=5, width=2, branches="both", image="surface_map").train()
    assert isinstance(net.patch_encoder, SurfaceMapEncoder) and net.augment is None
    y = torch.tensor([1.0, 1.0, 0.0, 0.0])
    logits, y_aug = net(torch.randn(4, 2, 7, 32), torch.randn(4, 5), y)
    assert logits.shape == y_aug.shape == (4 + 2,)
    assert isinstance(QSMRimNet(in_channels=2, branches="patches").patch_encoder, ResNet3D)
    with pytest.raises(ValueError, match="image"):
        QSMRimNet(in_channels=2, branches="patches", image="surface")


def test_small_enough_for_a_cpu():
    n_weights = sum(p.numel() for p in SurfaceMapEncoder(2, out_features=64).parameters())
    assert n_weights < 10_000
