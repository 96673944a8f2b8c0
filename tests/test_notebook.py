"""Main.ipynb: committed without outputs, and runs top to bottom in a fresh kernel (quick mode)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent.parent / "Main.ipynb"


def test_notebook_is_committed_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(cell.outputs == [] and cell.execution_count is None for cell in code), \
        "clear the outputs before committing (Jupyter: Edit > Clear Outputs of All Cells)"


def test_notebook_runs_top_to_bottom(data_root: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch):
    for name, value in {"DIGITREC_QUICK": "1", "DIGITREC_DATA": str(data_root),
                        "DIGITREC_RUNS": str(tmp_path / "runs")}.items():
        monkeypatch.setenv(name, value)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    text = "\n".join(output.get("text", "") for cell in notebook.cells
                     for output in cell.get("outputs", []))
    assert "quick mode" in text and "accurate test accuracy" in text
    assert "'passed': True" in text and "ONNX Runtime: digit" in text
    assert "the same as pp.preprocess gives the model: True" in text
    images = sum("image/png" in output.get("data", {}) for cell in notebook.cells
                 for output in cell.get("outputs", []))
    assert images >= 8  # samples, balance, three runs' curves, confusion matrix, mistakes, stages...
