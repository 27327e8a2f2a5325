"""The command line: instant --help listing every command; train and predict run in-process."""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import warnings
from contextlib import redirect_stderr
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rimclf.cli import COMMANDS, build_parser, format_warning, main
from rimclf.errors import DataWarning
from rimclf.outputs import read_lesions
from tests.model_builders import RADIOMICS_YAML, TRAIN_ARGS, tiny_cohort, tiny_model_dir, torch_threads

ROOT = Path(__file__).resolve().parent.parent


def test_help_lists_every_command(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for name in ("train", "predict", "demo", *COMMANDS):
        assert f"    {name}" in text


@pytest.mark.parametrize("command", ["train", "predict", "demo"])
def test_subcommand_help(command: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "--force" in capsys.readouterr().out


def test_help_imports_nothing_heavy() -> None:
    code = ("import sys; from rimclf.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'skorch', 'radiomics', 'sklearn', 'pandas') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


#: the smallest valid command line of every subcommand (positional arguments and required options)
MINIMAL_ARGS = {
    "phantom": ["OUT"], "extract": ["COHORT", "-o", "OUT"], "tune": ["COHORT", "-o", "OUT"],
    "train": ["COHORT", "-o", "OUT"], "predict": ["MODEL", "COHORT", "-o", "OUT"], "demo": [],
    "cv": ["COHORT", "-o", "OUT"], "benchmark": ["COHORT", "-o", "OUT"],
}


def test_every_command_is_in_the_parse_table() -> None:
    assert sorted(MINIMAL_ARGS) == sorted(COMMANDS)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_verbose_and_quiet_after_every_subcommand(command: str) -> None:
    parser = build_parser()
    args = [command, *MINIMAL_ARGS[command]]
    plain = parser.parse_args(args)
    assert (plain.verbose, plain.quiet) == (False, False)
    for flags in (["-v", "-q"], ["--verbose", "--quiet"]):
        parsed = parser.parse_args([*args, *flags])
        assert (parsed.verbose, parsed.quiet) == (True, True)
    before = parser.parse_args(["-v", "-q", *args])  # before the subcommand, as in earlier versions
    assert (before.verbose, before.quiet) == (True, True)
    with pytest.raises(SystemExit), redirect_stderr(io.StringIO()):  # no hidden aliases
        parser.parse_args([*args, "--no-progress"])


@pytest.mark.parametrize("command", list(COMMANDS))
def test_shared_options_have_one_name_and_one_default(command: str) -> None:
    """Every subcommand that reads a cohort takes --connectivity; every one with feature settings
    takes --radiomics-params; the defaults are those of rimclf.defaults everywhere."""
    from rimclf import defaults

    parsed = build_parser().parse_args([command, *MINIMAL_ARGS[command]])
    reads_a_cohort = "COHORT" in MINIMAL_ARGS[command]
    assert hasattr(parsed, "connectivity") == reads_a_cohort
    if reads_a_cohort:
        assert (parsed.connectivity, parsed.min_voxels, parsed.qsm_unit) == (
            defaults.CONNECTIVITY, defaults.MIN_VOXELS, defaults.QSM_UNIT)
    if hasattr(parsed, "region"):
        assert parsed.radiomics_params == defaults.DEFAULT_MODEL.radiomics_params
        assert (parsed.region, parsed.feature_set) == (defaults.DEFAULT_MODEL.region, "rim+rim_fit")
    with pytest.raises(SystemExit), redirect_stderr(io.StringIO()):  # extract's old --params is gone
        build_parser().parse_args([command, *MINIMAL_ARGS[command], "--params", "p.yaml"])


#: The runtime options each subcommand takes (point 4 of issue 20: one group, opted into).
RUNTIME_OPTIONS = {
    "phantom": {"--force", "--jobs", "--seed"},
    "extract": {"--out", "--force", "--jobs", "--cache"},
    "tune": {"--out", "--force", "--jobs", "--cache", "--seed"},
    "train": {"--out", "--force", "--jobs", "--cache", "--device", "--seed"},
    "predict": {"--out", "--force", "--jobs", "--cache", "--device"},
    "demo": {"--out", "--force", "--jobs", "--seed"},
    "cv": {"--out", "--force", "--jobs", "--cache", "--device", "--seed"},
    "benchmark": {"--out", "--force", "--jobs", "--cache", "--device", "--seed"},
}
#: Where a runtime option deliberately differs, and why: the default (and "default X" in the help).
RUNTIME_EXCEPTIONS = {
    ("demo", "--out"): "demo_output",  # `rimclf demo` runs without arguments
    ("demo", "--jobs"): -1,  # all cores, so that the demo takes minutes
}


def test_runtime_options_are_the_same_on_every_subcommand() -> None:
    """-o, --force, -j, --cache, --device, --seed: one spelling, default, type and help on every
    subcommand, declared once in the shared group (a subcommand only opts in or out)."""
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert sorted(RUNTIME_OPTIONS) == sorted(COMMANDS)
    forms: dict[str, set] = {}  # option -> {(spellings, type, required, help without its default clause)}
    defaults: dict[str, set] = {}
    for command, sub in subparsers.items():
        actions = {a.option_strings[-1]: a for a in sub._actions if a.option_strings}
        shared = {name for name in actions if name in {"--out", "--force", "--jobs", "--cache", "--device", "--seed"}}
        assert shared == RUNTIME_OPTIONS[command], command
        group = next(g for g in sub._action_groups if g.title.startswith("output and runtime"))
        for name in shared:
            action = actions[name]
            # declared through the shared group (phantom's --force beside its OUT argument aside)
            assert action in group._group_actions or (command, name) == ("phantom", "--force"), (command, name)
            text = action.help.replace(f" (default {action.default})", "")
            forms.setdefault(name, set()).add((tuple(action.option_strings), action.type, action.nargs, text))
            if (command, name) in RUNTIME_EXCEPTIONS:
                assert action.default == RUNTIME_EXCEPTIONS[command, name], (command, name)
                assert f"(default {action.default})" in action.help, (command, name)
            else:
                defaults.setdefault(name, set()).add(action.default)
    for name, variants in forms.items():
        assert len(variants) == 1, f"{name} differs between subcommands: {variants}"
    assert defaults == {"--out": {None}, "--force": {False}, "--jobs": {1}, "--cache": {None}, "--device": {"auto"},
                        "--seed": {0}}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_prints_no_doubled_percent_signs(command: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    assert "%%" not in text and "-q, --quiet" in text and "-v, --verbose" in text


@pytest.mark.slow
def test_warnings_show_one_line_without_source(tmp_path: Path) -> None:
    """The command line shows ``rimclf: warning: <Category>: <message>``, not the file, line
    number and source line of the code that warned; the library's formatting is untouched."""
    code = (
        "import sys, warnings\n"
        "import rimclf.cli.phantom as phantom\n"
        "from rimclf.cli import main\n"
        "from rimclf.errors import DataWarning\n"
        "def run(args):\n"
        "    warnings.warn('sub-01 lesion 3: too small to measure', DataWarning, stacklevel=2)\n"
        "    return 0\n"
        "phantom.run = run\n"
        "code = main(['phantom', 'OUT'])\n"
        "assert warnings.formatwarning.__module__ == 'warnings'\n"
        "sys.exit(code)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert result.stderr == "rimclf: warning: DataWarning: sub-01 lesion 3: too small to measure\n"


def test_format_warning() -> None:
    from rimclf.errors import DataWarning

    text = format_warning("lesion 3 is empty", DataWarning, "/x/featurizer.py", 204, "emit_notes(notes)")
    assert text == "rimclf: warning: DataWarning: lesion 3 is empty\n"


def test_loky_worker_timeout_note_is_silenced_and_other_warnings_are_not() -> None:
    """loky's "A worker stopped ..." after an idle timeout (harmless) is not shown by the command line."""
    import warnings

    from rimclf.cli import _cli_warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _cli_warnings():
            warnings.warn("A worker stopped while some jobs were given to the executor. This can be caused by a "
                          "too short worker timeout or by a memory leak.", UserWarning)
            warnings.warn("sub-01 lesion 3: too small to measure", UserWarning)
    assert [str(w.message) for w in caught] == ["sub-01 lesion 3: too small to measure"]


@pytest.mark.slow
def test_epoch_table_has_no_colour_codes_when_redirected(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """skorch colours the best values of its epoch table (shown with -v); output that is not a terminal gets none."""
    args = ["train", str(tiny_cohort()), "-o", str(tmp_path / "model"), "--feature-set", "rim", "--branches", "tabular",
            "--width", "4", "--epochs", "2", "--threshold-cv", "0", "--seed", "0", "-v"]
    with warnings.catch_warnings():  # a 2-epoch network may reach no threshold with specificity 0.9
        warnings.simplefilter("ignore", DataWarning)
        assert main(args) == 0
    captured = capsys.readouterr()
    assert "train_loss" in captured.out  # the epoch table is there...
    assert "\x1b[" not in captured.out and "\x1b[" not in captured.err  # ...without colour codes


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained with ``rimclf train`` on the tiny cohort."""
    folder = tmp_path_factory.mktemp("cli")
    params = folder / "radiomics.yaml"
    params.write_text(RADIOMICS_YAML)
    model = folder / "model"
    with warnings.catch_warnings(), torch_threads(1):  # the thread count of tiny_model(), which it is compared with
        warnings.simplefilter("ignore", DataWarning)  # a 2-epoch network may reach no threshold with specificity 0.9
        assert main(["train", str(tiny_cohort()), "-o", str(model), "--radiomics-params", str(params), *TRAIN_ARGS]) == 0
    return model


@pytest.mark.slow
def test_train_writes_a_model_and_refuses_to_overwrite(trained: Path, capsys: pytest.CaptureFixture) -> None:
    assert sorted(path.name for path in trained.iterdir()) == ["reliability.png", "settings.json", "weights.pt"]
    before = (trained / "weights.pt").read_bytes()
    assert main(["train", str(tiny_cohort()), "-o", str(trained), *TRAIN_ARGS]) == 1
    assert "already exists; use --force" in capsys.readouterr().err
    assert (trained / "weights.pt").read_bytes() == before


@pytest.mark.slow
def test_cli_model_predicts_like_the_library_model(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Same settings and seed through the CLI and the library give the same network."""
    assert main(["predict", str(trained), str(tiny_cohort()), "-o", str(tmp_path / "a"), "--no-montage", "-q"]) == 0
    assert "per-scan maps" in (said := capsys.readouterr().out) and "montages" not in said  # none were written
    assert main(["predict", str(tiny_model_dir()), str(tiny_cohort()), "-o", str(tmp_path / "b"), "--no-montage", "-q"]) == 0
    a = pd.read_csv(tmp_path / "a" / "lesions.tsv", sep="\t")
    b = pd.read_csv(tmp_path / "b" / "lesions.tsv", sep="\t")
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.slow
def test_predict_cohort_and_overwrite(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    assert main(["predict", str(trained), str(tiny_cohort()), "-o", str(out), "-q"]) == 0
    printed = capsys.readouterr().out
    assert "and montages (sub-*/figures/)" in printed
    lesions = read_lesions(out)
    assert f"{len(lesions)} lesions of 6 scans" in printed and str(out / "lesions.tsv") in printed
    assert sorted(path.name for path in out.iterdir()) == [
        "dataset_description.json", "lesions.json", "lesions.tsv", *[f"sub-{i:03d}" for i in range(1, 7)], "subjects.json",
        "subjects.png", "subjects.tsv",
    ]
    before = (out / "lesions.tsv").read_text()
    assert main(["predict", str(trained), str(tiny_cohort()), "-o", str(out), "-q"]) == 1
    assert "use --force" in capsys.readouterr().err
    assert (out / "lesions.tsv").read_text() == before
    assert main(["predict", str(trained), str(tiny_cohort()), "-o", str(out), "-q", "--force", "--no-montage"]) == 0
    assert not list(out.glob("sub-*/*.png"))


@pytest.mark.slow
def test_predict_one_subject_by_paths(trained: Path, tmp_path: Path, capsys) -> None:
    anat = tiny_cohort() / "sub-002" / "anat"
    mask = tiny_cohort() / "derivatives" / "phantom" / "sub-002" / "anat" / "sub-002_desc-lesions_dseg.nii.gz"
    out = tmp_path / "one"
    argv = ["predict", str(trained), "--qsm", str(anat / "sub-002_Chimap.nii.gz"), "--flair", str(anat / "sub-002_FLAIR.nii.gz"),
            "--mask", str(mask), "--participant", "P7", "-o", str(out), "-q"]
    assert main(argv) == 0
    single = read_lesions(out)
    assert set(single["participant_id"]) == {"sub-P7"}
    assert sorted(str(path.relative_to(out / "sub-P7")) for path in (out / "sub-P7").rglob("*.*")) == [
        "anat/sub-P7_desc-lesions_dseg.json", "anat/sub-P7_desc-lesions_dseg.nii.gz", "anat/sub-P7_desc-lesions_dseg.tsv",
        "anat/sub-P7_desc-rimprob_probseg.json", "anat/sub-P7_desc-rimprob_probseg.nii.gz",
        "figures/sub-P7_desc-rimprob_montage.png",
    ]
    assert main(["predict", str(trained), str(tiny_cohort()), "-o", str(tmp_path / "all"), "-q", "--no-montage"]) == 0
    everyone = read_lesions(tmp_path / "all")
    np.testing.assert_allclose(single["probability"], everyone.loc[everyone["participant_id"] == "sub-002", "probability"])
    assert main(argv) == 1  # no overwrite without --force for the single-subject form either
    bad_label = [*argv[:argv.index("--participant") + 1], "07_a", "-o", str(tmp_path / "bad"), "-q"]
    assert main(bad_label) == 1
    assert "--participant: participant_id '07_a' is not a valid label" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["COHORT", "--qsm", "q.nii.gz"], "not both"), (["--qsm", "q.nii.gz", "--flair", "f.nii.gz"], "missing: --mask"),
     ([], "give a COHORT")],
)
@pytest.mark.slow
def test_predict_argument_errors(trained: Path, tmp_path: Path, extra: list, message: str, capsys: pytest.CaptureFixture) -> None:
    extra = [str(tiny_cohort()) if item == "COHORT" else item for item in extra]
    assert main(["predict", str(trained), *extra, "-o", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_predict_with_a_broken_model(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "settings.json").write_text("{}")
    assert main(["predict", str(tmp_path / "model"), str(tiny_cohort()), "-o", str(tmp_path / "out")]) == 1
    assert "not a rimclf model" in capsys.readouterr().err


@pytest.mark.slow
def test_predict_refuses_a_participant_id_that_leads_outside_out(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The attack of issue #14: a manifest row ``01/../../../PWN`` wrote outside ``-o``."""
    anat = tiny_cohort() / "sub-002" / "anat"
    manifest = tmp_path / "in" / "manifest.tsv"
    manifest.parent.mkdir()
    manifest.write_text(
        "participant_id\tqsm\tflair\tmask\n"
        f"01/../../../PWN\t{anat}/sub-002_Chimap.nii.gz\t{anat}/sub-002_FLAIR.nii.gz\t{anat}/sub-002_desc-lesions_mask.nii.gz\n"
    )
    out = tmp_path / "a" / "b" / "out"
    before = sorted(tmp_path.rglob("*"))
    assert main(["predict", str(trained), str(manifest), "-o", str(out), "-q", "--no-montage"]) == 1
    err = capsys.readouterr().err
    assert f"{manifest}: line 2: participant_id '01/../../../PWN' is not a valid label" in err and len(err.splitlines()) == 1
    assert sorted(tmp_path.rglob("*")) == before and not list(tmp_path.parent.glob("**/PWN"))


@pytest.mark.slow
def test_predict_refuses_nan_probabilities(trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from rimclf import RimModel

    def broken(self, X, **params):
        probability = np.full((len(X), 2), 0.5)
        probability[1] = np.nan
        return probability

    monkeypatch.setattr(RimModel, "predict_proba", broken)
    assert main(["predict", str(trained), str(tiny_cohort()), "-o", str(tmp_path / "out"), "-q", "--no-montage"]) == 1
    assert "1 of" in capsys.readouterr().err and not (tmp_path / "out").exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["cv", "benchmark"])
def test_benchmark_device_and_jobs_options(command: str) -> None:
    """``rimclf cv/benchmark -j N --device cuda``: N folds fitted at once, sharing the device."""
    from rimclf.benchmark import BenchmarkSettings
    from rimclf.cli import build_parser
    from rimclf.cli._options import benchmark_options

    args = build_parser().parse_args([command, "COHORT", "-o", "OUT", "-j", "4", "--device", "cuda"])
    options = benchmark_options(args)
    assert options["n_jobs"] == 4 and options["settings"]["device"] == "cuda"
    default = benchmark_options(build_parser().parse_args([command, "COHORT", "-o", "OUT"]))
    assert default["settings"]["device"] == BenchmarkSettings().device == "auto"  # the same default everywhere


@pytest.mark.parametrize("command", ["cv", "benchmark"])
def test_cv_threshold_folds_of_a_training_part_name_the_option(command: str, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    """6 subjects in 3 folds leave 4 in a training part: a 5-fold threshold CV is refused before any
    fit, naming --threshold-cv and where the 4 subjects come from; nothing is written."""
    out = tmp_path / "out"
    args = [command, str(tiny_cohort()), "-o", str(out), "--n-splits", "3", "--n-repeats", "1", "--threshold-cv", "5", "-q"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert (f"rimclf {command}: error: --threshold-cv: threshold_cv=5 folds but the data hold only 4 subjects; use "
            "fewer folds (the threshold CV splits the training part of each of the 3 CV folds)") in err
    assert not out.exists()
