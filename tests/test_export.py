"""ONNX export of a model trained by this test session: parity with PyTorch, metadata, int8,
the ONNX Runtime predictor, the shipped model, and prediction without PyTorch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from digitrec import export
from digitrec.checkpoint import load_model
from digitrec.errors import ExportError, ModelError
from digitrec.nondigits import drawn
from digitrec.photos import drawing, render_digit, render_number
from digitrec.predict import OnnxBackend, Predictor, default_model
from digitrec.preprocess import normalise_digit


@pytest.fixture(scope="session")
def exported(trained_run, data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`digitrec export --int8 --json` of the session's model: the report (fp32 and int8 files)."""
    run, _ = trained_run
    out = tmp_path_factory.mktemp("onnx") / "digits.onnx"
    result = subprocess.run([sys.executable, "-m", "digitrec", "export", str(run), "--out", str(out),
                             "--int8", "--json", "--data-dir", str(data_root)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "parity check on 1000 test images" in result.stderr and "digits.int8.onnx" in result.stderr
    return json.loads(result.stdout)


def test_export_passes_parity_and_describes_itself(exported, trained_run, mnist_test):
    _, card = trained_run
    check = exported["parity"]
    assert check["passed"] and check["same_predictions"] and check["images"] == 1000
    assert check["max_abs_logit_diff"] <= 1e-4
    model = OnnxBackend.load(exported["fp32"]["path"])
    meta = model.metadata
    assert meta["labels"] == [str(d) for d in range(10)] and meta["architecture"] == "accurate"
    assert meta["card"] == card and meta["parity"] == check
    assert meta["digitrec_version"] == card["versions"]["digitrec"]
    # ONNX Runtime agrees with PyTorch on the whole test set (at most one image apart)
    assert abs(meta["test_accuracy"] - card["metrics"]["test_accuracy"]) <= 1e-4

    proto = onnx.load(exported["fp32"]["path"])
    assert proto.opset_import[0].version >= 17
    batch_dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.dim_value  # dynamic batch axis
    images = mnist_test[0][:7, None].astype(np.float32) / 255
    assert model.logits(images).shape == (7, 10)


def test_int8_copy_keeps_accuracy_and_is_smaller(exported):
    fp32, int8 = exported["fp32"], exported["int8"]
    assert Path(int8["path"]).name == "digits.int8.onnx"
    assert int8["test_accuracy"] >= fp32["test_accuracy"] - export.INT8_MAX_DROP
    assert int8["size_bytes"] < fp32["size_bytes"] / 2
    meta = OnnxBackend.load(int8["path"]).metadata
    assert meta["quantization"]["fp32_test_accuracy"] == fp32["test_accuracy"]
    assert meta["test_accuracy"] == int8["test_accuracy"]


def test_int8_that_loses_accuracy_is_not_written(exported, data_root, mnist_test, tmp_path):
    # against a (pretend) perfect fp32 model, the test model's int8 copy loses more than
    # INT8_MAX_DROP
    perfect = export.ExportedFile(tmp_path / "m.onnx", test_accuracy=1.0, size_bytes=0)
    fp32_bytes = Path(exported["fp32"]["path"]).read_bytes()
    with pytest.raises(ExportError, match="loses"):
        export._export_int8(fp32_bytes, {}, perfect, "mnist", mnist_test, data_root,
                            log=lambda *_: None)
    assert not (tmp_path / "m.int8.onnx").exists()


def test_parity_check_catches_a_different_model(exported, trained_run, mnist_test):
    run, _ = trained_run
    model, _ = load_model(run)
    with torch.no_grad():
        model[-1].bias.add_(0.01)  # the last layer's bias: every logit moves
    check = export.parity(model, OnnxBackend.load(exported["fp32"]["path"]), mnist_test[0][:50])
    assert not check["passed"] and check["max_abs_logit_diff"] > 1e-3


def test_onnx_predictor_matches_torch_predictor(exported, trained_run, mnist_test):
    run, _ = trained_run
    images, _ = mnist_test
    rng = np.random.default_rng(3)
    pictures = [render_digit(images[i], rng) for i in range(20)]
    by_onnx = Predictor(exported["fp32"]["path"]).predict(pictures)
    by_torch = Predictor(run).predict(pictures)
    assert [a.digit for a in by_onnx] == [b.digit for b in by_torch]
    np.testing.assert_allclose([a.probabilities for a in by_onnx],
                               [b.probabilities for b in by_torch], atol=1e-5)


def test_unusable_onnx_files_are_clear_errors(tmp_path: Path):
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07 not a model")
    with pytest.raises(ModelError, match="cannot load ONNX model"):
        OnnxBackend.load(tmp_path / "junk.onnx")
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 3, 32, 32])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "g", [x],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)])
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)]),
              tmp_path / "rgb.onnx")
    with pytest.raises(ModelError, match="not a digit classifier"):
        OnnxBackend.load(tmp_path / "rgb.onnx")


def test_cli_export_reports_and_fails_cleanly(tmp_path: Path):
    result = subprocess.run([sys.executable, "-m", "digitrec", "export", str(tmp_path / "nope")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "not a finished digitrec run" in result.stderr
    assert "Traceback" not in result.stderr


def test_shipped_model_reaches_the_accuracy_in_its_card(mnist_test):
    model = OnnxBackend.load(default_model())
    card, meta = model.card, model.metadata
    assert card["model"] == "accurate" and card["command"].startswith("digitrec train")
    assert len(card["data"]["sha256"]) == 4 and {"torch", "digitrec"} <= set(card["versions"])
    assert default_model().stat().st_size <= 2_000_000
    images, labels = mnist_test
    predictions = model.logits(images[:, None].astype(np.float32) / 255).argmax(1)
    assert abs(float((predictions == labels).mean()) - meta["test_accuracy"]) <= 1e-4


NO_TORCH = """
import sys

class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "safetensors", "onnx"):
            raise ImportError(f"{name} is blocked: this is the light-install test")

sys.meta_path.insert(0, NoTorch())
"""


def test_light_install_predicts_without_torch(exported, mnist_test, tmp_path: Path):
    """Where importing torch fails, `digitrec predict` runs on ONNX Runtime alone."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(NO_TORCH)
    images, labels = mnist_test
    render_digit(images[0], np.random.default_rng(4)).save(tmp_path / "digit.png")
    env = {"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"}

    def light(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                              timeout=120)

    assert "blocked" in light("-c", "import torch").stderr
    for model in (["--model", exported["fp32"]["path"]], ["--model", exported["int8"]["path"]], []):
        result = light("-m", "digitrec", "predict", str(tmp_path / "digit.png"), "--json", *model)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["digit"] == labels[0]
    number = render_number([images[i] for i in range(3)], np.random.default_rng(4))
    number.save(tmp_path / "number.png")
    result = light("-m", "digitrec", "predict", str(tmp_path / "number.png"), "--multi", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["number"] == "".join(map(str, labels[:3]))
    star = normalise_digit(drawn("star", np.random.default_rng(3)))
    drawing(star).save(tmp_path / "star.png")
    result = light("-m", "digitrec", "predict", str(tmp_path / "star.png"), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "not_digit"
    train = light("-m", "digitrec", "train")
    assert train.returncode == 1 and "pip install 'digitrec[train]'" in train.stderr
