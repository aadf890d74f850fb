"""The stylize route's OpenAPI description, derived from the option declarations
(:mod:`painterly.options`): each field's type, range (the server's tighter limit where it has
one), choices and help, and the route's text."""

from __future__ import annotations

from typing import Any

from ..api import METHODS
from ..image import BUILTIN_STYLES
from ..options import STYLE_WEIGHTS, shared_options
from ..schema import Limit, Option
from .parsing import OUTPUT_TYPES

_OPENAPI_TYPES = {"int": "integer", "float": "number"}


def _openapi_field(opt: Option, methods: tuple[str, ...]) -> dict[str, Any]:
    """An option as an OpenAPI property: its type, range and choices (the server's where they
    are tighter), its help and the methods that take it."""
    prop: dict[str, Any] = {"type": _OPENAPI_TYPES.get(opt.kind, "string")}
    limit = opt.server or Limit()
    if opt.kind in _OPENAPI_TYPES:
        lo = limit.minimum if limit.minimum is not None else opt.minimum
        hi = limit.maximum if limit.maximum is not None else opt.maximum
        if opt.positive and limit.minimum is None:
            prop["exclusiveMinimum"] = lo or 0
        elif lo is not None:
            prop["minimum"] = lo
        if hi is not None:
            prop["maximum"] = hi
    choices = limit.choices or opt.choices
    if choices:
        prop["enum"] = list(choices)
    words = opt.help + (" (comma-separated)" if opt.kind in ("floats", "names") else "")
    prop["description"] = words + (f"; {', '.join(methods)}" if methods else "")
    return prop


def _option_fields() -> dict[str, dict[str, Any]]:
    """Every option a client may send (:data:`~painterly.serve.parsing.OPTION_PARSERS`)."""
    fields = {STYLE_WEIGHTS.name: _openapi_field(STYLE_WEIGHTS, ())}
    fields.update({o.name: _openapi_field(o, methods) for o, methods in shared_options() if o.http})
    return fields


def _options_doc() -> str:
    """The option fields for the route's description: shared ones, then each method's."""
    shared = ['`style_weights` ("0.3,0.7")']
    own: dict[str, list[str]] = {}
    for opt, methods in shared_options():
        if opt.http:
            words = f"`{opt.name}`" + (f" ({', '.join(opt.choices)})" if opt.choices else "")
            (shared if len(methods) > 1 else own.setdefault(methods[0], [])).append(words)
    return "; ".join([", ".join(shared)] + [f"{m}: {', '.join(w)}" for m, w in own.items()])


STYLIZE_DOC = f"""Stylize a content image.

**multipart/form-data**: file `content`; file(s) `style` and/or text `builtin_style`
(comma-separated names from `GET /v1/methods`); text fields `method` ({", ".join(METHODS)}) and
options: {_options_doc()}.

**application/json**: the same fields; `content` and `style` are base64 strings (or data URLs),
`style` may be a list.

The answer is the image, PNG by default, JPEG or WebP by `Accept`. Errors are JSON
`{{"error": "..."}}`: 400 bad option, 406 unacceptable `Accept`, 413 too large, 415 bad format,
503 busy or not ready, 504 timed out.
"""

STYLIZE_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": {
                "type": "object", "required": ["content"],
                "properties": {
                    "content": {"type": "string", "format": "binary"},
                    "style": {"type": "array", "items": {"type": "string", "format": "binary"}},
                    "builtin_style": {"type": "string", "enum": list(BUILTIN_STYLES)},
                    "method": {"type": "string", "enum": list(METHODS)},
                    **_option_fields(),
                }}},
            "application/json": {"schema": {
                "type": "object", "required": ["content"],
                "properties": {
                    "content": {"type": "string", "format": "byte"},
                    "style": {"type": "string", "format": "byte"},
                    "builtin_style": {"type": "string"},
                    "method": {"type": "string", "enum": list(METHODS)},
                    **_option_fields(),
                }}},
        },
    },
    "responses": {"200": {"description": "the stylized image",
                          "content": {t: {} for t in OUTPUT_TYPES}}},
}
