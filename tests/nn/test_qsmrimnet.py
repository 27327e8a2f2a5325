"""Shape tables and behaviour of rimclf.nn.QSMRimNet."""

import pytest
import torch

from rimclf.errors import CohortError
from rimclf.nn import BRANCHES, FUSIONS, DeepSMOTE, QSMRimNet

N_RADIOMICS = 11


def fused(*args, **kwargs) -> QSMRimNet:
    """QSMRim-Net with both branches (the default model uses the MLP branch alone)."""
    return QSMRimNet(*args, **{"branches": "both", **kwargs})


def inputs(n_rows=6, size=8, n_positive=3):
    patches = torch.randn(n_rows, 3, size, size, size)
    radiomics = torch.randn(n_rows, N_RADIOMICS)
    y = torch.zeros(n_rows)
    y[:n_positive] = 1.0
    return patches, radiomics, y


@pytest.mark.parametrize("branches", BRANCHES)
@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize(("depth", "width", "size"), [(10, 4, 8), (18, 2, 16), (34, 2, 12)])
def test_shapes(branches, fusion, depth, width, size):
    net = fused(
        in_channels=3, n_tabular=N_RADIOMICS, depth=depth, width=width,
        branches=branches, fusion=fusion, smote_k=2,
    )
    patches, radiomics, y = inputs(size=size, n_positive=3)
    net.train()
    logits, y_aug = net(patches, radiomics, y)
    assert logits.shape == y_aug.shape == (6 + 3 * 2,)
    assert net.embed(patches, radiomics).shape == (6, 8 * width)
    net.eval()
    with torch.no_grad():
        assert net(patches, radiomics).shape == (6,)
        logits, y_same = net(patches, radiomics, y)
    assert logits.shape == (6,) and y_same is y


def test_fusion_width():
    both_concat = fused(3, N_RADIOMICS, width=4, fusion="concat")
    both_sum = fused(3, N_RADIOMICS, width=4, fusion="sum")
    assert both_concat.transform[0].in_features == 64
    assert both_sum.transform[0].in_features == 32
    assert both_concat.feature_dim == both_sum.feature_dim == 32


def test_single_branch_ignores_and_does_not_need_the_other_input():
    patches, radiomics, _ = inputs()
    only_patches = QSMRimNet(in_channels=3, n_tabular=None, width=2, branches="patches").eval()
    only_radiomics = fused(in_channels=None, n_tabular=N_RADIOMICS, width=2,
                               branches="tabular").eval()
    assert only_patches.tabular_encoder is None
    assert only_radiomics.patch_encoder is None
    with torch.no_grad():
        assert torch.equal(only_patches(patches), only_patches(patches, radiomics))
        assert torch.equal(only_radiomics(tabular=radiomics), only_radiomics(patches, radiomics))


def test_missing_input_named():
    net = fused(3, N_RADIOMICS, width=2).eval()
    patches, radiomics, _ = inputs()
    with pytest.raises(CohortError, match="tabular features are required"):
        net(patches)
    with pytest.raises(CohortError, match="patches are required"):
        net(tabular=radiomics)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"branches": "all"}, "branches"), ({"fusion": "mean"}, "fusion"), ({"depth": 11}, "depth"),
     ({"width": 0}, "width"), ({"n_tabular": None}, "n_tabular"),
     ({"in_channels": None}, "in_channels")],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        QSMRimNet(**{"in_channels": 3, "n_tabular": N_RADIOMICS, "branches": "both", **kwargs})


def test_without_deepsmote_labels_pass_through():
    net = fused(3, N_RADIOMICS, width=2, deepsmote=False).train()
    patches, radiomics, y = inputs()
    logits, y_aug = net(patches, radiomics, y)
    assert net.smote is None
    assert logits.shape == (6,) and y_aug is y


def test_smote_settings_reach_the_layer():
    net = fused(3, N_RADIOMICS, width=2, smote_k=3, smote_seed=5)
    assert isinstance(net.smote, DeepSMOTE)
    assert (net.smote.k, net.smote.seed) == (3, 5)


def test_synthetic_rows_train_both_encoders():
    torch.manual_seed(0)
    net = fused(3, N_RADIOMICS, width=2, smote_seed=0).train()
    patches, radiomics, y = inputs(n_positive=3)
    logits, y_aug = net(patches, radiomics, y)
    logits[6:].sum().backward()  # the loss of the synthetic rows only
    assert net.patch_encoder.stem[0].weight.grad.abs().sum() > 0
    assert net.tabular_encoder.layers[0].weight.grad.abs().sum() > 0


@pytest.mark.slow
def test_paper_configuration_builds():
    net = fused(in_channels=2, n_tabular=527, depth=18, width=64)
    assert net.feature_dim == 512
    assert net.head[0].out_features == 128  # the seed's 512 -> 128 -> 1 head
    assert net.tabular_encoder.layers[0].out_features == 1024


def test_patch_augmentation_is_part_of_training_only() -> None:
    torch.manual_seed(0)
    net = fused(3, N_RADIOMICS, width=2, augment="flips+rotations")
    assert net.augment is not None and net.augment.max_rotation_degrees > 0
    assert fused(3, N_RADIOMICS, width=2, augment="flips").augment.max_rotation_degrees == 0
    assert QSMRimNet(None, N_RADIOMICS, width=2, branches="tabular", augment="flips").augment is None  # no patches
    patches, radiomics = torch.randn(4, 3, 8, 8, 8), torch.randn(4, N_RADIOMICS)
    net.eval()
    assert torch.equal(net(patches, radiomics), net(patches, radiomics))  # eval: no random transform
    calls = []
    net.augment.register_forward_hook(lambda module, args, output: calls.append(module.training))
    net.train()(patches, radiomics)
    assert calls == [True]
