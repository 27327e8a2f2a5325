"""A scan with thousands of tiny lesions gives a few warning lines, not one per lesion."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from rimclf import LesionFeaturizer, load_cohort
from rimclf.errors import DataWarning, RimclfWarning
from rimclf.features import RimProfileExtractor
from rimclf.features._subject import MAX_LESION_NOTES, summarise_notes
from tests.features.builders import SHAPE, make_labels, write_subject


def test_thousands_of_per_lesion_notes_become_one_line_per_kind() -> None:
    notes = [(DataWarning, f"sub-01 lesion {i}: only {i % 9} normal-appearing voxels between 3 and 6 mm around the "
                           "lesion; its rim-profile features are NaN") for i in range(1, 2296)]
    notes += [(DataWarning, f"sub-01 lesion {i} shell: the 2 mm shell has no voxel; its radiomics are NaN") for i in (4, 5)]
    notes += [(DataWarning, "sub-01: 3 NaN voxels outside the brain were set to 0"), (RimclfWarning, "sub-02 lesion 1: other")]
    summary = summarise_notes(notes)
    assert len(summary) == 5
    assert summary[0] == (DataWarning, "sub-01: 2,295 lesions with this warning, e.g. lesion 1: only 1 normal-appearing voxels "
                                       "between 3 and 6 mm around the lesion; its rim-profile features are NaN "
                                       "(also lesions 2, 3 and 2,292 more)")
    assert summary[1:3] == notes[2295:2297]  # a few of a kind stay as they are
    assert summary[3:] == notes[-2:]


def test_a_scan_with_many_lesions_at_its_edge_warns_in_a_few_lines(tmp_path: Path) -> None:
    labels = make_labels()
    label = int(labels.max())
    for y in range(0, SHAPE[1] - 1, 3):  # 2 x 2 x 2 lesions on the face x = 0: their surroundings are cut
        for z in range(0, SHAPE[2] - 1, 3):
            label += 1
            labels[0:2, y:y + 2, z:z + 2] = label
    write_subject(tmp_path / "cohort", "01", labels=labels)
    table = load_cohort(tmp_path / "cohort", min_voxels=8)
    n_edge = int(table["lesion_id"].gt(int(make_labels().max())).sum())
    assert n_edge > 20
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        features = LesionFeaturizer([("rim", RimProfileExtractor())], progress=False).transform(table)
    lines = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert np.isnan(features["rim"]).any(axis=1).sum() >= n_edge
    assert len(lines) <= 2 * MAX_LESION_NOTES
    counts = [int(match[1]) for line in lines if (match := re.match(r"sub-01: (\d+) lesions with this warning", line))]
    assert counts and max(counts) >= n_edge
