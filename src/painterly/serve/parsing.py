"""Request parsing: from an HTTP request to a :class:`ParsedRequest` of bytes, names and typed options.

Read top to bottom: the option table a client may send (:data:`OPTION_PARSERS`, derived from the
declarations in :mod:`painterly.options`) and :func:`parse_options`, ``Accept`` negotiation
(:func:`choose_output`), the three body shapes (:func:`parse_request`: multipart/form, JSON with
base64 images, a raw image body with options in the query string; a JSON body is counted, parsed
and its base64 decoded in a worker thread, :func:`parse_json_body`), then what a request's images
will cost, from their headers, before any decoding (:func:`probe_upload`, :func:`request_budget`),
image decoding with the server's format and pixel limits checked from the header first
(:func:`decode_upload`) and the built-in styles.
Nothing here touches a model.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, partial
from typing import Any

from fastapi import Request
from PIL import Image, UnidentifiedImageError
from starlette.requests import ClientDisconnect

from ..api import METHODS
from ..errors import PainterlyError, echo
from ..image import BUILTIN_STYLES, encode_image, load_image
from ..options import AdaINOptions, http_options
from ..schema import options_of
from .config import (
    DECODE_BYTES_BY_MODE,
    DECODE_BYTES_PER_PIXEL,
    KEPT_BYTES_PER_PIXEL,
    MAX_JSON_SEPARATORS,
    MAX_STYLES,
    WORK_BYTES_PER_PIXEL,
    ServeConfig,
)
from .errors import BODY_GUARD_SIGNALS, HTTPError

#: Output formats by media type, in the server's order of preference.
OUTPUT_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}


# ----------------------------------------------------------------------------------------------
# The options a client may send: declared in painterly.options, checked by the same rules as
# everywhere, plus the server's own limits (painterly.schema.Limit)


#: Field name -> its parser: every option declared with ``http=True`` (the CLI's method options
#: minus anything naming a server file) and ``style_weights``, each checked by its rule (for an
#: option several methods share, what any of them accepts) and the server's limit.
OPTION_PARSERS: dict[str, Callable[[Any], Any]] = {o.name: partial(o.check, server=True)
                                                   for o in http_options()}
#: Options the server's own AdaIN engine understands (others are an error for adain).
ADAIN_OPTIONS = ("style_weights", *(o.name for o in options_of(AdaINOptions) if o.http))
#: Fields that are images or control, not method options.
IMAGE_FIELDS = ("content", "style", "builtin_style", "method")
#: Options that are lists (``a,b`` or a JSON list), whose items are counted before any is parsed.
LIST_OPTIONS = frozenset(o.name for o in http_options() if o.kind in ("floats", "names"))
#: Most items a list option other than ``style_weights`` (at most :data:`MAX_STYLES`) may hold.
MAX_OPTION_ITEMS = 64


def _check_items(name: str, value: Any) -> None:
    """Refuse a list option with more items than any request can use, before parsing one."""
    n = len(value) if isinstance(value, (list, tuple)) else str(value).count(",") + 1
    limit = MAX_STYLES if name == "style_weights" else MAX_OPTION_ITEMS
    if n > limit:
        why = f"a request has at most {MAX_STYLES} styles" if name == "style_weights" else \
            f"at most {MAX_OPTION_ITEMS}"
        raise PainterlyError(f"{name} has {n} values; {why}")


def parse_options(raw: dict[str, Any]) -> dict[str, Any]:
    """Typed, validated options from form/JSON values; empty values mean "not set"."""
    unknown = [k for k in raw if k not in OPTION_PARSERS and k not in IMAGE_FIELDS]
    if unknown:
        shown = ", ".join(sorted(str(k)[:40] for k in unknown[:8]))
        more = f" and {len(unknown) - 8} more" if len(unknown) > 8 else ""
        raise PainterlyError(f"unknown option(s): {shown}{more} "
                             f"(known: {', '.join(sorted(OPTION_PARSERS))})")
    out: dict[str, Any] = {}
    for k, v in raw.items():
        if k in IMAGE_FIELDS or v is None or (isinstance(v, str) and v.strip() == ""):
            continue
        if k in LIST_OPTIONS:
            _check_items(k, v)
        parsed = OPTION_PARSERS[k](v.strip() if isinstance(v, str) else v)
        if parsed is not None:
            out[k] = parsed
    return out


# ----------------------------------------------------------------------------------------------
# Accept negotiation and request bodies


def choose_output(accept: str | None) -> tuple[str, str]:
    """(media type, Pillow format) for an ``Accept`` header; PNG when anything goes."""
    if not accept:
        return "image/png", "PNG"
    best: tuple[float, int, str] | None = None
    for order, part in enumerate(accept.split(",")):
        bits = [b.strip() for b in part.split(";")]
        mtype = bits[0].lower()
        q = 1.0
        for b in bits[1:]:
            if b.startswith("q="):
                try:
                    q = float(b[2:])
                except ValueError:
                    q = 0.0
        if q <= 0:
            continue
        if mtype in ("*/*", "image/*"):
            cand = "image/png"
        elif mtype in OUTPUT_TYPES:
            cand = mtype
        else:
            continue
        if best is None or (q, -order) > (best[0], -best[1]):
            best = (q, order, cand)
    if best is None:
        raise HTTPError(406, "cannot answer with any type in Accept; use image/png, image/jpeg "
                             "or image/webp")
    return best[2], OUTPUT_TYPES[best[2]]


def _as_list(v: Any) -> list:
    """A list as it is; text split at commas (``builtin_style=a,b``)."""
    if isinstance(v, (list, tuple)):
        return list(v)
    return [t for t in str(v).replace(" ", "").split(",") if t]


def _b64(field_name: str, value: Any) -> bytes:
    if not isinstance(value, str):
        raise PainterlyError(f"{field_name} must be a base64 string")
    if value.startswith("data:"):
        value = value.split(",", 1)[-1]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise PainterlyError(f"{field_name} is not valid base64") from None


def _check_count(field_name: str, value: Any) -> None:
    """A JSON list of images over :data:`MAX_STYLES` is refused before any item is decoded."""
    if isinstance(value, list) and len(value) > MAX_STYLES:
        raise PainterlyError(f"{field_name} holds {len(value)} items; at most {MAX_STYLES} style "
                             "images per request")


def parse_json_body(raw_body: bytes) -> tuple[bytes | None, list[bytes], list[str], dict[str, Any]]:
    """A JSON request body -> (content, styles, built-in style names, other fields).

    Bounded before any deep work: the commas are counted first (C speed; every list item and key
    after the first needs one), so a body of millions of items is refused without parsing it,
    and the image lists are counted before any base64 is decoded. The server runs this in a
    worker thread (:func:`parse_request`), so even a large valid body never holds the event loop.
    """
    if not raw_body:
        raise PainterlyError("the request body is empty (expected a JSON object)")
    commas = raw_body.count(b",")
    if commas > MAX_JSON_SEPARATORS:
        raise PainterlyError(f"JSON body has {commas} items (commas), over the {MAX_JSON_SEPARATORS} "
                             f"a request can use (at most {MAX_STYLES} styles and one value per "
                             "option)")
    try:
        body = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError):
        raise PainterlyError("request body is not valid JSON") from None
    except RecursionError:  # e.g. [[[[...]]]] 100,000 levels deep
        raise PainterlyError("request body is not valid JSON (nested too deeply)") from None
    if not isinstance(body, dict):
        raise PainterlyError("JSON body must be an object")
    content = None
    if "content" in body:
        content = _b64("content", body["content"])
        if not content:
            raise PainterlyError("the content image is empty (0 bytes of base64)")
    st = body.get("style")
    bs = body.get("builtin_style")
    _check_count("style", st)
    _check_count("builtin_style", bs)
    styles = []
    if st is not None:
        for i, s in enumerate(st if isinstance(st, list) else [st]):
            styles.append(_b64(f"style[{i}]", s))
    builtin = []
    if bs:
        builtin = [str(s) for s in (bs if isinstance(bs, list) else _as_list(bs))]
    raw = {k: v for k, v in body.items() if k not in ("content", "style", "builtin_style")}
    return content, styles, builtin, raw


@dataclass
class ParsedRequest:
    """A request's images (still encoded), built-in style names, method and typed options."""

    content: bytes
    styles: list[bytes] = field(default_factory=list)
    builtin_styles: list[str] = field(default_factory=list)
    method: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


async def parse_request(request: Request) -> ParsedRequest:
    """Multipart form (``content``, ``style``...) or JSON with base64 images."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw: dict[str, Any] = {}
    styles: list[bytes] = []
    content: bytes | None = None
    builtin: list[str] = []
    if ctype == "multipart/form-data" or ctype == "application/x-www-form-urlencoded":
        try:
            form = await request.form(max_files=8, max_fields=64)
        except Exception as exc:  # malformed multipart
            if isinstance(exc, (*BODY_GUARD_SIGNALS, ClientDisconnect)):
                raise
            raise PainterlyError(f"could not parse the form: {exc}") from None
        for key, value in form.multi_items():
            if key == "content":
                if isinstance(value, str):
                    raise PainterlyError("content must be an uploaded file")
                content = await value.read()
                if not content:
                    name = f" ('{value.filename}')" if value.filename else ""
                    raise PainterlyError(f"the uploaded content image{name} is empty (0 bytes)")
            elif key == "style":
                if isinstance(value, str):
                    if value:
                        raise PainterlyError("style must be an uploaded file (or use builtin_style)")
                    continue
                data = await value.read()
                if data:
                    styles.append(data)
                elif value.filename:  # an empty part without a file name: no file chosen
                    raise PainterlyError(f"the uploaded style image ('{value.filename}') is empty "
                                         f"(0 bytes)")
            elif key == "builtin_style":
                builtin += [s for s in _as_list(value) if s]
            else:
                if not isinstance(value, str):
                    raise PainterlyError(f"field {key} must be text, not a file")
                raw[key] = value
        await form.close()
    elif ctype == "application/json":
        raw_body = await request.body()
        # Off the event loop: /ping and other requests are answered while a body is parsed.
        content, styles, builtin, raw = await asyncio.get_running_loop().run_in_executor(
            None, parse_json_body, raw_body)
    elif ctype.startswith("image/") or ctype == "application/x-image":
        # SageMaker style: the body is the content image, options in the query string.
        content = await request.body()
        if not content:
            raise PainterlyError("the request body is empty (expected the content image)")
        for key, value in request.query_params.multi_items():
            if key == "builtin_style":
                builtin += [s for s in _as_list(value) if s]
            elif key in ("content", "style"):
                raise PainterlyError(f"with a raw image body, {key} cannot be a query parameter "
                                     "(send multipart or JSON for a style image)")
            else:
                raw[key] = value
    else:
        raise HTTPError(415, "send multipart/form-data (fields content, style), application/json "
                             "(base64 strings) or a raw image body (options in the query string)")
    if content is None or len(content) == 0:
        raise PainterlyError("missing content image (field 'content')")
    if len(styles) + len(builtin) > MAX_STYLES:
        raise PainterlyError(f"at most {MAX_STYLES} style images per request")
    for name in builtin:
        if name.removeprefix("builtin:") not in BUILTIN_STYLES:
            raise PainterlyError(f"unknown builtin_style {echo(name)} "
                                 f"(choose from {', '.join(BUILTIN_STYLES)})")
    method = raw.pop("method", None)
    if method is not None and not isinstance(method, str):
        raise PainterlyError("method must be a string")
    if method in ("", None):
        method = None
    elif method not in METHODS:
        raise PainterlyError(f"unknown method {echo(method)} (choose from {', '.join(METHODS)})")
    return ParsedRequest(content, styles, [b.removeprefix("builtin:") for b in builtin],
                         method, parse_options(raw))


# ----------------------------------------------------------------------------------------------
# Images: uploads checked from their header, what a request's images cost, built-in styles


@dataclass(frozen=True)
class ImageHeader:
    """What an upload's header says, read without decoding a pixel."""

    what: str
    format: str
    width: int
    height: int
    mode: str
    transparency: bool = False

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def decode_bytes_per_pixel(self) -> int:
        """Bytes a pixel while this image decodes and converts to RGB (see serve/config.py)."""
        per = DECODE_BYTES_BY_MODE.get(self.mode, DECODE_BYTES_PER_PIXEL)
        return max(per, DECODE_BYTES_BY_MODE["RGBA"]) if self.transparency else per


def probe_upload(data: bytes, what: str, config: ServeConfig) -> ImageHeader:
    """Format, size and mode from an upload's header; 415/413 for a format or size the server
    does not take. No pixel is decoded."""
    try:
        with Image.open(io.BytesIO(data)) as probe:
            fmt = probe.format or "?"
            w, h = probe.size
            mode = probe.mode
            transparency = "transparency" in probe.info
    except UnidentifiedImageError:
        raise HTTPError(415, f"{what} is not an image in a supported format "
                             f"({', '.join(config.allowed_formats)})") from None
    except Image.DecompressionBombError:
        raise HTTPError(413, f"{what} has too many pixels") from None
    except Exception as exc:
        raise PainterlyError(f"{what} could not be read ({exc})") from None
    if fmt not in config.allowed_formats:
        raise HTTPError(415, f"{what} format {fmt} is not allowed "
                             f"(allowed: {', '.join(config.allowed_formats)})")
    if w * h > config.max_pixels:
        raise HTTPError(413, f"{what} is {w}x{h} = {w * h / 1e6:.1f} megapixels; this server "
                             f"takes at most {config.max_pixels / 1e6:.1f}")
    return ImageHeader(what, fmt, w, h, mode, transparency)


def request_budget(req: ParsedRequest, config: ServeConfig) -> int:
    """The bytes a request's images will need, estimated from their headers (nothing decoded);
    413 when its images together are over ``max_request_pixels`` or ``max_request_mb``.

    Counted across ALL its images: the content, every uploaded style (each kept as RGB until the
    request ends, plus its working copies at the processed size, plus the largest conversion
    while one decodes) and the built-in styles (decoded once per process: working copies only).
    """
    headers = [probe_upload(req.content, "content image", config)]
    headers += [probe_upload(data, f"style image {i + 1}", config)
                for i, data in enumerate(req.styles)]
    builtin = [builtin_style_image(n).size for n in req.builtin_styles]
    pixels = sum(h.pixels for h in headers) + sum(w * h for w, h in builtin)
    count = len(headers) + len(builtin)
    if pixels > config.max_request_pixels:
        sizes = ", ".join(f"{h.what} {h.width}x{h.height}" for h in headers[:3])
        more = f", ... ({count} images)" if count > 3 else ""
        raise HTTPError(413, f"the request's images hold {pixels / 1e6:.1f} megapixels together "
                             f"({sizes}{more}); this server takes at most "
                             f"{config.max_request_pixels / 1e6:.1f} per request")
    work_cap = config.max_size * config.max_size
    need = sum(KEPT_BYTES_PER_PIXEL * h.pixels + WORK_BYTES_PER_PIXEL * min(h.pixels, work_cap)
               for h in headers)
    need += sum(WORK_BYTES_PER_PIXEL * min(w * h, work_cap) for w, h in builtin)
    need += max(h.decode_bytes_per_pixel * h.pixels for h in headers)
    if need > config.max_request_mb * 1e6:
        raise HTTPError(413, f"the request's {count} image(s) would need about {need / 1e6:,.0f} MB "
                             f"to decode; this server takes at most {config.max_request_mb:,.0f} "
                             "MB per request (send smaller images or fewer styles)")
    return need


def decode_upload(data: bytes, what: str, config: ServeConfig) -> Image.Image:
    """Check format and pixel count from the header (before decoding), then load as RGB."""
    probe_upload(data, what, config)
    return load_image(data, what=what)


@cache
def builtin_style_image(name: str) -> Image.Image:
    """A built-in style painting, decoded once per process (they never change)."""
    return load_image(f"builtin:{name}", what="built-in style")


@cache
def builtin_thumbnail(name: str, cell: int = 160) -> bytes:
    """JPEG bytes of a built-in style shrunk into a ``cell`` px square (the web page's picker)."""
    img = builtin_style_image(name).copy()
    img.thumbnail((cell, cell), Image.Resampling.LANCZOS)
    return encode_image(img, "JPEG", quality=85)

