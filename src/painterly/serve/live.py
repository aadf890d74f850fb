"""The live socket, ``/live``: a camera painted frame by frame over one WebSocket.

The web page's live mode (and any client) speaks this protocol:

* client -> server, **text**: ``{"type": "settings", "method": "fast" | "adain", "style":
  NAME or [NAMES], "style_image": BASE64 (adain, instead of a built-in), "size": 384, "temporal":
  0.7, "alpha": 1.0, ...}``: any option of the method a still request may send. Each settings
  message changes the stream from the next frame on, without reconnecting; the server answers
  ``{"type": "settings", ...}`` with what it now paints, or an error.
* client -> server, **binary**: a frame: 8 bytes (a little-endian float64 the client chooses,
  its capture time, echoed back) then a JPEG, PNG or WebP image.
* server -> client, **binary**: the painted frame: the same 8 bytes, a float32 with the
  network's milliseconds, a float32 with the server's whole milliseconds for the frame (decode,
  paint, encode: a client paces its frames by it), a uint32 with the frames dropped so far,
  then a JPEG.
* server -> client, **text**: ``{"type": "ready", ...}`` on connecting, ``{"type": "error",
  "error": "..."}`` for a frame or settings that could not be used (the stream goes on), and
  before a close (code 1013 for a server at ``--max-live-streams``, 1008 for a missing token,
  1011 for a frame over the timeout or a client that stopped reading).

Backpressure: the latest frame wins. The receiving task only keeps the newest frame and
settings; the painting task takes them when it is free, so a burst of frames costs one frame
of memory and the latency stays that of one frame. Frames are painted on one thread of their
own (streams take turns, a still request never waits behind them), with the same limits as a
still: the image's format and pixels from its header, the message size (the upload limit), its
memory in the server's budget, and the timeout. A client that stops reading holds one frame
until :data:`~painterly.serve.config.LIVE_SEND_TIMEOUT`, then the stream is closed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import struct
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..errors import PainterlyError, brief, echo, is_out_of_memory
from ..image import BUILTIN_STYLES, encode_image
from ..live import (
    DEFAULT_LIVE_SIZE,
    LIVE_METHODS,
    MAX_LIVE_SIZE,
    LivePainter,
    LiveSettings,
    live_threads,
)
from .config import (
    DECODE_BYTES_PER_PIXEL,
    KEPT_BYTES_PER_PIXEL,
    LIVE_SEND_TIMEOUT,
    MIN_SIDE,
    WORK_BYTES_PER_PIXEL,
)
from .errors import HTTPError
from .parsing import decode_upload, parse_options, probe_upload

log = logging.getLogger("painterly.serve")

#: A frame's header: the client's 8-byte timestamp (echoed back).
FRAME_HEADER = struct.Struct("<d")
#: A painted frame's header: the timestamp, the network's ms, the server's ms for the frame
#: (decode, paint, encode), the frames dropped so far.
PAINTED_HEADER = struct.Struct("<dffI")
#: JPEG quality of the painted frames sent back.
LIVE_JPEG_QUALITY = 85
#: Keys of a settings message that are the stream's, not the method's options.
STREAM_KEYS = ("type", "method", "style", "style_image", "size", "temporal")


def _set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


class LiveHub:
    """The server's live streams: how many are open (at most ``limit``) and the one thread
    their frames are painted on (a queue of at most one frame per stream: they take turns)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self.frames = 0
        self.refused = 0
        # Its own torch thread count (per thread): one core is left to the rest of the stream.
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="painterly-live",
                                           initializer=_set_threads, initargs=(live_threads(),))

    def enter(self) -> bool:
        if self.open >= self.limit:
            self.refused += 1
            return False
        self.open += 1
        return True

    def leave(self) -> None:
        self.open -= 1

    def stats(self) -> dict[str, int]:
        return {"streams": self.open, "max_streams": self.limit, "frames": self.frames,
                "refused": self.refused}


class LiveStream:
    """One client's stream: its painter, the latest frame and settings, and the two tasks."""

    def __init__(self, service: Any, ws: WebSocket) -> None:
        self.service = service
        self.ws = ws
        self.painter = LivePainter()
        self.settings_raw: dict[str, Any] = {}
        self.pending_settings: dict[str, Any] | None = None
        self.pending_frame: bytes | None = None
        self.pending_error: str | None = None
        self.wake = asyncio.Event()
        self.closed = False
        self.dropped = 0
        self.frames = 0

    # -- receiving: never blocks on the painter ---------------------------------------------
    async def receive(self) -> None:
        try:
            while True:
                msg = await self.ws.receive()
                if msg["type"] == "websocket.disconnect":
                    break
                data, text = msg.get("bytes"), msg.get("text")
                if data is not None:
                    if len(data) <= FRAME_HEADER.size:
                        self.pending_error = ("a frame is 8 bytes of timestamp followed by an "
                                              "image (JPEG, PNG or WebP)")
                    else:
                        if self.pending_frame is not None:
                            self.dropped += 1
                        self.pending_frame = data
                elif text is not None:
                    self._take_settings(text)
                self.wake.set()
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            self.closed = True
            self.wake.set()

    def _take_settings(self, text: str) -> None:
        try:
            raw = json.loads(text)
        except ValueError:
            self.pending_error = "a text message must be JSON settings ({\"type\": \"settings\", ...})"
            return
        if not isinstance(raw, dict) or raw.get("type", "settings") != "settings":
            self.pending_error = "a text message must be JSON settings ({\"type\": \"settings\", ...})"
            return
        self.pending_settings = {**(self.pending_settings or {}), **raw}

    # -- painting: one frame at a time, the latest ------------------------------------------
    async def run(self) -> None:
        cfg = self.service.config
        await self.ws.send_json({"type": "ready", "methods": list(self._methods()),
                                 "builtin_styles": list(BUILTIN_STYLES),
                                 "default_size": DEFAULT_LIVE_SIZE,
                                 "max_size": min(cfg.max_size, MAX_LIVE_SIZE)})
        receiver = asyncio.create_task(self.receive())
        try:
            while True:
                await self.wake.wait()
                self.wake.clear()
                if self.closed:
                    break
                if self.pending_error is not None:
                    error, self.pending_error = self.pending_error, None
                    await self._send_json({"type": "error", "error": error})
                if self.pending_settings is not None:
                    changes, self.pending_settings = self.pending_settings, None
                    await self._configure(changes)
                if self.pending_frame is not None and not self.closed:
                    data, self.pending_frame = self.pending_frame, None
                    await self._paint(data)
        except (WebSocketDisconnect, ConnectionError):
            pass
        finally:
            receiver.cancel()
            self.closed = True

    def _methods(self) -> list[str]:
        summary = self.service.methods_summary()
        return [m for m in LIVE_METHODS if summary[m]["available"]]

    async def _configure(self, changes: dict[str, Any]) -> None:
        merged = {**self.settings_raw, **changes}
        loop = asyncio.get_running_loop()
        try:
            settings = self._settings(merged)
            await loop.run_in_executor(self.service.live.executor, self.painter.configure, settings)
        except (PainterlyError, HTTPError) as exc:
            await self._send_json({"type": "error", "error": _message(exc)})
            return
        self.settings_raw = merged
        await self._send_json({"type": "settings", "method": settings.method,
                               "style": [s if isinstance(s, str) else "uploaded image"
                                         for s in settings.style],
                               "size": settings.size, **{k: v for k, v in settings.options.items()
                                                         if k not in ("decoder", "model", "device")}})

    def _settings(self, raw: dict[str, Any]) -> LiveSettings:
        """A settings message checked into :class:`LiveSettings`: the method's options by the
        rules of a still request (:func:`~painterly.serve.parsing.parse_options`), the
        server's limits, its models (no client names a file)."""
        service, cfg = self.service, self.service.config
        method = raw.get("method") or ("fast" if "fast" in self._methods() else "adain")
        if method not in LIVE_METHODS:
            raise PainterlyError(f"live mode runs method adain or fast, not {echo(str(method))}")
        status = service.methods_summary()[method]
        if not status["available"]:
            raise PainterlyError(f"method '{method}' is not available on this server: "
                                 f"{status['reason']}")
        size = raw.get("size", DEFAULT_LIVE_SIZE)
        limit = min(cfg.max_size, MAX_LIVE_SIZE)
        if isinstance(size, bool) or not isinstance(size, int) or not MIN_SIDE <= size <= limit:
            raise PainterlyError(f"live size must be a whole number in {MIN_SIDE}..{limit}, got "
                                 f"{echo(str(size))}")
        temporal = raw.get("temporal")
        if temporal is not None and (isinstance(temporal, bool) or not isinstance(temporal, (int, float))
                                     or not 0 <= temporal < 1):
            raise PainterlyError(f"temporal must be a number in [0, 1), got {echo(str(temporal))}")
        options = parse_options({k: v for k, v in raw.items() if k not in STREAM_KEYS})
        weights = options.pop("style_weights", None)
        options.pop("size", None)
        style = raw.get("style") or []
        names = [style] if isinstance(style, str) else style
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or len(names) > 8:
            raise PainterlyError("style must be a style name or a list of at most 8")
        styles: list[Any] = []
        if method == "adain":
            engine = service.adain
            options["network"] = engine.resolve_network(options.get("network"))
            if engine.decoder_path is not None:
                options["decoder"] = engine.decoder_path
            if raw.get("style_image"):
                styles.append(self._style_image(raw["style_image"]))
            for n in names:
                name = n.removeprefix("builtin:")
                if name not in BUILTIN_STYLES:
                    raise PainterlyError(f"unknown built-in style {echo(name)} (choose from "
                                         f"{', '.join(BUILTIN_STYLES)})")
                styles.append(f"builtin:{name}")
            if not styles:
                raise PainterlyError("method 'adain' needs a style (style or style_image)")
        else:
            if raw.get("style_image"):
                raise PainterlyError("method 'fast' takes no style image: its styles are built "
                                     "into the model; name one (style)")
            model = service.fast_model_file(options.get("model"))
            if model is not None:
                options["model"] = model
            styles = [n.removeprefix("builtin:") for n in names]
        options["device"] = cfg.device
        return LiveSettings(method, tuple(styles), tuple(weights) if weights else None,
                            size=size, temporal=None if temporal is None else float(temporal),
                            options=options)

    def _style_image(self, value: Any) -> Any:
        if not isinstance(value, str):
            raise PainterlyError("style_image must be a base64 string")
        try:
            data = base64.b64decode(value.split(",", 1)[-1], validate=True)
        except (binascii.Error, ValueError):
            raise PainterlyError("style_image is not valid base64") from None
        return decode_upload(data, "style image", self.service.config)

    async def _paint(self, data: bytes) -> None:
        service, cfg = self.service, self.service.config
        if not self.painter.ready:
            await self._send_json({"type": "error", "error": "choose a style first (a settings "
                                                             "message)"})
            return
        stamp = FRAME_HEADER.unpack_from(data)[0]
        image = data[FRAME_HEADER.size:]
        try:
            header = probe_upload(image, "camera frame", cfg)
        except (PainterlyError, HTTPError) as exc:
            await self._send_json({"type": "error", "error": _message(exc)})
            return
        side = self.painter.settings.size if self.painter.settings else DEFAULT_LIVE_SIZE
        need = header.pixels * (KEPT_BYTES_PER_PIXEL + DECODE_BYTES_PER_PIXEL) + \
            WORK_BYTES_PER_PIXEL * min(header.pixels, side * side)
        if not await service.memory.acquire(need, cfg.memory_wait):
            await self._send_json({"type": "error", "error": "server busy: no memory for this "
                                                             "frame now (it was dropped)"})
            return
        loop = asyncio.get_running_loop()
        work = loop.run_in_executor(service.live.executor, self._paint_sync, image)
        try:
            try:
                jpeg, model_ms, server_ms = await asyncio.wait_for(asyncio.shield(work),
                                                                   cfg.timeout)
            except TimeoutError:
                await asyncio.wait([work])  # the painter is this stream's: let it finish
                await self._send_json({"type": "error", "error": f"a frame took longer than "
                                                                 f"{cfg.timeout:g} s"})
                raise _Closed(1011) from None
        except (PainterlyError, HTTPError) as exc:
            await self._send_json({"type": "error", "error": _message(exc)})
            return
        except Exception as exc:
            if is_out_of_memory(exc):
                await self._send_json({"type": "error", "error": "out of memory; try a smaller size"})
                return
            log.exception("a live frame failed")
            await self._send_json({"type": "error", "error": "internal server error"})
            return
        finally:
            service.memory.release(need)
        self.frames += 1
        service.live.frames += 1
        await self._send_bytes(PAINTED_HEADER.pack(stamp, model_ms, server_ms, self.dropped)
                               + jpeg)

    def _paint_sync(self, image: bytes) -> tuple[bytes, float, float]:
        """Decode (limits from the header first), paint, encode, on the live thread: the JPEG,
        the network's ms and the whole ms."""
        from PIL import Image

        t0 = time.perf_counter()
        frame = np.asarray(decode_upload(image, "camera frame", self.service.config))
        painted = self.painter(frame)
        model_ms = self.painter.model_seconds[-1] * 1000
        jpeg = encode_image(Image.fromarray(painted), "JPEG", quality=LIVE_JPEG_QUALITY)
        return jpeg, model_ms, (time.perf_counter() - t0) * 1000

    # -- sending, bounded in time: a client that stops reading is closed ---------------------
    async def _send_json(self, payload: dict[str, Any]) -> None:
        await self._send(self.ws.send_text(json.dumps(payload)))

    async def _send_bytes(self, data: bytes) -> None:
        await self._send(self.ws.send_bytes(data))

    async def _send(self, sending: Any) -> None:
        try:
            await asyncio.wait_for(sending, LIVE_SEND_TIMEOUT)
        except TimeoutError:
            log.info("closed a live stream: its client read nothing for %g s", LIVE_SEND_TIMEOUT)
            raise _Closed(1011) from None


class _Closed(Exception):
    """The stream ends with a close code (raised inside :meth:`LiveStream.run`)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _message(exc: BaseException) -> str:
    return brief(exc.message if isinstance(exc, HTTPError) else str(exc))


async def live_socket(ws: WebSocket) -> None:
    """``/live``: accept, refuse past ``--max-live-streams`` (1013, with the reason first), then
    run the stream until the client leaves."""
    service = ws.app.state.service
    await ws.accept()
    hub: LiveHub = service.live
    if not service.ready.is_set():
        await ws.send_json({"type": "error", "error": "models are still loading; retry shortly"})
        await ws.close(1013)
        return
    if not hub.enter():
        await ws.send_json({"type": "error", "error": f"server busy: {hub.open} live streams are "
                                                      f"open, the most this server paints at once "
                                                      f"(--max-live-streams {hub.limit}); try "
                                                      f"again later"})
        await ws.close(1013)
        return
    stream = LiveStream(service, ws)
    t0 = time.perf_counter()
    code = 1000
    try:
        await stream.run()
    except _Closed as exc:
        code = exc.code
    finally:
        hub.leave()
        log.info("live stream ended after %.0f s: %d frames painted, %d dropped",
                 time.perf_counter() - t0, stream.frames, stream.dropped)
    try:
        await ws.close(code)
    except (RuntimeError, WebSocketDisconnect, ConnectionError):
        pass


__all__ = ["FRAME_HEADER", "PAINTED_HEADER", "LiveHub", "LiveStream", "live_socket"]
