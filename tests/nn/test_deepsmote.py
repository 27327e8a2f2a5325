"""Properties of the DeepSMOTE interpolation (rimclf.nn.deep_smote / DeepSMOTE)."""

import numpy as np
import pytest
import torch

from rimclf.errors import CohortError
from rimclf.nn import DeepSMOTE, deep_smote


def make_batch(n_rows=12, n_positive=5, dim=6, seed=0):
    rng = np.random.default_rng(seed)
    z = torch.tensor(rng.normal(size=(n_rows, dim)), dtype=torch.float32)
    y = torch.zeros(n_rows)
    y[rng.choice(n_rows, n_positive, replace=False)] = 1.0
    return z, y


def knn_excluding_self(points, k):
    distance = np.linalg.norm(points[:, None, :] - points[None, :, :], axis=-1)
    np.fill_diagonal(distance, np.inf)
    return np.argsort(distance, axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("n_positive", [0, 1, 2, 3, 4, 7])
def test_row_count(k, n_positive):
    z, y = make_batch(n_rows=10, n_positive=n_positive)
    z_aug, y_aug = deep_smote(z, y, k=k, generator=torch.Generator().manual_seed(0))
    k_eff = min(k, n_positive - 1) if n_positive >= 2 else 0
    assert z_aug.shape == (10 + n_positive * k_eff, z.shape[1])
    assert y_aug.shape == (10 + n_positive * k_eff,)
    assert torch.equal(z_aug[:10], z)
    assert torch.equal(y_aug[:10], y)
    assert torch.all(y_aug[10:] == 1.0)


@pytest.mark.parametrize("n_positive", [0, 1])
def test_too_few_positives_is_a_no_op(n_positive):
    z, y = make_batch(n_positive=n_positive)
    z_aug, y_aug = deep_smote(z, y, k=2)
    assert z_aug is z and y_aug is y


def test_label_dtype_and_trailing_shape_kept():
    z, y = make_batch(n_positive=4)
    _, y_aug = deep_smote(z, y.reshape(-1, 1).long(), k=2)
    assert y_aug.shape == (12 + 8, 1)
    assert y_aug.dtype == torch.long


@pytest.mark.parametrize("k", [1, 2, 4])
def test_synthetic_rows_lie_between_a_positive_and_one_of_its_k_nearest(k):
    z, y = make_batch(n_rows=20, n_positive=6, seed=3)
    z_aug, _ = deep_smote(z, y, k=k, generator=torch.Generator().manual_seed(1))
    positives = z[y > 0.5].numpy().astype(np.float64)
    neighbours = knn_excluding_self(positives, k)
    synthetic = z_aug[20:].numpy().astype(np.float64)
    assert synthetic.shape[0] == 6 * k
    for row, point in enumerate(synthetic):
        source, rank = divmod(row, k)  # documented order: by source, nearest neighbour first
        start, end = positives[source], positives[neighbours[source, rank]]
        weight = np.dot(point - start, end - start) / np.dot(end - start, end - start)
        assert 0.0 < weight <= 1.0 + 1e-6
        np.testing.assert_allclose(point, start + weight * (end - start), atol=1e-5)


def test_no_synthetic_row_equals_its_source_or_any_real_row():
    z, y = make_batch(n_rows=30, n_positive=8, seed=5)
    z_aug, _ = deep_smote(z, y, k=2, generator=torch.Generator().manual_seed(2))
    synthetic = z_aug[30:]
    sources = z[y > 0.5].repeat_interleave(2, dim=0)
    assert not torch.any(torch.all(synthetic == sources, dim=1))
    # distance of every synthetic row to its nearest real row is positive: no copies at all
    assert torch.cdist(synthetic, z).min() > 0


def test_one_weight_per_synthetic_row():
    z, y = make_batch(n_rows=20, n_positive=6, seed=1)
    z_aug, _ = deep_smote(z, y, k=2, generator=torch.Generator().manual_seed(0))
    positives = z[y > 0.5].numpy()
    neighbours = knn_excluding_self(positives, 2)
    weights = []
    for row, point in enumerate(z_aug[20:].numpy()):
        source, rank = divmod(row, 2)
        start, end = positives[source], positives[neighbours[source, rank]]
        weights.append(np.dot(point - start, end - start) / np.dot(end - start, end - start))
    assert len(np.unique(np.round(weights, 5))) == len(weights)


def test_fewer_than_k_plus_one_positives_use_all_others():
    z = torch.tensor([[0.0, 0.0], [1.0, 0.0], [9.0, 9.0], [0.0, 2.0]])
    y = torch.tensor([1.0, 1.0, 0.0, 0.0])
    z_aug, y_aug = deep_smote(z, y, k=5, generator=torch.Generator().manual_seed(0))
    assert z_aug.shape == (6, 2)
    synthetic = z_aug[4:]
    assert torch.all(synthetic[:, 1] == 0.0)  # on the segment between the two rim+ rows
    assert 0.0 < synthetic[0, 0] <= 1.0 and 0.0 <= synthetic[1, 0] < 1.0


def test_deterministic_under_a_seed():
    z, y = make_batch(n_positive=5)
    first = deep_smote(z, y, k=2, generator=torch.Generator().manual_seed(7))[0]
    again = deep_smote(z, y, k=2, generator=torch.Generator().manual_seed(7))[0]
    other = deep_smote(z, y, k=2, generator=torch.Generator().manual_seed(8))[0]
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_gradients_flow_through_both_end_points():
    z, y = make_batch(n_rows=10, n_positive=3, seed=2)
    z = z.clone().requires_grad_(True)
    z_aug, _ = deep_smote(z, y, k=2, generator=torch.Generator().manual_seed(0))
    z_aug[10:].sum().backward()
    gradient_norm = z.grad.abs().sum(dim=1)
    assert torch.all(gradient_norm[y > 0.5] > 0)  # every rim+ row is a source and a neighbour
    assert torch.all(gradient_norm[y < 0.5] == 0)


def test_bfloat16_features():
    z, y = make_batch(n_positive=4)
    z_aug, _ = deep_smote(z.bfloat16(), y, k=2)
    assert z_aug.dtype == torch.bfloat16
    assert torch.isfinite(z_aug.float()).all()


@pytest.mark.parametrize("k", [0, -1, 1.5, True])
def test_bad_k(k):
    z, y = make_batch()
    with pytest.raises(ValueError, match="k=.* is not valid; it must be a positive integer"):
        deep_smote(z, y, k=k)
    with pytest.raises(ValueError, match="k=.* is not valid; it must be a positive integer"):
        DeepSMOTE(k=k)


def test_label_count_must_match():
    z, y = make_batch()
    with pytest.raises(CohortError, match="labels"):
        deep_smote(z, y[:-1])


def test_module_identity_in_eval_mode_and_without_labels():
    z, y = make_batch(n_positive=5)
    layer = DeepSMOTE(k=2, seed=0)
    assert layer(z, None) == (z, None)
    layer.eval()
    z_out, y_out = layer(z, y)
    assert z_out is z and y_out is y


def test_module_training_mode_and_seed():
    z, y = make_batch(n_positive=5)
    layer = DeepSMOTE(k=2, seed=3).train()
    first, y_aug = layer(z, y)
    assert first.shape[0] == 12 + 10 and y_aug.shape[0] == 22
    second, _ = layer(z, y)
    assert not torch.equal(first, second)  # the generator moves on between batches
    layer.manual_seed(3)
    assert torch.equal(layer(z, y)[0], first)  # and restarts from the seed


def test_module_without_seed_follows_torch_global_generator():
    z, y = make_batch(n_positive=5)
    layer = DeepSMOTE(k=2)
    torch.manual_seed(11)
    first = layer(z, y)[0]
    torch.manual_seed(11)
    assert torch.equal(layer(z, y)[0], first)
