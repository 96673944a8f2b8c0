"""The HTTP service: the drawing page, the prediction API, health checks and metrics.

`create_app(ServeConfig(...))` builds the FastAPI app around one Predictor (ONNX Runtime by
default, so no PyTorch is needed). Single-digit requests go through a MicroBatcher; bad input
always gets a JSON error body with a 4xx status, never a traceback.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import gc
import io
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, ClassVar

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, BeforeValidator, Field, ValidationError, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from ..errors import ImageDecodeError, ImageTooLargeError, UnsupportedImageError
from ..predict import Prediction, Predictor, blank
from ..preprocess import SIZE, preprocess
from ..runtime import THREADS_ENV
from .batcher import MicroBatcher
from .config import ServeConfig, available_cores
from .metrics import Metrics
from .workers import supervise

STATIC = Path(__file__).parent / "static"
BATCH_PIXELS = 512 * 512  # larger images are preprocessed in a thread of their own
CONFIG_ENV = "DIGITREC_SERVE_CONFIG"  # how `--workers N` hands the configuration to each worker
log = logging.getLogger("digitrec.serve")


class ApiError(Exception):
    """A request that cannot be answered: becomes {"error": {"status", "message"}}."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class ErrorDetail(BaseModel):
    status: int
    message: str


class ErrorBody(BaseModel):
    """What every refused request is answered: the status again, and what was wrong."""

    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict] = {
    status: {"model": ErrorBody, "description": description} for status, description in (
        (413, "the body, or the number of images, is over the limit"),
        (415, "a content type other than JSON, an image or a multipart form"),
        (422, "not a readable image, or a body of the wrong shape"),
        (503, "no answer within the timeout"))}


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "message": message}}, status_code=status)


# ----------------------------------------------------------------------------- reading requests

Item = bytes | np.ndarray  # an encoded image file, or a 28x28 MNIST-style array


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds `limit` bytes."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise ApiError(413, f"request body of {int(length):,} bytes is over the {limit:,} allowed")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body is over the {limit:,} bytes allowed")
        chunks.append(chunk)
    return b"".join(chunks)


def _replay(body: bytes):
    """An ASGI `receive` that delivers an already-read body (to parse it as a form)."""
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}
    return receive


def decode_base64(value: object) -> bytes:
    """Image bytes from base64 text (a `data:` URL prefix is allowed)."""
    if not isinstance(value, str):
        raise PydanticCustomError("base64_type", "image must be a base64 string")
    if value.startswith("data:"):
        value = value.partition(",")[2]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise PydanticCustomError("base64", "image is not valid base64") from None


Base64Image = Annotated[bytes, BeforeValidator(decode_base64), WithJsonSchema({
    "type": "string", "contentEncoding": "base64",
    "description": "an image file in base64 (a data: URL prefix is allowed)"})]
PixelRow = Annotated[list[Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]],
                     Field(min_length=SIZE, max_length=SIZE)]
Pixels = Annotated[list[PixelRow], Field(
    min_length=SIZE, max_length=SIZE,
    description="28x28 numbers in [0, 1], white digit on black (as MNIST and the model see it)")]


class ImagesBody(BaseModel):
    """A JSON request body: its images in one of its fields (the first one given is read)."""

    expected: ClassVar[str]  # what the body must hold, for the error when it holds nothing

    @model_validator(mode="after")
    def _has_images(self) -> ImagesBody:
        if all(getattr(self, name) is None for name in type(self).model_fields):
            raise PydanticCustomError("no_image", "JSON body must be an object with {expected}",
                                      {"expected": self.expected})
        return self


class DigitBody(ImagesBody):
    """The JSON body of /v1/predict: one image file, or one digit's pixels."""

    expected: ClassVar[str] = '"image" (base64) or "pixels" (28x28 array)'
    image: Base64Image | None = None
    pixels: Pixels | None = None

    def items(self) -> list[Item]:
        return [self.image if self.image is not None else np.asarray(self.pixels, np.float32)]


class BatchBody(ImagesBody):
    """The JSON body of /v1/predict/batch: image files, or digits' pixels."""

    expected: ClassVar[str] = '"images" (list of base64) or "pixels" (list of 28x28 arrays)'
    images: list[Base64Image] | None = None
    pixels: list[Pixels] | None = None

    def items(self) -> list[Item]:
        if self.images is not None:
            return list(self.images)
        return [np.asarray(digit, np.float32) for digit in self.pixels or []]


def json_items(body: bytes, model: type[DigitBody | BatchBody]) -> list[Item]:
    """The items of a JSON body, as its model validates them (a 422 that says what is wrong)."""
    try:
        return model.model_validate_json(body).items()
    except ValidationError as e:
        raise RequestValidationError(e.errors(include_url=False)) from None


async def parse_items(request: Request, config: ServeConfig, many: bool) -> list[Item]:
    """The images in a request: a raw image body, multipart files, or JSON."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await read_body(request, config.max_body_bytes)
    if content_type.startswith("image/") and not many:
        items: list[Item] = [body]
    elif content_type == "multipart/form-data":
        try:
            # the body size is bounded already; the image count is checked below (413)
            form = await Request(request.scope, _replay(body)).form(max_files=10_000,
                                                                     max_fields=10_000)
        except Exception as e:  # starlette raises its own types for malformed forms
            raise ApiError(422, f"malformed multipart body ({e})") from None
        items = [await part.read() for _, part in form.multi_items() if isinstance(part, UploadFile)]
    elif content_type == "application/json":
        items = json_items(body, BatchBody if many else DigitBody)
    else:
        forms = "multipart/form-data or application/json" if many else \
            "an image (image/png, image/jpeg, ...), multipart/form-data with a file, or application/json"
        raise ApiError(415, f"unsupported content type {content_type or '(none)'!r}: send {forms}")
    if not items:
        raise ApiError(422, "no image in the request")
    if not many and len(items) > 1:
        raise ApiError(422, "send one image to /v1/predict; several go to /v1/predict/batch")
    if len(items) > config.max_batch_images:
        raise ApiError(413, f"{len(items)} images is more than the {config.max_batch_images} "
                            "allowed in one request")
    return items


def pixel_count(data: bytes) -> int:
    """Width x height of an encoded image, from its header alone (0 when the header cannot be
    read: preprocessing then reports why)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.width * image.height
    except Exception:  # Pillow raises many types for bad headers; the number is only a hint
        return 0


def image_error(error: ImageDecodeError) -> ApiError:
    """The answer to an image that cannot be read: 413 too large, 415 not an image, 422 corrupt."""
    if isinstance(error, ImageTooLargeError):
        status = 413
    else:
        status = 415 if isinstance(error, UnsupportedImageError) else 422
    return ApiError(status, str(error).replace("<bytes>: ", ""))


# ----------------------------------------------------------------------------- the service

@dataclass(frozen=True)
class Options:
    """How a request wants its images read (its query parameters)."""

    multi: bool = False  # a written number instead of one digit
    preprocessed: bool = False  # add the 28x28 image the model saw
    force_digit: bool = False  # a digit even for what does not look like one


class Service:
    """The predictor and batcher behind the routes."""

    def __init__(self, config: ServeConfig, metrics: Metrics) -> None:
        self.config = config
        self.predictor = Predictor(config.model, top_k=config.top_k, verifier=config.verifier,
                                   reader=config.reader)
        self.batcher = MicroBatcher(self.read_digits, config.max_batch, config.max_wait_ms,
                                    on_batch=metrics.batch)
        self.ready = False

    def read_digits(self, items: list[Item]) -> list[Prediction | Exception]:
        """Answers for single digits (the batcher's work, in its thread): every image is
        preprocessed, then one model call reads all the digits found. An image that fails
        gets its exception as its answer, and fails alone."""
        digits = [item if isinstance(item, np.ndarray) else self._preprocess(item) for item in items]
        found = iter(self.predictor.classify([d for d in digits if isinstance(d, np.ndarray)]))
        answers: list[Prediction | Exception] = []
        for digit in digits:
            if isinstance(digit, np.ndarray):
                answers.append(next(found))
            else:
                answers.append(blank() if digit is None else digit)
        return answers

    @staticmethod
    def _preprocess(image: bytes) -> np.ndarray | Exception | None:
        try:
            return preprocess(image)
        except ImageDecodeError as e:
            return image_error(e)
        except Exception as e:  # a bug, not the input's fault: a logged 500 for this image only
            return e

    async def answer(self, item: Item, options: Options) -> dict:
        """The prediction for one item, as a JSON-ready dict."""
        if options.multi:
            if isinstance(item, np.ndarray):
                raise ApiError(422, "multi reads a number from an image; pixels are one 28x28 digit")
            try:
                return (await asyncio.to_thread(self.predictor.predict_number, item,
                                                options.force_digit)).to_dict()
            except ImageDecodeError as e:
                raise image_error(e) from None
        # a large image would hold up everyone in its batch: it is read on its own
        large = isinstance(item, bytes) and pixel_count(item) > BATCH_PIXELS
        result: Prediction = await (self.batcher.run_alone(item) if large
                                    else self.batcher.submit(item))
        if options.force_digit:
            result = self.predictor.accept(result)
        out = result.to_dict()
        if options.preprocessed and result.image is not None:
            out["preprocessed"] = np.round(result.image, 3).tolist()
        return out

    async def answer_in_time(self, item: Item, options: Options) -> dict:
        try:
            return await asyncio.wait_for(self.answer(item, options), self.config.timeout_s)
        except asyncio.TimeoutError:
            raise ApiError(503, f"no answer within {self.config.timeout_s:g} s; try again") from None

    def model_info(self) -> dict:
        backend = self.predictor.backend
        card = backend.card  # None for an ONNX model from another tool
        return {"source": self.config.model or "shipped",
                "architecture": card["model"] if card else None,
                "labels": backend.labels, "test_accuracy": backend.test_accuracy,
                "dataset": card["data"]["dataset"] if card else None,
                "reader": self.config.reader or "shipped",
                "verifier": self.config.verifier or "shipped"}


class MetricsMiddleware:
    """Counts every HTTP request by route and status, and times it (pure ASGI: no overhead of
    a BaseHTTPMiddleware)."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def send_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)
        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.request(route_label(scope), status, time.perf_counter() - start)


def route_label(scope) -> str:
    """The route a request went to: its path if the app has such a route, `/static` for the
    page's files, `other` for anything else (unbounded paths would make unbounded metrics)."""
    path = scope["path"]
    if any(getattr(route, "path", None) == path for route in scope["app"].routes):
        return path
    return "/static" if path.startswith("/static/") else "other"


def request_body(json_body: type[BaseModel], **files: dict) -> dict:
    """The OpenAPI description of a request body: the JSON model's schema, and the forms that
    send image files instead (`files`: content type -> schema)."""
    content = {kind: {"schema": schema} for kind, schema in files.items()}
    content["application/json"] = {"schema": json_body.model_json_schema()}
    return {"requestBody": {"required": True, "content": content}}


BINARY = {"type": "string", "format": "binary"}
DIGIT_REQUEST = request_body(DigitBody, **{
    "image/*": BINARY,
    "multipart/form-data": {"type": "object", "properties": {"file": BINARY}}})
BATCH_REQUEST = request_body(BatchBody, **{
    "multipart/form-data": {"type": "object", "properties": {
        "files": {"type": "array", "items": BINARY}}}})
MAX_SHOWN_ERRORS = 3  # problems named in one answer (a bad 28x28 array can have 784)


def validation_message(errors: Sequence[dict]) -> str:
    """What is wrong with a request: its first problems, each with where it is."""
    shown = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" if e["loc"] else e["msg"]
             for e in errors[:MAX_SHOWN_ERRORS]]
    more = len(errors) - len(shown)
    return "; ".join(shown) + (f" (and {more} more)" if more else "")


def create_app(config: ServeConfig | None = None) -> FastAPI:
    """The digitrec web app and API."""
    config = config or ServeConfig()
    metrics = Metrics()
    service = Service(config, metrics)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        service.batcher.start()
        await asyncio.to_thread(service.predictor.classify, np.zeros((1, SIZE, SIZE), np.float32))
        # what lives as long as the app (modules, the model, the routes) is left out of garbage
        # collections: a full collection would walk it all, a pause that delays the slowest
        # answers under load
        gc.collect()
        gc.freeze()
        service.ready = True
        yield
        service.ready = False  # uvicorn has finished in-flight requests by now
        await service.batcher.close()
        gc.unfreeze()

    app = FastAPI(title="digitrec", lifespan=lifespan,
                  description="Handwritten digit recognition: draw or upload a digit or a number.")
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(ApiError)
    async def api_error(_: Request, error: ApiError) -> JSONResponse:
        return error_response(error.status, error.message)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, error: HTTPException) -> JSONResponse:
        return error_response(error.status_code, str(error.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        return error_response(422, validation_message(error.errors()))

    @app.exception_handler(Exception)
    async def internal(_: Request, error: Exception) -> JSONResponse:
        log.exception("internal error")
        return error_response(500, "internal error (logged on the server)")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.post("/v1/predict", openapi_extra=DIGIT_REQUEST, responses=ERROR_RESPONSES)
    async def predict(request: Request, multi: bool = False, preprocessed: bool = False,
                      force_digit: bool = False) -> JSONResponse:
        """Recognise one image: the digit, its confidence, the ten probabilities and the top k
        (`multi=true`: the written number, digit by digit). What does not look like a digit
        is answered `"status": "not_digit"` with the best guess in `top_k`, unless
        `force_digit=true`. `preprocessed=true` adds the 28x28 image the model saw."""
        item = (await parse_items(request, config, many=False))[0]
        options = Options(multi, preprocessed, force_digit)
        # a plain JSON response: FastAPI would re-encode the finished dict value by value
        return JSONResponse(await service.answer_in_time(item, options))

    @app.post("/v1/predict/batch", openapi_extra=BATCH_REQUEST, responses=ERROR_RESPONSES)
    async def predict_batch(request: Request, multi: bool = False,
                            force_digit: bool = False) -> JSONResponse:
        """Recognise several images; each result is an answer or {"error": ...}."""
        items = await parse_items(request, config, many=True)
        options = Options(multi, False, force_digit)
        answers = await asyncio.gather(*(service.answer_in_time(item, options) for item in items),
                                       return_exceptions=True)
        results = []
        for answer in answers:
            if isinstance(answer, ApiError):
                results.append({"error": {"status": answer.status, "message": answer.message}})
            elif isinstance(answer, Exception):  # not the input's fault: logged, this image only
                log.error("internal error", exc_info=answer)
                results.append({"error": {"status": 500,
                                          "message": "internal error (logged on the server)"}})
            elif isinstance(answer, BaseException):
                raise answer
            else:
                results.append(answer)
        return JSONResponse({"results": results})

    @app.get("/v1/model")
    async def model() -> dict:
        """What model answers: architecture, labels, test accuracy."""
        return service.model_info()

    @app.get("/healthz")
    async def healthz() -> dict:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """The model is loaded and the batcher runs (503 while starting or shutting down)."""
        ready = service.ready and service.batcher.running
        return JSONResponse({"status": "ready" if ready else "not ready"},
                            status_code=200 if ready else 503)

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus() -> Response:
        """Prometheus metrics: requests, latencies, batch sizes, errors (of every worker)."""
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return app


def app_from_env() -> FastAPI:
    """App factory for uvicorn workers: the configuration comes from $DIGITREC_SERVE_CONFIG."""
    return create_app(ServeConfig(**json.loads(os.environ.get(CONFIG_ENV, "{}"))))


def run(config: ServeConfig, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
        log_level: str = "info", access_log: bool = False) -> int:
    """Serve until interrupted; SIGTERM/Ctrl-C finish in-flight requests first. The exit
    status. `access_log` logs a line per request (at `log_level` info or below)."""
    import uvicorn

    options = {"log_level": log_level, "access_log": access_log, "timeout_graceful_shutdown": 30}
    if workers > 1:
        os.environ[CONFIG_ENV] = json.dumps(asdict(config))
        # the workers share the cores: each model call keeps to its share of them
        os.environ.setdefault(THREADS_ENV, str(max(1, available_cores() // workers)))
        return supervise(host, port, workers, options)
    uvicorn.run(create_app(config), host=host, port=port, **options)
    return 0
