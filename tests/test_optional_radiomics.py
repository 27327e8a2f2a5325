"""pyradiomics is the optional extra ``rimclf[radiomics]`` (issue #22, point 7).

Its absence is simulated in a subprocess by an import hook that refuses pyradiomics and the
packages only it brings (SimpleITK, PyWavelets, pykwalify): the default model trains and
predicts through the command line without importing any of them, and asking for radiomics
features gives a one-line :class:`~rimclf.errors.MissingDependencyError` with the install recipe
before anything is extracted or written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rimclf.errors import MissingDependencyError, RimclfError
from tests.model_builders import PHANTOM_OPTIONS

ROOT = Path(__file__).resolve().parent.parent

#: Runs ``rimclf`` once per argument list of ``argv[1]`` (JSON) as if pyradiomics were not
#: installed; prints each exit status and, at the end, the refused packages that got imported
#: anyway (JSON lines on standard output).
WITHOUT_PYRADIOMICS = """
import importlib.abc, json, sys

BLOCKED = {"radiomics", "SimpleITK", "pywt", "pykwalify"}


class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())
from rimclf.cli import main

for argv in json.loads(sys.argv[1]):
    code = main(argv)
    print("status", json.dumps(code), flush=True)
    print("---", file=sys.stderr, flush=True)
print("imported", json.dumps(sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED)))
"""


def _rimclf_without_pyradiomics(*commands: list[str], cwd: Path) -> tuple[list[int], list[str], list[str]]:
    """Exit status and standard error of each command, and the refused packages imported."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", WITHOUT_PYRADIOMICS, json.dumps(commands)], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    found = {"status": [], "imported": []}
    for line in result.stdout.splitlines():
        key, _, value = line.partition(" ")
        if key in found:
            found[key].append(json.loads(value))
    return found["status"], result.stderr.split("---\n"), found["imported"][0]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rimclf.phantom import make_phantom_cohort

    return make_phantom_cohort(tmp_path_factory.mktemp("noradiomics") / "cohort", n_subjects=6, random_state=1,
                               **PHANTOM_OPTIONS)


@pytest.mark.slow
def test_the_default_model_trains_and_predicts_without_pyradiomics(cohort: Path, tmp_path: Path) -> None:
    codes, errs, imported = _rimclf_without_pyradiomics(
        ["train", str(cohort), "-o", "model", "--epochs", "2", "--threshold-cv", "2", "-q"],
        ["predict", "model", str(cohort), "-o", "out", "-q"], cwd=tmp_path)
    assert codes == [0, 0], errs
    assert imported == [] and (tmp_path / "out" / "lesions.tsv").is_file()
    assert "ModelVersionWarning" not in errs[1]  # a missing optional pyradiomics is no version change


@pytest.mark.slow
def test_radiomics_without_pyradiomics_is_a_one_line_error_before_any_work(cohort: Path, tmp_path: Path) -> None:
    commands = [["extract", str(cohort), "-o", "OUT", "--feature-set", "radiomics", "--no-patches"],
                ["train", str(cohort), "-o", "OUT", "--feature-set", "rim+radiomics"],
                ["cv", str(cohort), "-o", "OUT", "--method", "rf_lesion", "--n-splits", "2", "--quick",
                 "--threshold-cv", "0", "-q"]]
    codes, errs, imported = _rimclf_without_pyradiomics(*commands, cwd=tmp_path)
    assert codes == [1, 1, 1], errs
    for command, err in zip(commands, errs):
        lines = [line for line in err.splitlines() if "error" in line]
        assert len(lines) == 1, err
        assert lines[0].startswith(f"rimclf {command[0]}: error: radiomics features need pyradiomics")
        assert "rimclf[radiomics]" in lines[0]
        assert "pip install numpy setuptools wheel && pip install --no-build-isolation pyradiomics==3.0.1" in lines[0]
        assert "lesion features" not in err  # nothing was extracted
    assert not (tmp_path / "OUT").exists() and imported == []


def test_the_library_raises_an_import_error_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process: a RadiomicsExtractor checks for pyradiomics with its other settings."""
    from rimclf.features import radiomics as module

    monkeypatch.setitem(sys.modules, "radiomics", None)  # ``import radiomics`` now raises ImportError
    with pytest.raises(MissingDependencyError, match=r"rimclf\[radiomics\]") as raised:
        module.RadiomicsExtractor().fit()
    assert isinstance(raised.value, ImportError) and isinstance(raised.value, RimclfError)
    assert "\n" not in str(raised.value)
    assert module.load_params("qsmrim")["setting"]  # the shipped settings are read without pyradiomics
