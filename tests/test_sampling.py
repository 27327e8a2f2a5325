"""StratifiedBatchSampler, LesionBatchDataset, DeviceBatches and GroupValidSplit."""

import numpy as np
import pytest
import torch

from rimclf.classifier.batches import (
    DeviceBatches,
    GroupValidSplit,
    LesionBatchDataset,
    StratifiedBatchSampler,
    as_lesion_dataset,
)
from rimclf.errors import CohortError, ParameterError


def labels(n_rows, n_positive, seed=0):
    y = np.zeros(n_rows)
    y[np.random.default_rng(seed).choice(n_rows, n_positive, replace=False)] = 1
    return y


def epoch(sampler):
    batches = list(sampler)
    assert len(batches) == len(sampler)
    return batches


@pytest.mark.parametrize(
    ("n_rows", "n_positive", "batch_size", "min_positives"),
    [(100, 4, 32, 0), (100, 4, 32, 3), (250, 10, 32, 3), (33, 2, 32, 2), (7, 1, 4, 2),
     (300, 60, 16, 2), (5, 5, 2, 1), (64, 0, 16, 3), (2, 1, 32, 3), (1000, 40, 32, 3)],
)
def test_every_row_once_per_epoch(n_rows, n_positive, batch_size, min_positives):
    y = labels(n_rows, n_positive)
    sampler = StratifiedBatchSampler(y, batch_size, min_positives=min_positives, random_state=0)
    for _ in range(2):
        batches = epoch(sampler)
        rows = np.concatenate(batches)
        assert np.array_equal(np.sort(rows), np.arange(n_rows))
        assert min(len(batch) for batch in batches) >= 2 or n_rows < 2


@pytest.mark.parametrize(("n_rows", "n_positive"), [(1000, 40), (400, 16), (120, 30), (96, 6)])
def test_min_positives_honoured(n_rows, n_positive):
    y = labels(n_rows, n_positive)
    sampler = StratifiedBatchSampler(y, 32, min_positives=3, random_state=1)
    batches = epoch(sampler)
    positives = [int(y[batch].sum()) for batch in batches]
    assert min(positives) >= 3
    assert max(positives) - min(positives) <= 1  # spread evenly
    if n_positive // 3 >= np.ceil(n_rows / 32):
        assert max(len(b) for b in batches) <= 32  # enough rim+: ordinary batch sizes
    else:
        assert len(batches) == n_positive // 3  # too few: fewer, larger batches


def test_positives_spread_evenly_without_minimum():
    y = labels(320, 13)
    positives = [int(y[b].sum()) for b in epoch(StratifiedBatchSampler(y, 32, random_state=0))]
    assert len(positives) == 10 and sorted(positives) == [1] * 7 + [2] * 3


def test_fewer_positives_than_the_minimum_go_into_one_batch():
    y = labels(100, 2)
    batches = epoch(StratifiedBatchSampler(y, 16, min_positives=3, random_state=0))
    positives = sorted(int(y[b].sum()) for b in batches)
    assert positives[-1] == 2 and sum(positives) == 2


def test_oversample_balances_each_epoch():
    y = labels(200, 10)
    sampler = StratifiedBatchSampler(y, 32, oversample=True, random_state=0)
    rows = np.concatenate(epoch(sampler))
    negatives = rows[y[rows] == 0]
    positives = rows[y[rows] == 1]
    assert np.array_equal(np.sort(negatives), np.flatnonzero(y == 0))  # each once
    assert positives.size == 190
    counts = np.bincount(positives, minlength=200)[y == 1]
    assert counts.max() - counts.min() <= 1  # whole passes over the positives


def test_reproducible_and_shuffled():
    y = labels(100, 8)
    first = epoch(StratifiedBatchSampler(y, 16, min_positives=2, random_state=4))
    again = epoch(StratifiedBatchSampler(y, 16, min_positives=2, random_state=4))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    sampler = StratifiedBatchSampler(y, 16, min_positives=2, random_state=4)
    one, two = epoch(sampler), epoch(sampler)
    assert not all(np.array_equal(a, b) for a, b in zip(one, two))


@pytest.mark.parametrize(("kwargs", "match"), [({"batch_size": 1}, "batch_size"),
                                               ({"min_positives": -1}, "min_positives")])
def test_bad_parameters(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        StratifiedBatchSampler(labels(10, 2), **{"batch_size": 4, **kwargs})


def make_dataset(n_rows=20):
    inputs = {"patches": torch.arange(n_rows, dtype=torch.float32).reshape(n_rows, 1, 1, 1, 1),
              "radiomics": torch.arange(n_rows, dtype=torch.float32)[:, None].repeat(1, 3)}
    return LesionBatchDataset(inputs, torch.as_tensor(labels(n_rows, 5), dtype=torch.float32))


def test_dataset_batches_and_subsets():
    dataset = make_dataset()
    batch, y = dataset[np.array([3, 1])]
    assert batch["patches"].reshape(-1).tolist() == [3.0, 1.0]
    assert batch["radiomics"].shape == (2, 3) and y.shape == (2,)
    assert dataset[2:5][0]["patches"].reshape(-1).tolist() == [2.0, 3.0, 4.0]
    subset = dataset.take([10, 11, 12, 13]).take([3, 0])
    assert len(subset) == 2
    assert subset[0:2][0]["patches"].reshape(-1).tolist() == [13.0, 10.0]
    assert subset.labels.tolist() == dataset.labels[[13, 10]].tolist()
    unlabeled = LesionBatchDataset(dataset.inputs)
    assert unlabeled[0:4][1].shape == (4,) and unlabeled.labels is None


def test_torch_subsets_are_unwrapped():
    dataset = make_dataset()
    nested = torch.utils.data.Subset(torch.utils.data.Subset(dataset, [2, 4, 6, 8]), [1, 3])
    unwrapped = as_lesion_dataset(nested)
    assert unwrapped[0:2][0]["patches"].reshape(-1).tolist() == [4.0, 8.0]
    assert as_lesion_dataset(torch.utils.data.TensorDataset(torch.zeros(3))) is None


def test_sampler_built_on_a_subset_covers_only_it():
    dataset = make_dataset(60).take(np.arange(0, 60, 2))
    sampler = StratifiedBatchSampler(dataset.labels, 8, min_positives=1, random_state=0)
    rows = np.concatenate(list(sampler))
    assert np.array_equal(np.sort(rows), np.arange(30))


def assert_same_batches(first, second) -> None:
    assert len(first) == len(second)
    for (inputs_a, y_a), (inputs_b, y_b) in zip(first, second):
        assert inputs_a.keys() == inputs_b.keys()
        for name in inputs_a:
            assert torch.equal(inputs_a[name], inputs_b[name]), name
        assert torch.equal(y_a, y_b)


@pytest.mark.parametrize("subset", [False, True])
def test_device_batches_match_the_dataset_batches(subset):
    """The GPU batch path (on the CPU here): the same batches as ``dataset[rows]``, in order."""
    dataset = make_dataset(60)
    if subset:
        dataset = dataset.take(np.arange(59, -1, -2))  # a reversed half, as a CV fold
    placed = dataset.to(torch.device("cpu"))
    assert placed.on_device and placed.index is None and len(placed) == len(dataset)
    assert placed.take([1, 2]).on_device  # a validation split of it stays placed
    batches = list(StratifiedBatchSampler(dataset.labels, 8, min_positives=1, random_state=0))
    assert_same_batches(list(DeviceBatches(placed, batches)), [dataset[rows] for rows in batches])
    assert_same_batches(list(DeviceBatches(dataset, batches)), [dataset[rows] for rows in batches])
    slices = [slice(0, 8), slice(8, 16), slice(16, len(dataset))]
    assert_same_batches(list(DeviceBatches(placed, slices)), [dataset[part] for part in slices])
    assert_same_batches(list(DeviceBatches(dataset, slices)), [dataset[part] for part in slices])
    assert len(DeviceBatches(placed, slices)) == 3 and list(DeviceBatches(placed, [])) == []


def test_device_batches_follow_the_sampler_epoch_after_epoch():
    dataset = make_dataset(40)
    sampler = StratifiedBatchSampler(dataset.labels, 8, random_state=3)
    twin = StratifiedBatchSampler(dataset.labels, 8, random_state=3)
    batches = DeviceBatches(dataset.to(torch.device("cpu")), sampler)
    for _ in range(2):  # a new epoch on every pass, as a DataLoader over the sampler gives
        assert_same_batches(list(batches), [dataset[rows] for rows in twin])


def test_placed_dataset_views_layout_and_size():
    dataset = make_dataset(12)
    placed = dataset.to(torch.device("cpu"))
    batch, _ = placed[2:5]
    assert batch["patches"].data_ptr() == placed.inputs["patches"][2:5].data_ptr()  # a view, no copy
    cubes = LesionBatchDataset({"patches": torch.zeros(6, 2, 4, 4, 4)}, torch.zeros(6))
    channels_last = cubes.to(torch.device("cpu"), channels_last=True)
    assert channels_last.inputs["patches"].is_contiguous(memory_format=torch.channels_last_3d)
    gathered, _ = next(iter(DeviceBatches(channels_last, [np.array([4, 0, 2])])))
    assert gathered["patches"].is_contiguous(memory_format=torch.channels_last_3d)  # kept by indexing
    assert cubes.nbytes == 6 * 2 * 64 * 4 and cubes.take([0, 1]).nbytes == 2 * 2 * 64 * 4
    assert dataset.device == torch.device("cpu")


def test_group_valid_split_keeps_subjects_apart():
    dataset = make_dataset(40)
    groups = np.repeat(np.arange(8), 5)
    train, valid = GroupValidSplit(4)(dataset, dataset.labels, groups=groups)
    train_rows = train[0:len(train)][0]["patches"].reshape(-1).numpy().astype(int)
    valid_rows = valid[0:len(valid)][0]["patches"].reshape(-1).numpy().astype(int)
    assert set(groups[train_rows]).isdisjoint(groups[valid_rows])
    assert len(train) + len(valid) == 40 and len(valid) > 0


def test_group_valid_split_errors():
    dataset = make_dataset(20)
    with pytest.raises(CohortError, match="groups"):
        GroupValidSplit(3)(dataset, dataset.labels)
    with pytest.raises(ParameterError, match="subjects"):
        GroupValidSplit(5)(dataset, dataset.labels, groups=np.repeat([0, 1], 10))
    with pytest.raises(ParameterError, match="n_splits"):
        GroupValidSplit(1)(dataset, dataset.labels, groups=np.arange(20))
