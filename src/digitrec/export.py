"""ONNX export: a run directory becomes one self-describing `.onnx` file, checked against PyTorch.

The file maps float32 images [N, 1, 28, 28] in [0, 1] (white digit on black) to logits [N, classes],
with a dynamic batch axis. Its metadata carries what a predictor needs and what a reader wants to
know: class labels, architecture, the training card, the file's own test accuracy, the digitrec
version, and the result of the parity check run right after export (ONNX Runtime against PyTorch).
`int8=True` adds a statically quantized copy, calibrated on training images, that is kept only if
it loses at most 0.1 point of test accuracy.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .card import METADATA_VERSION
from .checkpoint import load_model
from .data import get_dataset, load_split
from .errors import ExportError
from .evaluate import predict_logits
from .files import write_bytes
from .predict import INPUT, OUTPUT, OnnxBackend

OPSET = 18
PARITY_IMAGES = 1000
PARITY_TOLERANCE = 1e-4  # max |logit difference| between ONNX Runtime and PyTorch
CALIBRATION_IMAGES = 2000
CALIBRATION_SEED = 0
INT8_MAX_DROP = 0.001  # an int8 model may lose at most 0.1 point of test accuracy


@dataclass
class ExportedFile:
    """One written model file and what was measured on it."""

    path: Path
    test_accuracy: float
    size_bytes: int


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's progress prints, warnings and log lines (errors still raise)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def to_onnx(model: torch.nn.Module, example: torch.Tensor | None = None,
            names: tuple[str, str] = (INPUT, OUTPUT)) -> bytes:
    """Serialized ONNX graph of a model (eval mode, fp32, dynamic batch axis); `example` is an
    input of the shape it takes (default: a batch of 28x28 digits)."""
    model = model.float().eval()
    example = torch.rand(2, 1, 28, 28) if example is None else example
    with _quiet_exporter():
        program = torch.onnx.export(model, (example,), dynamo=True, opset_version=OPSET,
                                    input_names=[names[0]], output_names=[names[1]],
                                    dynamic_shapes=({0: torch.export.Dim("batch")},))
    return program.model_proto.SerializeToString()


def with_metadata(model_bytes: bytes, metadata: dict[str, object]) -> bytes:
    """The model with `metadata` stored as ONNX metadata properties (values as JSON)."""
    import onnx

    proto = onnx.load_from_string(model_bytes)
    onnx.helper.set_model_props(proto, {k: json.dumps(v) for k, v in metadata.items()})
    return proto.SerializeToString()


def parity(model: torch.nn.Module, onnx_model: OnnxBackend, images: np.ndarray) -> dict:
    """Compare ONNX Runtime's logits with PyTorch's on the same images."""
    x = images[:, None].astype(np.float32) / 255
    expected = predict_logits(model, torch.from_numpy(x)).numpy()
    actual = onnx_model.logits(x)
    max_diff = float(np.abs(actual - expected).max())
    same = bool((actual.argmax(1) == expected.argmax(1)).all())
    return {"images": len(images), "max_abs_logit_diff": max_diff, "tolerance": PARITY_TOLERANCE,
            "same_predictions": same, "passed": same and max_diff <= PARITY_TOLERANCE}


def accuracy(onnx_model: OnnxBackend, images: np.ndarray, labels: np.ndarray) -> float:
    """Test accuracy of an ONNX model."""
    logits = onnx_model.logits(images[:, None].astype(np.float32) / 255)
    return float((logits.argmax(1) == labels).mean())


def quantize_int8(model_bytes: bytes, calibration: np.ndarray) -> bytes:
    """Static int8 quantization (QDQ, per-channel weights) calibrated on uint8 images. The
    weights use 7 of their 8 bits (`reduce_range`): x86 CPUs without VNNI instructions
    multiply uint8 by int8 with 16-bit sums that saturate on full-range weights, which costs
    accuracy on exactly those machines."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            x = calibration[:, None].astype(np.float32) / 255
            self.batches = iter({INPUT: x[i:i + 100]} for i in range(0, len(x), 100))

        def get_next(self) -> dict | None:
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        source, prepared, quantized = (Path(tmp) / n for n in ("in.onnx", "pre.onnx", "q.onnx"))
        source.write_bytes(model_bytes)
        with _quiet_exporter():
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
            quantize_static(str(prepared), str(quantized), Batches(), quant_format=QuantFormat.QDQ,
                            per_channel=True, reduce_range=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        return quantized.read_bytes()


def _write(path: Path, model_bytes: bytes, metadata: dict, test_accuracy: float) -> ExportedFile:
    """Store the measured test accuracy in the metadata and write the file atomically."""
    data = with_metadata(model_bytes, {**metadata, "test_accuracy": test_accuracy})
    write_bytes(path, data)
    return ExportedFile(path, test_accuracy, len(data))


def int8_path(path: Path) -> Path:
    """Where the int8 copy of `model.onnx` goes: `model.int8.onnx`."""
    return path.with_name(f"{path.stem}.int8{path.suffix}")


def export_run(run_dir: str | Path, out: str | Path | None = None, int8: bool = False,
               data_dir: str | Path | None = None, log=print) -> dict:
    """Export a run to ONNX (default: RUN_DIR/model.onnx), check it, optionally add int8.

    Returns a report: parity check, fp32 (and int8) path, size and test accuracy.
    """
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / "model.onnx"
    model, card = load_model(run_dir)
    dataset = card["data"]["dataset"]
    test = load_split(dataset, "test", data_dir)
    model_bytes = to_onnx(model)

    runtime = OnnxBackend.from_bytes(model_bytes)
    check = parity(model, runtime, test[0][:PARITY_IMAGES])
    log(f"parity check on {check['images']} test images: max |logit difference| "
        f"{check['max_abs_logit_diff']:.2e} (tolerance {PARITY_TOLERANCE:.0e}), predictions "
        f"{'identical' if check['same_predictions'] else 'DIFFERENT'}")
    if not check["passed"]:
        raise ExportError("ONNX Runtime does not reproduce PyTorch's results; nothing written")
    metadata = {"metadata_version": METADATA_VERSION, "digitrec_version": __version__,
                "labels": list(get_dataset(dataset).classes),
                "architecture": card["model"], "model_kwargs": card["model_kwargs"],
                "input": "float32 [N, 1, 28, 28] in [0, 1], white digit on black",
                "card": card, "parity": check}
    fp32 = _write(out, model_bytes, metadata, accuracy(runtime, *test))
    log(f"wrote {fp32.path} ({fp32.size_bytes / 1e6:.2f} MB), test accuracy {fp32.test_accuracy:.2%}")
    report = {"parity": check, "fp32": _describe(fp32)}
    if int8:
        report["int8"] = _export_int8(model_bytes, metadata, fp32, dataset, test, data_dir, log)
    return report


def _export_int8(model_bytes: bytes, metadata: dict, fp32: ExportedFile, dataset: str,
                 test: tuple[np.ndarray, np.ndarray], data_dir, log) -> dict:
    """Quantize, and write the int8 file only if it keeps the accuracy."""
    train_images = load_split(dataset, "train", data_dir)[0]
    pick = np.random.default_rng(CALIBRATION_SEED).choice(len(train_images), CALIBRATION_IMAGES,
                                                          replace=False)
    quantized = quantize_int8(model_bytes, train_images[np.sort(pick)])
    measured = accuracy(OnnxBackend.from_bytes(quantized), *test)
    drop = fp32.test_accuracy - measured
    if drop > INT8_MAX_DROP:
        raise ExportError(f"int8 model loses {drop:.2%} of test accuracy ({measured:.2%} vs "
                          f"{fp32.test_accuracy:.2%}; at most {INT8_MAX_DROP:.1%} allowed): "
                          f"not written (the fp32 model is)")
    quantization = {"scheme": "static QDQ, per-channel int8 weights, uint8 activations",
                    "calibration_images": CALIBRATION_IMAGES,
                    "fp32_test_accuracy": fp32.test_accuracy}
    written = _write(int8_path(fp32.path), quantized, {**metadata, "quantization": quantization},
                     measured)
    log(f"wrote {written.path} ({written.size_bytes / 1e6:.2f} MB), test accuracy "
        f"{measured:.2%} ({-drop * 100:+.2f} points from fp32)")
    return _describe(written)


def _describe(exported: ExportedFile) -> dict:
    return {"path": str(exported.path), "size_bytes": exported.size_bytes,
            "test_accuracy": exported.test_accuracy}
