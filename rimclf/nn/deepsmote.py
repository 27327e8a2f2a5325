"""DeepSMOTE: SMOTE interpolation of rim+ rows in a network's feature space.

QSMRim-Net oversamples the rare rim+ class inside the network: during training, each rim+ row of
a batch is paired with its nearest rim+ neighbours in the fused feature space, and points on the
segments between them are appended as extra rim+ rows. The classifier head (and, through the
interpolations, the encoders) learn from them; at inference nothing is added.

The published code pairs every rim+ row with neighbours that include itself (so a third of its
"synthetic" rows are copies), loops over the pairs in Python and needs at least 3 rim+ rows per
batch. :func:`deep_smote` excludes the row itself, draws one weight per synthetic row from a
``torch.Generator`` on the batch's device, is vectorised (``torch.cdist`` + ``topk``) and copes
with any number of rim+ rows.
"""

from __future__ import annotations

import torch
from torch import nn

from rimclf._validation import check_int
from rimclf.errors import CohortError, ParameterError
from rimclf.nn._seeded import SeededGeneratorMixin


def deep_smote(
    z: torch.Tensor,
    y: torch.Tensor,
    k: int = 2,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Append SMOTE interpolations between each rim+ row and its nearest rim+ neighbours.

    Parameters
    ----------
    z : torch.Tensor, shape (N, d)
        Feature vectors of one batch.
    y : torch.Tensor, shape (N,) or (N, 1)
        Labels; rows with ``y > 0.5`` are rim+ (the minority class). ``y`` may live on
        another device than ``z``: labels on the CPU with features on a GPU let the rim+ rows
        be counted without waiting for the GPU (finding them in a GPU tensor is a host
        synchronisation, since the number of output rows depends on it).
    k : int, default=2
        Neighbours per rim+ row (2 in the paper: ``N + 2n`` output rows).
    generator : torch.Generator or None, default=None
        Source of the interpolation weights; it must live on ``z.device``. None uses torch's
        global generator.

    Returns
    -------
    z_aug : torch.Tensor, shape (N + n·k_eff, d)
        ``z`` followed by the synthetic rows.
    y_aug : torch.Tensor, shape (N + n·k_eff,) or (N + n·k_eff, 1)
        ``y`` followed by ones (same dtype, trailing shape and device as ``y``).

    Notes
    -----
    With ``n`` rim+ rows, each one gets ``k_eff = min(k, n - 1)`` neighbours: the ``k`` nearest
    other rim+ rows (Euclidean distance, the row itself excluded), or all the other rim+ rows
    when fewer than ``k + 1`` are present. With ``n < 2`` there is nothing to interpolate and
    ``(z, y)`` are returned unchanged (the same tensor objects).

    Synthetic row ``r`` is ``z_i + λ_r (z_j - z_i)`` where ``i`` is the ``r // k_eff``-th rim+
    row in batch order, ``j`` its ``r % k_eff``-th nearest rim+ neighbour (nearest first), and
    ``λ_r ~ U(0, 1]`` is drawn independently for every synthetic row (``1 - U[0, 1)``, so a
    synthetic row never coincides with its source row unless the neighbour does).

    Gradients flow into ``z`` through both end points of every interpolation; the neighbour
    search itself is done without gradients, in float32.

    Examples
    --------
    >>> z = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    >>> y = torch.tensor([1.0, 1.0, 1.0, 0.0])
    >>> z_aug, y_aug = deep_smote(z, y, k=2, generator=torch.Generator().manual_seed(0))
    >>> z_aug.shape, y_aug.tolist()
    (torch.Size([10, 2]), [1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    """
    check_int(k, "k", min=1, owner="deep_smote")
    if z.ndim != 2:
        raise CohortError(f"deep_smote: z must have shape (N, d), got {tuple(z.shape)}")
    labels = y.reshape(-1)
    if labels.shape[0] != z.shape[0]:
        raise CohortError(
            f"deep_smote: y has {labels.shape[0]} labels for {z.shape[0]} rows of z "
            f"(y shape {tuple(y.shape)})"
        )
    positive_index = torch.nonzero(labels > 0.5).reshape(-1)  # on y's device: no wait for z's
    n_positive = positive_index.numel()
    if n_positive < 2:
        return z, y
    k_eff = min(k, n_positive - 1)
    positive_index = positive_index.to(z.device, non_blocking=True)

    z_positive = z.index_select(0, positive_index)
    with torch.no_grad():
        points = z_positive.detach().float()
        distance = torch.cdist(points, points, compute_mode="donot_use_mm_for_euclid_dist")
        distance.fill_diagonal_(float("inf"))
        neighbours = distance.topk(k_eff, dim=1, largest=False, sorted=True).indices

    source = z_positive.repeat_interleave(k_eff, dim=0)
    target = z_positive.index_select(0, neighbours.reshape(-1))
    n_synthetic = n_positive * k_eff
    weight = torch.rand(
        (n_synthetic, 1), generator=generator, device=z.device, dtype=torch.float32
    )
    weight = (1.0 - weight).to(z.dtype)
    synthetic = source + weight * (target - source)

    y_synthetic = torch.ones((n_synthetic, *y.shape[1:]), dtype=y.dtype, device=y.device)
    return torch.cat([z, synthetic], dim=0), torch.cat([y, y_synthetic], dim=0)


class DeepSMOTE(SeededGeneratorMixin, nn.Module):
    """Module wrapper of :func:`deep_smote`: active in training mode only.

    Parameters
    ----------
    k : int, default=2
        Nearest rim+ neighbours per rim+ row.
    seed : int or None, default=None
        Seed of the module's own ``torch.Generator`` (created on the batch's device at first
        use, pickled as bytes: see :class:`~rimclf.nn._seeded.SeededGeneratorMixin`); None
        draws the weights from torch's global generator.

    Notes
    -----
    Shapes:

    ``forward(z (N, d), y (N,) or (N, 1))`` returns ``(z_aug, y_aug)`` with ``N + n·k_eff`` rows
    in training mode (see :func:`deep_smote`), and ``(z, y)`` unchanged in eval mode or when
    ``y`` is None.

    Examples
    --------
    >>> smote = DeepSMOTE(k=2, seed=0).train()
    >>> z, y = torch.randn(8, 16), torch.tensor([0., 0., 1., 0., 1., 0., 1., 0.])
    >>> z_aug, y_aug = smote(z, y)               # 3 rim+ rows, 2 neighbours each: 6 synthetic rows
    >>> z_aug.shape, int(y_aug.sum())
    (torch.Size([14, 16]), 9)
    >>> smote.eval()(z, y)[0].shape              # a no-op in eval mode
    torch.Size([8, 16])
    """

    def __init__(self, k: int = 2, seed: int | None = None) -> None:
        super().__init__()
        check_int(k, "k", min=1, owner="DeepSMOTE")
        self.k = k
        self.seed = seed
        self._generator: torch.Generator | None = None

    def forward(
        self, z: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not self.training or y is None:
            return z, y
        return deep_smote(z, y, self.k, generator=self._generator_on(z.device))

    def extra_repr(self) -> str:
        return f"k={self.k}, seed={self.seed}"
