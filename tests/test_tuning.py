"""rimclf.tuning on synthetic radiomics arrays with the (fast) logistic-regression baseline."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import FixedTrial, TrialState

from rimclf.baselines import make_logistic_regression
from rimclf.errors import CohortError, OutputError, ParameterError
from rimclf.tuning import (
    SPACES,
    TrialTable,
    best_params_of,
    describe_storage,
    logistic_regression_space,
    network_space,
    open_storage,
    plot_study,
    random_forest_space,
    save_study_plots,
    suggest_params,
    trials_table,
    tune,
)

from tests.tuning_worker import make_data

HERE = Path(__file__).parent

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = {"model__C": FloatDistribution(1e-3, 1e2, log=True)}


@pytest.fixture(scope="module")
def data():
    return make_data()


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Six hand-built subjects (tests/features/builders.py), 5 lesions each, 2 of them rim+."""
    from tests.features.builders import write_cohort

    return write_cohort(tmp_path_factory.mktemp("tuning") / "cohort", n_subjects=6)


def _estimator():
    return make_logistic_regression(sampler="class_weight", random_state=0)


def _tune(data, tmp_path, **kwargs):
    X, y, groups = data
    options = dict(space=SPACE, n_trials=3, storage=tmp_path / "study.journal", study_name="s", cv=3)
    options.update(kwargs)
    return tune(_estimator(), X, y, groups, **options)


# --------------------------------------------------------------------------- one process
@pytest.mark.slow
def test_tune_scores_trials_by_grouped_cv_and_refits_the_best(data, tmp_path):
    X, y, groups = data
    study, best, best_params = _tune(data, tmp_path, n_trials=4)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 4
    for trial in study.trials:
        fold_scores = trial.user_attrs["fold_scores"]
        assert len(fold_scores) == 3
        assert trial.value == pytest.approx(np.mean(fold_scores))
        assert sorted(trial.intermediate_values) == [0, 1, 2]
        assert trial.intermediate_values[2] == pytest.approx(trial.value)
        assert trial.user_attrs["pipeline_params"] == trial.params
        assert 0.5 <= trial.value <= 1.0  # partial ROC AUC (McClish): 0.5 = chance
    assert best_params == study.best_params
    assert best.named_steps["model"].C == pytest.approx(best_params["model__C"])
    proba = best.predict_proba(X)
    assert proba.shape == (len(y), 2)
    assert (tmp_path / "study.journal").stat().st_size > 0


@pytest.mark.slow
def test_tune_is_reproducible_with_a_seed(data, tmp_path):
    first = _tune(data, tmp_path, storage=tmp_path / "a.journal", refit=False, random_state=3)
    second = _tune(data, tmp_path, storage=tmp_path / "b.journal", refit=False, random_state=3)
    assert [t.params for t in first.study.trials] == [t.params for t in second.study.trials]
    assert [t.value for t in first.study.trials] == [t.value for t in second.study.trials]


def test_folds_keep_each_subjects_lesions_together(data, tmp_path):
    from rimclf.tuning._objective import make_splits

    X, y, groups = data
    _, splits = make_splits(X, y, groups, None, 0)
    assert len(splits) == 5
    for train, test in splits:
        assert not set(groups[train]) & set(groups[test])
        assert y[test].sum() > 0  # stratified: every test fold holds rim+ lesions


@pytest.mark.slow
def test_pruned_trial_is_stored_as_pruned(data, tmp_path):
    # a scorer that makes the trial with a tiny C bad, and a pruner that stops it after fold 0
    def scorer(estimator, X, y):
        return 0.9 if estimator.named_steps["model"].C > 1.0 else 0.1

    storage = str(tmp_path / "pruned.journal")
    study = optuna.create_study(storage=open_storage(storage), study_name="p", direction="maximize")
    study.enqueue_trial({"model__C": 10.0})
    study.enqueue_trial({"model__C": 0.01})
    result = _tune(
        data, tmp_path, n_trials=2, storage=storage, study_name="p", scoring=scorer,
        pruner=optuna.pruners.ThresholdPruner(lower=0.5),
    )
    good, bad = result.study.trials
    assert good.state == TrialState.COMPLETE and good.value == pytest.approx(0.9)
    assert bad.state == TrialState.PRUNED
    assert bad.user_attrs["fold_scores"] == [0.1]  # stopped after the first of 3 folds
    assert bad.intermediate_values == {0: 0.1}
    assert result.best_params == {"model__C": 10.0}


@pytest.mark.slow
def test_second_call_with_the_same_study_name_resumes(data, tmp_path):
    first_params = [t.params for t in _tune(data, tmp_path, n_trials=2, refit=False).study.trials]
    second = _tune(data, tmp_path, n_trials=3, refit=False)
    assert [t.number for t in second.study.trials] == [0, 1, 2, 3, 4]
    assert [t.params for t in second.study.trials[:2]] == first_params
    # resuming does not repeat the first run's proposals
    assert {t.params["model__C"] for t in second.study.trials[2:]}.isdisjoint(
        p["model__C"] for p in first_params
    )


@pytest.mark.slow
def test_resuming_with_other_folds_or_scoring_is_refused(data, tmp_path):
    _tune(data, tmp_path, n_trials=1, refit=False)
    with pytest.raises(ParameterError, match="would not be comparable"):
        _tune(data, tmp_path, n_trials=1, refit=False, cv=4)
    with pytest.raises(ParameterError, match="would not be comparable"):
        _tune(data, tmp_path, n_trials=1, refit=False, scoring="roc_auc")


def test_resuming_with_another_estimator_space_or_inputs_is_refused_before_any_trial(data, tmp_path):
    from rimclf.baselines import make_random_forest

    X, y, groups = data
    storage = tmp_path / "study.journal"
    _tune(data, tmp_path, n_trials=1, refit=False)
    wider = {"model__C": FloatDistribution(1e-4, 1e2, log=True)}
    for changed, match in (
        (dict(space=wider), r"space: model__C recorded .*low=0\.001.*, requested .*low=0\.0001"),
        (dict(space={**SPACE, "model__tol": FloatDistribution(1e-5, 1e-3)}), "space: requested only model__tol"),
        (dict(space=inverse_c_space), "space: recorded .*, requested 'function tests.test_tuning.inverse_c_space'"),
        (dict(X=X[:, :4]), r"inputs: recorded 'ndarray of shape \(\*, 8\)', requested 'ndarray of shape \(\*, 4\)'"),
    ):
        options = dict(space=SPACE, n_trials=1, storage=storage, study_name="s", cv=3, refit=False)
        options.update({k: v for k, v in changed.items() if k != "X"})
        with pytest.raises(ParameterError, match=f"study 's' in {storage}.*another search.*{match}.*new study"):
            tune(_estimator(), changed.get("X", X), y, groups, **options)
    with pytest.raises(ParameterError, match="estimator: recorded .*LogisticRegression.*RandomForestClassifier.* space: "):
        tune(make_random_forest(sampler="class_weight", random_state=0), X, y, groups,
             space=random_forest_space(sampler="class_weight"), n_trials=1,
             storage=storage, study_name="s", cv=3, refit=False)
    study = optuna.load_study(study_name="s", storage=open_storage(storage))
    assert len(study.trials) == 1  # no trial ran


def test_a_study_of_an_older_rimclf_is_resumed_with_a_warning_and_then_checked(data, tmp_path):
    from rimclf.errors import RimclfWarning

    storage = tmp_path / "study.journal"
    old = optuna.create_study(storage=open_storage(storage), study_name="s", direction="maximize")
    old.optimize(lambda trial: suggest_params(trial, SPACE)["model__C"] * 0, n_trials=1)  # no search recorded
    with pytest.warns(RimclfWarning, match="older rimclf .* cannot be checked"):
        assert len(_tune(data, tmp_path, n_trials=1, refit=False).study.trials) == 2
    with pytest.raises(ParameterError, match="another search"):
        _tune(data, tmp_path, n_trials=1, refit=False, space={"model__C": FloatDistribution(1.0, 2.0)})


def test_best_params_of_a_trial_of_another_space_is_an_error_not_a_traceback():
    study = optuna.create_study(direction="maximize", study_name="mixed")
    study.optimize(lambda trial: trial.suggest_int("model__n_estimators", 10, 20), n_trials=1)
    with pytest.raises(ParameterError, match=r"'mixed': its best trial #0 \(\['model__n_estimators'\]\) cannot be rebuilt"):
        best_params_of(study, SPACE)


def test_a_tune_cohort_study_refuses_another_model_or_feature_set_before_featurising(cohort, tmp_path, monkeypatch):
    from rimclf.features.featurizer import LesionFeaturizer
    from rimclf.tuning import make_model
    from rimclf.tuning._search import ESTIMATOR_ATTR, MODEL_ATTR, SPACE_ATTR, describe_estimator, describe_space

    def transform(self, *args, **kwargs):
        raise AssertionError("features were extracted before the study was checked")

    monkeypatch.setattr(LesionFeaturizer, "transform", transform)
    monkeypatch.setattr(LesionFeaturizer, "fit_transform", transform)
    storage = tmp_path / "study.journal"
    study = optuna.create_study(storage=open_storage(storage), study_name="s1", direction="maximize")
    estimator, space = make_model("logistic_regression", random_state=0)
    study.set_user_attr(MODEL_ATTR, "logistic_regression")
    study.set_user_attr(ESTIMATOR_ATTR, describe_estimator(estimator))
    study.set_user_attr(SPACE_ATTR, describe_space(space))
    from rimclf.cli import main

    base = ["tune", str(cohort), "--storage", str(storage), "--study-name", "s1", "--trials", "1", "--folds", "2", "-q"]
    assert main([*base, "-o", str(tmp_path / "t2"), "--model", "random_forest"]) == 2
    study = optuna.load_study(study_name="s1", storage=open_storage(storage))
    assert not study.trials
    with pytest.raises(AssertionError, match="features were extracted"):  # the same search goes on
        main([*base, "-o", str(tmp_path / "t3"), "--model", "logistic_regression"])


def test_a_cohort_study_records_its_model_and_features(cohort, tmp_path, monkeypatch, capsys):
    from rimclf.cli import main

    storage = tmp_path / "study.journal"
    base = ["tune", str(cohort), "--storage", str(storage), "--study-name", "s1", "--trials", "1", "--folds", "2",
            "--model", "logistic_regression", "-q"]
    assert main([*base, "-o", str(tmp_path / "t1")]) == 0
    attrs = optuna.load_study(study_name="s1", storage=open_storage(storage)).user_attrs
    assert attrs["rimclf_model"] == "logistic_regression" and "rim" in attrs["rimclf_features"]
    capsys.readouterr()
    assert main([*base, "-o", str(tmp_path / "t2"), "--feature-set", "radiomics"]) == 2
    assert "features: recorded only rim, rim_fit; requested only radiomics" in capsys.readouterr().err
    assert main([*base[:-2], "random_forest", "-q", "-o", str(tmp_path / "t3")]) == 2
    assert "model: recorded 'logistic_regression', requested 'random_forest'" in capsys.readouterr().err


@pytest.mark.slow
def test_callable_space_and_fixed_trial_rebuild_the_pipeline_params(data, tmp_path):
    result = _tune(data, tmp_path, space=inverse_c_space, n_trials=2)
    best = result.study.best_trial
    assert set(best.params) == {"log10_inverse_c"}
    assert result.best_params == {"model__C": pytest.approx(10.0 ** -best.params["log10_inverse_c"])}
    assert result.best_estimator.named_steps["model"].C == pytest.approx(result.best_params["model__C"])


def inverse_c_space(trial):
    return {"model__C": 10.0 ** -trial.suggest_float("log10_inverse_c", -2.0, 2.0)}


@pytest.mark.slow
def test_verbose_prints_a_line_per_finished_trial(data, tmp_path, capsys):
    _tune(data, tmp_path, n_trials=2, refit=False, verbose=True)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["trial", "state", "value", "seconds", "params"]
    assert [line.split()[:2] for line in lines[1:]] == [["0", "COMPLETE"], ["1", "COMPLETE"]]
    assert all("model__C=" in line for line in lines[1:])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_trials": 0}, "n_trials=0 is not valid; it must be a positive integer"),
        ({"n_workers": -1}, "n_workers=-1 is not valid; it must be a positive integer"),
        ({"space": {"model__gamma": FloatDistribution(0.1, 1.0)}}, "model__gamma"),
        ({"space": {"model__C": 1.0}}, r"space\['model__C'\] must be an optuna distribution"),
        ({"space": {}}, "non-empty mapping"),
        ({"cv": 1}, "cv=1 is not valid; it must be an integer >= 2"),
        ({"scoring": "no-such-score"}, "no-such-score"),
        ({"study_name": ""}, "study_name"),
        ({"storage": 42}, "storage must be"),
        ({"random_state": np.random.RandomState(0)}, "random_state=RandomState.* is not valid; it must be None or an integer"),
    ],
)
def test_bad_arguments_get_a_clear_error(data, tmp_path, kwargs, match):
    with pytest.raises(ParameterError, match=match):
        _tune(data, tmp_path, **kwargs)


def test_groups_are_required_by_the_default_cv(data, tmp_path):
    X, y, _ = data
    with pytest.raises(CohortError, match="groups is required"):
        tune(_estimator(), X, y, space=SPACE, n_trials=1, storage=tmp_path / "s.journal")


def test_a_test_fold_without_rim_positive_lesions_is_refused_before_the_study(tmp_path):
    # once every trial failed deep inside cross_validate ("y_true holds a single class"), after the
    # study had been created
    rng = np.random.default_rng(0)
    groups = np.repeat([f"s{i}" for i in range(8)], 5)
    y = np.zeros(groups.size, dtype=int)
    y[:3] = 1  # rim+ lesions in one subject only
    X = rng.normal(size=(groups.size, 3))
    storage = tmp_path / "study.journal"
    with pytest.raises(ParameterError, match="cv=None: the test part of fold .* holds only rim- lesions"):
        tune(_estimator(), X, y, groups, space=SPACE, n_trials=1, storage=storage)
    assert not storage.exists()


def test_in_memory_storage_cannot_serve_several_workers(data, tmp_path):
    with pytest.raises(ParameterError, match="n_workers > 1"):
        _tune(data, tmp_path, storage=optuna.storages.InMemoryStorage(), n_workers=2)


@pytest.mark.slow
def test_no_completed_trial_means_no_refit(data, tmp_path):
    def failing_scorer(estimator, X, y):
        return 0.0

    with pytest.raises(ParameterError, match="no completed trial"):
        _tune(
            data, tmp_path, n_trials=1, scoring=failing_scorer,
            pruner=optuna.pruners.ThresholdPruner(lower=0.5),
        )


# --------------------------------------------------------------------------- storages
@pytest.mark.slow
def test_open_storage_picks_journal_files_and_rdb_urls(tmp_path):
    journal = open_storage(tmp_path / "deep" / "er" / "x.journal")
    assert isinstance(journal, optuna.storages.JournalStorage)
    assert (tmp_path / "deep" / "er").is_dir()
    rdb = open_storage(f"sqlite:///{tmp_path / 'x.db'}")
    assert isinstance(rdb, optuna.storages.RDBStorage)
    memory = optuna.storages.InMemoryStorage()
    assert open_storage(memory) is memory


def test_open_storage_refuses_an_sqlite_file_given_as_a_path(tmp_path):
    db = tmp_path / "study.db"
    optuna.create_study(storage=f"sqlite:///{db}", study_name="x")
    with pytest.raises(OutputError, match="sqlite:///"):
        open_storage(db)
    with pytest.raises(OutputError, match="is a directory"):
        open_storage(tmp_path)


@pytest.mark.slow
def test_default_storage_is_a_journal_file_named_after_the_study(data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    X, y, groups = data
    tune(_estimator(), X, y, groups, space=SPACE, n_trials=1, study_name="mine", cv=3, refit=False)
    assert (tmp_path / "mine.journal").is_file()


def test_describe_storage_hides_passwords(tmp_path):
    text = describe_storage("postgresql+psycopg2://alice:s3cret@db.example.org:5432/studies")
    assert "s3cret" not in text and "alice" in text and "db.example.org" in text
    assert describe_storage(tmp_path / "a.journal") == str(tmp_path / "a.journal")


# --------------------------------------------------------------------------- many processes
@pytest.mark.slow
def test_two_worker_processes_share_one_journal_study(data, tmp_path, capsys):
    result = _tune(
        data, tmp_path, n_trials=6, n_workers=2, refit=False, verbose=True,
        pruner=optuna.pruners.NopPruner(),
    )
    trials = result.study.trials
    assert sorted(t.number for t in trials) == list(range(6))
    assert all(t.state == TrialState.COMPLETE for t in trials)
    # the parent printed every trial the workers finished, once
    printed = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert sorted(printed, key=int) == [str(n) for n in range(6)]
    # the two workers drew from differently seeded samplers: no repeated proposal
    assert len({t.params["model__C"] for t in trials}) == 6


def run_independent_workers(storage: str, study_name: str, n_processes: int, n_trials: int) -> None:
    """Start ``n_processes`` separate Python processes on one study at once, as N shells would."""
    processes = [
        subprocess.Popen(
            [sys.executable, str(HERE / "tuning_worker.py"), storage, study_name, str(n_trials), str(seed)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for seed in range(n_processes)
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr


@pytest.mark.slow
def test_two_separate_processes_on_one_journal_file_run_distinct_trials(tmp_path):
    storage = str(tmp_path / "shared.journal")
    run_independent_workers(storage, "shared", n_processes=2, n_trials=3)
    study = optuna.load_study(study_name="shared", storage=open_storage(storage))
    numbers = [t.number for t in study.trials]
    assert sorted(numbers) == list(range(6))
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert len({t._trial_id for t in study.trials}) == 6


# --------------------------------------------------------------------------- spaces
def test_network_space_names_prefix_and_ranges():
    space = network_space(prefix="clf__")
    assert set(space) == {
        f"clf__{name}" for name in (
            "module__depth", "module__width", "module__fusion", "module__head_dropout",
            "module__tabular_dropout", "lr",
            "optimizer__weight_decay", "batch_size", "max_epochs", "smote_k",
        )
    }
    assert space["clf__lr"].log
    assert network_space(small=True)["module__depth"].choices == (10,)
    mlp = network_space(branches="tabular", imbalance="none")  # the default model: nothing inert
    assert not {"module__depth", "module__fusion", "smote_k"} & set(mlp) and "module__width" in mlp
    assert pickle.loads(pickle.dumps(space)) == space


@pytest.mark.parametrize("name", sorted(set(SPACES) - {"qsmrimnet"}))
def test_baseline_spaces_match_their_pipelines(name):
    from rimclf import baselines

    pipeline = getattr(baselines, f"make_{name}")(sampler="smote")
    space = SPACES[name]()
    assert set(space) <= set(pipeline.get_params())
    params = suggest_params(FixedTrial({k: _first_value(d) for k, d in space.items()}), space)
    pipeline.set_params(**params)  # every drawn value is accepted
    assert "sampler__k_neighbors" not in SPACES[name](sampler="class_weight")


def _first_value(distribution):
    if isinstance(distribution, CategoricalDistribution):
        return distribution.choices[0]
    return distribution.low


def test_list_is_shorthand_for_categorical():
    params = suggest_params(FixedTrial({"model__C": 0.1}), {"model__C": [0.1, 1.0]})
    assert params == {"model__C": 0.1}
    assert "model__max_depth" in random_forest_space()


# --------------------------------------------------------------------------- table and plots
def test_trial_table_formats_pruned_trials_with_their_last_running_mean():
    study = optuna.create_study(direction="maximize")
    trial = study.ask({"model__C": FloatDistribution(0.01, 1.0)})
    trial.report(0.61234, step=0)
    study.tell(trial, state=TrialState.PRUNED)
    lines = []

    class Stream:
        def write(self, text):
            lines.append(text)

        def flush(self):
            pass

    TrialTable(stream=Stream()).print_new(study)
    row = "".join(lines).splitlines()[1].split()
    assert row[:3] == ["0", "PRUNED", "0.6123"]
    assert row[4].startswith("model__C=")


def _scored_study() -> optuna.Study:
    from rimclf.metrics import SCORERS
    from rimclf.tuning._objective import SCORING_ATTR

    study = optuna.create_study(direction="maximize")
    study.set_user_attr(SCORING_ATTR, repr(SCORERS["pauc"]))

    def objective(trial):
        trial.set_user_attr("fold_scores", [0.5, 0.25])
        trial.set_user_attr("pipeline_params", {"model__C": 1.0, "note": "x"})
        return trial.suggest_float("a", 0, 1) + trial.suggest_int("b", 0, 3)

    study.optimize(objective, n_trials=7)
    return study


def test_trials_table_has_a_column_per_parameter_and_json_attributes(tmp_path):
    import csv

    from rimclf.tuning._table import write_trials_tsv

    study = _scored_study()
    table = trials_table(study)
    assert list(table.columns) == [
        "number", "state", "value", "duration_s", "datetime_start", "datetime_complete", "params_a", "params_b",
        "user_attrs_fold_scores", "user_attrs_pipeline_params",
    ]
    write_trials_tsv(study, tmp_path / "trials.tsv")
    text = (tmp_path / "trials.tsv").read_text()
    assert "'" not in text and '""' not in text  # no Python reprs, no CSV quoting of the JSON
    read = pd.read_csv(tmp_path / "trials.tsv", sep="\t", quoting=csv.QUOTE_NONE)
    assert json.loads(read["user_attrs_fold_scores"].iloc[0]) == [0.5, 0.25]
    assert json.loads(read["user_attrs_pipeline_params"].iloc[0]) == {"model__C": 1.0, "note": "x"}
    assert read["params_b"].dtype.kind == "i" and read["value"].tolist() == [t.value for t in study.trials]


def test_study_plots_name_the_metric_and_number_the_trials():
    figures = plot_study(_scored_study())
    history = figures["optimization_history"].axes[0]
    assert "partial ROC AUC (FPR ≤ 0.1)" in history.get_ylabel() and history.get_xlabel() == "trial"
    ticks = [tick for tick in history.get_xticks() if history.get_xlim()[0] <= tick <= history.get_xlim()[1]]
    assert ticks and all(float(tick).is_integer() for tick in ticks)
    assert "Objective Value" not in history.get_ylabel()
    importances = figures["param_importances"].axes[0]
    assert "partial ROC AUC" in importances.get_title(loc="left")


@pytest.mark.slow
def test_save_study_plots_writes_pngs_and_skips_importances_below_two_trials(tmp_path):
    study = optuna.create_study(direction="maximize")
    assert save_study_plots(study, tmp_path) == []
    study.optimize(lambda t: t.suggest_float("a", 0, 1) + t.suggest_int("b", 0, 3), n_trials=1)
    assert [p.name for p in save_study_plots(study, tmp_path)] == ["optimization_history.png"]
    study.optimize(lambda t: t.suggest_float("a", 0, 1) + t.suggest_int("b", 0, 3), n_trials=3)
    written = save_study_plots(study, tmp_path)
    assert [p.name for p in written] == ["optimization_history.png", "param_importances.png"]
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_best_params_of_a_study_without_completed_trials_is_an_error():
    study = optuna.create_study(direction="maximize", study_name="empty")
    with pytest.raises(ParameterError, match="'empty' has no completed trial"):
        best_params_of(study, SPACE)


# --------------------------------------------------------------------------- sklearn interop
@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::optuna.exceptions.ExperimentalWarning")
def test_optuna_search_cv_takes_the_same_space_with_groups(data):
    from optuna_integration import OptunaSearchCV
    from sklearn.model_selection import StratifiedGroupKFold

    from rimclf.metrics import SCORERS

    X, y, groups = data
    search = OptunaSearchCV(
        _estimator(), logistic_regression_space(sampler="class_weight"),
        cv=StratifiedGroupKFold(3, shuffle=True, random_state=0), n_trials=2,
        scoring=SCORERS["pauc"], random_state=0,
    )
    search.fit(X, y, groups=groups)
    assert len(search.trials_) == 2
    assert search.best_estimator_.predict_proba(X).shape == (len(y), 2)


def _feature_pipeline(cache):
    """Pipeline([features, clf]) with tiny extraction settings and a tiny network."""
    from sklearn.pipeline import Pipeline

    from rimclf import LesionFeaturizer, PatchExtractor, QSMRimNetClassifier, RadiomicsExtractor

    radiomics = RadiomicsExtractor(
        params={"imageType": {"Original": {}}, "featureClass": {"firstorder": None}, "setting": {"binWidth": 25}}
    )
    featurizer = LesionFeaturizer(
        [("radiomics", radiomics), ("patches", PatchExtractor(size_mm=16.0, shape=(8, 8, 8)))], memory=cache, progress=False,
    )
    network = QSMRimNetClassifier(module__width=4, max_epochs=2, batch_size=16, random_state=0)
    return Pipeline([("features", featurizer), ("clf", network)])


def _cached_subjects(cache):
    return [path for path in Path(cache).rglob("*.npz")]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::optuna.exceptions.ExperimentalWarning")
def test_grid_and_optuna_search_over_featurizer_and_network_with_groups(cohort, tmp_path):
    from optuna_integration import OptunaSearchCV
    from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold

    from rimclf import load_cohort
    from rimclf.metrics import SCORERS

    table = load_cohort(cohort)
    y, groups = table["rim"].astype(int).to_numpy(), table["participant_id"].to_numpy()
    cv = StratifiedGroupKFold(2, shuffle=True, random_state=0)
    cache = tmp_path / "features"
    grid = GridSearchCV(
        _feature_pipeline(cache), {"clf__lr": [1e-3, 1e-2]}, cv=cv, scoring=SCORERS["pauc"]
    )
    grid.fit(table, y, groups=groups)
    assert grid.cv_results_["mean_test_score"].shape == (2,)
    assert np.isfinite(grid.cv_results_["mean_test_score"]).all()
    assert grid.best_estimator_.predict_proba(table).shape == (len(table), 2)
    # 2 candidates x 2 folds x (fit + score) + refit: all featurised from one cache entry per subject
    assert len(_cached_subjects(cache)) == 6

    search = OptunaSearchCV(
        _feature_pipeline(cache), {"clf__lr": FloatDistribution(1e-4, 1e-2, log=True)},
        cv=cv, n_trials=2, scoring=SCORERS["pauc"], random_state=0,
    )
    search.fit(table, y, groups=groups)
    assert len(search.trials_) == 2 and all(t.state == TrialState.COMPLETE for t in search.trials_)
    assert search.best_estimator_.predict_proba(table).shape == (len(table), 2)
    assert len(_cached_subjects(cache)) == 6


@pytest.mark.slow
def test_tune_a_pipeline_whose_featurizer_caches_extracts_each_subject_once(cohort, tmp_path):
    from sklearn.pipeline import Pipeline

    from rimclf import LesionFeaturizer, RadiomicsExtractor, load_cohort

    table = load_cohort(cohort)
    y, groups = table["rim"].astype(int).to_numpy(), table["participant_id"].to_numpy()
    radiomics = RadiomicsExtractor(
        params={"imageType": {"Original": {}}, "featureClass": {"firstorder": None}, "setting": {"binWidth": 25}}
    )
    cache = tmp_path / "features"
    pipeline = Pipeline([
        ("features", LesionFeaturizer([("radiomics", radiomics)], memory=cache, progress=False)),
        ("clf", make_logistic_regression(sampler="class_weight", random_state=0)),
    ])
    result = tune(
        pipeline, table, y, groups, space=logistic_regression_space("clf__", sampler="class_weight"),
        n_trials=2, cv=3, storage=tmp_path / "s.journal", study_name="pipe",
    )
    assert [t.state for t in result.study.trials] == [TrialState.COMPLETE] * 2
    assert len(_cached_subjects(cache)) == 6  # 2 trials x 3 folds x (fit, score) + refit: one extraction each
    assert result.best_estimator.predict_proba(table).shape == (len(table), 2)


@pytest.mark.slow
def test_tune_a_tiny_network_on_featurised_lesions_in_two_workers(tmp_path):
    from optuna.distributions import IntDistribution
    from skorch.helper import SliceDict

    from rimclf import QSMRimNetClassifier

    X, y, groups = make_data(n_subjects=12, n_per_subject=8)
    rng = np.random.default_rng(1)
    patches = rng.normal(size=(len(y), 3, 8, 8, 8)).astype(np.float32)
    patches[y == 1, 0] += 1.0
    features = SliceDict(patches=patches, radiomics=X)
    space = {**network_space(small=True), "max_epochs": IntDistribution(1, 2), "module__width": [4]}
    result = tune(
        QSMRimNetClassifier(batch_size=16, random_state=0), features, y, groups, space=space,
        n_trials=2, n_workers=2, cv=2, storage=tmp_path / "net.journal", study_name="net",
        pruner=optuna.pruners.NopPruner(),
    )
    assert sorted(t.number for t in result.study.trials) == [0, 1]
    assert all(t.state == TrialState.COMPLETE for t in result.study.trials)
    best = result.best_estimator
    assert best.module__width == 4 and best.max_epochs == result.best_params["max_epochs"]
    assert best.predict_proba(features).shape == (len(y), 2)


# --------------------------------------------------------------------------- command line
FEW_RADIOMICS_YAML = """\
imageType:
  Original: {}
featureClass:
  firstorder:
setting:
  binWidth: 25
"""


@pytest.mark.slow
def test_rimclf_tune_command_writes_outputs_and_resumes(cohort, tmp_path, capsys):
    from rimclf.cli import main

    params = tmp_path / "radiomics.yaml"
    params.write_text(FEW_RADIOMICS_YAML)
    storage, out = tmp_path / "cli.journal", tmp_path / "out"
    command = [
        "tune", str(cohort), "-o", str(out), "--trials", "3", "--storage", str(storage),
        "--study-name", "cli", "--model", "logistic_regression", "--folds", "3",
        "--radiomics-params", str(params), "--cache", str(tmp_path / "cache"),
    ]
    assert main(command) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split() == ["trial", "state", "value", "seconds", "params"]
    assert [line.split()[:2] for line in printed[1:4]] == [["0", "COMPLETE"], ["1", "COMPLETE"], ["2", "COMPLETE"]]
    assert f"to {out}" in printed[-1]
    assert sorted(p.name for p in out.iterdir()) == [
        "best_params.json", "optimization_history.png", "param_importances.png", "trials.tsv",
    ]
    summary = json.loads((out / "best_params.json").read_text())
    assert summary["model"] == "logistic_regression" and summary["n_trials"] == {"COMPLETE": 3}
    assert set(summary["best_params"]) == set(logistic_regression_space())
    assert summary["n_lesions"] == 30 and summary["n_subjects"] == 6

    # OUT is not overwritten without --force; the study is resumed with it (and 2 workers)
    assert main(command) == 1
    assert "already exists" in capsys.readouterr().err
    assert main([*command[:5], "2", *command[6:], "--workers", "2", "--force"]) == 0
    summary = json.loads((out / "best_params.json").read_text())
    assert summary["n_trials"] == {"COMPLETE": 5}
    assert len((out / "trials.tsv").read_text().strip().splitlines()) == 1 + 5


@pytest.mark.slow
def test_a_killed_worker_fails_its_trial_and_the_others_go_on(data, tmp_path, monkeypatch):
    """kill -9 of one worker of ``n_workers=2``: its trial is FAIL, not RUNNING for ever, the run goes on."""
    import os

    from rimclf.errors import RimclfWarning
    from rimclf.tuning._workers import WORKER_ATTR
    from tests.tuning_worker import killing_space

    monkeypatch.setenv("RIMCLF_TEST_KILL_TRIAL", "2")
    monkeypatch.setenv("RIMCLF_TEST_PARENT", str(os.getpid()))
    X, y, groups = data
    # which trials the killed worker had run depends on scheduling: trial 2 was its first, second
    # or third of three (a worker that starts late under load), so 2, 1 or 0 are left to hand on
    died = r"tuning worker \d died abruptly .*: trial\(s\) 2 marked FAIL; "
    left = r"(a new worker runs its [12] remaining trial\(s\)|its remaining trials are not run)"
    with pytest.warns(RimclfWarning, match=died + left):
        result = tune(
            _estimator(), X, y, groups, space=killing_space, n_trials=6, n_workers=2, cv=3, refit=False,
            storage=tmp_path / "s.journal", study_name="killed", pruner=optuna.pruners.NopPruner(),
        )
    states = {t.number: t.state for t in result.study.trials}
    assert states[2] == TrialState.FAIL and "died" in result.study.trials[2].system_attrs["fail_reason"]
    assert sorted(states.values(), key=str) == sorted([TrialState.COMPLETE] * 5 + [TrialState.FAIL], key=str)
    assert all(WORKER_ATTR in t.system_attrs for t in result.study.trials)
    reloaded = optuna.load_study(study_name="killed", storage=open_storage(tmp_path / "s.journal"))
    assert not reloaded.get_trials(states=(TrialState.RUNNING,))
