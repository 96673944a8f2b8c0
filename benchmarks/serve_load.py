"""Load test of `digitrec serve` on loopback: concurrent clients posting PNG drawings.

Starts the server (one worker process per core by default) twice, with micro-batching on
(--max-batch 64) and off (--max-batch 1), and for each runs N keep-alive HTTP clients (asyncio,
one process) for --seconds or --requests, whichever ends first. The PNGs are MNIST test digits
drawn as the web page sends them (280x280, black ink on white). The server runs with
`--log-level warning` (no line per request). Prints req/s, latency p50/p95/p99 and the error
count; last line: JSON.

    python benchmarks/serve_load.py --clients 32 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from common import run_benchmark
from PIL import Image

from digitrec.data import load_split
from digitrec.serve.config import default_workers

TARGETS = {"p99_ms": 50.0, "req_per_s": 500.0, "errors": 0}


def drawings(count: int, data_dir) -> list[bytes]:
    """MNIST test digits as 280x280 PNG drawings (black on white)."""
    images = load_split("mnist", "test", data_dir)[0][:count]
    out = []
    for digit in images:
        buffer = io.BytesIO()
        Image.fromarray(255 - digit).resize((280, 280), Image.BILINEAR).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def request_bytes(body: bytes, port: int) -> bytes:
    head = (f"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: image/png\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 response; return its status."""
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def load(port: int, bodies: list[bytes], clients: int, seconds: float, requests: int) -> dict:
    """Run the clients; return throughput, latency percentiles and errors."""
    payloads = [request_bytes(b, port) for b in bodies]
    latencies: list[float] = []
    errors = 0
    sent = 0
    start = time.perf_counter()
    stop_at = start + seconds

    async def client(k: int) -> None:
        nonlocal errors, sent
        reader = writer = None
        while time.perf_counter() < stop_at and sent < requests:
            sent += 1
            payload = payloads[(k + sent) % len(payloads)]
            began = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(payload)
                status = await read_response(reader)
            except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
                errors += 1
                writer = None
                continue
            latencies.append(time.perf_counter() - began)
            errors += status != 200
        if writer is not None:
            writer.close()

    await asyncio.gather(*(client(k) for k in range(clients)))
    elapsed = time.perf_counter() - start
    p50, p95, p99 = np.percentile(np.array(latencies) * 1000, [50, 95, 99]) if latencies else (0, 0, 0)
    return {"requests": len(latencies), "seconds": round(elapsed, 2),
            "req_per_s": round(len(latencies) / elapsed, 1), "p50_ms": round(float(p50), 2),
            "p95_ms": round(float(p95), 2), "p99_ms": round(float(p99), 2), "errors": errors}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, flags: list[str], log: Path) -> subprocess.Popen:
    """`digitrec serve --port PORT FLAGS...`, once it answers /readyz and, with several
    workers, once it says all of them are ready (/readyz answers as soon as one listens)."""
    with log.open("w") as out:
        server = subprocess.Popen([sys.executable, "-m", "digitrec", "serve", "--port", str(port),
                                   *flags], stdout=out, stderr=subprocess.STDOUT)
    workers = int(flags[flags.index("--workers") + 1]) if "--workers" in flags else default_workers()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1):
                if workers == 1 or "workers ready" in log.read_text():
                    return server
        except OSError:
            pass
        time.sleep(0.2)
    server.kill()
    raise SystemExit(f"the server did not become ready within 60 s (its log: {log})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0, help="per configuration")
    parser.add_argument("--requests", type=int, default=20000, help="at most, per configuration")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="server worker processes (default: one per CPU core)")
    parser.add_argument("--model", help="model to serve (default: the shipped one)")
    parser.add_argument("--data-dir")
    args = parser.parse_args()

    bodies = drawings(200, args.data_dir)
    logs = Path(tempfile.mkdtemp(prefix="serve_load."))
    result: dict = {"clients": args.clients, "workers": args.workers}
    for name, max_batch in (("batching_on", 64), ("batching_off", 1)):
        port = free_port()
        flags = ["--max-batch", str(max_batch), "--workers", str(args.workers),
                 "--log-level", "warning", *(["--model", args.model] if args.model else [])]
        server = start_server(port, flags, logs / f"{name}.log")
        try:
            asyncio.run(load(port, bodies[:20], args.clients, 1.0, 500))  # warm-up
            result[name] = asyncio.run(load(port, bodies, args.clients, args.seconds, args.requests))
        finally:
            server.terminate()
            server.wait(timeout=60)
        r = result[name]
        print(f"micro-batching {name.split('_')[1]:>3}: {r['req_per_s']:.0f} req/s, "
              f"p50 {r['p50_ms']:.1f} ms, p95 {r['p95_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
              f"{r['errors']} errors ({r['requests']} requests)", flush=True)
    on = result["batching_on"]
    result["batching_speedup"] = round(on["req_per_s"] / max(result["batching_off"]["req_per_s"], 1e-9), 2)
    result["missed_targets"] = [k for k, target in TARGETS.items()
                                if (on[k] < target if k == "req_per_s" else on[k] > target)]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    run_benchmark(main)
