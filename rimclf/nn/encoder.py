"""The tabular branch of QSMRim-Net: an MLP on standardised lesion features (rim profile, radiomics)."""

from __future__ import annotations

import torch
from torch import nn

from rimclf._validation import check_int, check_real


def linear_bn_swish(in_features: int, out_features: int) -> list[nn.Module]:
    """``Linear -> BatchNorm1d -> Swish`` (Swish = SiLU, as in the seed code), as a layer list."""
    return [nn.Linear(in_features, out_features), nn.BatchNorm1d(out_features), nn.SiLU()]


class TabularEncoder(nn.Module):
    """Two ``Linear -> BatchNorm -> Swish`` layers with dropout in between.

    With the defaults this is the seed's radiomics encoder (``F -> 1024 -> 512``).

    Parameters
    ----------
    n_features : int
        Number of tabular features ``F`` per lesion (standardised; no NaN).
    out_features : int, default=512
        Length of the encoded vector; QSMRim-Net sets it to the ResNet's ``8·width`` so that the
        two branches can be summed.
    hidden_features : int or None, default=None
        Width of the hidden layer; None means ``2 * out_features``.
    dropout : float, default=0.3
        Dropout probability after the hidden layer.

    Notes
    -----
    Shapes:

    ``(N, n_features) -> (N, out_features)``. Batch norm needs ``N >= 2`` in training mode.

    Examples
    --------
    >>> TabularEncoder(20, out_features=32).eval()(torch.zeros(5, 20)).shape
    torch.Size([5, 32])
    """

    def __init__(
        self,
        n_features: int,
        out_features: int = 512,
        hidden_features: int | None = None,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        check_int(n_features, "n_features", min=1, owner="TabularEncoder")
        check_int(out_features, "out_features", min=1, owner="TabularEncoder")
        check_real(dropout, "dropout", min=0.0, max=1.0, closed="left", owner="TabularEncoder")
        hidden = 2 * out_features if hidden_features is None else int(hidden_features)
        self.n_features = n_features
        self.out_features = out_features
        self.layers = nn.Sequential(
            *linear_bn_swish(n_features, hidden),
            nn.Dropout(dropout),
            *linear_bn_swish(hidden, out_features),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Encode ``(N, n_features)`` features into ``(N, out_features)``."""
        return self.layers(features)
