"""LesionFeaturizer: SliceDict output in table order, parallel, cached, usable in sklearn CV."""

from __future__ import annotations

import logging
import os
import pickle
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from skorch.helper import SliceDict

from rimclf import CohortError, LesionFeaturizer, PatchExtractor, RadiomicsExtractor, load_cohort
from rimclf.features import RimProfileExtractor
from rimclf._nifti import save_nifti
from rimclf.errors import DataWarning, ParameterError
from tests.features.builders import make_affine, make_qsm, write_subject

SMALL_PATCHES = PatchExtractor(size_mm=12.0, shape=(6, 5, 4), channels=("qsm", "flair", "mask"), normalize="nawm")
FEW_RADIOMICS = RadiomicsExtractor(
    params={
        "imageType": {"Original": {}, "Wavelet": {}},
        "featureClass": {"firstorder": None, "glcm": ["Contrast"]},
        "setting": {"binWidth": 25},
    },
    region="lesion",
)


def featurizer(*, rim=None, radiomics=FEW_RADIOMICS, patches=SMALL_PATCHES, **params) -> LesionFeaturizer:
    parts = (("rim", rim), ("radiomics", radiomics), ("patches", patches))
    return LesionFeaturizer([(name, part) for name, part in parts if part is not None], **{"progress": False, **params})


@pytest.fixture(scope="module")
def reference(cohort: Path) -> SliceDict:
    table = load_cohort(cohort)
    return featurizer().fit(table).transform(table)


@pytest.mark.slow
def test_slicedict_of_float32_in_table_order(table: pd.DataFrame, reference: SliceDict) -> None:
    assert isinstance(reference, SliceDict) and set(reference) == {"patches", "radiomics"}
    assert reference["patches"].shape == (20, 3, 6, 5, 4) and reference["patches"].dtype == np.float32
    assert reference["radiomics"].shape == (20, 9 * 19) and reference["radiomics"].dtype == np.float32
    np.testing.assert_array_equal(reference["radiomics"], FEW_RADIOMICS.transform(table).astype(np.float32))
    np.testing.assert_array_equal(reference["patches"], SMALL_PATCHES.transform(table))
    assert list(featurizer().get_feature_names_out()) == list(FEW_RADIOMICS.get_feature_names_out())


def test_shuffled_subset_and_repeated_rows(table: pd.DataFrame, reference: SliceDict) -> None:
    rows = np.array([13, 2, 19, 7, 2, 0, 11])
    subset = table.iloc[rows]
    features = featurizer().transform(subset)
    np.testing.assert_array_equal(features["radiomics"], reference["radiomics"][rows])
    np.testing.assert_array_equal(features["patches"], reference["patches"][rows])
    assert len(features[np.array([1, 2])]["radiomics"]) == 2  # SliceDict indexes like an array


def test_one_participant_from_two_scans_is_refused(table: pd.DataFrame, tmp_path: Path) -> None:
    # two cohorts' tables concatenated, each with its own sub-01: once the second one's rows were
    # silently given the first one's features (its files were read from the group's first row)
    first = table["participant_id"].iloc[0]
    one = table[table["participant_id"] == first]
    other = one.assign(qsm=[str(tmp_path / "site-b" / "sub-01_Chimap.nii.gz")] * len(one))
    with pytest.raises(CohortError, match=rf"gives sub-{first} 2 different 'qsm' values .* must come from one scan"):
        featurizer().transform(pd.concat([one, other]))


def test_empty_table_gives_empty_arrays(table: pd.DataFrame) -> None:
    features = featurizer().transform(table.iloc[:0])
    assert features["radiomics"].shape == (0, 9 * 19) and features["patches"].shape == (0, 3, 6, 5, 4)


@pytest.mark.slow
def test_rim_features_join_the_output_and_the_feature_names(table: pd.DataFrame, reference: SliceDict) -> None:
    from rimclf.features import RimProfileExtractor

    with_rim = featurizer(rim=RimProfileExtractor()).transform(table)
    assert set(with_rim) == {"rim", "radiomics", "patches"}
    np.testing.assert_allclose(with_rim["rim"], RimProfileExtractor().transform(table).astype(np.float32), rtol=1e-6)
    np.testing.assert_array_equal(with_rim["radiomics"], reference["radiomics"])
    names = list(featurizer(rim=RimProfileExtractor()).get_feature_names_out())
    assert names == [*RimProfileExtractor().get_feature_names_out(), *FEW_RADIOMICS.get_feature_names_out()]


def test_either_part_can_be_skipped(table: pd.DataFrame, reference: SliceDict) -> None:
    only_patches = featurizer(radiomics=None).transform(table.iloc[:3])
    assert set(only_patches) == {"patches"} and len(featurizer(radiomics=None).get_feature_names_out()) == 0
    only_radiomics = featurizer(patches=None).transform(table.iloc[:3])
    np.testing.assert_array_equal(only_radiomics["radiomics"], reference["radiomics"][:3])


@pytest.mark.slow
def test_n_jobs_and_backends_give_identical_results(table: pd.DataFrame, reference: SliceDict) -> None:
    parallel = featurizer(n_jobs=2).transform(table)
    np.testing.assert_array_equal(parallel["radiomics"], reference["radiomics"])
    np.testing.assert_array_equal(parallel["patches"], reference["patches"])
    with joblib.parallel_backend("threading", n_jobs=2):
        threaded = featurizer().transform(table.iloc[::-1])
    np.testing.assert_array_equal(threaded["radiomics"], reference["radiomics"][::-1])


@pytest.mark.slow
def test_dask_backend(table: pd.DataFrame, reference: SliceDict) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None):
        with joblib.parallel_backend("dask"):
            features = featurizer(patches=None).transform(table.iloc[:10])
    np.testing.assert_array_equal(features["radiomics"], reference["radiomics"][:10])


@pytest.mark.slow
def test_worker_warnings_and_errors_reach_the_caller(tmp_path: Path) -> None:
    qsm = make_qsm(1)
    qsm[0, 0, 0] = np.nan  # outside the brain: zero-filled with a warning
    write_subject(tmp_path, "01")
    write_subject(tmp_path, "02", qsm=qsm)
    table = load_cohort(tmp_path)
    with pytest.warns(DataWarning, match="sub-02_Chimap.nii.gz: 1 NaN/Inf voxels outside the brain were set to 0"):
        featurizer(radiomics=None, n_jobs=2).transform(table)
    write_subject(tmp_path, "03", qsm=make_qsm(1) / 1000)  # ppm values, its sidecar says ppb
    with pytest.raises(CohortError, match=r"sub-03_Chimap.nii.gz: QSM values span .* which is ppm, but its unit is ppb"):
        featurizer(radiomics=None, n_jobs=2).transform(load_cohort(tmp_path))


def extraction_log(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage().split()[3] for r in caplog.records if r.getMessage().startswith("extracting features")]


@pytest.mark.slow
def test_cache_reuses_unchanged_subjects_and_reextracts_changed_ones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for index, label in enumerate(("01", "02", "03")):
        write_subject(tmp_path / "cohort", label, seed=index)
    table = load_cohort(tmp_path / "cohort")
    cached = featurizer(memory=tmp_path / "cache")
    caplog.set_level(logging.DEBUG, logger="rimclf.features.featurizer")
    first = cached.transform(table)
    assert extraction_log(caplog) == ["sub-01", "sub-02", "sub-03"]
    caplog.clear()
    again = cached.transform(table)
    assert extraction_log(caplog) == []
    np.testing.assert_array_equal(again["radiomics"], first["radiomics"])
    np.testing.assert_array_equal(again["patches"], first["patches"])
    # rewrite sub-02's QSM with other values, touch sub-03's (same bytes): only sub-02 is extracted again
    qsm_02 = table.loc[table["participant_id"] == "02", "qsm"].iloc[0]
    save_nifti(qsm_02, make_qsm(7), make_affine(), overwrite=True)
    qsm_03 = table.loc[table["participant_id"] == "03", "qsm"].iloc[0]
    stat = os.stat(qsm_03)
    os.utime(qsm_03, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    caplog.clear()
    changed = cached.transform(table)
    assert extraction_log(caplog) == ["sub-02"]
    rows_02 = (table["participant_id"] == "02").to_numpy()
    assert not np.array_equal(changed["radiomics"][rows_02], first["radiomics"][rows_02])
    np.testing.assert_array_equal(changed["radiomics"][~rows_02], first["radiomics"][~rows_02])
    # other extractor parameters are another cache entry
    caplog.clear()
    featurizer(
        memory=joblib.Memory(tmp_path / "cache", verbose=0), patches=PatchExtractor(size_mm=12.0, shape=3)
    ).transform(table.iloc[:2])
    assert extraction_log(caplog) == ["sub-01"]


def radiomics_only(X: SliceDict) -> np.ndarray:
    return X["radiomics"]


@pytest.mark.slow
def test_pipeline_cross_validation_grouped_by_subject(table: pd.DataFrame, tmp_path: Path) -> None:
    pipeline = Pipeline(
        [
            ("features", featurizer(patches=None, memory=tmp_path / "cache")),
            ("radiomics", FunctionTransformer(radiomics_only)),
            ("impute", SimpleImputer()),
            ("scale", StandardScaler()),
            ("clf", LogisticRegression(max_iter=500)),
        ]
    )
    y = table["rim"].astype(int)
    scores = cross_val_score(
        pipeline, table, y, groups=table["participant_id"], cv=StratifiedGroupKFold(n_splits=2), scoring="accuracy"
    )
    assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))


def test_clone_get_set_params_and_pickle() -> None:
    original = LesionFeaturizer([("radiomics", RadiomicsExtractor(region="both")), ("patches", PatchExtractor(shape=8))], n_jobs=2)
    params = original.get_params(deep=True)
    assert params["radiomics__region"] == "both" and params["patches__shape"] == 8 and params["n_jobs"] == 2
    copy = clone(original)
    assert copy.features[0][1] is not original.features[0][1] and copy.get_params()["radiomics__region"] == "both"
    copy.set_params(radiomics__shell_mm=3.0, patches__normalize="zscore")
    assert copy.get_params()["radiomics__shell_mm"] == 3.0 and original.get_params()["radiomics__shell_mm"] == 2.0
    restored = pickle.loads(pickle.dumps(copy))
    assert restored.get_params()["patches__normalize"] == "zscore"
    assert LesionFeaturizer().fit(None) is not None


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n_jobs": 0}, "n_jobs=0 is not valid"),
        ({"features": "rim"}, r"features='rim' is not valid; it must be None or a list of \(name, extractor\) tuples"),
        ({"features": [("radiomics", "yes")]}, r"features entry 'radiomics' is 'yes'; it must be a RadiomicsExtractor"),
        ({"features": [("patches", RadiomicsExtractor())]}, "features entry 'patches' is RadiomicsExtractor.*; it must be a PatchExtractor"),
        ({"features": [("qsm", PatchExtractor())]}, r"feature 'qsm' is not registered; the features are \('rim', 'rim_fit', 'radiomics', 'patches', 'surface_map'\)"),
        ({"features": [("rim", RimProfileExtractor()), ("rim", RimProfileExtractor())]}, "features names 'rim' twice"),
        ({"features": []}, "extracts nothing"),
        ({"progress": "no"}, "progress='no' is not valid"),
        ({"memory": 3}, "memory=3 is not valid; use None, a cache folder or a joblib.Memory"),
        ({"features": [("patches", PatchExtractor(channels=("t1",)))]}, r"channels=\('t1',\) is not valid"),
    ],
)
def test_bad_parameters(table: pd.DataFrame, params: dict, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        LesionFeaturizer(**params).fit(table)


def test_bad_table(table: pd.DataFrame) -> None:
    with pytest.raises(
        CohortError, match=r"lacks column\(s\) \['flair', 'centroid_z'\]|lacks column\(s\) \['centroid_z', 'flair'\]"
    ):
        featurizer().transform(table.drop(columns=["flair", "centroid_z"]))
    with pytest.raises(CohortError, match="X must be the lesion table .* got ndarray"):
        featurizer().transform(table.to_numpy())


def test_progress_bar_on_a_terminal_only(
    table: pd.DataFrame, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    featurizer(radiomics=None, progress=True).transform(table.iloc[:6])
    assert "lesion features" not in capsys.readouterr().err  # stderr is no terminal here
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    featurizer(radiomics=None, progress=True).transform(table.iloc[:6])
    assert "lesion features" in capsys.readouterr().err


def test_each_volume_is_read_once_per_subject(table: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    import rimclf.features._subject as subject_module

    calls: list[str] = []

    def counting(name, reader):
        def wrapper(*args, **kwargs):
            calls.append(name)
            return reader(*args, **kwargs)

        return wrapper

    for name in ("read_qsm", "read_volume", "read_lesion_labels"):
        monkeypatch.setattr(subject_module, name, counting(name, getattr(subject_module, name)))
    featurizer(
        radiomics=RadiomicsExtractor(region="both", params={"featureClass": {"firstorder": ["Mean"]}})
    ).transform(table.iloc[:10])
    assert sorted(calls) == sorted(["read_qsm", "read_volume", "read_lesion_labels"] * 2)  # 2 subjects, 10 lesions


def test_sklearn_tags_are_readable():
    from sklearn.utils import get_tags

    from rimclf.features import LesionFeaturizer, PatchExtractor, RadiomicsExtractor

    for estimator in (LesionFeaturizer(), RadiomicsExtractor(), PatchExtractor()):
        tags = get_tags(estimator)
        assert tags.requires_fit is False and tags.input_tags.two_d_array is False
