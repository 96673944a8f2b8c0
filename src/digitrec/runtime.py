"""ONNX Runtime sessions for digitrec's exported models (digit models, verifiers, readers)."""

from __future__ import annotations

import json

from .errors import ModelError


def onnx_session(model: bytes | str, source: str):
    """A CPU session for an ONNX file's path or bytes; an unreadable model is a ModelError
    naming `source`."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    # idle worker threads sleep instead of spinning: a server's other threads need the cores
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as e:  # ONNX Runtime raises its own types for unreadable models
        raise ModelError(f"cannot load ONNX model {source}: {e}") from None


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
