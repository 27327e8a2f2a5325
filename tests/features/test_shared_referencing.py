"""The ring referencing computed once per subject for every extractor that uses it: the same
features and notes, bit for bit, as each extractor computing its own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import rimclf.features._referencing as referencing
import rimclf.features._subject as subject_module
from rimclf.cohort import load_cohort
from rimclf.features import LesionFeaturizer, PatchExtractor, RimFitExtractor, RimProfileExtractor, SurfaceMapExtractor
from rimclf.features._subject import SubjectVolumes, group_by_subject
from rimclf.phantom import make_phantom_cohort


def extractors(rim_fit_edge_mm: float = 1.5) -> dict:
    """The default model's tabular extractors and a surface map with its FLAIR channel."""
    return {
        "rim": RimProfileExtractor(),
        "rim_fit": RimFitExtractor(edge_mm=rim_fit_edge_mm),
        "surface_map": SurfaceMapExtractor(channels=("qsm", "coverage", "flair")),
    }


def per_subject(table: pd.DataFrame, parts: dict, *, shared: bool):
    """Every extractor's rows and notes per subject, with one ``SubjectVolumes`` for all the
    extractors of a subject (as ``LesionFeaturizer`` does) or a fresh one for each (each alone)."""
    results = []
    for task, _, _ in group_by_subject(table, with_flair=True, with_centroids=True):
        notes: list = []
        volumes = SubjectVolumes(task, notes)
        arrays = {}
        for name, extractor in parts.items():
            if not shared:
                volumes = SubjectVolumes(task, notes)
            arrays[name] = extractor.fit().extract_subject(volumes, notes)
        results.append((arrays, notes))
    return results


def assert_bit_identical(together: list, alone: list) -> None:
    assert len(together) == len(alone)
    for (arrays, notes), (arrays_alone, notes_alone) in zip(together, alone):
        assert notes == notes_alone  # the same warnings, once each, in the same order
        for name, values in arrays.items():
            assert values.dtype == arrays_alone[name].dtype and values.shape == arrays_alone[name].shape
            assert values.tobytes() == arrays_alone[name].tobytes(), name


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    folder = make_phantom_cohort(tmp_path_factory.mktemp("shared") / "cohort", n_subjects=3, random_state=5,
                                 shape=(40, 48, 28), lesions_per_subject=(4, 8))
    return load_cohort(folder)


def counting_distances(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    original = referencing.signed_distance_mm

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(referencing, "signed_distance_mm", counted)
    return calls


@pytest.mark.parametrize("which", ["phantom", "edge cases"])
def test_shared_referencing_gives_each_extractors_own_values_and_notes(
    which: str, phantom: pd.DataFrame, table: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    lesions = phantom if which == "phantom" else table  # the builders' cohort has lesions at the volume's edge
    calls = counting_distances(monkeypatch)
    alone = per_subject(lesions, extractors(), shared=False)
    n_alone = len(calls)
    together = per_subject(lesions, extractors(), shared=True)
    assert_bit_identical(together, alone)
    # the three extractors crop alike (6 mm): each lesion's distances computed once, not three times
    assert n_alone == 3 * (len(calls) - n_alone) > 0
    if which == "edge cases":
        assert any("touches the edge" in message for _, notes in alone for _, message in notes)


def test_other_crops_and_a_full_store_compute_again_with_the_same_values(
    phantom: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    # rim_fit reaching 2 x 4 mm crops wider than the 6 mm of the others: its distances are its own
    calls = counting_distances(monkeypatch)
    alone = per_subject(phantom, extractors(rim_fit_edge_mm=4.0), shared=False)
    n_alone = len(calls)
    assert_bit_identical(per_subject(phantom, extractors(rim_fit_edge_mm=4.0), shared=True), alone)
    assert len(calls) - n_alone == 2 * n_alone // 3
    # nothing kept when the store is full: every extractor computes again, values unchanged
    monkeypatch.setattr(subject_module, "SHARED_BYTES", 0)
    before = len(calls)
    assert_bit_identical(per_subject(phantom, extractors(rim_fit_edge_mm=4.0), shared=True), alone)
    assert len(calls) - before == n_alone


def test_patches_ring_normalisation_shares_the_distances(
    phantom: pd.DataFrame, table: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = counting_distances(monkeypatch)
    for lesions in (phantom, table):
        parts = {"rim": RimProfileExtractor(),
                 "patches": PatchExtractor(size_mm=12.0, shape=(6, 5, 4), channels=("qsm", "flair"), normalize="ring")}
        start = len(calls)
        alone = per_subject(lesions, parts, shared=False)
        n_alone = len(calls) - start
        assert_bit_identical(per_subject(lesions, parts, shared=True), alone)
        n_shared = len(calls) - start - n_alone
        assert 0 < n_shared < n_alone  # a lesion the rim features measure is not measured again for its patch


def test_shared_computes_once_read_only_and_within_its_budget(
    phantom: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = group_by_subject(phantom, with_flair=False, with_centroids=False)[0][0]
    volumes = SubjectVolumes(task, [])
    made: list[int] = []

    def compute():
        made.append(1)
        return np.zeros(1000), 2.0

    first = volumes.shared("key", compute)
    assert volumes.shared("key", compute) is first and len(made) == 1
    with pytest.raises(ValueError, match="read-only"):
        first[0][0] = 1.0  # a caller cannot change it for the next
    monkeypatch.setattr(subject_module, "SHARED_BYTES", 1000 * 8 + 100)
    volumes.shared("too much", compute)
    volumes.shared("too much", compute)  # over the budget: not kept
    assert len(made) == 3


def test_featurizer_output_equals_each_extractor_alone(phantom: pd.DataFrame) -> None:
    parts = extractors()
    output = LesionFeaturizer(list(parts.items()), progress=False).transform(phantom)
    for name, extractor in parts.items():
        assert np.array_equal(output[name], extractor.transform(phantom).astype(np.float32), equal_nan=True), name


def test_lesion_notes_name_the_session(table: pd.DataFrame) -> None:
    with_sessions = table.assign(session="2")  # the builders' cohort has lesions at the volume's edge
    notes = [message for _, found in per_subject(with_sessions, extractors(), shared=True) for _, message in found]
    edge = [message for message in notes if "touches the edge" in message]
    assert edge and all(message.startswith("sub-") and "_ses-2 lesion " in message for message in edge)
