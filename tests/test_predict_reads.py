"""``rimclf predict`` reads each NIfTI file once and resamples each mask on another grid once (#25, #22);
the run's scan store changes no output byte."""

from __future__ import annotations

import shutil
import tempfile
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import rimclf._nifti
import rimclf.cohort._resample
from rimclf import load_cohort
from rimclf.cohort import active_store, read_lesion_labels, scan_store
from rimclf.errors import DataWarning
from rimclf.outputs import read_lesions, write_prediction_outputs
from rimclf.workflows import predict_cohort
from tests.grid_builders import one_mm_grid, rewrite_on_grid
from tests.model_builders import tiny_cohort, tiny_model

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.slow]  # each runs a predict or a training

#: The scan whose lesion mask is rewritten on a 1 mm grid of its own (as a segmentation tool's).
RESAMPLED = "002"


def count_reads_and_resamplings(monkeypatch: pytest.MonkeyPatch) -> tuple[Counter, Counter]:
    """Count, from now on, each NIfTI array read (by resolved path) and each label resampling (by the
    shape of the labels resampled)."""
    reads, resamplings = Counter(), Counter()
    read_array, resample_labels = rimclf._nifti.read_array, rimclf.cohort._resample.resample_labels

    def counted_read(path, **kwargs):
        reads[Path(path).resolve()] += 1
        return read_array(path, **kwargs)

    def counted_resample(labels, *args, **kwargs):
        resamplings[labels.shape] += 1
        return resample_labels(labels, *args, **kwargs)

    monkeypatch.setattr(rimclf._nifti, "read_array", counted_read)
    monkeypatch.setattr(rimclf.cohort._resample, "resample_labels", counted_resample)
    return reads, resamplings


def cohort_with_a_mask_on_another_grid(root: Path) -> Path:
    """The tiny cohort with sub-002's mask on an oblique 1 mm grid (resampled onto the QSM grid on reading)."""
    shutil.copytree(tiny_cohort(), root)
    mask = next(root.rglob(f"sub-{RESAMPLED}_desc-lesions_dseg.nii.gz"))
    qsm = next(root.rglob(f"sub-{RESAMPLED}_Chimap.nii.gz"))
    rewrite_on_grid(mask, *one_mm_grid(qsm, rotate_deg=(0.0, 0.0, 10.0)), order=0)
    return root


def files(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_each_file_is_read_once_and_each_mask_resampled_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cohort = cohort_with_a_mask_on_another_grid(tmp_path / "cohort")
    model = tiny_model()  # trained (reading its own cohort) before counting
    reads, resamplings = count_reads_and_resamplings(monkeypatch)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # where the run's scan store goes
    predict_cohort(model, cohort, tmp_path / "out", n_jobs=1)

    inputs = {path.resolve() for path in cohort.rglob("*.nii.gz")}
    assert len(inputs) == 18 and set(reads) == inputs  # 6 scans x QSM, FLAIR, lesion mask: each read ...
    assert set(reads.values()) == {1}, {name: n for name, n in reads.items() if n != 1}  # ... once
    assert sum(resamplings.values()) == 1  # the one mask on another grid, resampled once
    assert len(list((tmp_path / "out").rglob("*_montage.png"))) == 6
    assert active_store() is None and list((tmp_path / "tmp").iterdir()) == []  # the store is gone


def test_the_scan_store_changes_no_output(tmp_path: Path) -> None:
    """predict_cohort (through the store) writes the bytes that the outputs read from the files write."""
    cohort = cohort_with_a_mask_on_another_grid(tmp_path / "cohort")
    model = tiny_model()
    predict_cohort(model, cohort, tmp_path / "stored", n_jobs=1)
    table = load_cohort(cohort)
    write_prediction_outputs(tmp_path / "read", table, model.predict_proba(table)[:, 1], model.threshold_, n_jobs=1,
                             source=cohort, scans=table.attrs["scans"], model_info=_model_info(model),
                             model_identity=getattr(model, "model_identity_", None))
    stored, read = files(tmp_path / "stored"), files(tmp_path / "read")
    assert list(stored) == list(read)
    different = [name for name in stored if stored[name] != read[name]]
    assert different == [], different


def _model_info(model) -> dict:
    return {"threshold_choice": model.threshold_choice_.to_dict(),
            "calibration": None if model.calibration_ is None else model.calibration_.to_dict()}


def test_lesions_tsv_says_which_grid_each_mask_came_from(tmp_path: Path) -> None:
    cohort = cohort_with_a_mask_on_another_grid(tmp_path / "cohort")
    out = predict_cohort(tiny_model(), cohort, tmp_path / "out", n_jobs=1, montage=False)["maps"]
    lesions = read_lesions(out)
    grids = lesions.groupby("participant_id")["mask_grid"].first()
    assert grids.to_dict() == {f"sub-{i:03d}": "resampled" if f"{i:03d}" == RESAMPLED else "qsm" for i in range(1, 7)}
    source = lesions.loc[lesions["participant_id"] == f"sub-{RESAMPLED}", "mask_source_grid"].iloc[0]
    assert source.endswith("at 1x1x1 mm")
    dictionary = pd.read_json(out / "lesions.json", typ="series")
    assert set(dictionary["mask_grid"]["Levels"]) == {"qsm", "resampled"}


def test_store_labels_equal_labels_read_from_the_files(tmp_path: Path) -> None:
    """What load_cohort puts in the store is what read_lesion_labels reads, resampled mask included."""
    cohort = cohort_with_a_mask_on_another_grid(tmp_path / "cohort")
    with scan_store() as store:
        table = load_cohort(cohort)
        for _, first in table.groupby("participant_id").first().iterrows():
            args = (first["mask"], int(first["connectivity"]), first["qsm"])
            stored = store.get("labels", [first["mask"], first["qsm"]], {"connectivity": int(first["connectivity"])})
            assert stored is not None
            labels, affine = read_lesion_labels(*args)
            from_store, store_affine = read_lesion_labels(*args, store=store)
            assert from_store.dtype == labels.dtype == np.int32
            assert np.array_equal(from_store, labels) and np.array_equal(store_affine, affine)
    assert not Path(store.folder).exists()


def test_a_changed_file_is_not_taken_from_the_store(tmp_path: Path) -> None:
    cohort = cohort_with_a_mask_on_another_grid(tmp_path / "cohort")
    with scan_store() as store:
        table = load_cohort(cohort)
        first = table.iloc[0]
        mask = Path(first["mask"])
        labels, _ = read_lesion_labels(mask, int(first["connectivity"]), first["qsm"])
        rimclf._nifti.save_nifti(mask, np.zeros(labels.shape, np.int16), rimclf._nifti.load_header(mask).affine,
                                 overwrite=True)
        again, _ = read_lesion_labels(mask, int(first["connectivity"]), first["qsm"], store=store)
        assert again.max() == 0


def test_the_store_is_removed_on_an_error(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), scan_store() as store:
        store.put("qsm", [], {}, np.zeros((2, 2, 2), np.float32), np.eye(4))
        assert len(list(Path(store.folder).iterdir())) == 2
        raise KeyboardInterrupt
    assert not Path(store.folder).exists() and active_store() is None


def test_training_resamples_a_mask_on_another_grid_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rimclf.workflows import train_model
    from tests.model_builders import tiny_estimators

    cohort = cohort_with_a_mask_on_another_grid(tmp_path / "cohort")
    featurizer, classifier = tiny_estimators()
    reads, resamplings = count_reads_and_resamplings(monkeypatch)
    with warnings.catch_warnings():  # a 2-epoch network may reach no threshold with specificity 0.9
        warnings.simplefilter("ignore", DataWarning)
        train_model(cohort, featurizer=featurizer, classifier=classifier, threshold_cv=2, random_state=0)
    assert sum(resamplings.values()) == 1
    mask_reads = Counter({path.name: n for path, n in reads.items() if "_dseg" in path.name})
    assert len(mask_reads) == 6 and set(mask_reads.values()) == {1}


def test_with_a_warm_feature_cache_the_montages_read_the_volumes_once(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    cohort = cohort_with_a_mask_on_another_grid(tmp_path / "cohort")
    model = tiny_model()
    predict_cohort(model, cohort, tmp_path / "cold", n_jobs=1, memory=tmp_path / "cache")  # fills the cache
    reads, _ = count_reads_and_resamplings(monkeypatch)
    predict_cohort(model, cohort, tmp_path / "warm", n_jobs=1, memory=tmp_path / "cache")
    assert set(reads) == {path.resolve() for path in cohort.rglob("*.nii.gz")} and set(reads.values()) == {1}
    reads.clear()
    predict_cohort(model, cohort, tmp_path / "maps-only", n_jobs=1, memory=tmp_path / "cache", montage=False)
    assert {path.name for path in reads} == {path.name for path in cohort.rglob("*_dseg.nii.gz")}  # the masks only
    assert set(reads.values()) == {1}
    assert files(tmp_path / "cold") == files(tmp_path / "warm")  # the same bytes, cache or not


@pytest.mark.parametrize("command", [["extract", "--no-patches"], ["cv", "--quick", "--n-splits", "2", "--epochs", "2",
                                                                    "--n-boot", "10", "--threshold-cv", "0"]])
def test_extract_and_cv_resample_a_mask_on_another_grid_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            command: list[str]) -> None:
    from rimclf.cli import main

    cohort = cohort_with_a_mask_on_another_grid(tmp_path / "cohort")
    _, resamplings = count_reads_and_resamplings(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        status = main([command[0], str(cohort), "-o", str(tmp_path / "out"), *command[1:], "-q"])
    assert status == 0 and sum(resamplings.values()) == 1
