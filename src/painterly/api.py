"""The public Python API: ``painterly.stylize`` and method dispatch.

Each method lives in its own module and exposes a *stylizer* class::

    class Stylizer:
        def __init__(self, styles: list[PIL.Image], style_weights: list[float] | None,
                     **options) -> None: ...     # style work done once here
        def __call__(self, content: PIL.Image) -> PIL.Image: ...

so that a batch of contents reuses one set of style statistics. Options a method does not know
are an error, not silently ignored.

The methods are listed once, in :data:`METHODS`: each entry names the method's package, its stylizer
class, and a loader that imports the package (lazily: a method costs nothing until it is asked for,
and a build may leave one out). Method packages never import this module; the rules they share
with it live in :mod:`painterly.options`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, NamedTuple, Protocol

from PIL import Image

from .errors import PainterlyError, echo
from .image import ImageLike, load_image
from .options import check_style_weights, parse, reject_unknown, require_styles

__all__ = ["METHODS", "Method", "Stylizer", "check_style_weights", "default_method", "make_stylizer",
           "method_available", "reject_unknown", "require_styles", "stylize"]


class Stylizer(Protocol):
    """What every method's stylizer provides."""

    def __call__(self, content: Image.Image) -> Image.Image: ...


class Method(NamedTuple):
    """One entry of :data:`METHODS`: the method's package, its stylizer class's name (the package
    exports it) and a loader importing the package."""

    module: str
    stylizer: str
    load: Callable[[], ModuleType]


def _load_adain() -> ModuleType:
    import painterly.adain as module

    return module


def _load_gatys() -> ModuleType:
    import painterly.gatys as module

    return module


def _load_fast() -> ModuleType:
    import painterly.fast as module

    return module


#: method name -> :class:`Method`. Order is preference for the default method.
METHODS: dict[str, Method] = {
    "adain": Method("painterly.adain", "AdaINStylizer", _load_adain),
    "gatys": Method("painterly.gatys", "GatysStylizer", _load_gatys),
    "fast": Method("painterly.fast", "FastStylizer", _load_fast),
}


def _method_module(method: str) -> ModuleType:
    """The imported package of ``method``; a clear error for an unknown or left-out method."""
    if method not in METHODS:
        raise PainterlyError(f"unknown method {echo(method)} (choose from {', '.join(METHODS)})")
    entry = METHODS[method]
    try:
        return entry.load()
    except ModuleNotFoundError as exc:
        if exc.name == entry.module:
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

    ``options`` (keywords) become the method's options object (:func:`painterly.options.parse`);
    the stylizer checks ``style_weights`` against its styles (with style images, one weight per
    image; ``fast`` carries its styles in its model and blends those).
    """
    method = method or default_method()
    if style is None:
        sources: list[ImageLike] = []
    elif isinstance(style, (list, tuple)):
        sources = list(style)
    else:
        sources = [style]
    cls = getattr(_method_module(method), METHODS[method].stylizer)
    opts = parse(method, options)  # before any image is read: a typo fails at once
    if method == "fast" and sources and all(isinstance(s, str) for s in sources):
        # The fast method's styles live in its model: strings name them ("udnie", "udnie=0.7").
        return cls([], style_weights, opts, style_names=sources)
    styles = [load_image(s, what="style image") for s in sources]
    return cls(styles, style_weights, opts)


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
