"""The HTTP API with the shipped model: every input form, every error case, health, metrics,
micro-batching, and the server process (start, answer, graceful shutdown)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.client
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from digitrec.errors import ConfigError
from digitrec.photos import render_digit, render_number
from digitrec.serve import ServeConfig, create_app
from digitrec.serve.batcher import MicroBatcher


def png(image: Image.Image | np.ndarray) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(ServeConfig(max_body_bytes=2 * 2**20, max_batch_images=8))) as c:
        yield c


@pytest.fixture(scope="module")
def photos(mnist_test) -> tuple[list[bytes], list[int]]:
    images, labels = mnist_test
    rng = np.random.default_rng(5)
    return [png(render_digit(images[i], rng)) for i in range(6)], [int(v) for v in labels[:6]]


def test_every_input_form(client, photos, mnist_test):
    (photo, *_), (label, *_) = photos
    images, labels = mnist_test
    answers = [
        client.post("/v1/predict", content=photo, headers={"content-type": "image/png"}),
        client.post("/v1/predict", files={"file": ("digit.png", photo, "image/png")}),
        client.post("/v1/predict", json={"image": base64.b64encode(photo).decode()}),
        client.post("/v1/predict", json={"image": "data:image/png;base64,"
                                         + base64.b64encode(photo).decode()}),
    ]
    for response in answers:
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["digit"] == label and body["status"] == "ok"
        assert len(body["probabilities"]) == 10 and len(body["top_k"]) == 3
        assert body["confidence"] == max(body["probabilities"])
    pixels = client.post("/v1/predict?preprocessed=true", json={"pixels": (images[1] / 255).tolist()})
    assert pixels.json()["digit"] == labels[1]
    assert np.array(pixels.json()["preprocessed"]).shape == (28, 28)


def test_numbers_and_blank_images(client, mnist_test):
    images, labels = mnist_test
    number = render_number([images[i] for i in range(4)], np.random.default_rng(6))
    result = client.post("/v1/predict?multi=true", content=png(number),
                         headers={"content-type": "image/png"}).json()
    assert result["number"] == "".join(map(str, labels[:4])) and len(result["digits"]) == 4
    blank = client.post("/v1/predict", content=png(Image.new("L", (64, 64), 255)),
                        headers={"content-type": "image/png"}).json()
    assert blank["status"] == "blank" and blank["digit"] is None


def test_batch_forms_and_per_image_errors(client, photos, mnist_test):
    pictures, labels = photos
    files = [("files", (f"{k}.png", p, "image/png")) for k, p in enumerate(pictures)]
    by_form = client.post("/v1/predict/batch", files=files).json()["results"]
    assert [r["digit"] for r in by_form] == labels
    encoded = [base64.b64encode(p).decode() for p in pictures[:2]] + ["bm90IGFuIGltYWdl"]
    by_json = client.post("/v1/predict/batch", json={"images": encoded}).json()["results"]
    assert [r.get("digit") for r in by_json[:2]] == labels[:2]
    assert by_json[2]["error"]["status"] == 415
    images, digits = mnist_test
    by_pixels = client.post("/v1/predict/batch",
                            json={"pixels": [(images[i] / 255).tolist() for i in range(5)]})
    assert [r["digit"] for r in by_pixels.json()["results"]] == list(digits[:5])


def test_a_failing_image_fails_alone(photos, monkeypatch):
    """A bug in preprocessing one image is a logged 500 for that image, not for its batch."""
    from digitrec.serve import app as app_module

    pictures, labels = photos
    cursed = png(np.full((40, 40), 7, np.uint8))

    def preprocess(data: bytes):
        if data == cursed:
            raise RuntimeError("a bug")
        return app_module.preprocess.__wrapped__(data)
    preprocess.__wrapped__ = app_module.preprocess
    monkeypatch.setattr(app_module, "preprocess", preprocess)
    with TestClient(create_app(ServeConfig(max_wait_ms=50)), raise_server_exceptions=False) as fresh:
        files = [("files", (f"{k}.png", p, "image/png")) for k, p in enumerate([cursed, *pictures])]
        results = fresh.post("/v1/predict/batch", files=files).json()["results"]
        single = fresh.post("/v1/predict", content=cursed, headers={"content-type": "image/png"})
    assert results[0]["error"]["status"] == 500 and [r["digit"] for r in results[1:]] == labels
    assert single.status_code == 500 and "Traceback" not in single.text


def test_large_images_are_read_outside_the_batch(mnist_test, monkeypatch):
    from digitrec.serve.app import BATCH_PIXELS

    images, labels = mnist_test
    paths: list[str] = []

    def spy(name: str):
        original = getattr(MicroBatcher, name)

        async def call(self, item):
            paths.append(name)
            return await original(self, item)
        return call
    for name in ("submit", "run_alone"):
        monkeypatch.setattr(MicroBatcher, name, spy(name))
    side = int(BATCH_PIXELS**0.5) + 100
    large = png(Image.fromarray(255 - images[0]).resize((side, side), Image.BILINEAR))
    small = png(Image.fromarray(255 - images[1]).resize((280, 280), Image.BILINEAR))
    with TestClient(create_app()) as fresh:
        answers = [fresh.post("/v1/predict", content=image, headers={"content-type": "image/png"})
                   for image in (large, small)]
    assert [a.json()["digit"] for a in answers] == list(labels[:2])
    assert paths == ["run_alone", "submit"]  # the large one was read alone, never queued


def bomb() -> bytes:
    """A 20000 x 20000 PNG of a few KB: decoding it would take 400 MB."""
    return png(Image.new("1", (20000, 20000)))


BAD_REQUESTS = [
    # (what, request keyword arguments, status)
    ("random bytes", {"content": np.random.default_rng(0).bytes(3000),
                      "headers": {"content-type": "image/png"}}, 415),
    ("truncated PNG", {"content": png(np.full((64, 64), 128, np.uint8))[:60],
                       "headers": {"content-type": "image/png"}}, 422),
    ("PNG bomb", {"content": bomb(), "headers": {"content-type": "image/png"}}, 413),
    ("too large body", {"content": b"\0" * (2 * 2**20 + 1), "headers": {"content-type": "image/png"}}, 413),
    ("unsupported type", {"content": b"hello", "headers": {"content-type": "text/plain"}}, 415),
    ("no content type", {"content": b"hello"}, 415),
    ("invalid JSON", {"content": b"{nope", "headers": {"content-type": "application/json"}}, 422),
    ("JSON list", {"json": [1, 2, 3]}, 422),
    ("JSON without image", {"json": {"picture": "x"}}, 422),
    ("image not a string", {"json": {"image": 42}}, 422),
    ("image not base64", {"json": {"image": "%%%"}}, 422),
    ("pixels wrong shape", {"json": {"pixels": [[0.5] * 28] * 27}}, 422),
    ("pixels ragged", {"json": {"pixels": [[0.5] * 28] * 27 + [[0.5]]}}, 422),
    ("pixels out of range", {"json": {"pixels": [[255] * 28] * 28}}, 422),
    ("pixels not numbers", {"json": {"pixels": [["a"] * 28] * 28}}, 422),
    ("pixels NaN", {"content": b'{"pixels": [' + b",".join([b"[" + b",".join([b"NaN"] * 28) + b"]"] * 28)
                    + b"]}", "headers": {"content-type": "application/json"}}, 422),
    ("multipart without a file", {"files": {"note": (None, "hello")}}, 422),
    ("two images to /v1/predict", {"files": [("a", ("a.png", b"1", "image/png")),
                                             ("b", ("b.png", b"2", "image/png"))]}, 422),
]


@pytest.mark.parametrize("what, request_args, status", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_bad_input_is_a_json_4xx(client, what, request_args, status):
    response = client.post("/v1/predict", **request_args)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["status"] == status and error["message"] and "Traceback" not in response.text


def test_batch_limits_and_other_errors(client, photos):
    files = [("files", (f"{k}.png", photos[0][0], "image/png")) for k in range(9)]
    assert client.post("/v1/predict/batch", files=files).status_code == 413
    assert client.post("/v1/predict/batch", json={"images": "abc"}).status_code == 422
    raw = client.post("/v1/predict/batch", content=photos[0][0], headers={"content-type": "image/png"})
    assert raw.status_code == 415
    assert client.get("/v1/predict").json()["error"]["status"] == 405
    assert client.get("/nowhere").json()["error"]["status"] == 404


def test_health_readiness_model_and_metrics(client, photos):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    info = client.get("/v1/model").json()
    assert info["architecture"] == "accurate" and info["test_accuracy"] > 0.99
    client.post("/v1/predict", content=photos[0][0], headers={"content-type": "image/png"})
    client.post("/v1/predict", content=b"x", headers={"content-type": "text/plain"})
    text = client.get("/metrics").text
    assert 'digitrec_requests_total{route="/v1/predict",status="200"}' in text
    assert 'digitrec_requests_total{route="/v1/predict",status="415"}' in text
    values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
              if line and not line.startswith("#")}
    assert values['digitrec_request_seconds_count{route="/v1/predict"}'] >= 2
    assert values["digitrec_batch_size_count"] >= 1  # the 200 went through one model call
    assert values["digitrec_errors_total"] >= 1  # the 415
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text
    assert client.get("/static/app.js").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    forms = paths["/v1/predict"]["post"]["requestBody"]["content"]
    assert forms.keys() == {"image/*", "multipart/form-data", "application/json"}
    assert forms["application/json"]["schema"]["properties"].keys() == {"image", "pixels"}
    assert "images" in paths["/v1/predict/batch"]["post"]["requestBody"]["content"][
        "application/json"]["schema"]["properties"]


def test_concurrent_requests_share_model_calls():
    calls: list[int] = []

    def run_batch(batch: list[np.ndarray]) -> list[float]:
        calls.append(len(batch))
        time.sleep(0.02)
        return [float(d[0, 0]) for d in batch]

    async def main() -> list[float]:
        batcher = MicroBatcher(run_batch, max_batch=8, max_wait_ms=20)
        batcher.start()
        digits = [np.full((28, 28), k, np.float32) for k in range(20)]
        answers = await asyncio.gather(*(batcher.submit(d) for d in digits))
        await batcher.close()
        return answers

    assert asyncio.run(main()) == [float(k) for k in range(20)]  # each caller its own answer
    assert sum(calls) == 20 and max(calls) == 8 and len(calls) <= 4


def test_requests_already_waiting_form_one_batch_without_a_timer(monkeypatch):
    calls: list[int] = []
    timers: list[float] = []
    wait_for = asyncio.wait_for

    def timed(awaitable, timeout):
        timers.append(timeout)
        return wait_for(awaitable, timeout)
    monkeypatch.setattr(asyncio, "wait_for", timed)

    def run_batch(batch: list[int]) -> list[int]:
        calls.append(len(batch))
        return [k * 2 for k in batch]

    async def main() -> list[int]:
        batcher = MicroBatcher(run_batch, max_batch=4, max_wait_ms=10_000)
        batcher.start()
        answers = await asyncio.gather(*(batcher.submit(k) for k in range(4)))
        await batcher.close()
        return answers

    assert asyncio.run(main()) == [0, 2, 4, 6]
    # all four were queued before the batch was gathered: it is full at once, no timer set
    assert calls == [4] and timers == []


def test_a_failing_model_call_reaches_every_caller_of_the_batch():
    def run_batch(batch: list[np.ndarray]) -> list:
        raise RuntimeError("model exploded")

    async def main() -> list:
        batcher = MicroBatcher(run_batch, max_batch=4, max_wait_ms=10)
        batcher.start()
        results = await asyncio.gather(*(batcher.submit(np.zeros((28, 28))) for _ in range(3)),
                                       return_exceptions=True)
        await batcher.close()
        return results

    assert all(isinstance(r, RuntimeError) for r in asyncio.run(main()))


@pytest.mark.parametrize("max_batch", [1, 4])
def test_an_item_that_fails_fails_alone(max_batch: int):
    def run_batch(batch: list[int]) -> list:
        return [ValueError(f"bad {k}") if k % 2 else k for k in batch]

    async def main() -> list:
        batcher = MicroBatcher(run_batch, max_batch=max_batch, max_wait_ms=10)
        batcher.start()
        results = await asyncio.gather(*(batcher.submit(k) for k in range(4)),
                                       return_exceptions=True)
        await batcher.close()
        return results

    zero, one, two, three = asyncio.run(main())
    assert (zero, two) == (0, 2)
    assert str(one) == "bad 1" and str(three) == "bad 3" and isinstance(one, ValueError)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, headers={"content-type": "image/png"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status


def listening(port: int) -> bool:
    """Whether a server accepts connections on the port."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def wait_ready(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("the server did not become ready")


GATED_SERVER = """
import asyncio, sys
from pathlib import Path

from digitrec.cli import main
from digitrec.serve.app import Service

gate, answer = Path(sys.argv[1]), Service.answer


async def gated(self, item, options):
    # each request says it is in flight, then waits for the test to open the gate
    with open(gate / "in-flight", "a") as f:
        f.write("1\\n")
    while not (gate / "open").exists():
        await asyncio.sleep(0.01)
    return await answer(self, item, options)


Service.answer = gated
sys.exit(main(sys.argv[2:]))
"""


def test_server_answers_and_shuts_down_gracefully(mnist_test, tmp_path: Path):
    """Requests in flight when SIGTERM comes still get their answers."""
    images = mnist_test[0]
    number = png(render_number([images[i] for i in range(5)], np.random.default_rng(7)))
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", GATED_SERVER, str(tmp_path), "serve",
                               "--port", str(port), "--workers", "1"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_ready(port)
        statuses: list[int] = []

        def client() -> None:
            statuses.append(post(f"http://127.0.0.1:{port}/v1/predict?multi=true", number))

        clients = [threading.Thread(target=client) for _ in range(16)]
        for thread in clients:
            thread.start()
        in_flight = tmp_path / "in-flight"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (
                not in_flight.exists() or len(in_flight.read_text().split()) < 16):
            time.sleep(0.01)
        assert len(in_flight.read_text().split()) == 16  # all 16 wait at the gate
        server.send_signal(signal.SIGTERM)  # in-flight requests still get their answers
        while time.monotonic() < deadline and listening(port):  # shutting down now
            time.sleep(0.01)
        assert not listening(port)
        (tmp_path / "open").touch()
        for thread in clients:
            thread.join(timeout=30)
        # uvicorn re-raises the signal after its graceful shutdown: the status says SIGTERM
        assert server.wait(timeout=30) in (0, -signal.SIGTERM)
        assert statuses == [200] * 16
    finally:
        if server.poll() is None:
            server.kill()
    assert "Traceback" not in server.stdout.read()


def healthz_count(connection: http.client.HTTPConnection) -> int:
    """How many /healthz requests /metrics counts, scraped over this connection."""
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    return int(float(next(line.split()[-1] for line in text.splitlines()
                          if line.startswith('digitrec_requests_total{route="/healthz"'))))


@contextlib.contextmanager
def two_workers(port: int, *options: str) -> Iterator[subprocess.Popen]:
    """`digitrec serve --workers 2` on `port`, stopped with SIGTERM at the end (exit status 0)."""
    server = subprocess.Popen([sys.executable, "-m", "digitrec", "serve", "--port", str(port),
                               "--workers", "2", *options],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield server
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()


def test_workers_share_the_connections_and_add_up_their_metrics():
    port = free_port()
    with two_workers(port, "--log-level", "warning") as server:
        assert f"2 workers ready on http://127.0.0.1:{port}" in server.stdout.readline()
        connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(24)]
        for connection in connections:
            connection.request("GET", "/healthz")
            assert connection.getresponse().read() == b'{"status":"ok"}'
        held = [sum(c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port
                    for c in psutil.Process(pid).net_connections("tcp"))
                for pid in worker_pids(server.pid)]
        assert len(held) == 2 and min(held) > 0  # each worker answered some of them
        # a worker counts a request just after answering it: the last one may lag a moment
        deadline = time.monotonic() + 10
        while healthz_count(connections[0]) < 24 and time.monotonic() < deadline:
            time.sleep(0.05)
        # every scrape, whichever worker answers it, counts the requests of both
        assert [healthz_count(c) for c in connections] == [24] * 24
        for connection in connections:
            connection.close()
        second = subprocess.run([sys.executable, "-m", "digitrec", "serve", "--port", str(port),
                                 "--workers", "2"], capture_output=True, text=True, timeout=60)
        assert second.returncode == 1 and "cannot listen" in second.stderr  # never shares a port
    assert "Traceback" not in server.stdout.read()


def worker_pids(supervisor: int) -> list[int]:
    """The serving processes under a `--workers` supervisor (not multiprocessing's helpers)."""
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    return [int(pid) for pid in children
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]


def test_a_worker_that_dies_is_replaced():
    port = free_port()
    with two_workers(port, "--log-level", "warning") as server:
        assert "2 workers ready" in server.stdout.readline()
        first = worker_pids(server.pid)
        assert len(first) == 2
        os.kill(first[0], signal.SIGKILL)

        def replaced() -> bool:  # one look at the processes (two could see the kill half done)
            workers = worker_pids(server.pid)
            return len(workers) == 2 and first[0] not in workers

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not replaced():
            time.sleep(0.2)
        assert replaced()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as r:
            assert r.status == 200
    output = server.stdout.read()
    assert "a worker exited" in output and "starting a new one" in output
    assert "Traceback" not in output


def test_workers_on_a_taken_port_are_one_clear_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "digitrec", "serve", "--port", str(port),
                                 "--workers", "2"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_with_a_bad_model_is_one_clear_error(tmp_path: Path):
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    result = subprocess.run([sys.executable, "-m", "digitrec", "serve", "--model",
                             str(tmp_path / "junk.onnx")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "cannot load ONNX model" in result.stderr
    assert "Traceback" not in result.stderr


def test_pixels_are_one_digit_not_a_number(client):
    response = client.post("/v1/predict?multi=true", json={"pixels": [[0.0] * 28] * 28})
    assert response.status_code == 422 and "28x28 digit" in response.json()["error"]["message"]


def test_model_info_names_the_classes_of_a_run_directory(data_root: Path, tmp_path: Path):
    """A run directory (PyTorch backend) reports its own dataset's labels."""
    from digitrec.train import TrainConfig, train

    run = tmp_path / "fashion"
    train(TrainConfig(dataset="fashion-mnist", epochs=1, train_size=500, val_size=0), run,
          data_root, log=lambda *_: None)
    with TestClient(create_app(ServeConfig(model=str(run)))) as fashion:
        info = fashion.get("/v1/model").json()
    assert info["labels"][9] == "Ankle boot" and info["dataset"] == "fashion-mnist"
    assert 0 < info["test_accuracy"] < 1


def test_serve_flags_come_from_the_config():
    """`digitrec serve` without options is the default ServeConfig; bad values are one error."""
    from digitrec.cli import build_parser, main, serve_config

    def config(*flags: str) -> ServeConfig:
        return serve_config(build_parser().parse_args(["serve", *flags]))

    assert config() == ServeConfig()
    assert config("--max-body-mb", "2", "--timeout", "3", "--max-wait-ms", "0") == ServeConfig(
        max_body_bytes=2 * 2**20, timeout_s=3.0, max_wait_ms=0.0)
    with pytest.raises(ConfigError, match="max_body_bytes"):
        ServeConfig(max_body_bytes=0)
    assert main(["serve", "--max-batch", "0"]) == 1


def test_serve_defaults_use_every_core_and_log_no_line_per_request(monkeypatch):
    """Plain `digitrec serve` runs one worker per core it may use and no access log."""
    from digitrec.cli import build_parser, main
    from digitrec.serve import app as app_module

    args = build_parser().parse_args(["serve"])
    assert args.workers == len(os.sched_getaffinity(0)) and not args.access_log
    for name in (app_module.CONFIG_ENV, app_module.THREADS_ENV):  # what run() hands workers
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    calls = []  # (workers, uvicorn options) of each start, supervised or in this process
    monkeypatch.setattr(app_module, "supervise",
                        lambda host, port, workers, options: calls.append((workers, options)) or 0)
    monkeypatch.setattr("uvicorn.run", lambda app, **options: calls.append((1, options)))
    assert main(["serve", "--port", "0"]) == 0
    assert calls[0][0] == args.workers and calls[0][1]["access_log"] is False
    assert main(["serve", "--port", "0", "--access-log", "--workers", "3"]) == 0
    assert calls[1][0] == 3 and calls[1][1]["access_log"] is True
    assert os.environ[app_module.THREADS_ENV] == "1"  # three workers share the cores


def test_openapi_describes_the_error_body_the_app_answers(client):
    """The documented error responses are the app's own {"error": ...} body."""
    spec = client.get("/openapi.json").json()
    for path in ("/v1/predict", "/v1/predict/batch"):
        responses = spec["paths"][path]["post"]["responses"]
        assert {"413", "415", "422", "503"} <= set(responses)
        schema = responses["422"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorBody"}
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    refused = client.post("/v1/predict", json={"pixels": [[0]]})
    assert refused.status_code == 422 and set(refused.json()) == {"error"}
    assert set(refused.json()["error"]) == set(spec["components"]["schemas"]["ErrorDetail"]["properties"])
