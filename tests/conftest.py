"""Fixtures shared by the test modules, and the skipping of tests that need the optional pyradiomics."""

import importlib.util

import pytest
import torch

#: Whether the optional extra rimclf[radiomics] (pyradiomics) is installed. ``make install`` installs
#: it; a clean ``pip install .`` does not.
def _have(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # an import hook that refuses it
        return False


HAVE_PYRADIOMICS = _have("radiomics")
NEEDS_PYRADIOMICS = (
    "needs pyradiomics, the optional extra rimclf[radiomics] (make install, or: pip install numpy setuptools "
    "wheel && pip install --no-build-isolation pyradiomics==3.0.1)"
)
#: the start of rimclf's MissingDependencyError message for pyradiomics
_MISSING_PYRADIOMICS = "radiomics features need pyradiomics"
_SKIPPED_FAILURES: set[str] = set()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Without pyradiomics, a test that failed only because it asked for radiomics features (the
    MissingDependencyError raised in the test or a fixture, or printed by the command line) is
    reported as skipped, with :data:`NEEDS_PYRADIOMICS` as the reason. Modules that import
    pyradiomics themselves skip with ``pytest.importorskip("radiomics", reason=NEEDS_PYRADIOMICS)``."""
    outcome = yield
    report = outcome.get_result()
    if HAVE_PYRADIOMICS or not report.failed:
        return
    text = report.longreprtext + "".join(content for _, content in report.sections)
    # a module or session fixture's failure is reported again (without its output) for each test using it
    if _MISSING_PYRADIOMICS in text or report.longreprtext in _SKIPPED_FAILURES:
        _SKIPPED_FAILURES.add(report.longreprtext)
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: {NEEDS_PYRADIOMICS}")


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for a module's tests (restored after): on a shared 2-core machine,
    OpenMP threads that wait for each other make tiny networks many times slower. A module asks
    for it with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)
