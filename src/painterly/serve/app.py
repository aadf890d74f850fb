"""The HTTP service: ``create_app(ServeConfig(...))`` returns a FastAPI app.

Routes: ``GET /ping`` (200 once models are loaded, 503 before: SageMaker's health check),
``POST /invocations`` and ``POST /v1/stylize`` (multipart or JSON in, PNG/JPEG/WebP out by
``Accept``), ``GET /v1/methods``, ``GET /v1/styles/{name}`` (built-in style thumbnails),
``GET /v1/stats``, the web page at ``/`` and the OpenAPI schema at ``/openapi.json``.

Robustness: request bodies over ``max_upload_mb`` -> 413, images over ``max_pixels`` -> 413,
formats outside ``allowed_formats`` -> 415, bad options -> 400, more than ``queue_size`` requests
admitted -> 503, a request not done in ``timeout`` s -> 504, headers not received in
``header_timeout`` s or a body not received in ``body_timeout`` s -> 408 and the connection closed
(see :mod:`painterly.serve.protocol`); a client that disconnects mid-body is one INFO line;
every error is ``{"error": "..."}`` and nothing ever answers with a traceback. Stylization runs
in executor threads; concurrent AdaIN requests of one size are batched (:mod:`painterly.serve.batching`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
import logging
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from PIL import Image, UnidentifiedImageError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.staticfiles import StaticFiles

from ..api import METHODS
from ..errors import PainterlyError
from ..image import BUILTIN_STYLES, encode_image, load_image
from ..options import check_style_weights
from .batching import CancelToken, DynamicBatcher

log = logging.getLogger("painterly.serve")

#: Output formats by media type, in the server's order of preference.
OUTPUT_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}


@dataclass
class ServeConfig:
    """Everything ``painterly serve`` can set; the defaults keep a small server safe."""

    device: str = "auto"
    decoder: str | None = None  # AdaIN decoder file (default: the shipped one, if any)
    model: str | None = None  # default fast-network model (file or registry name)
    max_upload_mb: float = 20.0  # whole request body
    max_pixels: int = 4096 * 4096  # per uploaded image
    max_size: int = 2048  # long side processed by adain/fast; larger uploads are shrunk
    queue_size: int = 16  # requests admitted at once (waiting + running)
    timeout: float = 120.0  # seconds per request
    max_steps: int = 200  # gatys steps cap (also its default here)
    max_gatys_size: int = 512  # gatys output long side cap (also its default here)
    max_batch: int = 8
    batch_wait_ms: float = 5.0
    workers: int = 1  # threads for non-batched methods (gatys, fast)
    preload_gatys: bool = True
    style_cache: int = 32
    allowed_formats: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")
    header_timeout: float = 10.0  # seconds for a request's whole header block (408 and close)
    body_timeout: float = 60.0  # seconds for a request's whole body, from its headers (408 and close)
    keep_alive_timeout: float = 5.0  # seconds an idle kept-alive connection stays open
    eager_load: bool = False  # load models before serving (tests); else in a background thread

    def check(self) -> None:
        """Reject nonsensical limits early, with the flag's name in the message."""
        for name in ("max_upload_mb", "max_pixels", "max_size", "queue_size", "timeout",
                     "max_steps", "max_gatys_size", "max_batch", "workers", "header_timeout",
                     "body_timeout", "keep_alive_timeout"):
            value = getattr(self, name)
            if not value > 0 or value == float("inf"):
                raise PainterlyError(f"--{name.replace('_', '-')} must be positive and finite")
        if self.batch_wait_ms < 0:
            raise PainterlyError("--batch-wait-ms must be >= 0")


class HTTPError(Exception):
    """An error answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


# ----------------------------------------------------------------------------------------------
# Request parsing and validation


def _as_float(name: str, v: Any, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(v, bool):
        raise PainterlyError(f"{name} must be a number, got {v!r}")
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise PainterlyError(f"{name} must be a number, got {v!r}") from None
    if x != x or x in (float("inf"), float("-inf")):
        raise PainterlyError(f"{name} must be finite")
    if (lo is not None and x < lo) or (hi is not None and x > hi):
        rng = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise PainterlyError(f"{name} must be in {rng}, got {x:g}")
    return x


#: Largest whole number an option takes (sizes and steps are capped lower by the server's limits).
MAX_INT_OPTION = 2**63 - 1


def _as_int(name: str, v: Any, lo: int = 1, hi: int = MAX_INT_OPTION) -> int:
    if isinstance(v, bool):
        raise PainterlyError(f"{name} must be a whole number")
    text = str(v).strip() if not isinstance(v, int) else ""
    if len(text) > 40:  # int() of a huge digit string is slow, and no option needs one
        raise PainterlyError(f"{name} must be a whole number between {lo} and {hi}")
    try:
        x = int(text) if not isinstance(v, int) else v
    except ValueError:
        raise PainterlyError(f"{name} must be a whole number, got {v!r}") from None
    if x < lo:
        raise PainterlyError(f"{name} must be at least {lo}, got {x}")
    if x > hi:
        raise PainterlyError(f"{name} must be at most {hi} (2**63 - 1), got {x}" if hi == MAX_INT_OPTION
                             else f"{name} must be at most {hi}, got {x}")
    return x


def _as_list(v: Any) -> list:
    if isinstance(v, (list, tuple)):
        return list(v)
    return [t for t in str(v).replace(" ", "").split(",") if t]


def _as_floats(name: str, v: Any) -> list[float]:
    return [_as_float(name, t, 0.0) for t in _as_list(v)]


def _as_names(name: str, v: Any) -> list[str]:
    out = [str(t) for t in _as_list(v)]
    if not out or any(not re.fullmatch(r"[A-Za-z0-9_]+", t) for t in out):
        raise PainterlyError(f"{name} must be comma-separated layer names")
    return out


def _as_choice(name: str, v: Any, choices: tuple[str, ...]) -> str:
    s = str(v)
    if s not in choices:
        raise PainterlyError(f"{name} must be one of {', '.join(choices)}, got {s!r}")
    return s


#: Options a client may send (the CLI's method options minus anything naming a server file).
OPTION_PARSERS: dict[str, Any] = {
    "alpha": lambda v: _as_float("alpha", v, 0.0, 1.0),
    "style_weights": lambda v: _as_floats("style_weights", v),
    "preserve_color": lambda v: None if v in ("", "none", None) else
    _as_choice("preserve_color", v, ("luminance", "histogram")),
    "size": lambda v: _as_int("size", v),
    "style_size": lambda v: _as_int("style_size", v),
    "seed": lambda v: _as_int("seed", v, 0),
    "steps": lambda v: _as_int("steps", v),
    "optimizer": lambda v: _as_choice("optimizer", v, ("lbfgs", "adam", "sgd", "adagrad",
                                                       "adadelta", "rmsprop")),
    "lr": lambda v: _as_float("lr", v, 0.0),
    "content_weight": lambda v: _as_float("content_weight", v, 0.0),
    "style_weight": lambda v: _as_float("style_weight", v, 0.0),
    "tv_weight": lambda v: _as_float("tv_weight", v, 0.0),
    "style_loss": lambda v: _as_choice("style_loss", v, ("gram", "mean_std")),
    "content_layers": lambda v: _as_names("content_layers", v),
    "style_layers": lambda v: _as_names("style_layers", v),
    "style_layer_weights": lambda v: _as_floats("style_layer_weights", v),
    "init": lambda v: _as_choice("init", v, ("content", "noise", "style")),
    "style_scale": lambda v: _as_float("style_scale", v, 0.01, 4.0),
    "scales": lambda v: _as_int("scales", v),
    "pooling": lambda v: _as_choice("pooling", v, ("max", "avg")),
    "model": lambda v: _model_name(v),
}
#: Options the server's own AdaIN engine understands (others are an error for adain).
ADAIN_OPTIONS = ("alpha", "style_weights", "preserve_color", "size", "style_size", "seed")
#: Most style images (uploaded + built-in) one request may blend.
MAX_STYLES = 8
#: Smallest image side AdaIN takes: the decoder's reflection padding needs a 2x2 feature map.
MIN_SIDE = 16
#: Fields that are images or control, not method options.
IMAGE_FIELDS = ("content", "style", "builtin_style", "method")


def _model_name(v: Any) -> str:
    s = str(v)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", s) or ".." in s:
        raise PainterlyError("model must be the name of an installed model (no paths)")
    return s


def parse_options(raw: dict[str, Any]) -> dict[str, Any]:
    """Typed, validated options from form/JSON values; empty values mean "not set"."""
    unknown = sorted(k for k in raw if k not in OPTION_PARSERS and k not in IMAGE_FIELDS)
    if unknown:
        raise PainterlyError(f"unknown option(s): {', '.join(unknown)} "
                             f"(known: {', '.join(sorted(OPTION_PARSERS))})")
    out: dict[str, Any] = {}
    for k, v in raw.items():
        if k in IMAGE_FIELDS or v is None or (isinstance(v, str) and v.strip() == ""):
            continue
        parsed = OPTION_PARSERS[k](v.strip() if isinstance(v, str) else v)
        if parsed is not None:
            out[k] = parsed
    return out


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


def _b64(field_name: str, value: Any) -> bytes:
    if not isinstance(value, str):
        raise PainterlyError(f"{field_name} must be a base64 string")
    if value.startswith("data:"):
        value = value.split(",", 1)[-1]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise PainterlyError(f"{field_name} is not valid base64") from None


@dataclass
class ParsedRequest:
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
            if isinstance(exc, (BodyTooLarge, BodyTimeout, ClientDisconnect)):
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
        if not raw_body:
            raise PainterlyError("the request body is empty (expected a JSON object)")
        try:
            body = json.loads(raw_body)
        except (ValueError, UnicodeDecodeError):
            raise PainterlyError("request body is not valid JSON") from None
        except RecursionError:  # e.g. [[[[...]]]] 100,000 levels deep
            raise PainterlyError("request body is not valid JSON (nested too deeply)") from None
        if not isinstance(body, dict):
            raise PainterlyError("JSON body must be an object")
        if "content" in body:
            content = _b64("content", body["content"])
            if not content:
                raise PainterlyError("the content image is empty (0 bytes of base64)")
        st = body.get("style")
        if st is not None:
            for i, s in enumerate(st if isinstance(st, list) else [st]):
                styles.append(_b64(f"style[{i}]", s))
        bs = body.get("builtin_style")
        if bs:
            builtin += [str(s) for s in (bs if isinstance(bs, list) else _as_list(bs))]
        raw = {k: v for k, v in body.items() if k not in ("content", "style", "builtin_style")}
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
            raise PainterlyError(f"unknown builtin_style '{name}' "
                                 f"(choose from {', '.join(BUILTIN_STYLES)})")
    method = raw.pop("method", None)
    if method is not None and not isinstance(method, str):
        raise PainterlyError("method must be a string")
    if method in ("", None):
        method = None
    elif method not in METHODS:
        raise PainterlyError(f"unknown method '{method}' (choose from {', '.join(METHODS)})")
    return ParsedRequest(content, styles, [b.removeprefix("builtin:") for b in builtin],
                         method, parse_options(raw))


def decode_upload(data: bytes, what: str, config: ServeConfig) -> Image.Image:
    """Check format and pixel count from the header (before decoding), then load as RGB."""
    try:
        with Image.open(io.BytesIO(data)) as probe:
            fmt = probe.format or "?"
            w, h = probe.size
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
    return load_image(data, what=what)


@cache
def builtin_style_image(name: str) -> Image.Image:
    return load_image(f"builtin:{name}", what="built-in style")


@cache
def builtin_thumbnail(name: str, cell: int = 160) -> bytes:
    img = builtin_style_image(name).copy()
    img.thumbnail((cell, cell), Image.Resampling.LANCZOS)
    return encode_image(img, "JPEG", quality=85)


# ----------------------------------------------------------------------------------------------
# Service state


class BodyTooLarge(Exception):
    pass


class BodyTimeout(Exception):
    pass


class BodyTimeoutMiddleware:
    """Pure-ASGI guard: the whole request body must arrive within ``seconds`` of the request's
    start, else ``408`` (JSON) and the connection is closed. Once the body is complete,
    ``receive()`` is passed through untimed (it then only reports a disconnect)."""

    def __init__(self, app: Any, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.seconds
        body_done = False
        started = False

        async def timed_receive() -> dict:
            nonlocal body_done
            if body_done:
                return await receive()
            left = deadline - loop.time()
            try:
                message = await asyncio.wait_for(receive(), max(left, 0.0))
            except TimeoutError:
                raise BodyTimeout() from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def tracking_send(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, timed_receive, tracking_send)
        except BodyTimeout:
            client = scope.get("client")
            log.info("closed the connection from %s: request body not received within %g s",
                     f"{client[0]}:{client[1]}" if client else "a client", self.seconds)
            if not started:
                body = json.dumps({"error": f"request body not received within "
                                            f"{self.seconds:g} s"}).encode()
                await send({"type": "http.response.start", "status": 408,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode()),
                                        (b"connection", b"close")]})
                await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """Pure-ASGI guard: 413 as soon as a request body passes ``max_bytes`` (declared or streamed)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _reject(self, send: Any) -> None:
        body = json.dumps({"error": f"request body too large (limit "
                                    f"{self.max_bytes / 1e6:.1f} MB)"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    declared = int(v)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await self._reject(send)
                    return
        seen = 0
        started = False

        async def limited_receive() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge()
            return message

        async def tracking_send(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._reject(send)


class Service:
    """Models, executors, the batcher and the admission counter of one running server."""

    def __init__(self, config: ServeConfig) -> None:
        config.check()
        self.config = config
        self.ready = threading.Event()
        self.load_error: str | None = None
        self.adain = None  # AdaINEngine once loaded
        self.adain_reason = "not loaded yet"
        self.fast_reason: str | None = None
        self.fast_models: dict[str, str] = {}  # registry name -> file
        self.default_fast_model: str | None = None
        self.gatys_reason: str | None = None
        self.model_info: dict[str, Any] = {}
        self.device_name = "?"
        self.model_executor = ThreadPoolExecutor(1, thread_name_prefix="painterly-model")
        self.executor = ThreadPoolExecutor(config.workers, thread_name_prefix="painterly-work")
        self.batcher = DynamicBatcher(self._run_adain_batch, self.model_executor,
                                      config.max_batch, config.batch_wait_ms)
        self.in_flight = 0
        self.counts = {"requests": 0, "ok": 0, "errors": 0, "rejected_busy": 0, "timeouts": 0}
        self.started = time.time()

    # -- loading -------------------------------------------------------------------------------
    def load(self) -> None:
        """Load every model the server can serve; never raises (reasons go to /v1/methods)."""
        try:
            from ..device import resolve_device

            self.device_name = str(resolve_device(self.config.device))
        except Exception as exc:
            self.load_error = f"device: {exc}"
        # Each method on its own: one broken model leaves the others served.
        for name, loader in (("adain", self._load_adain), ("fast", self._load_fast),
                             ("gatys", self._load_gatys)):
            try:
                loader()
            except Exception as exc:  # a broken set-up: report it, keep answering
                if not isinstance(exc, PainterlyError):
                    log.exception("loading %s failed", name)
                reason = f"could not be loaded: {exc}"
                setattr(self, f"{name}_reason", reason)
                if name == "adain":
                    self.adain = None
                self.load_error = f"{name}: {exc}"
        self.ready.set()
        log.info("models loaded (device %s): %s", self.device_name, self.methods_summary())

    def _load_adain(self) -> None:
        path = self.config.decoder
        if path is None:
            try:
                import painterly.adain as adain_mod

                if getattr(adain_mod, "is_available", lambda: False)():
                    path = str(adain_mod.default_decoder_path())
            except ImportError:
                pass
        if path is None:
            self.adain_reason = ("no AdaIN decoder installed: start the server with --decoder FILE "
                                 "(train one with `painterly train adain`)")
            return
        from .engine import AdaINEngine

        try:
            self.adain = AdaINEngine(path, self.config.device, self.config.style_cache)
        except PainterlyError as exc:
            self.adain_reason = f"decoder could not be loaded: {exc}"
            return
        self.adain_reason = ""
        # The file name only: clients need not learn the server's paths.
        self.model_info["adain_decoder"] = {"file": Path(path).name, **{
            k: v for k, v in self.adain.config.items() if _jsonable(v) and k != "path"}}

    def _load_fast(self) -> None:
        try:
            import painterly.fast as fast_mod
        except ImportError:
            fast_mod = None
        if not hasattr(fast_mod, METHODS["fast"][1]):
            self.fast_reason = "the fast method is not in this build"
            return
        from ..models import list_models

        self.fast_models = {m.name: str(m.path) for m in list_models() if m.error is None}
        self.model_info["fast_models"] = [
            {"name": m.name, "style_names": m.style_names, "width": m.width}
            for m in list_models() if m.error is None]
        if self.config.model is not None:
            from ..fast.model import load_model
            from ..models import resolve_model

            path = resolve_model(self.config.model)
            _, cfg = load_model(str(path))  # fail at start-up, not on the first request
            self.default_fast_model = str(path)
            self.model_info["fast_default"] = {"name": path.stem,
                                               "style_names": cfg.get("style_names", []),
                                               "n_styles": cfg.get("n_styles")}
        elif not self.fast_models:
            self.fast_reason = ("no fast model installed: start the server with --model FILE "
                                "(train one with `painterly train fast`)")

    def _load_gatys(self) -> None:
        try:
            import painterly.gatys  # noqa: F401
        except ImportError:
            self.gatys_reason = "the gatys method is not in this build"
            return
        if self.config.preload_gatys:
            from ..device import resolve_device

            # the extractor a default request uses, into gatys's per-process cache
            sys.modules["painterly.gatys"].preload(str(resolve_device(self.config.device)))

    def methods_summary(self) -> dict[str, dict[str, Any]]:
        out = {}
        for name in METHODS:
            if name == "adain":
                ok, why = self.adain is not None, self.adain_reason
            elif name == "fast":
                ok, why = self.fast_reason is None, self.fast_reason or ""
                if ok and self.default_fast_model is None and len(self.fast_models) > 1:
                    why = f"choose a model (option model): {', '.join(sorted(self.fast_models))}"
            else:
                ok, why = self.gatys_reason is None, self.gatys_reason or ""
            out[name] = {"available": ok, "reason": why}
        return out

    def default_method(self) -> str:
        return "adain" if self.adain is not None else "gatys"

    # -- running -------------------------------------------------------------------------------
    def _run_adain_batch(self, key: Any, jobs: list) -> list:
        assert self.adain is not None
        return self.adain.stylize_batch(jobs)

    def admit(self) -> None:
        if self.in_flight >= self.config.queue_size:
            self.counts["rejected_busy"] += 1
            raise HTTPError(503, f"server busy ({self.in_flight} requests in progress); retry later",
                            {"Retry-After": "1"})
        self.in_flight += 1

    def release(self) -> None:
        self.in_flight -= 1

    async def run_in(self, executor: ThreadPoolExecutor | None, token: CancelToken, fn: Any,
                     *args: Any) -> Any:
        def guarded() -> Any:
            if token.cancelled:
                raise asyncio.CancelledError()
            return fn(*args)

        return await asyncio.get_running_loop().run_in_executor(executor, guarded)

    async def process(self, req: ParsedRequest, token: CancelToken) -> tuple[Image.Image, dict]:
        """Decode, validate, stylize; returns the image and response headers."""
        cfg = self.config
        method = req.method or self.default_method()
        status = self.methods_summary()[method]
        if not status["available"]:
            raise HTTPError(400 if method != "adain" else 503,
                            f"method '{method}' is not available on this server: {status['reason']}")
        # Decoding runs on the loop's default executor: never behind a long gatys job.
        content = await self.run_in(None, token, decode_upload, req.content, "content image", cfg)
        styles = []
        for i, data in enumerate(req.styles):
            styles.append(await self.run_in(None, token, decode_upload, data,
                                            f"style image {i + 1}", cfg))
        for n in req.builtin_styles:
            styles.append(await self.run_in(None, token, builtin_style_image, n))
        if method == "adain":
            return await self._adain(req, content, styles, token)
        return await self._other(method, req, content, styles, token)

    def _adain_prepare(self, req: ParsedRequest, content: Image.Image,
                       styles: list[Image.Image]) -> tuple[Any, list, list[float], dict[str, Any]]:
        """Validate adain options, resize and convert (CPU work: runs in an executor thread)."""
        from ..color import match_histogram
        from ..image import pil_to_tensor, resize

        opts = dict(req.options)
        bad = sorted(k for k in opts if k not in ADAIN_OPTIONS)
        if bad:
            raise PainterlyError(f"option(s) {', '.join(bad)} do not apply to method 'adain'")
        if not styles:
            raise PainterlyError("method 'adain' needs a style image (style or builtin_style)")
        weights = check_style_weights(opts.get("style_weights"), len(styles))
        size = opts.get("size")
        if size is not None and size > self.config.max_size:
            raise PainterlyError(f"size {size} is over this server's limit of {self.config.max_size}")
        if size is None and max(content.size) > self.config.max_size:
            size = self.config.max_size
        content = resize(content, size)
        if min(content.size) < MIN_SIDE:
            raise PainterlyError(f"content image is too small ({content.width}x{content.height}; "
                                 f"each side must be at least {MIN_SIDE} px)")
        style_size = opts.get("style_size", 512)
        if style_size > self.config.max_size:
            raise PainterlyError(f"style_size {style_size} is over this server's limit of "
                                 f"{self.config.max_size}")
        c = pil_to_tensor(content)
        prepared = []
        for i, style in enumerate(styles):
            style = resize(style, style_size)
            if min(style.size) < MIN_SIDE:
                raise PainterlyError(f"style image {i + 1} is too small or thin at style_size "
                                     f"{style_size} ({style.width}x{style.height}; each side must be "
                                     f"at least {MIN_SIDE} px)")
            s = pil_to_tensor(style)
            key = None
            if opts.get("preserve_color") == "histogram":  # depends on the content: no cache
                s = match_histogram(s, c)
            else:
                src = req.styles[i] if i < len(req.styles) else \
                    f"builtin:{req.builtin_styles[i - len(req.styles)]}".encode()
                key = self.adain.cache_key(src, style_size)
            prepared.append((s, key))
        return c, prepared, weights, opts

    @staticmethod
    def _adain_finish(out: Any, c: Any, mode: str | None) -> Image.Image:
        from ..color import luminance_transfer
        from ..image import tensor_to_pil

        if mode == "luminance":
            out = luminance_transfer(out, c)
        return tensor_to_pil(out)

    async def _adain(self, req: ParsedRequest, content: Image.Image, styles: list[Image.Image],
                     token: CancelToken) -> tuple[Image.Image, dict]:
        from .engine import AdaINJob, batch_key

        engine = self.adain
        assert engine is not None
        c, prepared, weights, opts = await self.run_in(None, token, self._adain_prepare, req,
                                                       content, styles)
        # A cached style is looked up here, not queued behind a running batch on the model thread.
        stats = [engine.cached_stats(key) or
                 await self.run_in(self.model_executor, token, engine.style_stats, s, key)
                 for s, key in prepared]
        job = AdaINJob(c, engine.make_stats(stats, weights), float(opts.get("alpha", 1.0)))
        out, batch_size = await self.batcher.submit_with_size(batch_key(c), job, token)
        image = await self.run_in(None, token, self._adain_finish, out, c, opts.get("preserve_color"))
        return image, {"X-Painterly-Method": "adain", "X-Painterly-Batch-Size": str(batch_size)}

    async def _other(self, method: str, req: ParsedRequest, content: Image.Image,
                     styles: list[Image.Image], token: CancelToken) -> tuple[Image.Image, dict]:
        from ..api import make_stylizer

        cfg = self.config
        opts = dict(req.options)
        weights = opts.pop("style_weights", None)
        if method == "gatys":
            try:  # gatys's own default for the optimizer, capped by the server's limit
                from ..gatys import DEFAULT_STEPS

                default_steps = DEFAULT_STEPS.get(opts.get("optimizer", "lbfgs"), cfg.max_steps)
            except ImportError:
                default_steps = cfg.max_steps
            steps = opts.setdefault("steps", min(default_steps, cfg.max_steps))
            if steps > cfg.max_steps:
                raise PainterlyError(f"steps {steps} is over this server's limit of {cfg.max_steps}")
            size = opts.setdefault("size", min(512, cfg.max_gatys_size))
            if size > cfg.max_gatys_size:
                raise PainterlyError(f"size {size} is over this server's gatys limit of "
                                     f"{cfg.max_gatys_size}")
            if opts.get("scales", 1) > 4:
                raise PainterlyError("scales must be at most 4 on this server")
            if "style_size" in opts and opts["style_size"] > cfg.max_size:
                raise PainterlyError(f"style_size is over this server's limit of {cfg.max_size}")
        else:
            size = opts.get("size")
            if size is not None and size > cfg.max_size:
                raise PainterlyError(f"size {size} is over this server's limit of {cfg.max_size}")
            if size is None and max(content.size) > cfg.max_size:
                opts["size"] = cfg.max_size
            if method == "fast":
                if "model" in opts:  # names only, resolved here: a client never names a file
                    if opts["model"] not in self.fast_models:
                        raise PainterlyError(f"unknown model '{opts['model']}' (installed: "
                                             f"{', '.join(sorted(self.fast_models)) or 'none'})")
                    opts["model"] = self.fast_models[opts["model"]]
                elif self.default_fast_model is not None:
                    opts["model"] = self.default_fast_model
        opts.setdefault("device", cfg.device)

        def work() -> Image.Image:
            stylizer = make_stylizer(method, styles or None, weights, **opts)
            return stylizer(content)

        return await self.run_in(self.executor, token, work), {"X-Painterly-Method": method}

    def stats(self) -> dict[str, Any]:
        return {"ready": self.ready.is_set(), "device": self.device_name,
                "in_flight": self.in_flight, "queue_size": self.config.queue_size,
                "uptime_s": round(time.time() - self.started, 1), **self.counts,
                "batching": {**self.batcher.stats.as_dict(), "waiting": self.batcher.waiting,
                             "max_batch": self.config.max_batch,
                             "max_wait_ms": self.config.batch_wait_ms}}


def _jsonable(v: Any) -> bool:
    try:
        json.dumps(v)
        return True
    except (TypeError, ValueError):
        return False


# ----------------------------------------------------------------------------------------------
# The app

_STYLIZE_DOC = """Stylize a content image.

**multipart/form-data**: file `content`; file(s) `style` and/or text `builtin_style`
(comma-separated names from `GET /v1/methods`); text fields `method` (adain, gatys, fast) and
options: `alpha` (0..1), `style_weights` ("0.3,0.7"), `preserve_color` (luminance, histogram),
`size`, `style_size`, `seed`; gatys: `steps`, `optimizer`, `lr`, `content_weight`,
`style_weight`, `tv_weight`, `style_loss`, `content_layers`, `style_layers`,
`style_layer_weights`, `init`, `style_scale`, `scales`, `pooling`; fast: `model` (a name).

**application/json**: the same fields; `content` and `style` are base64 strings (or data URLs),
`style` may be a list.

The answer is the image, PNG by default, JPEG or WebP by `Accept`. Errors are JSON
`{"error": "..."}`: 400 bad option, 406 unacceptable `Accept`, 413 too large, 415 bad format,
503 busy or not ready, 504 timed out.
"""

_STYLIZE_OPENAPI = {
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
                    "alpha": {"type": "number", "minimum": 0, "maximum": 1},
                    "style_weights": {"type": "string"},
                    "preserve_color": {"type": "string", "enum": ["luminance", "histogram"]},
                    "size": {"type": "integer"}, "steps": {"type": "integer"},
                }}},
            "application/json": {"schema": {
                "type": "object", "required": ["content"],
                "properties": {"content": {"type": "string", "format": "byte"},
                               "style": {"type": "string", "format": "byte"},
                               "builtin_style": {"type": "string"},
                               "method": {"type": "string"}, "alpha": {"type": "number"}}}},
        },
    },
    "responses": {"200": {"description": "the stylized image",
                          "content": {t: {} for t in OUTPUT_TYPES}}},
}


def static_dir() -> str:
    return str(resources.files("painterly.serve") / "static")


def create_app(config: ServeConfig | None = None) -> FastAPI:
    """Build the app; models load at start-up (in a thread unless ``config.eager_load``)."""
    config = config or ServeConfig()
    service = Service(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if config.eager_load:
            await asyncio.get_running_loop().run_in_executor(None, service.load)
        else:
            threading.Thread(target=service.load, name="painterly-load", daemon=True).start()
        service.batcher.start()
        yield
        await service.batcher.stop()
        service.executor.shutdown(wait=False, cancel_futures=True)
        service.model_executor.shutdown(wait=False, cancel_futures=True)

    from .. import __version__

    app = FastAPI(title="painterly", version=__version__, lifespan=lifespan,
                  description="Neural style transfer over HTTP (AdaIN, Gatys, fast networks).")
    app.state.service = service
    app.add_middleware(BodyLimitMiddleware, max_bytes=int(config.max_upload_mb * 1e6))
    app.add_middleware(BodyTimeoutMiddleware, seconds=config.body_timeout)  # outermost: times all

    @app.exception_handler(StarletteHTTPException)
    async def _http_exc(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        msg = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                        for e in errs[:3]) or "invalid request"
        return error_response(400, msg)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal server error")

    @app.get("/ping", summary="Health check: 200 once the models are loaded, 503 before")
    async def ping() -> JSONResponse:
        if not service.ready.is_set():
            return error_response(503, "loading models")
        return JSONResponse({"status": "ok", "device": service.device_name})

    @app.get("/v1/methods", summary="Methods (available or not and why), models, built-in styles")
    async def methods() -> JSONResponse:
        return JSONResponse({
            "ready": service.ready.is_set(),
            "default_method": service.default_method() if service.ready.is_set() else None,
            "methods": service.methods_summary(),
            "models": service.model_info,
            "builtin_styles": [{"name": n, "thumbnail": f"/v1/styles/{n}"} for n in BUILTIN_STYLES],
            "limits": {"max_upload_mb": config.max_upload_mb, "max_pixels": config.max_pixels,
                       "max_size": config.max_size, "max_steps": config.max_steps,
                       "max_gatys_size": config.max_gatys_size, "timeout_s": config.timeout,
                       "header_timeout_s": config.header_timeout, "body_timeout_s": config.body_timeout,
                       "formats": list(config.allowed_formats)},
            "load_error": service.load_error,
        })

    @app.get("/v1/styles/{name}", summary="JPEG thumbnail of a built-in style",
             responses={200: {"content": {"image/jpeg": {}}}})
    async def style_thumbnail(name: str) -> Response:
        if name not in BUILTIN_STYLES:
            return error_response(404, f"no built-in style '{name}'")
        data = await asyncio.get_running_loop().run_in_executor(None, builtin_thumbnail, name)
        return Response(data, media_type="image/jpeg",
                        headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/v1/stats", summary="Counters: requests, queue, batching")
    async def stats() -> JSONResponse:
        return JSONResponse(service.stats())

    async def handle_stylize(request: Request) -> Response:
        service.counts["requests"] += 1
        t0 = time.perf_counter()
        try:
            if not service.ready.is_set():
                raise HTTPError(503, "models are still loading; retry shortly", {"Retry-After": "2"})
            media_type, fmt = choose_output(request.headers.get("accept"))
            parsed = await parse_request(request)
            service.admit()
            token = CancelToken()
            work = asyncio.ensure_future(service.process(parsed, token))

            # The slot is freed when the work really ends, not when the client gives up.
            work.add_done_callback(lambda _: service.release())
            try:
                image, headers = await asyncio.wait_for(asyncio.shield(work), config.timeout)
            except TimeoutError:
                token.cancel()
                service.counts["timeouts"] += 1
                work.add_done_callback(_swallow)
                raise HTTPError(504, f"stylization took longer than {config.timeout:g} s "
                                     "(try a smaller size or fewer steps)") from None
            data = await asyncio.get_running_loop().run_in_executor(None, encode_image, image, fmt)
            ms = (time.perf_counter() - t0) * 1000
            headers.update({"X-Painterly-Time-Ms": f"{ms:.1f}",
                            "X-Painterly-Size": f"{image.width}x{image.height}"})
            service.counts["ok"] += 1
            log.info("stylized %s %dx%d in %.0f ms", headers.get("X-Painterly-Method"),
                     image.width, image.height, ms)
            return Response(data, media_type=media_type, headers=headers)
        except HTTPError as exc:
            service.counts["errors"] += 1
            return error_response(exc.status, exc.message, exc.headers)
        except PainterlyError as exc:
            service.counts["errors"] += 1
            return error_response(400, str(exc))
        except (BodyTooLarge, BodyTimeout):
            raise
        except ClientDisconnect:
            service.counts["errors"] += 1
            client = request.client
            log.info("client %s disconnected before sending the whole request body",
                     f"{client.host}:{client.port}" if client else "?")
            return error_response(400, "client disconnected")
        except Exception as exc:
            service.counts["errors"] += 1
            if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():  # CPU or CUDA
                log.error("out of memory: %s", str(exc).splitlines()[0] if str(exc) else "")
                return error_response(503, "out of memory; try a smaller size")
            log.exception("stylize request failed")
            return error_response(500, "internal server error")

    app.add_api_route("/v1/stylize", handle_stylize, methods=["POST"], summary="Stylize an image",
                      description=_STYLIZE_DOC, openapi_extra=_STYLIZE_OPENAPI,
                      response_class=Response)
    app.add_api_route("/invocations", handle_stylize, methods=["POST"],
                      summary="SageMaker inference: same as POST /v1/stylize",
                      description=_STYLIZE_DOC, openapi_extra=_STYLIZE_OPENAPI,
                      response_class=Response)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(f"{static_dir()}/index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=static_dir()), name="static")
    return app


def _swallow(fut: asyncio.Future) -> None:
    """Retrieve a timed-out request's late outcome so asyncio does not warn about it."""
    if not fut.cancelled():
        exc = fut.exception()
        if exc is not None and not isinstance(exc, (PainterlyError, HTTPError, asyncio.CancelledError)):
            log.warning("a timed-out request later failed: %s", exc)
