"""painterly's HTTP service (FastAPI): ``painterly serve`` or ``create_app(ServeConfig(...))``."""

from .app import create_app
from .config import ServeConfig

__all__ = ["ServeConfig", "create_app"]
