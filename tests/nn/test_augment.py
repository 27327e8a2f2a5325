"""PatchAugment: exact flips and turns, small rotations, seeding, eval mode, bad settings."""

from __future__ import annotations

import pytest
import torch

from rimclf.errors import CohortError, ParameterError
from rimclf.nn.augment import PatchAugment, signed_permutations, small_rotations


def all_flips_and_turns(patch: torch.Tensor) -> list[torch.Tensor]:
    """The 48 versions of a (C, D, D, D) patch under axis permutations and flips."""
    import itertools

    versions = []
    for order in itertools.permutations((1, 2, 3)):
        permuted = patch.permute(0, *order)
        for flips in itertools.product((False, True), repeat=3):
            axes = [axis + 1 for axis, flip in enumerate(flips) if flip]
            versions.append(permuted.flip(axes) if axes else permuted)
    return versions


def test_signed_permutations_form_the_cube_group() -> None:
    matrices = signed_permutations()
    assert matrices.shape == (48, 3, 3)
    assert torch.allclose(matrices @ matrices.transpose(1, 2), torch.eye(3).expand(48, 3, 3))
    assert len({tuple(m.flatten().tolist()) for m in matrices}) == 48
    assert signed_permutations(reflections=False).shape == (24, 3, 3)


def test_flips_and_turns_are_exact() -> None:
    patches = torch.randn(16, 2, 8, 8, 8, generator=torch.Generator().manual_seed(0))
    out = PatchAugment(seed=1).train()(patches)
    assert out.shape == patches.shape
    n_changed = 0
    for sample, result in zip(patches, out):
        matches = [torch.allclose(result, version, atol=1e-5) for version in all_flips_and_turns(sample)]
        assert any(matches)
        n_changed += not torch.allclose(result, sample, atol=1e-5)
    assert n_changed >= 12  # per-sample transforms, almost never the identity


def test_small_rotation_moves_values_a_little() -> None:
    grid = torch.stack(torch.meshgrid(*(torch.linspace(-1, 1, 16),) * 3, indexing="ij"))
    smooth = torch.exp(-(grid**2).sum(0) / 0.5).expand(4, 1, 16, 16, 16).contiguous()
    out = PatchAugment(flips_and_turns=False, max_rotation_degrees=10.0, seed=0).train()(smooth)
    difference = (out - smooth).abs()
    assert 0 < difference.max() < 0.2  # rotated, but only a little
    assert torch.allclose(out[:, :, 8, 8, 8], smooth[:, :, 8, 8, 8], atol=0.05)  # the centre stays


def test_rotation_matrices_are_rotations_within_the_angle() -> None:
    rotations = small_rotations(64, 15.0, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert torch.allclose(rotations @ rotations.transpose(1, 2), torch.eye(3).expand(64, 3, 3), atol=1e-5)
    angle = torch.rad2deg(torch.arccos(((rotations.diagonal(dim1=1, dim2=2).sum(1) - 1) / 2).clamp(-1, 1)))
    assert angle.max() <= 15.0 + 1e-3 and angle.max() > 5.0


def test_seeded_and_eval_mode() -> None:
    patches = torch.randn(8, 1, 8, 8, 8)
    first = PatchAugment(max_rotation_degrees=5.0, seed=3).train()(patches)
    second = PatchAugment(max_rotation_degrees=5.0, seed=3).train()(patches)
    assert torch.equal(first, second)
    augment = PatchAugment(max_rotation_degrees=5.0, seed=3).eval()
    assert augment(patches) is patches
    assert PatchAugment(flips_and_turns=False).train()(patches) is patches


def test_channels_last_layout_is_kept() -> None:
    patches = torch.randn(2, 3, 8, 8, 8).contiguous(memory_format=torch.channels_last_3d)
    out = PatchAugment(seed=0).train()(patches)
    assert out.is_contiguous(memory_format=torch.channels_last_3d)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"flips_and_turns": 1}, "flips_and_turns"), ({"max_rotation_degrees": -1}, "max_rotation_degrees")],
)
def test_bad_settings(kwargs: dict, match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        PatchAugment(**kwargs)


def test_non_cubic_patches_are_refused_for_turns() -> None:
    with pytest.raises(CohortError, match="cubic"):
        PatchAugment().train()(torch.zeros(2, 1, 8, 8, 6))
