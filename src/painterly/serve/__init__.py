"""painterly's HTTP service (FastAPI): ``painterly serve`` or ``create_app(ServeConfig(...))``.

``create_app`` is imported on first use, so that the settings (:mod:`painterly.serve.config`, from
which ``painterly serve``'s flags are built) load without FastAPI.
"""

from typing import Any

from .config import ServeConfig

__all__ = ["ServeConfig", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
