"""Crop and shell geometry (rimclf.features._regions): pure numpy, no files."""

from __future__ import annotations

import numpy as np
import pytest

from rimclf.features._regions import (
    bounding_boxes,
    crop_with_margin,
    shell_margin_voxels,
    shell_mask,
    wavelet_footprint,
)


@pytest.mark.parametrize(
    ("wavelet", "level", "start_level", "expected"),
    [
        ("coif1", 1, 0, (2, 3)),
        ("haar", 1, 0, (0, 1)),
        ("db2", 1, 0, (1, 2)),
        ("coif1", 2, 0, (4, 6)),
        ("coif1", 1, 1, (4, 6)),
    ],
)
def test_wavelet_footprint(wavelet, level, start_level, expected) -> None:
    assert wavelet_footprint(wavelet, level, start_level) == expected


def test_crop_with_margin_takes_whole_axis_where_margin_leaves_volume() -> None:
    start, stop = crop_with_margin(np.array([5, 1, 7]), np.array([8, 4, 9]), (20, 20, 11), np.full(3, 2), np.full(3, 3))
    assert start.tolist() == [3, 0, 0]  # y: 1 - 2 < 0 -> whole axis; z: 9 + 3 >= 11 -> whole axis
    assert stop.tolist() == [12, 20, 11]


def test_bounding_boxes_inclusive_and_absent_ids_left_out() -> None:
    labels = np.zeros((6, 6, 6), dtype=np.int32)
    labels[1:3, 2:5, 0:1] = 2
    labels[5, 5, 5] = 7
    boxes = bounding_boxes(labels, np.array([2, 3, 7]))
    assert set(boxes) == {2, 7}
    assert [b.tolist() for b in boxes[2]] == [[1, 2, 0], [2, 4, 0]]
    assert [b.tolist() for b in boxes[7]] == [[5, 5, 5], [5, 5, 5]]


def _ring(shape, spacing, shell_mm, *, others=None, support=None):
    lesion = np.zeros(shape, dtype=bool)
    centre = tuple(s // 2 for s in shape)
    lesion[centre] = True
    any_lesion = lesion.copy() if others is None else lesion | others
    support = np.ones(shape, dtype=bool) if support is None else support
    return shell_mask(lesion, any_lesion, support, np.array(spacing), shell_mm), centre


def test_shell_is_in_millimetres_on_anisotropic_voxels() -> None:
    ring, (ci, cj, ck) = _ring((9, 9, 9), (1.0, 1.0, 3.0), 2.0)
    offsets = {tuple(int(v) for v in idx - np.array([ci, cj, ck])) for idx in np.argwhere(ring)}
    # in-plane: all voxels within 2 mm (distances 1, sqrt(2), 2); through-plane: none (3 mm away)
    expected = {(di, dj, 0) for di in range(-2, 3) for dj in range(-2, 3) if 0 < di * di + dj * dj <= 4}
    assert offsets == expected
    wider, _ = _ring((9, 9, 9), (1.0, 1.0, 3.0), 3.0)
    assert wider[ci, cj, ck + 1] and wider[ci, cj, ck - 1] and not wider[ci, cj, ck + 2]
    assert not wider[ci + 1, cj, ck + 1]  # sqrt(1 + 9) > 3 mm


def test_shell_leaves_out_other_lesions_and_voxels_without_data() -> None:
    shape = (9, 9, 9)
    others = np.zeros(shape, dtype=bool)
    others[5, 4, 4] = True  # another lesion touching this one
    support = np.ones(shape, dtype=bool)
    support[4, 3, 4] = False  # no QSM there
    ring, centre = _ring(shape, (1.0, 1.0, 1.0), 1.5, others=others, support=support)
    assert not ring[5, 4, 4] and not ring[4, 3, 4] and not ring[centre]
    assert ring[3, 4, 4] and ring[4, 5, 4] and ring[4, 4, 5] and ring[3, 3, 4]  # sqrt(2) <= 1.5


def test_shell_on_a_crop_equals_shell_on_the_volume() -> None:
    rng = np.random.default_rng(0)
    shape = (20, 18, 10)
    spacing = np.array([0.8, 1.0, 2.5])
    labels = np.zeros(shape, dtype=np.int32)
    labels[8:12, 7:10, 4:6] = 1
    labels[12:14, 7:9, 4:5] = 2
    support = rng.random(shape) > 0.1
    full = shell_mask(labels == 1, labels > 0, support, spacing, 2.6)
    reach = shell_margin_voxels(spacing, 2.6)
    assert reach.tolist() == [3, 2, 1]
    crop = tuple(slice(lo - r, hi + r + 1) for lo, hi, r in zip((8, 7, 4), (11, 9, 5), reach))
    cropped = shell_mask(labels[crop] == 1, labels[crop] > 0, support[crop], spacing, 2.6)
    assert np.array_equal(full[crop], cropped)
    assert full.sum() == cropped.sum() > 0
