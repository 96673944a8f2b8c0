"""Shared fixtures: the real dataset files, an isolated decoded-array cache, a local mirror."""

from __future__ import annotations

import gzip
import os
import shutil
import threading
from dataclasses import replace
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("DIGITREC_DATA") or REPO.parent / "shared" / "data")
MNIST_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Keep decoded arrays out of the user's cache, and downloads off the internet."""
    cache = tmp_path_factory.mktemp("decoded")
    os.environ["DIGITREC_CACHE"] = str(cache)
    os.environ["DIGITREC_MIRRORS"] = "http://127.0.0.1:9/"  # discard port: nothing listens
    return cache


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The directory holding the real MNIST files (`$DIGITREC_DATA` or ../shared/data)."""
    if not all((SHARED_DATA / "mnist" / f"{name}.gz").is_file() for name in MNIST_FILES):
        pytest.skip(f"real MNIST files not found under {SHARED_DATA}/mnist (set DIGITREC_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def trained_run(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A model trained by this test session: the `accurate` recipe cut to one epoch of 20,000
    images, with strokes of random width as different pens draw them (about 98% on MNIST
    test: the tests that need the shipped model's accuracy use the shipped model)."""
    from digitrec.config import recipe
    from digitrec.train import train

    run = tmp_path_factory.mktemp("model") / "accurate-1"
    config = replace(recipe("accurate"), epochs=1, train_size=20000, thickness=1.0)
    card = train(config, run, data_root, log=lambda *_: None)
    return run, card


VERIFIER_FLAGS = ["--count", "12000", "--others", "6000", "--photos", "600", "--epochs", "3"]


@pytest.fixture(scope="session")
def verifier_training(data_root: Path, tmp_path_factory: pytest.TempPathFactory
                      ) -> tuple[Path, dict]:
    """A verifier trained by this test session through `digitrec train-verifier`, as the
    shipped one was but on MNIST alone and on fewer examples, so that it trains in CI time:
    the file and the report the command printed."""
    import json
    import subprocess
    import sys

    path = tmp_path_factory.mktemp("verifier") / "verifier.onnx"
    result = subprocess.run(
        [sys.executable, "-m", "digitrec", "train-verifier", "--out", str(path),
         *VERIFIER_FLAGS, "--json", "--data-dir", str(data_root)],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return path, json.loads(result.stdout)


@pytest.fixture(scope="session")
def trained_verifier(verifier_training: tuple[Path, dict]) -> Path:
    """The verifier file of `verifier_training`."""
    return verifier_training[0]


@pytest.fixture(scope="session")
def mnist_test(data_root: Path) -> tuple[np.ndarray, np.ndarray]:
    """The MNIST test split."""
    from digitrec.data import load_split

    return load_split("mnist", "test", data_root)


@pytest.fixture
def mnist_copy(data_root: Path, tmp_path: Path) -> Path:
    """A writable data root holding a copy of the MNIST files (`<root>/mnist/*.gz`)."""
    (tmp_path / "mnist").mkdir()
    for name in MNIST_FILES:
        shutil.copy(data_root / "mnist" / f"{name}.gz", tmp_path / "mnist")
    return tmp_path


class MirrorHandler(SimpleHTTPRequestHandler):
    """Serves the real files under /good/, and broken variants under other prefixes:
    /missing/ (404), /corrupt/ (valid gzip, altered contents), /truncated/ (connection cut)."""

    source: Path

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        prefix, _, name = self.path.strip("/").partition("/")
        path = self.source / name
        if prefix not in ("good", "corrupt", "truncated") or not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        if prefix == "corrupt":
            raw = bytearray(gzip.decompress(body))
            raw[-1] ^= 0xFF
            body = gzip.compress(bytes(raw))
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if prefix == "truncated" else body)


@pytest.fixture
def mirror(data_root: Path):
    """Base URL of a loopback HTTP server that plays a dataset mirror (see MirrorHandler)."""
    handler = type("Handler", (MirrorHandler,), {"source": data_root / "mnist"})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
