"""RadiomicsExtractor: equal to full-volume pyradiomics, shell region, failures, parameters."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import NEEDS_PYRADIOMICS

pytest.importorskip("radiomics", reason=NEEDS_PYRADIOMICS)
from radiomics.featureextractor import RadiomicsFeatureExtractor  # noqa: E402

from rimclf import CohortError, load_cohort  # noqa: E402
from rimclf._nifti import save_nifti  # noqa: E402
from rimclf.errors import DataWarning, ParameterError  # noqa: E402
from rimclf.features import RadiomicsExtractor  # noqa: E402
from rimclf.features._regions import shell_mask  # noqa: E402
from rimclf.features.radiomics import load_params  # noqa: E402
from tests.features.builders import make_affine, make_labels, make_qsm, write_subject  # noqa: E402

QSMRIM_PARAMS = Path(__file__).parents[2] / "rimclf" / "data" / "qsmrim_params.yaml"


def full_volume(qsm_path, mask_path, label, names, params=str(QSMRIM_PARAMS)) -> np.ndarray:
    """What a user writes first: pyradiomics on the whole files, one lesion at a time."""
    with warnings.catch_warnings():  # pykwalify's, when pyradiomics validates the parameters
        warnings.filterwarnings("ignore", "the load_module", DeprecationWarning)
        extractor = RadiomicsFeatureExtractor(params)
    result = extractor.execute(str(qsm_path), str(mask_path), label=label)
    return np.array([float(result[name]) for name in names])


def test_feature_names_are_pyradiomics_names(table: pd.DataFrame) -> None:
    names = RadiomicsExtractor(region="lesion").get_feature_names_out()
    assert len(names) == 14 + 9 * (18 + 24 + 16)  # shape + (first-order, GLCM, GLRLM) x (original + 8 wavelets)
    assert {
        "original_firstorder_Mean",
        "wavelet-LLH_glcm_Contrast",
        "original_shape_Sphericity",
        "wavelet-HHH_glrlm_RunEntropy",
    } <= set(names)
    assert not any(name.startswith("diagnostics") for name in names)
    assert len(set(names)) == len(names)


@pytest.mark.slow
def test_values_equal_full_volume_pyradiomics_everywhere(table: pd.DataFrame) -> None:
    # lesions 1-2 interior, 3 on the low-x border, 4 tiny (8 voxels), 5 in the far corner of an odd-sized grid
    subject = table[table["participant_id"] == "01"]
    extractor = RadiomicsExtractor(region="lesion")
    values = extractor.fit(subject).transform(subject)
    names = extractor.get_feature_names_out()
    assert values.shape == (5, len(names)) and values.dtype == np.float64
    for row, lesion in enumerate(subject.itertuples()):
        expected = full_volume(lesion.qsm, lesion.mask, lesion.lesion_id, names)
        np.testing.assert_array_equal(values[row], expected, err_msg=f"lesion {lesion.lesion_id}")


def test_box_lesions_without_wavelets_equal_full_volume(table: pd.DataFrame, tmp_path: Path) -> None:
    # lesions 3-5 fill their bounding box: the crop still needs background around them
    params = {"featureClass": {"shape": None, "firstorder": None}, "setting": {"binWidth": 25}}
    path = tmp_path / "params.yaml"
    path.write_text(json.dumps(params))
    subject = table[table["participant_id"] == "04"].iloc[2:]
    extractor = RadiomicsExtractor(params=params, region="lesion")
    values = extractor.transform(subject)
    for row, lesion in enumerate(subject.itertuples()):
        expected = full_volume(lesion.qsm, lesion.mask, lesion.lesion_id, extractor.get_feature_names_out(), str(path))
        np.testing.assert_array_equal(values[row], expected)


def test_shell_values_equal_full_volume_pyradiomics_on_the_shell_mask(table: pd.DataFrame, tmp_path: Path) -> None:
    subject = table[table["participant_id"] == "02"]
    row = subject.iloc[1]
    labels = make_labels()
    spacing = np.array([0.9, 1.1, 2.0])
    ring = shell_mask(labels == row["lesion_id"], labels > 0, make_qsm(1) != 0, spacing, 2.5)
    save_nifti(tmp_path / "ring.nii.gz", ring.astype(np.uint8), make_affine())
    extractor = RadiomicsExtractor(region="both", shell_mm=2.5)
    values = extractor.transform(subject.iloc[[1]])[0]
    names = extractor.get_feature_names_out()
    n = len(names) // 2
    assert names[0].startswith("lesion_original_") and names[n].startswith("shell_original_")
    plain = [name.removeprefix("shell_") for name in names[n:]]
    np.testing.assert_array_equal(values[n:], full_volume(row["qsm"], tmp_path / "ring.nii.gz", 1, plain))
    np.testing.assert_array_equal(values[:n], RadiomicsExtractor(region="lesion").transform(subject.iloc[[1]])[0])
    shell_only = RadiomicsExtractor(region="shell", shell_mm=2.5)
    assert shell_only.get_feature_names_out()[0].startswith("shell_original_")
    np.testing.assert_array_equal(shell_only.transform(subject.iloc[[1]])[0], values[n:])
    # the paramagnetic ring put around lesion 2 by the builder shows in the shell, not in the lesion
    mean = list(names).index("shell_original_firstorder_Mean")
    assert values[mean] > values[list(names).index("lesion_original_firstorder_Mean")] + 10


def test_unextractable_lesion_gives_nan_row_and_warning(tmp_path: Path) -> None:
    labels = make_labels()
    labels[labels == 4] = 0
    labels[14:22, 2, 1] = 4  # a line of 8 voxels: pyradiomics needs at least 2 dimensions
    write_subject(tmp_path, "07", labels=labels)
    table = load_cohort(tmp_path)
    with pytest.warns(
        DataWarning, match=r"sub-07 lesion 4: pyradiomics cannot extract features \(mask has too few dimensions"
    ):
        values = RadiomicsExtractor(region="lesion").transform(table)
    assert np.isnan(values[3]).all()
    assert not np.isnan(values[[0, 1, 2, 4]]).any()


@pytest.mark.slow
def test_empty_shell_gives_nan_shell_columns_and_warning(tmp_path: Path) -> None:
    qsm = make_qsm()
    labels = make_labels()
    around = (
        np.abs(np.indices(qsm.shape) - np.array([15, 13, 7])[:, None, None, None])
        <= np.array([6, 6, 3])[:, None, None, None]
    ).all(axis=0)
    qsm[around & (labels != 2)] = 0  # no QSM data around lesion 2
    write_subject(tmp_path, "08", qsm=qsm)
    table = load_cohort(tmp_path)
    extractor = RadiomicsExtractor(region="both")
    with pytest.warns(DataWarning, match="sub-08 lesion 2 shell: the 2 mm shell has no voxel"):
        values = extractor.transform(table)
    n = values.shape[1] // 2
    assert np.isnan(values[1, n:]).all() and not np.isnan(values[1, :n]).any()
    assert not np.isnan(values[[0, 2, 3, 4]]).any()


def test_a_qsm_whose_values_contradict_its_unit_is_an_error(tmp_path: Path) -> None:
    write_subject(tmp_path, "09", qsm=make_qsm() / 1000)  # ppm values, its sidecar says ppb
    table = load_cohort(tmp_path)
    with pytest.raises(CohortError, match=r"sub-09_Chimap.nii.gz: QSM values span .* which is ppm, but its unit is ppb"):
        RadiomicsExtractor(params={"featureClass": {"firstorder": ["Mean"]}, "setting": {"binWidth": 25}}, region="lesion").transform(
            table.iloc[:1]
        )
    ppm = table.assign(qsm_unit="ppm")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mean = RadiomicsExtractor(params={"featureClass": {"firstorder": ["Mean"]}}, region="lesion").transform(ppm.iloc[:1])
    assert mean[0, 0] == pytest.approx(float(make_qsm()[make_labels() == 1].mean()), rel=1e-5)


def test_params_file_dict_and_uncroppable_settings(table: pd.DataFrame, tmp_path: Path) -> None:
    subject = table[table["participant_id"] == "03"].iloc[[0, 4]]
    params = {
        "imageType": {"Original": {}, "LoG": {"sigma": [1.0]}},
        "featureClass": {"firstorder": None},
        "setting": {"binWidth": 25},
    }
    path = tmp_path / "params.json"
    path.write_text(json.dumps(params))
    from_dict = RadiomicsExtractor(params=params, region="lesion")
    from_file = RadiomicsExtractor(params=str(path), region="lesion")
    names = from_dict.get_feature_names_out()
    assert list(names) == list(from_file.get_feature_names_out()) and "log-sigma-1-0-mm-3D_firstorder_Mean" in names
    values = from_dict.transform(subject)  # LoG needs the whole image: extracted without cropping
    np.testing.assert_array_equal(values, from_file.transform(subject))
    for row, lesion in enumerate(subject.itertuples()):
        np.testing.assert_array_equal(
            values[row], full_volume(lesion.qsm, lesion.mask, lesion.lesion_id, names, str(path))
        )


def test_bad_parameters_name_value_and_choices(table: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match=r"region='ring' is not valid; it must be one of \('lesion', 'shell', 'both'\)"):
        RadiomicsExtractor(region="ring").fit(table)
    with pytest.raises(ParameterError, match=r"image='t1' is not valid; it must be one of \('qsm', 'flair'\)"):
        RadiomicsExtractor(image="t1").transform(table)
    with pytest.raises(ParameterError, match=r"shell_mm=-1 is not valid; it must be a positive number"):
        RadiomicsExtractor(region="shell", shell_mm=-1).fit()
    with pytest.raises(ParameterError, match="no such pyradiomics parameter file"):
        RadiomicsExtractor(params=str(tmp_path / "missing.yaml"), region="lesion").fit()
    with pytest.raises(ParameterError, match="invalid pyradiomics parameters"):
        RadiomicsExtractor(params={"setting": {"binWidth": "wide"}}, region="lesion").fit()
    with pytest.raises(CohortError, match=r"lacks column\(s\) \['mask'\]"):
        RadiomicsExtractor(region="lesion").transform(table.drop(columns="mask"))
    with pytest.raises(CohortError, match="X must be the lesion table"):
        RadiomicsExtractor(region="lesion").transform(table.to_numpy())


def test_packaged_params_are_qsmrim_net_settings() -> None:
    params = load_params("qsmrim")
    assert params["setting"]["binWidth"] == 25
    assert set(params["imageType"]) == {"Original", "Wavelet"}
    assert set(params["featureClass"]) == {"shape", "firstorder", "glcm", "glrlm"}


def test_flair_image_equals_pyradiomics_on_the_flair(table: pd.DataFrame) -> None:
    subject = table[table["participant_id"] == "01"].iloc[:2]
    params = {"featureClass": {"firstorder": None, "glcm": None}, "setting": {"binWidth": 25}}
    extractor = RadiomicsExtractor(params=params, image="flair", region="lesion")
    values = extractor.transform(subject)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "the load_module", DeprecationWarning)
        reference = RadiomicsFeatureExtractor(params)
    for row, lesion in enumerate(subject.itertuples()):
        result = reference.execute(lesion.flair, lesion.mask, label=lesion.lesion_id)
        np.testing.assert_array_equal(values[row], [float(result[name]) for name in extractor.get_feature_names_out()])


def test_rotated_grid_equals_pyradiomics(tmp_path: Path) -> None:
    # an oblique grid: the header's pixdim (what pyradiomics uses) and the affine's column norms
    # differ by float32 rounding, which would show in the shape features
    angle = np.deg2rad(25)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = make_affine()
    affine[:3, :3] = rotation @ affine[:3, :3]
    write_subject(tmp_path, "05", affine=affine)
    table = load_cohort(tmp_path).iloc[:2]
    params = {"featureClass": {"shape": None}, "setting": {"binWidth": 25}}
    path = tmp_path / "shape.yaml"
    path.write_text(json.dumps(params))
    extractor = RadiomicsExtractor(params=params, region="lesion")
    values = extractor.transform(table)
    for row, lesion in enumerate(table.itertuples()):
        expected = full_volume(lesion.qsm, lesion.mask, lesion.lesion_id, extractor.get_feature_names_out(), str(path))
        np.testing.assert_array_equal(values[row], expected)
