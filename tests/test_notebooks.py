"""The notebooks under notebooks/ run from top to bottom with tiny settings, in this interpreter."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (pip install 'rimclf[notebooks]')")
nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (pip install 'rimclf[notebooks]')")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
#: Environment of every executed notebook: tiny settings, no GUI backend, no progress bars.
QUICK_ENV = {"RIMCLF_NOTEBOOK_QUICK": "1", "MPLBACKEND": "module://matplotlib_inline.backend_inline"}


def execute_notebook(path: Path, *, env: dict[str, str] | None = None, timeout: int = 600, cwd: Path | None = None):
    """Execute a notebook with nbclient and return it, its outputs filled in.

    The kernel is the ``python3`` kernelspec, which jupyter_client starts with this very
    interpreter (``sys.executable``, i.e. the venv's python) whatever ``python`` is on the PATH;
    :func:`test_notebook_kernel_runs_this_interpreter` checks that. ``env`` is added to this
    process's environment for the kernel (e.g. ``RIMCLF_NOTEBOOK_QUICK=1``). A cell that raises
    fails with :class:`nbclient.exceptions.CellExecutionError` naming the cell and the error.
    """
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=timeout,
        resources={"metadata": {"path": str(cwd or path.parent)}},
    )
    client.execute(env={**os.environ, **QUICK_ENV, **(env or {})})
    return notebook


def cell_text(notebook, index: int) -> str:
    """All text output (streams and plain-text results) of one code cell."""
    parts = []
    for output in notebook.cells[index].get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output.get("text", ""))
        elif "data" in output:
            parts.append(output["data"].get("text/plain", ""))
    return "".join(parts)


def images(notebook) -> int:
    """Number of PNG images among all outputs."""
    return sum(
        "image/png" in output.get("data", {})
        for cell in notebook.cells if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )


def test_notebook_kernel_runs_this_interpreter(tmp_path):
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("import os, sys\nprint(sys.executable)\nprint(os.environ['RIMCLF_NOTEBOOK_QUICK'])")]
    )
    path = tmp_path / "probe.ipynb"
    nbformat.write(notebook, path)
    executable, quick = cell_text(execute_notebook(path, timeout=120), 0).split()
    assert Path(executable).absolute() == Path(sys.executable).absolute()
    assert quick == "1"


def test_tuning_notebook(tmp_path):
    notebook = execute_notebook(NOTEBOOKS / "tuning.ipynb", cwd=tmp_path)
    text = "\n".join(cell_text(notebook, i) for i, cell in enumerate(notebook.cells) if cell.cell_type == "code")
    assert "quick settings" in text
    assert "trial  state" in text  # the live table of trials
    assert "best trial #" in text
    assert "4 trials in the study" in text  # 3, then 1 more on resume
    assert images(notebook) >= 3  # history, importances, intermediate values
    assert list(tmp_path.iterdir()) == []  # the notebook cleans up after itself


def test_imbalance_benchmark_notebook(tmp_path):
    notebook = execute_notebook(NOTEBOOKS / "imbalance_benchmark.ipynb", cwd=tmp_path)
    text = "\n".join(cell_text(notebook, i) for i, cell in enumerate(notebook.cells) if cell.cell_type == "code")
    assert "imbalance benchmark: 6 subjects" in text
    for method in ("qsmrimnet_deepsmote", "qsmrimnet_smote", "rf_lesion_smote", "rf_lesion_shell_smote"):
        assert method in text  # a line per method as it finishes
    markdown = [
        output["data"]["text/markdown"]
        for cell in notebook.cells if cell.cell_type == "code"
        for output in cell.get("outputs", []) if "text/markdown" in output.get("data", {})
    ]
    assert any("| QSMRim-Net, DeepSMOTE |" in table and "Δ pAUC vs reference" in table for table in markdown)
    assert images(notebook) == 3  # ROC, PR, paired differences
    assert list(tmp_path.iterdir()) == []  # the notebook cleans up after itself
