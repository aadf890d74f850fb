"""The HTTP app: ``create_app(ServeConfig(...))`` returns a FastAPI app.

Routes: ``GET /ping`` (200 once models are loaded, 503 before: SageMaker's health check),
``POST /invocations`` and ``POST /v1/stylize`` (multipart or JSON in, PNG/JPEG/WebP out by
``Accept``), ``GET /v1/methods``, ``GET /v1/styles/{name}`` (built-in style thumbnails),
``GET /v1/stats``, the live camera socket ``/live`` (:mod:`painterly.serve.live`), the web page
at ``/`` and the OpenAPI schema at ``/openapi.json``.

Robustness: request bodies over ``max_upload_mb`` -> 413, images over ``max_pixels`` -> 413, a
request's images together over ``max_request_pixels`` or ``max_request_mb`` (from their headers)
-> 413, formats outside ``allowed_formats`` -> 415, bad options -> 400, more than ``queue_size``
requests admitted, or their images' memory over ``memory_budget_mb`` for ``memory_wait`` s
-> 503, a request not done in ``timeout`` s -> 504, headers not received in ``header_timeout``
s or a body not received in ``body_timeout`` s -> 408 and the connection closed
(see :mod:`painterly.serve.protocol`); a client that disconnects mid-body is one INFO line;
every error is ``{"error": "..."}`` and nothing ever answers with a traceback. Stylization runs
in executor threads; concurrent AdaIN requests of one size are batched (:mod:`painterly.serve.batching`).

The package reads top to bottom: :mod:`~painterly.serve.config` (settings and limits),
:mod:`~painterly.serve.errors` (the error answers), :mod:`~painterly.serve.parsing` (request ->
:class:`~painterly.serve.parsing.ParsedRequest`), :mod:`~painterly.serve.middleware` (body size
and deadline), :mod:`~painterly.serve.service` (models, admission, running), then this module:
the handlers, each a plain function that finds the :class:`Service` on ``request.app.state``,
and :func:`create_app`, which only wires them up.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.staticfiles import StaticFiles

from .. import __version__
from ..errors import PainterlyError, is_out_of_memory
from ..image import BUILTIN_STYLES, encode_image
from .batching import CancelToken
from .config import ServeConfig
from .errors import BODY_GUARD_SIGNALS, BodyTimeout, BodyTooLarge, HTTPError, error_response
from .live import live_socket
from .middleware import BodyLimitMiddleware, BodyTimeoutMiddleware, TokenMiddleware
from .openapi import STYLIZE_DOC, STYLIZE_OPENAPI
from .parsing import (
    builtin_thumbnail,
    choose_output,
    decode_upload,
    parse_options,
    parse_request,
)
from .service import Service

# Names that lived in this module before it was split, re-exported for code that imports them
# from here (benchmarks/fuzz.py among them); each one's home is the module it is imported from.
__all__ = ["BodyLimitMiddleware", "BodyTimeout", "BodyTimeoutMiddleware", "BodyTooLarge", "HTTPError",
           "ServeConfig", "Service", "choose_output", "create_app", "decode_upload", "error_response",
           "parse_options", "parse_request", "static_dir"]

log = logging.getLogger("painterly.serve")

def static_dir() -> str:
    """The web page's folder (``index.html``, ``app.js``, ``style.css``) inside the package."""
    return str(resources.files("painterly.serve") / "static")



def _service(request: Request) -> Service:
    """The :class:`Service` of the app this request reached."""
    return request.app.state.service


# ----------------------------------------------------------------------------------------------
# Errors raised outside the stylize handler: the same JSON shape, never a traceback


async def http_exception(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Starlette's own errors (404 route, 405 method...) as ``{"error": ...}``."""
    return error_response(exc.status_code, str(exc.detail))


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's parameter validation as a 400 with the first three problems."""
    errs = exc.errors()
    msg = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                    for e in errs[:3]) or "invalid request"
    return error_response(400, msg)


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """Anything else: logged with its traceback, answered 500 without one."""
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal server error")


# ----------------------------------------------------------------------------------------------
# Handlers


async def ping(request: Request) -> JSONResponse:
    """200 with the device once the models are loaded, 503 before."""
    service = _service(request)
    if not service.ready.is_set():
        return error_response(503, "loading models")
    return JSONResponse({"status": "ok", "device": service.device_name})


async def methods(request: Request) -> JSONResponse:
    """What this server can do: methods (and why one is unavailable), models, styles, limits."""
    service = _service(request)
    return JSONResponse({
        "ready": service.ready.is_set(),
        "default_method": service.default_method() if service.ready.is_set() else None,
        "methods": service.methods_summary(),
        "models": service.model_info,
        "builtin_styles": [{"name": n, "thumbnail": f"/v1/styles/{n}"} for n in BUILTIN_STYLES],
        "limits": service.config.limits(),
        "load_error": service.load_error,
    })


async def style_thumbnail(name: str) -> Response:
    """A built-in style's JPEG thumbnail (cached by clients for a day)."""
    if name not in BUILTIN_STYLES:
        return error_response(404, f"no built-in style '{name}'")
    data = await asyncio.get_running_loop().run_in_executor(None, builtin_thumbnail, name)
    return Response(data, media_type="image/jpeg",
                    headers={"Cache-Control": "public, max-age=86400"})


async def stats(request: Request) -> JSONResponse:
    """The service's counters."""
    return JSONResponse(_service(request).stats())


async def handle_stylize(request: Request) -> Response:
    """Parse, admit, stylize within the timeout, encode; every failure is a JSON error."""
    service = _service(request)
    config = service.config
    service.counts["requests"] += 1
    t0 = time.perf_counter()
    try:
        if not service.ready.is_set():
            raise HTTPError(503, "models are still loading; retry shortly", {"Retry-After": "2"})
        media_type, fmt = choose_output(request.headers.get("accept"))
        parsed = await parse_request(request)
        # What its images will cost, from their headers (413 over the per-request caps), then a
        # slot and that much of the memory budget (503 when it does not free in time): nothing
        # is decoded before the request is admitted.
        need = await service.measure(parsed)
        await service.admit_request(need)
        token = CancelToken()
        work = asyncio.ensure_future(service.process(parsed, token))

        # The slot and memory are freed when the work really ends, not when the client gives up.
        work.add_done_callback(lambda _: service.release(need))
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
    except BODY_GUARD_SIGNALS:  # answered by their middleware
        raise
    except ClientDisconnect:
        service.counts["errors"] += 1
        client = request.client
        log.info("client %s disconnected before sending the whole request body",
                 f"{client.host}:{client.port}" if client else "?")
        return error_response(400, "client disconnected")
    except Exception as exc:
        service.counts["errors"] += 1
        if is_out_of_memory(exc):  # a MemoryError, or torch's CPU or CUDA allocator
            log.error("out of memory: %s", str(exc).splitlines()[0] if str(exc) else "")
            return error_response(503, "out of memory; try a smaller size")
        log.exception("stylize request failed")
        return error_response(500, "internal server error")


def _swallow(fut: asyncio.Future) -> None:
    """Retrieve a timed-out request's late outcome so asyncio does not warn about it."""
    if not fut.cancelled():
        exc = fut.exception()
        if exc is not None and not isinstance(exc, (PainterlyError, HTTPError, asyncio.CancelledError)):
            log.warning("a timed-out request later failed: %s", exc)


async def index() -> FileResponse:
    """The web page."""
    return FileResponse(f"{static_dir()}/index.html", media_type="text/html")


# ----------------------------------------------------------------------------------------------
# The app


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load the models (before serving with ``eager_load``, else in a thread), run the batcher,
    and on shutdown stop it and drop the executors' queued work."""
    service: Service = app.state.service
    if service.config.eager_load:
        await asyncio.get_running_loop().run_in_executor(None, service.load)
    else:
        threading.Thread(target=service.load, name="painterly-load", daemon=True).start()
    service.batcher.start()
    yield
    await service.batcher.stop()
    service.executor.shutdown(wait=False, cancel_futures=True)
    service.model_executor.shutdown(wait=False, cancel_futures=True)
    service.live.executor.shutdown(wait=False, cancel_futures=True)
    service.live.codec.shutdown(wait=False, cancel_futures=True)


def create_app(config: ServeConfig | None = None) -> FastAPI:
    """Build the app; models load at start-up (in a thread unless ``config.eager_load``)."""
    config = config or ServeConfig()
    app = FastAPI(title="painterly", version=__version__, lifespan=lifespan,
                  description="Neural style transfer over HTTP (AdaIN, Gatys, fast networks).")
    app.state.service = Service(config)
    app.add_middleware(BodyLimitMiddleware, max_bytes=int(config.max_upload_mb * 1e6))
    app.add_middleware(BodyTimeoutMiddleware, seconds=config.body_timeout)  # times all
    if config.token:
        app.add_middleware(TokenMiddleware, token=config.token)  # outermost: before any body

    app.add_exception_handler(StarletteHTTPException, http_exception)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected_error)

    app.add_api_route("/ping", ping, methods=["GET"],
                      summary="Health check: 200 once the models are loaded, 503 before")
    app.add_api_route("/v1/methods", methods, methods=["GET"],
                      summary="Methods (available or not and why), models, built-in styles")
    app.add_api_route("/v1/styles/{name}", style_thumbnail, methods=["GET"],
                      summary="JPEG thumbnail of a built-in style",
                      responses={200: {"content": {"image/jpeg": {}}}})
    app.add_api_route("/v1/stats", stats, methods=["GET"], summary="Counters: requests, queue, batching")
    app.add_api_route("/v1/stylize", handle_stylize, methods=["POST"], summary="Stylize an image",
                      description=STYLIZE_DOC, openapi_extra=STYLIZE_OPENAPI,
                      response_class=Response)
    app.add_api_route("/invocations", handle_stylize, methods=["POST"],
                      summary="SageMaker inference: same as POST /v1/stylize",
                      description=STYLIZE_DOC, openapi_extra=STYLIZE_OPENAPI,
                      response_class=Response)
    app.add_api_websocket_route("/live", live_socket)
    app.add_api_route("/", index, methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=static_dir()), name="static")
    return app
