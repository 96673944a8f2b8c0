"""Load test of plain `digitrec serve` with wrk, a compiled load generator (Debian's `wrk`).

A Python client takes CPU from the server it measures; wrk needs little. This runs wrk with
--clients keep-alive connections on loopback, each posting one PNG drawing (an MNIST test digit
as the web page sends it) to /v1/predict for --seconds, against:

- `defaults`: `digitrec serve` exactly as a user starts it (no options);
- `reference`: `digitrec serve --workers 1 --access-log --log-level info`, one process that
  logs every request, measured in the same run so that the ratio says what the defaults give
  on this machine.

Prints req/s, latency p50/p90/p99 and errors of each; last line: JSON with the targets missed.

    python benchmarks/serve_wrk.py --clients 32 --seconds 10
"""

from __future__ import annotations

import argparse
import io
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from common import run_benchmark
from PIL import Image
from serve_load import free_port, start_server

from digitrec.data import load_split
from digitrec.errors import DigitrecError

TARGETS = {"req_per_s": 1000.0, "p99_ms": 50.0, "errors": 0}
CONFIGURATIONS = {"defaults": [], "reference": ["--workers", "1", "--access-log",
                                                "--log-level", "info"]}
POST_SCRIPT = """wrk.method = "POST"
wrk.headers["Content-Type"] = "image/png"
local f = io.open("{body}", "rb")
wrk.body = f:read("*all")
f:close()
"""
UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def drawing(data_dir) -> bytes:
    """An MNIST test digit as a 280x280 PNG drawing (black on white)."""
    digit = load_split("mnist", "test", data_dir)[0][0]
    buffer = io.BytesIO()
    Image.fromarray(255 - digit).resize((280, 280), Image.BILINEAR).save(buffer, format="PNG")
    return buffer.getvalue()


def parse_wrk(text: str) -> dict:
    """Requests/s, latency percentiles (ms) and errors from wrk's --latency output."""
    def latency(percent: str) -> float:
        value, unit = re.search(rf"^\s*{percent}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M).groups()
        return round(float(value) * UNITS_MS[unit], 2)

    requests = int(re.search(r"^\s*(\d+) requests in", text, re.M).group(1))
    socket_errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return {"requests": requests,
            "req_per_s": round(float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)), 1),
            "p50_ms": latency("50"), "p90_ms": latency("90"), "p99_ms": latency("99"),
            "errors": socket_errors + (int(non_2xx.group(1)) if non_2xx else 0)}


def run_wrk(port: int, script: Path, clients: int, seconds: float, threads: int) -> dict:
    command = ["wrk", f"--threads={threads}", f"--connections={clients}",
               f"--duration={seconds:g}s", "--latency", "--script", str(script),
               f"http://127.0.0.1:{port}/v1/predict"]
    return parse_wrk(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


def measure(flags: list[str], script: Path, args: argparse.Namespace, log: Path) -> dict:
    port = free_port()
    server = start_server(port, flags, log)
    try:
        run_wrk(port, script, args.clients, 2, args.threads)  # warm-up
        return run_wrk(port, script, args.clients, args.seconds, args.threads)
    finally:
        server.terminate()
        server.wait(timeout=60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32, help="keep-alive connections")
    parser.add_argument("--seconds", type=float, default=10.0, help="per configuration")
    parser.add_argument("--threads", type=int, default=1, help="wrk's threads")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise DigitrecError("wrk is not installed (Debian: apt-get install wrk)")

    work = Path(tempfile.mkdtemp(prefix="serve_wrk."))
    (work / "digit.png").write_bytes(drawing(args.data_dir))
    script = work / "post.lua"
    script.write_text(POST_SCRIPT.format(body=work / "digit.png"))
    result: dict = {"clients": args.clients, "seconds": args.seconds, "wrk_threads": args.threads}
    for name, flags in CONFIGURATIONS.items():
        r = result[name] = measure(flags, script, args, work / f"{name}.log")
        print(f"{name:>9} ({' '.join(['digitrec serve', *flags])}): {r['req_per_s']:.0f} req/s, "
              f"p50 {r['p50_ms']:.1f} ms, p90 {r['p90_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
              f"{r['errors']} errors ({r['requests']} requests)", flush=True)
    defaults = result["defaults"]
    result["req_per_s_ratio"] = round(defaults["req_per_s"] / result["reference"]["req_per_s"], 2)
    result["missed_targets"] = [k for k, target in TARGETS.items()
                                if (defaults[k] < target if k == "req_per_s"
                                    else defaults[k] > target)]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    run_benchmark(main)
