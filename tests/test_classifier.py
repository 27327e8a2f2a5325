"""QSMRimNetClassifier: sklearn behaviour, imbalance modes, preprocessing, devices, state."""

import json
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from skorch.callbacks import EarlyStopping
from skorch.helper import SliceDict
from sklearn.base import clone
from sklearn.model_selection import (
    GridSearchCV,
    StratifiedGroupKFold,
    cross_val_predict,
    cross_val_score,
    cross_validate,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from rimclf.classifier import GroupValidSplit, QSMRimNetClassifier
from rimclf.classifier.device import autocast
from rimclf.errors import CohortError, DataWarning, ParameterError

#: QSMRim-Net as published (both branches, DeepSMOTE, no augmentation) at a tiny size; the
#: default model (MLP on the tabular features) is tested where it differs
FAST = {"module__width": 4, "max_epochs": 2, "batch_size": 16, "random_state": 0, "module__branches": "both",
        "imbalance": "deepsmote", "module__augment": "none", "blend": "none"}
N_SUBJECTS, LESIONS_PER_SUBJECT = 12, 8


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n = N_SUBJECTS * LESIONS_PER_SUBJECT
    groups = np.repeat([f"S{i:02d}" for i in range(N_SUBJECTS)], LESIONS_PER_SUBJECT)
    y = np.zeros(n, dtype=int)
    y[::LESIONS_PER_SUBJECT * 2] = 1  # one rim+ lesion in every other subject...
    y[3::LESIONS_PER_SUBJECT] = 1  # ...and one in every subject: ~19 % of 96 lesions
    patches = rng.normal(size=(n, 3, 8, 8, 8)).astype(np.float32)
    patches[y == 1, 0] += 1.0
    radiomics = rng.normal(size=(n, 10)).astype(np.float32)
    radiomics[y == 1, :3] += 1.5
    return SliceDict(patches=patches, radiomics=radiomics), y, groups


def fast(**params):
    return QSMRimNetClassifier(**{**FAST, **params})


@pytest.fixture(scope="module")
def fitted(data):
    X, y, _ = data
    return fast().fit(X, y)


def test_fit_predict_shapes(fitted, data):
    X, y, _ = data
    proba = fitted.predict_proba(X)
    assert proba.shape == (len(y), 2) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert np.array_equal(fitted.classes_, [0, 1])
    prediction = fitted.predict(X)
    assert prediction.dtype == np.int64 and set(np.unique(prediction)) <= {0, 1}
    assert np.array_equal(prediction, (proba[:, 1] >= 0.5).astype(int))  # as RimModel decides
    assert fitted.in_channels_ == 3 and fitted.patch_shape_ == (8, 8, 8)
    assert fitted.n_radiomics_ == 10


def test_plain_dict_and_empty_input(fitted, data):
    X, _, _ = data
    as_dict = {"patches": X["patches"][:5], "radiomics": X["radiomics"][:5]}
    np.testing.assert_array_equal(fitted.predict_proba(as_dict), fitted.predict_proba(X[:5]))
    empty = {"patches": X["patches"][:0], "radiomics": X["radiomics"][:0]}
    assert fitted.predict_proba(empty).shape == (0, 2)


def test_module_is_plain_torch(fitted, data):
    X, _, _ = data
    module = fitted.module_.eval()
    inputs = fitted.preprocess(X)  # on the module's device, CPU or GPU
    assert {value.device for value in inputs.values()} == {next(module.parameters()).device}
    with torch.no_grad(), autocast(fitted.device_, fitted.amp_):  # as predict_proba runs it
        logits = module(**inputs)
    # on a GPU the one large batch here may run other cuDNN algorithms than predict_proba's (bf16)
    tolerance = {"rtol": 1e-5} if fitted.device_.type == "cpu" else {"rtol": 0, "atol": 1e-2}
    np.testing.assert_allclose(torch.sigmoid(logits.float()).cpu().numpy(), fitted.predict_proba(X)[:, 1], **tolerance)


def test_clone_params_and_pickle(fitted, data):
    X, _, _ = data
    params = fitted.get_params(deep=False)
    assert params["device"] == "auto" and params["module__width"] == 4
    twin = clone(fitted)
    assert not hasattr(twin, "module_")
    assert twin.get_params(deep=False).keys() == params.keys()
    twin.set_params(imbalance="none", module__depth=18)
    assert twin.imbalance == "none" and twin.module__depth == 18
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.predict_proba(X), fitted.predict_proba(X))
    assert restored.device == "auto" and restored.device_ == fitted.device_


@pytest.mark.slow
def test_bit_for_bit_repeatable_on_cpu(data):
    """The CPU promise of ``random_state``; tests/test_cuda.py checks what holds on CUDA."""
    X, y, _ = data
    state = torch.random.get_rng_state()
    first = fast(random_state=3, device="cpu").fit(X, y)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG is untouched
    second = fast(random_state=3, device="cpu").fit(X, y)
    other = fast(random_state=4, device="cpu").fit(X, y)
    for name, tensor in first.module_.state_dict().items():
        assert torch.equal(tensor, second.module_.state_dict()[name]), name
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))
    assert first.history[:, "train_loss"] == second.history[:, "train_loss"]
    assert not np.array_equal(first.predict_proba(X), other.predict_proba(X))


_FIT_IN_FRESH_PROCESS = """
import sys
import numpy as np
import torch
from skorch.helper import SliceDict
from rimclf.classifier import QSMRimNetClassifier

torch.set_num_threads(int(sys.argv[1]))
rng = np.random.default_rng(0)
y = np.zeros(48, dtype=int)
y[::6] = 1
X = SliceDict(
    patches=rng.normal(size=(48, 3, 8, 8, 8)).astype(np.float32),
    radiomics=rng.normal(size=(48, 5)).astype(np.float32),
)
clf = QSMRimNetClassifier(module__width=4, module__branches="both", imbalance="deepsmote", max_epochs=2,
                          batch_size=16, random_state=7, device="cpu").fit(X, y)
sys.stdout.write(clf.predict_proba(X)[:, 1].astype(np.float32).tobytes().hex())
"""


@pytest.mark.slow
def test_repeatable_across_processes_on_cpu():
    """Two fresh interpreters with the same thread count train the same network on the CPU, bit for bit."""

    def fit(threads: int) -> np.ndarray:
        command = [sys.executable, "-c", _FIT_IN_FRESH_PROCESS, str(threads)]
        done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=300)
        return np.frombuffer(bytes.fromhex(done.stdout.strip()), dtype=np.float32)

    first, second = fit(1), fit(1)
    assert first.shape == (48,) and np.all((first > 0) & (first < 1))
    np.testing.assert_array_equal(first, second)


def test_history_counts_synthetic_rows(fitted, data):
    _, y, _ = data
    epochs = fitted.history
    assert len(epochs) == 2
    for entry in epochs:
        batches = [b for b in entry["batches"] if "n_synthetic" in b]
        assert entry["n_synthetic"] == sum(b["n_synthetic"] for b in batches) > 0
        assert all(b["n_positive"] >= 3 for b in batches)  # min_positives="auto" = smote_k + 1
        # k=2 neighbours for every rim+ row of every batch
        assert entry["n_synthetic"] == 2 * int(y.sum())


@pytest.mark.slow
@pytest.mark.parametrize("imbalance", ["class_weight", "oversample", "none"])
def test_other_imbalance_modes(imbalance, data):
    X, y, _ = data
    net = fast(imbalance=imbalance).fit(X, y)
    assert net.history[:, "n_synthetic"] == [0, 0]
    assert net.module_.smote is None
    assert np.isfinite(net.predict_proba(X)).all()
    n_positive = int(y.sum())
    if imbalance == "class_weight":
        assert net.pos_weight_ == pytest.approx((len(y) - n_positive) / n_positive)
        assert net.criterion_.pos_weight.item() == pytest.approx((len(y) - n_positive) / n_positive)
    else:
        assert net.criterion_.pos_weight is None
    if imbalance == "oversample":
        seen = sum(b["n_positive"] for b in net.history[-1]["batches"])
        assert seen == len(y) - n_positive  # as many rim+ rows as rim- rows per epoch


@pytest.mark.slow
def test_cross_validation_with_groups(data):
    X, y, groups = data
    cv = StratifiedGroupKFold(3)
    scores = cross_val_score(fast(), X, y, groups=groups, cv=cv, scoring="roc_auc",
                             error_score="raise")
    assert scores.shape == (3,) and np.isfinite(scores).all()
    proba = cross_val_predict(fast(), X, y, groups=groups, cv=cv, method="predict_proba")
    assert proba.shape == (len(y), 2)


@pytest.mark.slow
def test_sampler_follows_the_datasets_of_cv_and_internal_split(data):
    X, y, groups = data
    net = fast(train_split=GroupValidSplit(3), callbacks=[EarlyStopping(patience=5)])
    result = cross_validate(net, X, y, groups=groups, cv=StratifiedGroupKFold(3),
                            params={"groups": groups}, return_estimator=True,
                            return_indices=True, error_score="raise")
    for estimator, train_index in zip(result["estimator"], result["indices"]["train"]):
        entry = estimator.history[-1]
        train_batches = [b for b in entry["batches"] if "n_positive" in b]
        n_train = sum(b["train_batch_size"] for b in train_batches)
        n_valid = sum(b["valid_batch_size"] for b in entry["batches"] if "valid_batch_size" in b)
        assert n_train + n_valid == len(train_index)  # inner train + valid = outer train fold
        assert n_valid > 0 and "valid_loss" in entry
        assert all(b["n_positive"] >= 3 for b in train_batches)
        n_positive_inner = sum(b["n_positive"] for b in train_batches)
        assert entry["n_synthetic"] == 2 * n_positive_inner


@pytest.mark.slow
def test_grid_search(data):
    X, y, groups = data
    search = GridSearchCV(fast(max_epochs=1), {"module__fusion": ["sum", "concat"]},
                          cv=StratifiedGroupKFold(2), scoring="roc_auc", error_score="raise")
    search.fit(X, y, groups=groups)
    assert search.best_params_["module__fusion"] in {"sum", "concat"}
    assert search.best_estimator_.predict_proba(X).shape == (len(y), 2)


@pytest.mark.slow
def test_pipeline_with_group_fit_param(data):
    X, y, groups = data
    pipe = Pipeline([
        ("identity", FunctionTransformer(None)),
        ("clf", fast(train_split=GroupValidSplit(3))),
    ])
    pipe.fit(X, y, clf__groups=groups)
    assert pipe.predict_proba(X).shape == (len(y), 2)


@pytest.mark.slow
@pytest.mark.parametrize("branches", ["patches", "tabular"])
def test_single_branch(branches, data):
    X, y, _ = data
    key = {"patches": "patches", "tabular": "radiomics"}[branches]
    X_one = SliceDict(**{key: X[key]})
    net = fast(module__branches=branches).fit(X_one, y)
    assert net.predict_proba(X_one).shape == (len(y), 2)
    assert (net.n_radiomics_ is None) == (branches == "patches")
    assert (net.in_channels_ is None) == (branches == "tabular")


def test_radiomics_standardised_from_training_rows_only(data):
    X, y, _ = data
    train, test = np.arange(0, 64), np.arange(64, 96)
    net = fast().fit(X[train], y[train])
    np.testing.assert_allclose(net.radiomics_mean_, X["radiomics"][train].mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(net.radiomics_scale_, X["radiomics"][train].std(axis=0), rtol=1e-4)
    # a test row's probability does not depend on the other test rows
    alone = net.predict_proba(X[test[:3]])
    among_all = net.predict_proba(X[test])[:3]
    np.testing.assert_allclose(alone, among_all, rtol=1e-6)


def test_nan_and_constant_radiomics(data):
    X, y, _ = data
    radiomics = X["radiomics"].copy()
    radiomics[::5, 1] = np.nan
    radiomics[2, 4] = np.inf
    radiomics[:, 5] = 7.0  # constant
    radiomics[:, 6] = np.nan  # never measured
    X_nan = SliceDict(patches=X["patches"], radiomics=radiomics)
    with pytest.warns(DataWarning, match=r"\[6\]"):
        net = fast().fit(X_nan, y)
    assert net.radiomics_scale_[5] == 1.0 and net.radiomics_median_[6] == 0.0
    standardised = net.preprocess(X_nan)["tabular"].cpu().numpy()
    assert np.isfinite(standardised).all()
    expected = (np.nanmedian(radiomics[:, 1]) - net.radiomics_mean_[1]) / net.radiomics_scale_[1]
    np.testing.assert_allclose(standardised[::5, 1], expected, rtol=1e-5)
    assert np.isfinite(net.predict_proba(X_nan)).all()


@pytest.mark.parametrize(
    ("params", "match"),
    [({"imbalance": "foo"}, "imbalance"), ({"smote_k": 0}, "smote_k"),
     ({"min_positives": "many"}, "min_positives"), ({"amp": "yes"}, "amp"),
     ({"batch_size": 1}, "batch_size"), ({"module__smote_k": 3}, "module__smote_k"),
     ({"module__branches": "all"}, "module__branches"), ({"device": "tpu:7"}, "device"),
     ({"module__in_channels": 2}, "module__in_channels"), ({"random_state": -1}, "random_state=-1"),
     ({"random_state": "x"}, "random_state='x'"), ({"verbose": "x"}, "verbose='x'")],
)
def test_bad_parameters_raise_at_fit(params, match, data):
    X, y, _ = data
    net = fast(**params)  # the constructor only stores
    with pytest.raises(ParameterError, match=match):
        net.fit(X, y)


def test_bad_inputs(fitted, data):
    X, y, _ = data
    with pytest.raises(CohortError, match=r"X has no tabular features \(any of \('rim', 'rim_fit', 'radiomics'\)\)"):
        fast().fit(SliceDict(patches=X["patches"]), y)
    bad = X["patches"].copy()
    bad[0, 0, 0, 0, 0] = np.nan
    with pytest.raises(CohortError, match="NaN"):
        fast().fit(SliceDict(patches=bad, radiomics=X["radiomics"]), y)
    with pytest.raises(CohortError, match=r"spatial shape \(6, 5, 4\).*at least 8 voxels"):
        fast().fit(SliceDict(patches=X["patches"][:, :, :6, :5, :4], radiomics=X["radiomics"]), y)
    with pytest.raises(CohortError, match="missing"):
        fast().fit(X, np.where(np.arange(len(y)) == 0, np.nan, y))
    with pytest.raises(CohortError, match="only class"):
        fast().fit(X, np.zeros_like(y))
    with pytest.raises(CohortError, match="features"):
        fitted.predict_proba(SliceDict(patches=X["patches"], radiomics=X["radiomics"][:, :4]))
    with pytest.raises(CohortError, match="SliceDict"):
        fitted.predict_proba(X["patches"])


def test_device_auto_resolves(fitted):
    """``device="auto"`` is CUDA where there is one (bf16 autocast there), else the CPU."""
    cuda = torch.cuda.is_available()
    assert fitted.device == "auto"
    assert fitted.device_ == torch.device("cuda" if cuda else "cpu")
    assert fitted.amp_ is (cuda and torch.cuda.is_bf16_supported())
    assert next(fitted.module_.parameters()).device.type == fitted.device_.type


@pytest.mark.slow
def test_bf16_autocast_on_cpu(data):
    X, y, _ = data
    net = fast(amp=True).fit(X, y)
    assert net.amp_ is True
    dtypes = []
    hook = net.module_.patch_encoder.stem[0].register_forward_hook(
        lambda module, args, output: dtypes.append(output.dtype))
    proba = net.predict_proba(X)
    hook.remove()
    assert dtypes and set(dtypes) == {torch.bfloat16}
    assert proba.dtype == np.float32 and np.isfinite(proba).all()
    assert np.isfinite(net.history[:, "train_loss"]).all()


def test_fitted_state_round_trip(fitted, data, tmp_path):
    X, _, _ = data
    state = fitted.fitted_state()
    assert state["params"]["module__width"] == 4 and state["params"]["device"] == "auto"
    assert "module" in state["omitted_params"]
    # what a model file does: JSON for the settings, torch.save for the weights
    settings = {key: value for key, value in state.items() if key != "module_state"}
    for key in ("radiomics_median", "radiomics_mean", "radiomics_scale"):
        settings[key] = settings[key].tolist()
    assert settings.pop("blend_coef") is None and settings.pop("blend_intercept") is None  # blend="none"
    settings = json.loads(json.dumps(settings))
    torch.save(state["module_state"], tmp_path / "weights.pt")
    settings["module_state"] = torch.load(tmp_path / "weights.pt", weights_only=True)
    rebuilt = QSMRimNetClassifier.from_fitted_state(settings)
    np.testing.assert_array_equal(rebuilt.predict_proba(X), fitted.predict_proba(X))
    assert rebuilt.patch_shape_ == (8, 8, 8)


@pytest.mark.slow
def test_set_module_params_after_fit(data):
    X, y, _ = data
    net = fast().fit(X, y)
    net.set_params(module__width=2)  # re-initialises the module on the resolved device
    assert net.module_.feature_dim == 16
    net.fit(X, y)
    assert net.predict_proba(X).shape == (len(y), 2)


def test_early_stopping_on_subjects(data):
    X, y, groups = data
    net = fast(max_epochs=4, train_split=GroupValidSplit(4),
               callbacks=[EarlyStopping(patience=1, load_best=True)])
    net.fit(X, y, groups=groups)
    assert 2 <= len(net.history) <= 4
    assert all("valid_loss" in entry for entry in net.history)


def test_partial_fit_continues(data):
    X, y, _ = data
    net = fast(max_epochs=1)
    net.partial_fit(X, y)
    net.partial_fit(X, y)
    assert len(net.history) == 2


def test_paper_configuration_is_ordinary_parameters():
    net = QSMRimNetClassifier(module__depth=18, module__width=64)
    assert net.get_params()["module__depth"] == 18
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clone(net)


def test_warm_start_keeps_the_fitted_statistics(data):
    X, y, _ = data
    net = fast(max_epochs=1, warm_start=True).fit(X[:64], y[:64])
    mean = net.radiomics_mean_.copy()
    net.fit(X[32:], y[32:])
    np.testing.assert_array_equal(net.radiomics_mean_, mean)
    assert len(net.history) == 2


def test_tabular_entries_are_joined_in_a_fixed_order(data):
    """The MLP branch takes "rim" and "radiomics" side by side, rim first, and remembers which."""
    X, y, _ = data
    rim, radiomics = X["radiomics"][:, :4], X["radiomics"][:, 4:]
    net = QSMRimNetClassifier(module__width=4, max_epochs=2, batch_size=16, random_state=0, module__branches="tabular")
    joined = net.fit(SliceDict(rim=rim, radiomics=radiomics), y)
    assert joined.feature_keys_ == ("rim", "radiomics") and joined.n_radiomics_ == 10
    same = clone(net).fit(SliceDict(radiomics=X["radiomics"]), y)  # the same columns in one entry
    np.testing.assert_allclose(joined.predict_proba(SliceDict(radiomics=radiomics, rim=rim)),
                               same.predict_proba(SliceDict(radiomics=X["radiomics"])), atol=1e-6)
    with pytest.raises(CohortError, match="no 'rim' entry; the estimator was fitted on \\['rim', 'radiomics'\\]"):
        joined.predict_proba(SliceDict(radiomics=radiomics))
    with pytest.raises(CohortError, match="no tabular features"):
        clone(net).fit(SliceDict(patches=X["patches"]), y)


@pytest.mark.slow
def test_patch_augmentation_is_seeded(data):
    X, y, _ = data
    first = fast(module__augment="flips+rotations").fit(X, y).predict_proba(X)
    again = fast(module__augment="flips+rotations").fit(X, y).predict_proba(X)
    plain = fast().fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, plain)
