"""The surface-map branch: a small network on each lesion's depth x direction map.

A surface map (:class:`rimclf.features.surface_map.SurfaceMapExtractor`) holds, for ``K``
directions from the lesion's centroid, a profile of ``D`` depth bins across the boundary. The
encoder reads every direction's profile with the same small convolution over depth (so a rim is
the same pattern in every direction), then pools over directions with a maximum (is there a rim
somewhere?) and a mean (how much of the surface has one?). Pooling makes it invariant to the
order of the directions, hence to a rotation of the head that permutes them, and it has a few
thousand weights: it trains on a CPU in seconds.
"""

from __future__ import annotations

import torch
from torch import nn

from rimclf._validation import check_int
from rimclf.errors import CohortError


class SurfaceMapEncoder(nn.Module):
    """Shared depth-profile convolutions, then max and mean over directions.

    Parameters
    ----------
    in_channels : int
        Channels of the maps (e.g. 2: referenced QSM and coverage).
    out_features : int, default=64
        Length of the encoded vector (QSMRim-Net sets it to ``8 * width``).
    hidden : int or None, default=None
        Channels of the profile convolutions; None means ``out_features // 4``.

    Notes
    -----
    Shapes: ``(N, in_channels, D, K) -> (N, out_features)`` for ``D >= 1`` depth bins and ``K``
    directions. A channel holding the depth position (-1 to 1) is added to the input, so that
    the convolutions know where the boundary is. Layers: ``Conv(3x1) -> BatchNorm -> Swish`` twice
    over depth (the same weights in every direction, and any ``D`` works); per direction, the
    maximum and the mean over depth; then the maximum and the mean over directions;
    ``Linear -> Swish``.

    Examples
    --------
    >>> encoder = SurfaceMapEncoder(2, out_features=32).eval()
    >>> encoder(torch.zeros(5, 2, 7, 32)).shape
    torch.Size([5, 32])
    >>> maps = torch.randn(1, 2, 7, 32)
    >>> turned = maps[..., torch.randperm(32)]          # directions in another order
    >>> torch.allclose(encoder(maps), encoder(turned), atol=1e-5)
    True
    """

    def __init__(self, in_channels: int, out_features: int = 64, hidden: int | None = None) -> None:
        super().__init__()
        check_int(in_channels, "in_channels", min=1, owner="SurfaceMapEncoder")
        check_int(out_features, "out_features", min=1, owner="SurfaceMapEncoder")
        hidden = max(1, out_features // 4) if hidden is None else check_int(hidden, "hidden", min=1, owner="SurfaceMapEncoder")
        self.in_channels = in_channels
        self.out_features = out_features
        self.profile = nn.Sequential(
            nn.Conv2d(in_channels + 1, hidden, kernel_size=(3, 1), padding=(1, 0)),
            nn.BatchNorm2d(hidden),
            nn.SiLU(),
            nn.Conv2d(hidden, hidden, kernel_size=(3, 1), padding=(1, 0)),
            nn.BatchNorm2d(hidden),
            nn.SiLU(),
        )
        self.project = nn.Sequential(nn.Linear(4 * hidden, out_features), nn.SiLU())

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        """Encode ``(N, in_channels, D, K)`` maps into ``(N, out_features)``."""
        if maps.ndim != 4 or maps.shape[1] != self.in_channels:
            raise CohortError(
                f"SurfaceMapEncoder: maps must have shape (N, {self.in_channels}, depths, directions), got {tuple(maps.shape)}"
            )
        n, _, depths, directions = maps.shape
        position = torch.linspace(-1.0, 1.0, depths, device=maps.device, dtype=maps.dtype)
        position = position.view(1, 1, depths, 1).expand(n, 1, depths, directions)
        profiles = self.profile(torch.cat([maps, position], dim=1))        # (N, hidden, D, K)
        per_direction = torch.cat([profiles.amax(dim=2), profiles.mean(dim=2)], dim=1)  # (N, 2 hidden, K)
        pooled = torch.cat([per_direction.amax(dim=2), per_direction.mean(dim=2)], dim=1)  # (N, 4 hidden)
        return self.project(pooled)
