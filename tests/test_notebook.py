"""Main.ipynb: committed without outputs, and runs top to bottom in a fresh kernel (quick mode),
leaving trained runs, a report and an ONNX file that do what the notebook says."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from digitrec.checkpoint import load_model
from digitrec.predict import Predictor

NOTEBOOK = Path(__file__).resolve().parent.parent / "Main.ipynb"
EXAMPLES = NOTEBOOK.parent / "docs" / "examples"

# run in the notebook's kernel after its own cells: what its variables hold, as JSON
FACTS = """
import json as _json
print(_json.dumps({
    "quick": QUICK,
    "runs": {"baseline": str(baseline_dir), "fast": str(fast_dir),
             "accurate": str(accurate_dir)},
    "report": str(report_dir),
    "report_models": [r["model"] for r in full["runs"]],
    "stages_match": bool(np.array_equal(digit, pp.preprocess(EXAMPLES / "digit.jpg"))),
    "digit": answer.digit, "torch_digit": torch_answer.digit, "onnx_digit": onnx_answer.digit,
    "predictor_metadata": predictor.backend.metadata,
    "parity": exported["parity"]["passed"], "onnx": str(exported["fp32"]["path"]),
    "number": number.number,
}))
"""


def test_notebook_is_committed_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(cell.outputs == [] and cell.execution_count is None for cell in code), \
        "clear the outputs before committing (Jupyter: Edit > Clear Outputs of All Cells)"


def test_notebook_runs_top_to_bottom(data_root: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch):
    runs = tmp_path / "runs"
    for name, value in {"DIGITREC_QUICK": "1", "DIGITREC_DATA": str(data_root),
                        "DIGITREC_RUNS": str(runs), "DIGITREC_EXAMPLES": str(EXAMPLES)}.items():
        monkeypatch.setenv(name, value)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(FACTS))
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    facts = json.loads(notebook.cells[-1].outputs[-1]["text"])
    assert facts["quick"]

    for name, run in facts["runs"].items():  # each a complete run directory under RUNS
        run = Path(run)
        assert run.parent == runs and run.name.startswith(f"{name}-")
        card = json.loads((run / "card.json").read_text())
        assert card["model"] == name and card["metrics"]["test_accuracy"] >= 0.9, name
        assert len((run / "metrics.jsonl").read_text().splitlines()) == card["config"]["epochs"]
        assert load_model(run)[0] is not None
    report = Path(facts["report"])
    assert report.parent == runs and facts["report_models"] == ["baseline", "fast", "accurate"]
    assert (report / "report.html").is_file() and (report / "report.json").is_file()

    assert facts["stages_match"]  # the steps shown, one by one, are what preprocess does
    # section 5 reads with the shipped model; section 6's export agrees with its own run
    shipped = Predictor()
    assert facts["predictor_metadata"] == shipped.backend.metadata
    assert facts["digit"] == shipped.predict([EXAMPLES / "digit.jpg"])[0].digit == 6
    assert facts["parity"] and facts["onnx_digit"] == facts["torch_digit"] == 6
    exported = Predictor(facts["onnx"]).predict([EXAMPLES / "digit.jpg"])[0]
    assert exported.digit == facts["torch_digit"]
    assert facts["number"] == Predictor().predict_number(EXAMPLES / "number.jpg").number
    images = sum("image/png" in output.get("data", {}) for output in outputs)
    assert images >= 8  # samples, balance, three runs' curves, confusion matrix, mistakes, stages
