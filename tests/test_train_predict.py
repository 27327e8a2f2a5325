"""Training (threshold choice) and prediction outputs of RimModel."""

from __future__ import annotations

import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from rimclf import CohortError
from rimclf.cohort import read_lesion_labels
from rimclf.errors import DataWarning, ParameterError
from rimclf.metrics import threshold_at_specificity
from rimclf.outputs import output_paths, read_lesions
from rimclf import RimModel
from rimclf.workflows import predict_cohort, subject_table, train_model
from rimclf.threshold import threshold_folds, threshold_from_probabilities
from tests.model_builders import tiny_cohort, tiny_estimators, tiny_model, tiny_table


pytestmark = pytest.mark.slow


# ----------------------------------------------------------------------------- threshold
def test_threshold_reaches_the_target_specificity() -> None:
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(200, int), np.ones(20, int)]
    probability = np.r_[rng.uniform(0, 0.7, 200), rng.uniform(0.3, 1.0, 20)]
    choice = threshold_from_probabilities(y, probability, 0.9, method="cv", n_splits=5)
    decision = probability >= choice.value
    specificity = 1 - decision[y == 0].mean()
    assert specificity >= 0.9 and choice.specificity == pytest.approx(specificity)
    assert choice.sensitivity == pytest.approx(decision[y == 1].mean())
    assert choice.value in probability  # a threshold at an observed probability
    # the next lower observed probability either misses the target or gains no sensitivity
    lower = probability[probability < choice.value].max()
    lower_decision = probability >= lower
    assert 1 - lower_decision[y == 0].mean() < 0.9 or lower_decision[y == 1].mean() == choice.sensitivity
    assert choice.pauc is not None and 0.5 <= choice.pauc <= 1 and choice.n_splits == 5
    assert "5-fold subject-grouped CV" in choice.describe()


def test_unreachable_specificity_calls_nothing_with_a_warning() -> None:
    y = np.array([0, 0, 0, 1, 1])
    probability = np.array([0.9, 0.2, 0.1, 0.5, 0.4])  # the top score is rim-: specificity <= 2/3
    with pytest.warns(DataWarning, match="no threshold reaches specificity 0.9"):
        choice = threshold_from_probabilities(y, probability, 0.9, method="in-sample")
    assert np.isfinite(choice.value) and choice.value > 0.9
    assert choice.specificity == 1.0 and choice.sensitivity == 0.0 and choice.pauc is None


def test_threshold_folds_are_grouped_and_checked() -> None:
    groups = np.repeat([f"s{i}" for i in range(6)], 5)
    y = np.zeros(30, int)
    y[[0, 6, 12, 18, 24, 29]] = 1
    folds = threshold_folds(y, groups, 3, random_state=0)
    assert len(folds) == 3
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])
    assert np.array_equal(np.sort(np.concatenate([test for _, test in folds])), np.arange(30))
    with pytest.raises(ParameterError, match="threshold_cv=1 is not valid"):
        threshold_folds(y, groups, 1, random_state=0)
    with pytest.raises(ParameterError, match="only 6 subjects"):
        threshold_folds(y, groups, 7, random_state=0)
    with pytest.raises(ParameterError, match="holds 0 rim\\+"):
        threshold_folds(np.r_[np.ones(2, int), np.zeros(28, int)], groups, 2, random_state=0)


def test_train_counts_the_subjects_with_labelled_lesions_and_names_an_empty_cohort() -> None:
    table = tiny_table()
    with pytest.raises(CohortError, match=r"training needs labelled rim\+ and rim- lesions .* has 0 rim\+ and 0 rim-"):
        train_model(table.iloc[:0], threshold_cv=5)  # e.g. every scan skipped: not a --threshold-cv error
    richest = table.groupby("participant_id")["rim"].sum().sort_values().index[-2:]  # the two with most rim+
    unlabelled = table.assign(rim=table["rim"].where(table["participant_id"].isin(richest)))
    assert unlabelled["rim"].value_counts().reindex([0, 1]).min() >= 2
    with pytest.raises(ParameterError, match=r"threshold_cv=3 is not valid.*the cohort has 2 subject\(s\) with labelled"):
        train_model(unlabelled, threshold_cv=3)


# ----------------------------------------------------------------------------- RimModel
def test_fit_chooses_the_threshold_on_out_of_fold_probabilities() -> None:
    model, table = tiny_model(), tiny_table()
    y = table["rim"].astype(int).to_numpy()
    assert model.threshold_choice_.method == "cv" and model.threshold_choice_.n_splits == 2
    assert model.oof_probability_.shape == (len(table),) and np.isfinite(model.oof_probability_).all()
    expected = threshold_at_specificity(y, model.oof_probability_, 0.9)
    if np.isfinite(expected):
        assert model.threshold_ == expected
    else:
        assert model.threshold_ > model.oof_probability_.max()
    # out-of-fold probabilities come from other networks than the final one
    assert not np.allclose(model.oof_probability_, model.predict_proba(table)[:, 1])
    probability = model.predict_proba(table)
    assert probability.shape == (len(table), 2)
    np.testing.assert_allclose(probability.sum(axis=1), 1, rtol=1e-6)
    assert np.array_equal(model.predict(table), (probability[:, 1] >= model.threshold_).astype(int))
    assert model.training_["n_subjects"] == 6 and list(model.classes_) == [0, 1]


def test_in_sample_and_fixed_thresholds() -> None:
    table = tiny_table()
    featurizer, classifier = tiny_estimators(max_epochs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        in_sample = RimModel(featurizer, classifier, threshold_cv=0).fit(table)
    assert in_sample.threshold_choice_.method == "in-sample" and in_sample.oof_probability_ is None
    y = table["rim"].astype(int).to_numpy()
    reached = threshold_at_specificity(y, in_sample.predict_proba(table)[:, 1], 0.9)
    assert in_sample.threshold_ == reached or (not np.isfinite(reached) and in_sample.threshold_ <= 1.0 + 1e-6)
    fixed = RimModel(featurizer, classifier, threshold=0.25, threshold_cv=7).fit(table)  # threshold_cv is unused
    assert fixed.threshold_ == 0.25 and fixed.threshold_choice_.method == "fixed"


def test_params_and_clone() -> None:
    featurizer, classifier = tiny_estimators()
    model = RimModel(featurizer, classifier, threshold_cv=3, random_state=1)
    params = model.get_params()
    assert params["threshold_cv"] == 3 and params["classifier__module__width"] == 4
    assert clone(model).get_params()["featurizer__patches__shape"] == 8


def test_a_seed_makes_the_default_model_reproducible() -> None:
    # once RimModel(random_state=0) (and train_model(random_state=0)) left the default network
    # unseeded: two fits gave other probabilities and thresholds
    from rimclf.features import make_featurizer

    table = tiny_table()
    fits = [RimModel(make_featurizer(progress=False), threshold_cv=0, random_state=0).fit(table) for _ in range(2)]
    np.testing.assert_array_equal(fits[0].predict_proba(table), fits[1].predict_proba(table))
    assert fits[0].classifier_.random_state == 0 and RimModel().get_params()["classifier"] is None


@pytest.mark.parametrize(
    ("params", "message"),
    [({"threshold_cv": 1}, "threshold_cv=1"), ({"target_specificity": 1.5}, "target_specificity=1.5"),
     ({"threshold": float("nan")}, "threshold=nan"),
     ({"threshold": 2.0}, r"threshold=2.0 is not valid; it must be None or a number in \[0, 1\]"),
     ({"threshold": -0.5}, "threshold=-0.5"),
     ({"random_state": "x"}, "random_state='x' is not valid"), ({"random_state": -1}, "random_state=-1"),
     # these once reached sklearn's clone: "TypeError: Cannot clone object 'rim'"
     ({"featurizer": "rim"}, "featurizer='rim' is not valid; it must be None or a LesionFeaturizer"),
     ({"classifier": 3}, "classifier=3 is not valid; it must be None or a QSMRimNetClassifier")],
)
def test_bad_parameters(params: dict, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        RimModel(**params).fit(tiny_table())


def test_the_classifiers_parameters_are_checked_before_the_features_are_extracted(monkeypatch) -> None:
    from rimclf.classifier import make_classifier
    from rimclf.features import LesionFeaturizer, make_featurizer

    def no_extraction(*args, **kwargs):
        raise AssertionError("features were extracted before the classifier's parameters were checked")

    monkeypatch.setattr(LesionFeaturizer, "transform", no_extraction)
    with pytest.raises(ParameterError, match="QSMRimNetClassifier: lr=0"):
        RimModel(make_featurizer(progress=False), make_classifier(lr=0), threshold_cv=0).fit(tiny_table())


def test_training_needs_labels() -> None:
    table = tiny_table()
    unlabeled = table.assign(rim=pd.array([pd.NA] * len(table), dtype="Int64"))
    with pytest.raises(CohortError, match="training needs labelled rim\\+ and rim- lesions .* 0 rim\\+ and 0 rim- .*unlabelled"):
        RimModel().fit(unlabeled)
    with pytest.raises(CohortError, match="needs labelled rim\\+ and rim- lesions"):
        RimModel().fit(table.assign(rim=0))


def test_train_model_refuses_an_existing_output_before_working(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    with pytest.raises(FileExistsError, match="--force"):
        train_model(tmp_path / "no-cohort-needed", out=tmp_path / "model")


# ----------------------------------------------------------------------------- predictions
def test_prediction_outputs_are_consistent(tmp_path: Path) -> None:
    model, table = tiny_model(), tiny_table()
    paths = predict_cohort(model, tiny_cohort(), tmp_path / "out")
    lesions = read_lesions(tmp_path / "out")
    probability = model.predict_proba(table)[:, 1]
    assert lesions["participant_id"].tolist() == ["sub-" + p for p in table["participant_id"]]
    assert lesions["lesion_id"].tolist() == table["lesion_id"].astype(int).tolist()
    np.testing.assert_allclose(lesions["probability"], probability, rtol=1e-5)
    # the decision is taken on the full-precision probability (the 2-epoch model's calibrated ones differ in the 6th digit)
    assert np.array_equal(lesions["decision"], (probability >= model.threshold_).astype(int))
    subjects = pd.read_csv(paths["subjects"], sep="\t", dtype={"participant_id": str})
    assert subjects["n_rim_pos_predicted"].tolist() == lesions.groupby("participant_id")["decision"].sum().tolist()
    for bids_participant, rows in lesions.groupby("participant_id"):
        participant = bids_participant.removeprefix("sub-")
        files = output_paths(tmp_path / "out", participant)
        image = nib.load(files["probseg"])
        qsm = nib.load(table.loc[table["participant_id"] == participant, "qsm"].iloc[0])
        np.testing.assert_allclose(image.affine, qsm.affine)
        assert image.shape == qsm.shape
        values = np.asarray(image.dataobj)
        labels, _ = read_lesion_labels(table.loc[table["participant_id"] == participant, "mask"].iloc[0], 0)
        assert np.array_equal(values != 0, np.isin(labels, rows["lesion_id"]))
        for row in rows.itertuples():
            np.testing.assert_allclose(values[labels == row.lesion_id], row.probability, rtol=1e-5)
        assert files["montage"].read_bytes()[:4] == b"\x89PNG"


def test_prediction_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="--force"):
        predict_cohort(tiny_model(), tiny_cohort(), out, montage=False)
    assert (out / "keep.txt").read_text() == "mine"
    predict_cohort(tiny_model(), tiny_cohort(), out, montage=False, force=True)
    assert not (out / "keep.txt").exists() and (out / "lesions.tsv").is_file()


def test_one_subject_given_by_paths(tmp_path: Path) -> None:
    cohort_table = tiny_table()
    first = cohort_table.iloc[0]
    single = subject_table(first["qsm"], first["flair"], first["mask"], participant_id="sub-X1")
    expected = cohort_table[cohort_table["participant_id"] == first["participant_id"]].reset_index(drop=True)
    assert (single["participant_id"] == "X1").all() and single["rim"].isna().all()
    pd.testing.assert_frame_equal(single.drop(columns=["participant_id", "rim"]), expected.drop(columns=["participant_id", "rim"]))
    predict_cohort(tiny_model(), single, tmp_path / "one")
    lesions = read_lesions(tmp_path / "one")
    assert "rim" not in lesions and output_paths(tmp_path / "one", "X1")["probseg"].is_file()
    np.testing.assert_allclose(lesions["probability"], tiny_model().predict_proba(expected)[:, 1], rtol=1e-5)
    with pytest.raises(CohortError, match="missing.nii.gz"):
        subject_table(tmp_path / "missing.nii.gz", first["flair"], first["mask"])
    with pytest.raises(CohortError, match="subject_table: participant_id '07_a' is not a valid label"):
        subject_table(first["qsm"], first["flair"], first["mask"], participant_id="07_a")  # not the temporary manifest


def test_one_subject_without_lesions_is_reported_with_zero_counts(tmp_path: Path) -> None:
    # once predict_subject wrote a subjects.tsv without any row for a mask without lesions
    from rimclf.workflows import predict_subject

    first = tiny_table().iloc[0]
    mask = nib.load(first["mask"])
    empty = tmp_path / "empty_mask.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros(mask.shape, np.uint8), mask.affine, mask.header), empty)
    predict_subject(tiny_model(), first["qsm"], first["flair"], empty, tmp_path / "none", participant_id="Z9", montage=False)
    subjects = pd.read_csv(tmp_path / "none" / "subjects.tsv", sep="\t")
    assert subjects["participant_id"].tolist() == ["sub-Z9"]
    assert subjects.loc[0, ["n_lesions", "n_rim_pos_predicted", "expected_rim_pos"]].tolist() == [0, 0, 0]
    assert read_lesions(tmp_path / "none").empty
