"""Shape tables and behaviour of rimclf.nn.QSMRimNet."""

import pytest
import torch

from rimclf.nn import BRANCHES, FUSIONS, DeepSMOTE, QSMRimNet

N_RADIOMICS = 11


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
    net = QSMRimNet(
        in_channels=3, n_radiomics=N_RADIOMICS, depth=depth, width=width,
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
    both_concat = QSMRimNet(3, N_RADIOMICS, width=4, branches="both", fusion="concat")
    both_sum = QSMRimNet(3, N_RADIOMICS, width=4, branches="both", fusion="sum")
    assert both_concat.transform[0].in_features == 64
    assert both_sum.transform[0].in_features == 32
    assert both_concat.feature_dim == both_sum.feature_dim == 32


def test_single_branch_ignores_and_does_not_need_the_other_input():
    patches, radiomics, _ = inputs()
    only_patches = QSMRimNet(in_channels=3, n_radiomics=None, width=2, branches="patches").eval()
    only_radiomics = QSMRimNet(in_channels=None, n_radiomics=N_RADIOMICS, width=2,
                               branches="radiomics").eval()
    assert only_patches.radiomics_encoder is None
    assert only_radiomics.patch_encoder is None
    with torch.no_grad():
        assert torch.equal(only_patches(patches), only_patches(patches, radiomics))
        assert torch.equal(only_radiomics(radiomics=radiomics), only_radiomics(patches, radiomics))


def test_missing_input_named():
    net = QSMRimNet(3, N_RADIOMICS, width=2, branches="both").eval()
    patches, radiomics, _ = inputs()
    with pytest.raises(ValueError, match="radiomics are required"):
        net(patches)
    with pytest.raises(ValueError, match="patches are required"):
        net(radiomics=radiomics)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"branches": "all"}, "branches"), ({"fusion": "mean"}, "fusion"), ({"depth": 11}, "depth"),
     ({"width": 0}, "width"), ({"n_radiomics": None}, "n_radiomics"),
     ({"in_channels": None}, "in_channels")],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        QSMRimNet(**{"in_channels": 3, "n_radiomics": N_RADIOMICS, "branches": "both", **kwargs})


def test_without_deepsmote_labels_pass_through():
    net = QSMRimNet(3, N_RADIOMICS, width=2, deepsmote=False).train()
    patches, radiomics, y = inputs()
    logits, y_aug = net(patches, radiomics, y)
    assert net.smote is None
    assert logits.shape == (6,) and y_aug is y


def test_smote_settings_reach_the_layer():
    net = QSMRimNet(3, N_RADIOMICS, width=2, smote_k=3, smote_seed=5)
    assert isinstance(net.smote, DeepSMOTE)
    assert (net.smote.k, net.smote.seed) == (3, 5)


def test_synthetic_rows_train_both_encoders():
    torch.manual_seed(0)
    net = QSMRimNet(3, N_RADIOMICS, width=2, branches="both", smote_seed=0).train()
    patches, radiomics, y = inputs(n_positive=3)
    logits, y_aug = net(patches, radiomics, y)
    logits[6:].sum().backward()  # the loss of the synthetic rows only
    assert net.patch_encoder.stem[0].weight.grad.abs().sum() > 0
    assert net.radiomics_encoder.layers[0].weight.grad.abs().sum() > 0


def test_paper_configuration_builds():
    net = QSMRimNet(in_channels=2, n_radiomics=527, depth=18, width=64, branches="both")
    assert net.feature_dim == 512
    assert net.head[0].out_features == 128  # the seed's 512 -> 128 -> 1 head
    assert net.radiomics_encoder.layers[0].out_features == 1024
