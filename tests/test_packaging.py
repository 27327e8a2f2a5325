"""The package as users get it: a wheel built from the project's files, installed outside the
checkout, carries its data files, needs pyradiomics only as the extra ``rimclf[radiomics]``, and
runs ``rimclf phantom`` and a small ``rimclf extract``. (``.ci/wheel-demo`` goes further in CI:
the wheel with its dependencies from the registry in a fresh environment, and ``rimclf demo``.)

The wheel is built from a copy of the packaged files (nothing is written into the checkout),
without build isolation or downloads (setuptools and wheel come from the test environment),
and installed with ``pip install --no-deps --target``; its dependencies come from the test
environment. The commands run from a folder outside the checkout with only the install folder
on ``PYTHONPATH`` (and ``-P``, so that the working folder is not on ``sys.path`` either), through
the ``rimclf`` console script pip wrote, and the test checks that the installed copy is the one
imported.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow


ROOT = Path(__file__).resolve().parent.parent
#: what a wheel is built from (the layout of the sdist)
SOURCES = ("setup.py", "pyproject.toml", "README.md", "LICENSE", "rimclf")


def _run(command: list[str], cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, command))} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The wheel, and everything its build printed."""
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, source / name)
    dist = tmp_path_factory.mktemp("dist")
    result = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                   "--disable-pip-version-check", "-v", ".", "-w", str(dist)], cwd=source)
    wheels = list(dist.glob("rimclf-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0], result.stdout + result.stderr


def test_the_build_prints_no_packaging_warning(wheel: tuple[Path, str]) -> None:
    _, log = wheel
    for text in ("absent from the `packages` configuration", "Package would be ignored",
                 "SetuptoolsDeprecationWarning", "BuildBackendWarning"):
        assert text not in log


def test_the_wheel_carries_data_files_and_license(wheel: tuple[Path, str]) -> None:
    path, _ = wheel
    names = zipfile.ZipFile(path).namelist()
    assert "rimclf/data/qsmrim_params.yaml" in names
    assert {"rimclf/data/surface_map_encoder.pt", "rimclf/data/surface_map_encoder.json"} <= set(names)  # the pretrained encoder
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert not [name for name in names if name.startswith("tests/") or "__pycache__" in name]


def test_pyradiomics_is_an_extra_of_the_wheel(wheel: tuple[Path, str]) -> None:
    """A clean ``pip install`` needs no compiler: pyradiomics (no binary wheel) only with ``rimclf[radiomics]``,
    which ``dev`` (``make install``) includes."""
    path, _ = wheel
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        requires = [line.split(":", 1)[1].strip() for line in archive.read(name).decode().splitlines()
                    if line.startswith("Requires-Dist:")]
    plain = [req for req in requires if ";" not in req]
    assert not [req for req in plain if req.lower().startswith(("pyradiomics", "simpleitk", "pywavelets"))], plain
    assert any(req.lower().startswith("pyyaml") for req in plain)  # the shipped radiomics settings are YAML
    radiomics = [req for req in requires if "pyradiomics" in req]
    assert any('extra == "radiomics"' in req for req in radiomics) and any('extra == "dev"' in req for req in radiomics)


def test_the_installed_wheel_runs_outside_the_checkout(wheel: tuple[Path, str], tmp_path: Path) -> None:
    path, _ = wheel
    target = tmp_path / "site"
    _run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--disable-pip-version-check",
          "--target", str(target), str(path)], cwd=tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    env["PYTHONPATH"] = str(target)
    python = [sys.executable, "-P"]
    found = _run([*python, "-c", "import rimclf; print(rimclf.__file__)"], cwd=work, env=env).stdout.strip()
    assert Path(found).is_relative_to(target), f"imported {found}, not the installed wheel"

    rimclf = [str(target / "bin" / "rimclf")]  # the console script, as pip installed it
    printed = _run([*rimclf, "phantom", "cohort", "-n", "2", "--shape", "40", "48", "28", "--lesions", "4", "6",
                    "--rim-prevalence", "0.3", "-q"], cwd=work, env=env).stdout
    assert "wrote a phantom cohort" in printed
    _run([*rimclf, "extract", "cohort", "-o", "features", "--feature-set", "rim", "--no-patches", "-q"],
         cwd=work, env=env)
    rim = pd.read_csv(work / "features" / "rim.tsv", sep="\t")
    assert len(rim) >= 8 and "rim_core_median" in rim
    # the radiomics settings shipped as package data are found in the installed copy
    _run([*python, "-c", "from rimclf.features.radiomics import load_params; assert load_params('qsmrim')"],
         cwd=work, env=env)
