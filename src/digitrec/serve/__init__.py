"""`digitrec serve`: the draw-a-digit web page and the HTTP API (FastAPI + uvicorn)."""

from .app import ServeConfig, create_app, run

__all__ = ["ServeConfig", "create_app", "run"]
