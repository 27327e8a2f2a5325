"""What the command line shows (issue #22, point 8): a progress bar and one summary line per
training (epoch tables only with -v), -q hides progress but never results, -v turns on rimclf's
own debug logs only, predict shows progress over its scans, cv --epochs changes the training,
and exit status 2 for usage errors and 1 for the others."""

from __future__ import annotations

import argparse
import io
import logging
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from skorch.helper import SliceDict

from rimclf.classifier import QSMRimNetClassifier
from rimclf.cli import EXIT_ERROR, EXIT_USAGE, build_parser, main
from rimclf.cli._options import benchmark_methods, set_log_levels, training_verbosity
from rimclf.errors import DataWarning
from tests.model_builders import tiny_cohort

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


class _Terminal(io.StringIO):
    """A text stream that says it is a terminal (tqdm bars are shown only on one)."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 12)
    rim = rng.normal(size=(len(y), 5)).astype(np.float32)
    rim[y == 1] += 1.0
    return SliceDict(rim=rim), y


def _fit(arrays, verbose: int, epochs: int = 3) -> QSMRimNetClassifier:
    X, y = arrays
    net = QSMRimNetClassifier(module__branches="tabular", module__width=4, max_epochs=epochs, batch_size=8,
                              random_state=0, verbose=verbose)
    return net.fit(X, y)


@pytest.mark.parametrize("verbose", [0, 1, 2])
def test_a_training_prints_one_summary_line_and_the_epoch_table_only_from_verbose_2(
    arrays, verbose: int, capsys: pytest.CaptureFixture
) -> None:
    _fit(arrays, verbose)
    lines = capsys.readouterr().out.splitlines()
    summaries = [line for line in lines if line.startswith("trained ")]
    table = [line for line in lines if "train_loss" in line]
    assert len(summaries) == (verbose >= 1)
    assert len(table) == (verbose >= 2)
    assert len(lines) == {0: 0, 1: 1, 2: 2 + 3 + 1}[verbose]  # header, rule, 3 epochs; summary
    if verbose:
        assert summaries[0].startswith("trained 3 epochs on 24 lesions in ") and ": train loss " in summaries[0]


def test_the_progress_bar_goes_to_a_terminal_stderr_only(arrays, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    _fit(arrays, verbose=1)
    assert "training:" in terminal.getvalue() and "/3 [" in terminal.getvalue()  # tqdm refreshes at most every 0.1 s
    shown = terminal.getvalue()
    _fit(arrays, verbose=0)  # -q: no bar
    assert terminal.getvalue() == shown
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal: no bar
    _fit(arrays, verbose=1)
    assert sys.stderr.getvalue() == ""
    assert "\r" not in capsys.readouterr().out


def test_a_fitted_net_with_the_summary_callback_still_pickles_and_clones(arrays) -> None:
    import pickle

    from sklearn.base import clone

    net = _fit(arrays, verbose=1, epochs=1)
    assert pickle.loads(pickle.dumps(net)).predict_proba(arrays[0]).shape == (24, 2)
    assert clone(net).verbose == 1


@pytest.mark.parametrize(("options", "expected"), [([], 1), (["-q"], 0), (["-v"], 2)])
def test_training_verbosity_of_the_options(options: list, expected: int) -> None:
    args = build_parser().parse_args(["train", "COHORT", "-o", "M", *options])
    assert training_verbosity(args) == expected


@pytest.fixture
def saved_log_levels():
    names = ("", "rimclf", "bids", "radiomics", "matplotlib")
    saved = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.parametrize(("flag", "rimclf_level"), [(None, logging.INFO), ("-v", logging.DEBUG), ("-q", logging.WARNING)])
def test_verbose_sets_only_rimclf_s_own_logger(flag, rimclf_level: int, saved_log_levels) -> None:
    args = argparse.Namespace(verbose=flag == "-v", quiet=flag == "-q")
    logging.getLogger().setLevel(logging.WARNING)
    set_log_levels(args)
    assert logging.getLogger("rimclf").level == rimclf_level
    assert logging.getLogger("rimclf.threshold").getEffectiveLevel() == rimclf_level
    for other in ("bids", "radiomics", "matplotlib"):
        assert logging.getLogger(other).getEffectiveLevel() == logging.WARNING


@pytest.mark.slow
def test_predict_outputs_show_progress_over_scans(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rimclf import load_cohort
    from rimclf.outputs import write_prediction_outputs

    table = load_cohort(tiny_cohort())
    probability = np.linspace(0.0, 1.0, len(table))
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    write_prediction_outputs(tmp_path / "quiet", table, probability, 0.5, montage=False)
    assert terminal.getvalue() == ""
    write_prediction_outputs(tmp_path / "shown", table, probability, 0.5, montage=False, progress=True)
    assert "maps and montages:" in terminal.getvalue() and "/6 [" in terminal.getvalue()


# ----------------------------------------------------------------------------------- cv --epochs
@pytest.mark.parametrize("command", ["cv", "benchmark"])
def test_epochs_reaches_every_network_of_the_ablation(command: str) -> None:
    """The ablation's networks fixed max_epochs in their configuration, so ``--epochs`` changed nothing."""
    from rimclf.benchmark import ABLATION_METHODS, BenchmarkSettings

    settings = BenchmarkSettings.quick(max_epochs=2)
    parse = build_parser().parse_args
    assert benchmark_methods(parse([command, "C", "-o", "O"])) is None
    table = benchmark_methods(parse([command, "C", "-o", "O", "--epochs", "2"]))
    assert list(table) == list(ABLATION_METHODS)
    networks = [method for method in table.values() if method.model == "qsmrimnet"]
    assert networks and all(method.config(settings).max_epochs == 2 for method in networks)
    assert ABLATION_METHODS["default"].config(settings).max_epochs != 2  # the table itself is unchanged
    for name, method in table.items():  # only max_epochs differs
        changed = {key for key, value in method.network if dict(ABLATION_METHODS[name].network)[key] != value}
        assert changed <= {"max_epochs"}


@pytest.mark.slow
def test_cv_epochs_changes_the_results_and_quiet_still_prints_them(tmp_path: Path, capsys) -> None:
    base = ["cv", str(tiny_cohort()), "--n-splits", "2", "--n-repeats", "1", "--n-boot", "10", "-q",
            "--threshold-cv", "0", "--cache", str(tmp_path / "cache")]  # 2-subject training parts: no inner CV
    assert main([*base, "-o", str(tmp_path / "a"), "--epochs", "1"]) == 0
    one = capsys.readouterr().out
    assert main([*base, "-o", str(tmp_path / "b"), "--epochs", "4"]) == 0
    four = capsys.readouterr().out
    for printed in (one, four):  # -q: no progress, but the results table
        assert printed.splitlines()[0].startswith("method") and "pAUC" in printed and "default" in printed
        assert "features extracted" not in printed
    import pandas as pd

    a = pd.read_csv(tmp_path / "a" / "predictions.tsv", sep="\t")
    b = pd.read_csv(tmp_path / "b" / "predictions.tsv", sep="\t")
    assert not np.allclose(a["probability"], b["probability"])


# ---------------------------------------------------------------------------------- exit status
def test_exit_status_2_for_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exited:  # argparse
        main(["train", str(tiny_cohort()), "-o", str(tmp_path / "m"), "--epochs", "many"])
    assert exited.value.code == EXIT_USAGE == 2
    capsys.readouterr()
    # a ParameterError from an option's value
    assert main(["train", str(tiny_cohort()), "-o", str(tmp_path / "m"), "--epochs", "-3", "-q"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("rimclf train: error: ") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()


def test_exit_status_1_for_data_model_and_output_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["extract", str(tmp_path / "no-such-cohort"), "-o", str(tmp_path / "f"), "-q"]) == EXIT_ERROR == 1
    assert "no such cohort" in capsys.readouterr().err  # CohortError
    assert main(["predict", str(tmp_path / "no-such-model"), str(tiny_cohort()), "-o", str(tmp_path / "p")]) == 1
    assert "no such model directory" in capsys.readouterr().err  # ModelFileError
    (tmp_path / "exists").mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        code = main(["phantom", str(tmp_path / "exists"), "-n", "1", "-q"])
    assert code == 1 and "use --force" in capsys.readouterr().err  # OutputExistsError
