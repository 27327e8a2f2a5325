"""Batch-level data access for QSMRimNetClassifier: a dataset indexed by whole batches, a batch
sampler that spreads the rare rim+ lesions over the batches, batches gathered on the compute
device, and a subject-grouped validation split.

skorch's default :class:`skorch.dataset.Dataset` is indexed one row at a time and the rows are
then collated, which costs several times the training step of a small network. Here a batch is
fetched with one tensor indexing per input (``patches[idx]``), by handing the sampler's index
arrays straight to ``Dataset.__getitem__`` (``DataLoader(batch_size=None, sampler=...)``).

On a GPU the inputs can live on the device for the whole fit (:meth:`LesionBatchDataset.to`,
:class:`DeviceBatches`): the row indices of an epoch are copied to the device once and every
batch is gathered there, so no input crosses the host-device link batch by batch. The labels
stay on the host, where the sampler and the per-batch counts read them without waiting for the
device.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch
from sklearn.model_selection import StratifiedGroupKFold

from rimclf._validation import check_int
from rimclf.errors import CohortError, ParameterError


class LesionBatchDataset(torch.utils.data.Dataset):
    """Input tensors (and labels) of lesions, indexed by whole batches.

    Parameters
    ----------
    inputs : mapping of str to torch.Tensor
        Named inputs of the module (``"patches"``, ``"radiomics"``), each with one row per lesion.
    y : torch.Tensor or None
        Float labels ``(n,)``; None at prediction (a zero placeholder is returned then).
    index : torch.Tensor or None
        Row subset (a view: the tensors are not copied); None means all rows.

    on_device : bool, default=False
        The inputs were placed on their compute device for the whole fit (:meth:`to`): batches
        are then gathered there by :class:`DeviceBatches` rather than by a ``DataLoader``.

    ``dataset[idx]`` with a slice, an integer array, list or tensor returns ``(inputs_batch,
    y_batch)``, the ``(X, y)`` pair skorch's training and validation steps unpack. The labels
    ``y`` (and ``index``) always live on the CPU, whatever the inputs' device.
    """

    def __init__(
        self,
        inputs: Mapping[str, torch.Tensor],
        y: torch.Tensor | None = None,
        index: torch.Tensor | None = None,
        on_device: bool = False,
    ) -> None:
        self.inputs = dict(inputs)
        self.y = y
        self.index = index
        self.on_device = on_device
        n_rows = {int(value.shape[0]) for value in self.inputs.values()}
        if y is not None:
            n_rows.add(int(y.shape[0]))
        if len(n_rows) > 1:
            raise CohortError(f"inputs and labels have different numbers of rows: {sorted(n_rows)}")
        self._n_rows = n_rows.pop() if n_rows else 0

    def __len__(self) -> int:
        return self._n_rows if self.index is None else int(self.index.numel())

    def _rows(self, item: object) -> torch.Tensor | slice:
        if isinstance(item, slice) and self.index is None:
            return item
        if isinstance(item, slice):
            rows = item
        else:
            rows = torch.as_tensor(np.asarray(item), dtype=torch.long)
        if self.index is not None:
            rows = self.index[rows]
        return rows

    def __getitem__(self, item: object) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        rows = self._rows(item)
        batch = {name: value[rows] for name, value in self.inputs.items()}
        if self.y is None:
            n = len(range(*rows.indices(self._n_rows))) if isinstance(rows, slice) else rows.numel()
            return batch, torch.zeros(n, dtype=torch.float32)
        return batch, self.y[rows]

    def take(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> LesionBatchDataset:
        """The rows ``indices`` of this dataset, as a new dataset sharing the same tensors."""
        rows = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        if self.index is not None:
            rows = self.index[rows]
        return LesionBatchDataset(self.inputs, self.y, index=rows, on_device=self.on_device)

    @property
    def device(self) -> torch.device:
        """Where the inputs live (the CPU for a dataset without inputs)."""
        return next((value.device for value in self.inputs.values()), torch.device("cpu"))

    @property
    def nbytes(self) -> int:
        """Bytes the inputs of this dataset's rows take."""
        return sum(math.prod(value.shape[1:]) * value.element_size() * len(self) for value in self.inputs.values())

    def to(self, device: torch.device, *, channels_last: bool = False) -> LesionBatchDataset:
        """This dataset's rows with the inputs on ``device`` for good (``on_device=True``).

        The rows of a subset are gathered once (the result has no ``index``); the labels stay on
        the CPU. With ``channels_last``, 5-D inputs get the ``torch.channels_last_3d`` layout, which
        batches gathered from them keep.
        """
        inputs = {}
        for name, value in self.inputs.items():
            if self.index is not None:
                value = value[self.index.to(value.device)]
            value = value.to(device)
            if channels_last and value.ndim == 5:
                value = value.contiguous(memory_format=torch.channels_last_3d)
            inputs[name] = value
        y = self.y if self.y is None or self.index is None else self.y[self.index]
        return LesionBatchDataset(inputs, y, on_device=True)

    def gather(self, rows: np.ndarray, device_rows: torch.Tensor | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The batch of rows ``rows`` (positions in this dataset, on the host), with the inputs
        gathered by ``device_rows`` (the same rows, already on the inputs' device) when given."""
        host_rows = torch.as_tensor(np.asarray(rows), dtype=torch.long)
        if self.index is not None:
            host_rows = self.index[host_rows]
        if device_rows is None:
            device_rows = host_rows.to(self.device, non_blocking=True)
        batch = {name: value[device_rows] for name, value in self.inputs.items()}
        y = torch.zeros(host_rows.numel(), dtype=torch.float32) if self.y is None else self.y[host_rows]
        return batch, y

    @property
    def labels(self) -> np.ndarray | None:
        """The labels of the rows of this dataset as a numpy array (None without labels)."""
        if self.y is None:
            return None
        y = self.y if self.index is None else self.y[self.index]
        return y.numpy()


def as_lesion_dataset(dataset: object) -> LesionBatchDataset | None:
    """``dataset`` as a :class:`LesionBatchDataset`, unwrapping (nested) ``torch`` Subsets such as
    those of skorch's ``ValidSplit``; None for any other dataset."""
    if isinstance(dataset, LesionBatchDataset):
        return dataset
    if isinstance(dataset, torch.utils.data.Subset):
        parent = as_lesion_dataset(dataset.dataset)
        return None if parent is None else parent.take(np.asarray(dataset.indices))
    return None


class DeviceBatches:
    """The batches of a :class:`LesionBatchDataset` whose inputs live on the compute device.

    A re-iterable that skorch loops over like a ``DataLoader``: each pass takes one epoch of
    batches from ``batches`` (a :class:`StratifiedBatchSampler`, or a list of slices), copies
    all their row indices to the device at once and yields every batch gathered on the device
    (``patches[rows]``), with its labels taken on the host. Nothing waits for the device: the
    one host-to-device copy per epoch is asynchronous (from pinned memory on a GPU). Slices of
    a dataset without a row subset are yielded as views, without a copy.

    Parameters
    ----------
    dataset : LesionBatchDataset
        Inputs on the device (:meth:`LesionBatchDataset.to`).
    batches : iterable of index arrays or slices
        Positions in ``dataset``, one entry per batch; iterated anew on every pass.
    """

    def __init__(self, dataset: LesionBatchDataset, batches: Iterable[np.ndarray | slice]) -> None:
        self.dataset = dataset
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]:
        dataset = self.dataset
        batches = list(self.batches)
        if dataset.index is None and all(isinstance(batch, slice) for batch in batches):
            yield from (dataset[batch] for batch in batches)
            return
        n_rows = len(dataset)
        parts = [np.arange(n_rows)[batch] if isinstance(batch, slice) else np.asarray(batch, dtype=np.int64)
                 for batch in batches]
        if not parts:
            return
        flat = torch.from_numpy(np.concatenate(parts).astype(np.int64, copy=False))
        if dataset.index is not None:
            flat = dataset.index[flat]
        if dataset.device.type == "cuda":
            flat = flat.pin_memory()
        device_flat = flat.to(dataset.device, non_blocking=True)
        unindexed = LesionBatchDataset(dataset.inputs, dataset.y, on_device=True)
        start = 0
        for part in parts:
            stop = start + part.size
            yield unindexed.gather(flat[start:stop].numpy(), device_flat[start:stop])
            start = stop


def _even_split(total: int, n_parts: int) -> np.ndarray:
    """``n_parts`` integers summing to ``total`` that differ by at most one (largest first)."""
    base, extra = divmod(total, n_parts)
    return np.array([base + 1] * extra + [base] * (n_parts - extra), dtype=np.int64)


def _water_fill(filled: np.ndarray, n_items: int) -> np.ndarray:
    """How many of ``n_items`` to add to each bin so the fullest bin is as small as possible."""
    if n_items == 0:
        return np.zeros_like(filled)
    low, high = int(filled.min()), int(filled.min()) + n_items
    while low < high:  # smallest level that holds all items
        level = (low + high) // 2
        if np.clip(level - filled, 0, None).sum() >= n_items:
            high = level
        else:
            low = level + 1
    added = np.clip(low - 1 - filled, 0, None)
    remainder = n_items - int(added.sum())
    at_level = np.flatnonzero(filled + added == low - 1)
    added[at_level[:remainder]] += 1
    return added


class StratifiedBatchSampler(torch.utils.data.Sampler):
    """Batches that spread the positive (rim+) rows evenly, with a per-batch minimum.

    Each epoch partitions the rows into batches: the positives are shuffled and split as evenly
    as possible over the batches, the negatives fill the batches up to about ``batch_size``.
    Every row is used exactly once per epoch unless ``oversample`` is set.

    Parameters
    ----------
    y : array-like of shape (n,)
        Labels of the dataset being iterated (rows with ``y > 0.5`` are positive).
    batch_size : int
        Target batch size (>= 2); batches have about equal sizes, none above ``batch_size``
        unless fewer batches are needed to honour ``min_positives``.
    min_positives : int, default=0
        Minimum positives per batch. When the data hold fewer than ``min_positives x (number of
        batches)`` positives, fewer (hence larger) batches are made, ``n_positive //
        min_positives`` of them, so that every batch still gets ``min_positives`` and every row
        is still seen once. When the data hold fewer than ``min_positives`` positives (but some),
        all of them go into one batch.
    oversample : bool, default=False
        Reuse the positives (whole shuffled passes, then a random part of one) until an epoch holds
        as many positive rows as negative ones; the negatives are still seen once per epoch.
    shuffle : bool, default=True
        Shuffle rows and batch order each epoch (False: rows in index order, for inspection).
    random_state : int, numpy Generator or None, default=None
        Source of the shuffling; a Generator is used as is (and advanced epoch after epoch).

    Notes
    -----
    No batch holds a single row (batch norm cannot train on one): the number of batches is at
    most ``n // 2``.

    Examples
    --------
    >>> y = [1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0]
    >>> sampler = StratifiedBatchSampler(y, batch_size=4, random_state=0)
    >>> len(sampler)
    3
    >>> sorted(int(sum(y[i] for i in batch)) for batch in sampler)  # one rim+ row in every batch
    [1, 1, 1]
    """

    def __init__(
        self,
        y: Sequence[float] | np.ndarray,
        batch_size: int,
        *,
        min_positives: int = 0,
        oversample: bool = False,
        shuffle: bool = True,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        labels = np.asarray(y, dtype=np.float64).reshape(-1)
        check_int(batch_size, "batch_size", min=2, owner="StratifiedBatchSampler")
        check_int(min_positives, "min_positives", min=0, owner="StratifiedBatchSampler")
        self.positive_index = np.flatnonzero(labels > 0.5)
        self.negative_index = np.flatnonzero(labels <= 0.5)
        self.batch_size = int(batch_size)
        self.min_positives = int(min_positives)
        self.oversample = bool(oversample)
        self.shuffle = bool(shuffle)
        self.rng = np.random.default_rng(random_state)
        self.positives_per_batch, self.negatives_per_batch = self._plan()

    def _plan(self) -> tuple[np.ndarray, np.ndarray]:
        n_positive, n_negative = self.positive_index.size, self.negative_index.size
        n_positive_slots = n_positive
        if self.oversample and n_positive > 0:
            n_positive_slots = max(n_positive, n_negative)
        n_rows = n_positive_slots + n_negative
        n_batches = max(1, min(math.ceil(n_rows / self.batch_size), n_rows // 2))
        if self.min_positives > 0 and n_positive_slots >= self.min_positives:
            n_batches = min(n_batches, n_positive_slots // self.min_positives)
        if 0 < n_positive_slots < self.min_positives:
            positives = np.zeros(n_batches, dtype=np.int64)
            positives[0] = n_positive_slots
        else:
            positives = _even_split(n_positive_slots, n_batches)
        negatives = _water_fill(positives, n_negative)
        return _merge_single_rows(positives, negatives)

    def __len__(self) -> int:
        return int(self.positives_per_batch.size)

    def _positive_slots(self) -> np.ndarray:
        n_slots = int(self.positives_per_batch.sum())
        if not self.shuffle:
            return np.resize(self.positive_index, n_slots)
        n_passes = math.ceil(n_slots / max(self.positive_index.size, 1))
        passes = [self.rng.permutation(self.positive_index) for _ in range(n_passes)]
        return np.concatenate(passes)[:n_slots] if passes else self.positive_index[:0]

    def __iter__(self) -> Iterator[np.ndarray]:
        positives = self._positive_slots()
        negatives = self.negative_index
        order = np.arange(len(self))
        if self.shuffle:
            negatives = self.rng.permutation(negatives)
            order = self.rng.permutation(order)
        positive_parts = np.split(positives, np.cumsum(self.positives_per_batch)[:-1])
        negative_parts = np.split(negatives, np.cumsum(self.negatives_per_batch)[:-1])
        for batch in order:
            rows = np.concatenate([positive_parts[batch], negative_parts[batch]])
            yield self.rng.permutation(rows) if self.shuffle else np.sort(rows)


def _merge_single_rows(
    positives: np.ndarray, negatives: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Fold any one-row batch into the smallest other batch."""
    sizes = positives + negatives
    while sizes.size > 1 and (sizes == 1).any():
        single = int(np.flatnonzero(sizes == 1)[0])
        others = np.delete(np.arange(sizes.size), single)
        target = int(others[np.argmin(sizes[others])])
        positives[target] += positives[single]
        negatives[target] += negatives[single]
        positives, negatives = np.delete(positives, single), np.delete(negatives, single)
        sizes = positives + negatives
    return positives, negatives


class GroupValidSplit:
    """skorch ``train_split`` holding out whole subjects for validation (e.g. early stopping).

    skorch's own ``ValidSplit`` splits lesions, so lesions of one subject can sit on both sides.
    This split takes the first fold of a :class:`~sklearn.model_selection.StratifiedGroupKFold`
    (about ``1 / n_splits`` of the subjects, rim+ proportions kept) as the validation set. Pass
    the subject of every lesion to ``fit``: ``net.fit(X, y, groups=participant_ids)`` (in a
    Pipeline: ``pipe.fit(X, y, clf__groups=...)``; in ``cross_val_score``:
    ``params={"groups": groups}``).

    With scikit-learn's metadata routing on (``sklearn.set_config(enable_metadata_routing=
    True)``), the net routes its ``fit`` metadata to ``train_split.cv``, this split's
    ``StratifiedGroupKFold``, which requests ``groups``: then ``pipe.fit(X, y, groups=...)`` and
    ``cross_validate(net, X, y, params={"groups": groups})`` deliver them (no ``set_fit_request``
    needed), and rimclf's own CV helpers pass them too.

    Parameters
    ----------
    n_splits : int, default=5
        The validation set is one of ``n_splits`` subject-grouped folds.
    random_state : int or None, default=None
        None: the deterministic (unshuffled) fold assignment of StratifiedGroupKFold; an int
        shuffles the subjects with that seed.

    Examples
    --------
    >>> from skorch.callbacks import EarlyStopping
    >>> from rimclf.classifier import QSMRimNetClassifier
    >>> net = QSMRimNetClassifier(train_split=GroupValidSplit(5), callbacks=[EarlyStopping(load_best=True)])
    >>> net.fit(X, y, groups=participant_ids)  # doctest: +SKIP
    """

    def __init__(self, n_splits: int = 5, random_state: int | None = None) -> None:
        self.n_splits = n_splits
        self.random_state = random_state

    @property
    def cv(self) -> StratifiedGroupKFold:
        """The splitter whose first fold is the validation set (skorch routes ``groups`` to it)."""
        check_int(self.n_splits, "n_splits", min=2, owner="GroupValidSplit")
        return StratifiedGroupKFold(
            self.n_splits, shuffle=self.random_state is not None, random_state=self.random_state
        )

    def __call__(
        self, dataset: torch.utils.data.Dataset, y: object = None, groups: object = None
    ) -> tuple[torch.utils.data.Dataset, torch.utils.data.Dataset]:
        if groups is None:
            raise CohortError(
                "GroupValidSplit needs the subject of each lesion: call fit(X, y, groups=...) "
                "(in a Pipeline: fit(X, y, <step>__groups=...), or fit(X, y, groups=...) with "
                "sklearn's metadata routing on)"
            )
        check_int(self.n_splits, "n_splits", min=2, owner="GroupValidSplit")
        labels = as_lesion_dataset(dataset).labels if y is None else np.asarray(y)
        groups = np.asarray(groups)
        if groups.shape[0] != len(dataset):
            raise CohortError(
                f"GroupValidSplit: groups has {groups.shape[0]} entries for {len(dataset)} lesions"
            )
        n_groups = np.unique(groups).size
        if n_groups < self.n_splits:
            raise ParameterError(
                f"GroupValidSplit: {n_groups} subjects cannot make n_splits={self.n_splits} folds"
            )
        train_index, valid_index = next(self.cv.split(np.zeros(len(labels)), labels, groups))
        lesion_dataset = as_lesion_dataset(dataset)
        if lesion_dataset is not None:
            return lesion_dataset.take(train_index), lesion_dataset.take(valid_index)
        return (
            torch.utils.data.Subset(dataset, train_index),
            torch.utils.data.Subset(dataset, valid_index),
        )

    def __repr__(self) -> str:
        return f"GroupValidSplit(n_splits={self.n_splits!r}, random_state={self.random_state!r})"
