"""A width-configurable 3D ResNet trunk (the QSMRim-Net patch encoder).

The layout follows the seed code of QSMRim-Net (Zhang et al. 2022): a 7x7x7 stride-2 stem,
3x3x3 max pooling, four stages of basic residual blocks with ``width, 2·width, 4·width, 8·width``
channels and strides ``1, 2, 2, 1`` (the last stage keeps the resolution, which suits 32³ lesion
patches). ``depth=18, width=64`` is the paper's network; a narrow ``depth=10`` version trains on
a CPU.
"""

from __future__ import annotations

import torch
from torch import nn

from rimclf._validation import check_choice, check_int
from rimclf.defaults import DEPTHS

#: residual blocks per stage for each supported depth
BLOCKS_PER_STAGE: dict[int, tuple[int, int, int, int]] = {
    10: (1, 1, 1, 1),
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
}
_STAGE_STRIDES = (1, 2, 2, 1)
_STAGE_WIDTH_FACTORS = (1, 2, 4, 8)


def _conv3x3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv3d:
    return nn.Conv3d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock3D(nn.Module):
    """Two 3x3x3 convolutions with batch norm and an identity (or 1x1x1 projection) shortcut.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels entering and leaving the block.
    stride : int, default=1
        Stride of the first convolution (and of the projection shortcut).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3x3(in_channels, out_channels, stride)
        self.norm1 = nn.BatchNorm3d(out_channels)
        self.conv2 = _conv3x3x3(out_channels, out_channels)
        self.norm2 = nn.BatchNorm3d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv3d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm3d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet3D(nn.Module):
    """3D residual network over lesion patches.

    Parameters
    ----------
    in_channels : int, default=3
        Channels of the input patches (e.g. QSM, FLAIR, lesion mask).
    depth : {10, 18, 34}, default=18
        Number of weighted layers; 18 is the paper's network.
    width : int, default=64
        Channels of the first stage; the stages have ``width, 2·width, 4·width, 8·width``
        channels, so the pooled feature vector has ``8·width`` entries (512 for the paper's 64).

    Attributes
    ----------
    out_channels : int
        Length of the pooled feature vector, ``8 * width``.

    Notes
    -----
    Shapes:

    - input: ``(N, in_channels, D, H, W)``, any spatial size >= 1.
    - :meth:`forward_features`: ``(N, 8·width, D', H', W')``, each spatial size halved
      (rounding up) four times: stem, max pool, stage 2, stage 3; 32³ -> 2³, 24³ -> 2³,
      16³ -> 1³ (see :meth:`feature_shape`).
    - :meth:`forward`: ``(N, 8·width)``, the global average of the feature map.

    Examples
    --------
    >>> net = ResNet3D(in_channels=3, depth=10, width=8)
    >>> net(torch.zeros(2, 3, 16, 16, 16)).shape
    torch.Size([2, 64])
    """

    def __init__(self, in_channels: int = 3, depth: int = 18, width: int = 64) -> None:
        super().__init__()
        check_choice(depth, "depth", DEPTHS, owner="ResNet3D")
        check_int(width, "width", min=1, owner="ResNet3D")
        check_int(in_channels, "in_channels", min=1, owner="ResNet3D")
        self.in_channels = in_channels
        self.depth = depth
        self.width = width
        self.out_channels = 8 * width

        self.stem = nn.Sequential(
            nn.Conv3d(in_channels, width, kernel_size=7, stride=2, padding=3, bias=False),
            nn.BatchNorm3d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(kernel_size=3, stride=2, padding=1),
        )
        stages = []
        channels = width
        for n_blocks, stride, factor in zip(
            BLOCKS_PER_STAGE[depth], _STAGE_STRIDES, _STAGE_WIDTH_FACTORS
        ):
            blocks = []
            for i in range(n_blocks):
                blocks.append(BasicBlock3D(channels, width * factor, stride if i == 0 else 1))
                channels = width * factor
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm3d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    @staticmethod
    def feature_shape(spatial_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Spatial shape of :meth:`forward_features` for an input of ``spatial_shape``."""
        shape = tuple(int(s) for s in spatial_shape)
        for _ in range(4):  # stem conv, max pool, stage 2, stage 3: each ceil(s / 2)
            shape = tuple((s + 1) // 2 for s in shape)
        return shape

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's feature map, ``(N, 8·width, D', H', W')``."""
        return self.stages(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The globally average-pooled feature vector, ``(N, 8·width)``."""
        return torch.flatten(self.pool(self.forward_features(x)), 1)
