"""Training-time augmentation of lesion patches on their own device: flips, 90° turns, small rotations.

Patches are cubes sampled along the world axes (x, y, z), so a rim seen from the left or the
right, from above or below, is the same rim: the label does not change under the 48 signed axis
permutations of a cube (flips and 90° rotations about the world axes, the full octahedral group
with reflections), nor under a small rotation. Learning that from ~50 rim+ lesions is what a
small CNN cannot do on its own; augmenting every training batch teaches it.

Every sample of a batch gets its own transform, all applied in one
:func:`torch.nn.functional.grid_sample` call on the batch's device (GPU or CPU), with no Python
loop over samples. A pure signed permutation of a cubic patch moves voxel centres onto voxel
centres, so it is exact (up to float rounding); a small rotation interpolates trilinearly and
fills points that come from outside the patch with zeros (the normal-appearing tissue level of
referenced QSM).
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn
from torch.nn import functional

from rimclf.errors import CohortError, ParameterError
from rimclf.nn._seeded import SeededGeneratorMixin

#: The largest angle of the small random rotations of ``augment="flips+rotations"``.
ROTATION_DEGREES = 15.0


def signed_permutations(*, reflections: bool = True) -> torch.Tensor:
    """The 48 (or, without reflections, 24) 3x3 signed permutation matrices, ``(K, 3, 3)``."""
    matrices = []
    for order in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            matrix = torch.zeros(3, 3)
            for row, (column, sign) in enumerate(zip(order, signs)):
                matrix[row, column] = sign
            if reflections or torch.det(matrix) > 0:
                matrices.append(matrix)
    return torch.stack(matrices)


def small_rotations(n: int, max_degrees: float, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """``n`` random rotation matrices ``(n, 3, 3)``: about a uniformly random axis, by an angle
    uniform in ``[-max_degrees, max_degrees]``."""
    axis = torch.randn((n, 3), generator=generator, device=device)
    axis = axis / axis.norm(dim=1, keepdim=True).clamp_min(1e-12)
    angle = (torch.rand((n,), generator=generator, device=device) * 2.0 - 1.0) * math.radians(max_degrees)
    x, y, z = axis.unbind(1)
    zero = torch.zeros_like(x)
    cross = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=1).reshape(n, 3, 3)
    eye = torch.eye(3, device=device).expand(n, 3, 3)
    sin, cos = angle.sin().reshape(n, 1, 1), angle.cos().reshape(n, 1, 1)
    return eye + sin * cross + (1.0 - cos) * (cross @ cross)


class PatchAugment(SeededGeneratorMixin, nn.Module):
    """Random flips, 90° rotations and small rotations of ``(N, C, D, H, W)`` patches, in training mode.

    Parameters
    ----------
    flips_and_turns : bool, default=True
        Apply one of the 48 signed permutations of the axes (every flip and 90° turn about the
        world axes) to each sample, drawn uniformly. Needs cubic patches (D = H = W).
    max_rotation_degrees : float, default=0.0
        Then rotate each sample by up to this angle about a random axis (0: no small rotation).
    seed : int or None, default=None
        Seed of the module's own ``torch.Generator`` (made on the batch's device at first use,
        pickled as bytes: see :class:`~rimclf.nn._seeded.SeededGeneratorMixin`); None draws
        from torch's global generator.

    Notes
    -----
    Shapes:

    ``forward(patches)`` returns a tensor of the same shape and dtype; in eval mode (or with both
    transforms off) the input itself.

    Examples
    --------
    >>> augment = PatchAugment(max_rotation_degrees=10.0, seed=0).train()
    >>> augment(torch.zeros(4, 3, 16, 16, 16)).shape
    torch.Size([4, 3, 16, 16, 16])
    """

    def __init__(self, flips_and_turns: bool = True, max_rotation_degrees: float = 0.0, seed: int | None = None) -> None:
        super().__init__()
        if not isinstance(flips_and_turns, bool):
            raise ParameterError(f"PatchAugment: flips_and_turns must be True or False, got {flips_and_turns!r}")
        valid_angle = isinstance(max_rotation_degrees, (int, float)) and not isinstance(max_rotation_degrees, bool)
        if not valid_angle or not 0.0 <= float(max_rotation_degrees) <= 180.0:
            raise ParameterError(
                f"PatchAugment: max_rotation_degrees must be a number in [0, 180], got {max_rotation_degrees!r}"
            )
        self.flips_and_turns = flips_and_turns
        self.max_rotation_degrees = float(max_rotation_degrees)
        self.seed = seed
        self._generator: torch.Generator | None = None
        self.register_buffer("permutations", signed_permutations(), persistent=False)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        active = self.flips_and_turns or self.max_rotation_degrees > 0
        if not self.training or not active:
            return patches
        if patches.ndim != 5:
            raise CohortError(f"PatchAugment: patches must have shape (N, C, D, H, W), got {tuple(patches.shape)}")
        n, device = patches.shape[0], patches.device
        generator = self._generator_on(device)
        matrix = torch.eye(3, device=device).expand(n, 3, 3)
        if self.flips_and_turns:
            if len(set(patches.shape[2:])) != 1:
                raise CohortError(
                    f"PatchAugment: flips and 90° turns need cubic patches, got spatial shape {tuple(patches.shape[2:])}"
                )
            choice = torch.randint(0, self.permutations.shape[0], (n,), generator=generator, device=device)
            matrix = self.permutations.to(device)[choice]
        if self.max_rotation_degrees > 0:
            matrix = small_rotations(n, self.max_rotation_degrees, generator, device) @ matrix
        theta = torch.cat([matrix, torch.zeros(n, 3, 1, device=device)], dim=2).to(torch.float32)
        grid = functional.affine_grid(theta, list(patches.shape), align_corners=False)
        output = functional.grid_sample(
            patches.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        channels_last = patches.is_contiguous(memory_format=torch.channels_last_3d) and not patches.is_contiguous()
        layout = torch.channels_last_3d if channels_last else torch.contiguous_format
        return output.to(patches.dtype).contiguous(memory_format=layout)

    def extra_repr(self) -> str:
        return (
            f"flips_and_turns={self.flips_and_turns}, max_rotation_degrees={self.max_rotation_degrees:g}, "
            f"seed={self.seed}"
        )
