"""The public Python API: ``painterly.stylize`` and method dispatch.

Each method lives in its own module and exposes a *stylizer* class::

    class Stylizer:
        def __init__(self, styles: list[PIL.Image], style_weights: list[float] | None,
                     **options) -> None: ...     # style work done once here
        def __call__(self, content: PIL.Image) -> PIL.Image: ...

so that a batch of contents reuses one set of style statistics. Options a method does not know
are an error, not silently ignored.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any, Protocol

from PIL import Image

from .errors import PainterlyError
from .image import ImageLike, load_image
from .options import check_style_weights, reject_unknown, require_styles

__all__ = ["METHODS", "Stylizer", "check_style_weights", "default_method", "make_stylizer",
           "method_available", "reject_unknown", "require_styles", "stylize"]

#: method name -> (module, stylizer class). Order is preference for the default method.
METHODS: dict[str, tuple[str, str]] = {
    "adain": ("painterly.adain", "AdaINStylizer"),
    "gatys": ("painterly.gatys", "GatysStylizer"),
    "fast": ("painterly.fast", "FastStylizer"),
}


class Stylizer(Protocol):
    """What every method's stylizer provides."""

    def __call__(self, content: Image.Image) -> Image.Image: ...


def _method_module(method: str) -> Any:
    if method not in METHODS:
        raise PainterlyError(f"unknown method '{method}' (choose from {', '.join(METHODS)})")
    module, _ = METHODS[method]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            raise PainterlyError(f"method '{method}' is not available in this build") from None
        raise


def method_available(method: str) -> bool:
    """Whether ``method`` can run with no extra file (a shipped decoder or model for adain/fast)."""
    try:
        mod = _method_module(method)
    except PainterlyError:
        return False
    check = getattr(mod, "is_available", None)
    return bool(check()) if check is not None else True


def default_method() -> str:
    """The best method that works out of the box: AdaIN once a decoder ships, else Gatys."""
    return "adain" if method_available("adain") else "gatys"


def make_stylizer(method: str | None, style: ImageLike | Sequence[ImageLike] | None,
                  style_weights: Sequence[float] | None = None, **options: Any) -> Stylizer:
    """Build a stylizer for ``method`` (default: :func:`default_method`) and the style image(s).

    With style images, ``style_weights`` are checked against their count and normalized; methods
    that carry their styles inside a model (``fast``) take no style image and get the weights as
    given, to blend the model's styles.
    """
    method = method or default_method()
    if style is None:
        sources: list[ImageLike] = []
    elif isinstance(style, (list, tuple)):
        sources = list(style)
    else:
        sources = [style]
    mod = _method_module(method)
    cls = getattr(mod, METHODS[method][1])
    if method == "fast" and sources and all(isinstance(s, str) for s in sources):
        # The fast method's styles live in its model: strings name them ("udnie", "udnie=0.7").
        return cls([], style_weights, style_names=sources, **options)
    styles = [load_image(s, what="style image") for s in sources]
    weights = check_style_weights(style_weights, len(styles)) if styles else style_weights
    return cls(styles, weights, **options)


def stylize(content: ImageLike, style: ImageLike | Sequence[ImageLike] | None = None,
            method: str | None = None, style_weights: Sequence[float] | None = None,
            **options: Any) -> Image.Image:
    """Paint ``content`` in the style of ``style`` and return a PIL image.

    ``content`` and ``style`` may be paths, ``builtin:NAME``, PIL images, arrays or tensors;
    ``style`` may be a list (blended by ``style_weights``). ``method`` is "adain", "gatys" or
    "fast" (default: the best available). Other keyword options are the method's (see the CLI's
    ``painterly stylize --help``); one the method does not know raises :class:`PainterlyError`.
    """
    stylizer = make_stylizer(method, style, style_weights, **options)
    return stylizer(load_image(content, what="content image"))
