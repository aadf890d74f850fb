"""painterly's HTTP service (FastAPI): ``painterly serve`` or ``create_app(ServeConfig(...))``."""

from .app import ServeConfig, create_app

__all__ = ["ServeConfig", "create_app"]
