"""painterly: neural style transfer (Gatys optimization, AdaIN, fast feed-forward networks)."""

from .api import default_method, make_stylizer, stylize
from .errors import PainterlyError

__version__ = "0.1.0"

__all__ = ["PainterlyError", "__version__", "default_method", "make_stylizer", "stylize"]
