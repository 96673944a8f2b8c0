"""ONNX Runtime sessions for digitrec's exported models (digit models, verifiers, readers)."""

from __future__ import annotations

import json
import os

from .errors import ConfigError, ModelError

THREADS_ENV = "DIGITREC_ONNX_THREADS"  # threads per ONNX Runtime session (unset: all cores)


def onnx_session(model: bytes | str, source: str):
    """A CPU session for an ONNX file's path or bytes; an unreadable model is a ModelError
    naming `source`."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    # idle worker threads sleep instead of spinning: a server's other threads need the cores
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.intra_op_num_threads = session_threads()
    try:
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as e:  # ONNX Runtime raises its own types for unreadable models
        raise ModelError(f"cannot load ONNX model {source}: {e}") from None


def session_threads() -> int:
    """The threads $DIGITREC_ONNX_THREADS gives each session; 0 (ONNX Runtime's default, one
    per core) when it is unset."""
    value = os.environ.get(THREADS_ENV, "0")
    if not value.isdigit():
        raise ConfigError(f"${THREADS_ENV} must be a whole number of threads, not {value!r}")
    return int(value)


def metadata_of(session) -> dict:
    """A session's metadata, each value parsed as JSON where it is JSON (digitrec writes JSON;
    other tools, e.g. the quantizer, plain text)."""
    return {key: _json_or_text(value)
            for key, value in session.get_modelmeta().custom_metadata_map.items()}


def _json_or_text(value: str):
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value
