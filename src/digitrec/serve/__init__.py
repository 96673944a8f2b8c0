"""`digitrec serve`: the draw-a-digit web page and the HTTP API (FastAPI + uvicorn).

`ServeConfig` imports without FastAPI (the command line builds its flags from it); the app
and `run` are imported when first used.
"""

from .config import ServeConfig

__all__ = ["ServeConfig", "create_app", "run"]


def __getattr__(name: str):
    if name in ("create_app", "run"):
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
