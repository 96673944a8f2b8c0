"""Inference speed: ONNX Runtime fp32 and int8 against eager PyTorch, measured side by side.

For each backend: images/s at batch sizes 1, 64 and 1024 and single-image latency (p50, p99),
on real MNIST test images. Backends take turns in several rounds and each keeps its best round,
so a noisy machine hurts them alike. The ONNX files are RUN_DIR/model.onnx and
RUN_DIR/model.int8.onnx, exported first when missing. Last line: one JSON object with the
ratios against eager PyTorch, and the arithmetic rate (GFLOP/s) each backend reaches at batch
64, to hold against the CPU's peak.

    python benchmarks/inference.py RUN_DIR
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from common import machine, run_benchmark

from digitrec.checkpoint import load_model, read_card
from digitrec.data import load_split
from digitrec.export import export_run, int8_path
from digitrec.predict import OnnxBackend

BATCHES = (1, 64, 1024)
TARGET_ONNX_SPEEDUP_AT_64 = 4.0

Backend = Callable[[np.ndarray], np.ndarray]


def torch_backend(run_dir: Path) -> Backend:
    """Eager PyTorch in inference mode, the model called directly on the batch (the fastest
    eager path: `Predictor` adds only its chunking into batches of 1000)."""
    model, _ = load_model(run_dir)

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()
    return run


def multiply_adds(model: torch.nn.Module) -> int:
    """Multiply-adds in one forward pass on one 28x28 image (convolutions and linear layers)."""
    total = 0

    def count(module: torch.nn.Module, _: tuple, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, torch.nn.Conv2d):
            per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            total += out.numel() * per_output
        elif isinstance(module, torch.nn.Linear):
            total += out.numel() * module.in_features
    hooks = [m.register_forward_hook(count) for m in model.modules()]
    with torch.inference_mode():
        model(torch.zeros(1, 1, 28, 28))
    for hook in hooks:
        hook.remove()
    return total


def throughput(run: Backend, x: np.ndarray, seconds: float) -> float:
    """Images per second, calling `run` on the batch `x` for about `seconds`."""
    run(x)  # warm-up
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        run(x)
        calls += 1
    return calls * len(x) / elapsed


def latencies(run: Backend, images: np.ndarray) -> np.ndarray:
    """Milliseconds per single-image call, one call per image."""
    run(images[:1])
    times = []
    for i in range(len(images)):
        start = time.perf_counter()
        run(images[i:i + 1])
        times.append(time.perf_counter() - start)
    return np.array(times) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--seconds", type=float, default=2.0, help="per backend, batch and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-images", type=int, default=300, help="per backend and round")
    parser.add_argument("--data-dir")
    args = parser.parse_args()

    onnx_path = args.run_dir / "model.onnx"
    if not onnx_path.exists() or not int8_path(onnx_path).exists():
        export_run(args.run_dir, onnx_path, int8=True, data_dir=args.data_dir)
    backends = {"torch_eager": torch_backend(args.run_dir),
                "onnx_fp32": OnnxBackend.load(onnx_path).logits,
                "onnx_int8": OnnxBackend.load(int8_path(onnx_path)).logits}
    dataset = read_card(args.run_dir)["data"]["dataset"]
    images = load_split(dataset, "test", args.data_dir)[0][:, None].astype(np.float32) / 255

    gflop_per_image = 2 * multiply_adds(load_model(args.run_dir)[0]) / 1e9
    speed = {name: {b: 0.0 for b in BATCHES} for name in backends}
    times: dict[str, list[np.ndarray]] = {name: [] for name in backends}
    for _ in range(args.rounds):
        for name, run in backends.items():
            for batch in BATCHES:
                speed[name][batch] = max(speed[name][batch],
                                         throughput(run, images[:batch], args.seconds))
            times[name].append(latencies(run, images[:args.latency_images]))

    result: dict = {"run_dir": str(args.run_dir)}
    print(f"{'backend':<12} " + " ".join(f"{f'batch {b} img/s':>17}" for b in BATCHES)
          + f" {'p50 ms':>8} {'p99 ms':>8}")
    for name in backends:
        p50, p99 = np.percentile(np.concatenate(times[name]), [50, 99])
        result[name] = {**{f"batch_{b}_img_s": round(speed[name][b], 1) for b in BATCHES},
                        "latency_p50_ms": round(float(p50), 3), "latency_p99_ms": round(float(p99), 3)}
        print(f"{name:<12} " + " ".join(f"{speed[name][b]:>17.0f}" for b in BATCHES)
              + f" {p50:>8.3f} {p99:>8.3f}")
    for name in ("onnx_fp32", "onnx_int8"):
        for batch in BATCHES:
            result[f"{name}_speedup_batch_{batch}"] = round(
                speed[name][batch] / speed["torch_eager"][batch], 2)
    result["target_onnx_fp32_speedup_batch_64"] = TARGET_ONNX_SPEEDUP_AT_64
    rates = {name: speed[name][64] * gflop_per_image for name in backends}
    result.update({"gflop_per_image": round(gflop_per_image, 4),
                   **{f"{name}_gflop_s_batch_64": round(r, 1) for name, r in rates.items()}})
    print(f"at batch 64 ({gflop_per_image:.4f} GFLOP per image): "
          f"{', '.join(f'{name} {r:.0f}' for name, r in rates.items())} GFLOP/s; a "
          f"{TARGET_ONNX_SPEEDUP_AT_64:g}x fp32 speed-up would need "
          f"{TARGET_ONNX_SPEEDUP_AT_64 * rates['torch_eager']:.0f}")
    result.update(machine())
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    run_benchmark(main)
