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
  network's milliseconds, a float32 with the live thread's milliseconds for the frame (its
  painting; the decoding and encoding run beside it on a thread of their own: a client paces
  its frames by it), a uint32 with the frames dropped so far, then a JPEG.
* server -> client, **text**: ``{"type": "ready", ...}`` on connecting, ``{"type": "error",
  "error": "..."}`` for a frame or settings that could not be used (the stream goes on), and
  before a close (code 1013 for a server at ``--max-live-streams``, 1008 for a missing token,
  1011 for a frame over the timeout or a client that stopped reading).

Backpressure: the latest frame wins. The receiving task checks each frame (its header: the
image's format and pixels, under the message size of the upload limit) and keeps only the
newest in a one-frame slot; a paint job on the live thread takes it when the thread is free, so
a burst of frames costs one frame of memory and the latency stays that of one frame. A job that
finds another frame waiting queues the next job itself (no round trip through the event loop
between frames). Frames are painted on one thread of their own (streams take turns, a still
request never waits behind them). A stream holds one frame's memory in the server's budget
while it streams, and a frame over the timeout closes it. A client that stops reading gets
at most two more frames painted, held until :data:`~painterly.serve.config.LIVE_SEND_TIMEOUT`,
then the stream is closed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import struct
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
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
#: A painted frame's header: the timestamp, the network's ms, the live thread's ms for the
#: frame (its painting), the frames dropped so far.
PAINTED_HEADER = struct.Struct("<dffI")
#: JPEG quality of the painted frames sent back.
LIVE_JPEG_QUALITY = 85
#: The error for a frame sent before any settings.
NO_STYLE = "choose a style first (a settings message)"
#: Keys of a settings message that are the stream's, not the method's options.
STREAM_KEYS = ("type", "method", "style", "style_image", "size", "temporal")


def _set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


class LiveHub:
    """The server's live streams: how many are open (at most ``limit``), the one thread their
    frames are painted on (at most one paint job per stream queued: they take turns) and the
    one that decodes and encodes their frames."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self.frames = 0
        self.refused = 0
        # Its own torch thread count (per thread): one core is left to the rest of the stream.
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="painterly-live",
                                           initializer=_set_threads, initargs=(live_threads(),))
        # The frames' JPEG decoding and encoding, beside the painting (Pillow lets go of the
        # GIL): a frame is decoded as it arrives and encoded after it is painted, while the
        # live thread paints the next one.
        self.codec = ThreadPoolExecutor(1, thread_name_prefix="painterly-live-codec")

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
    """One client's stream: its painter, the latest frame and settings, the tasks that receive
    and send, and its decode, paint and encode jobs.

    A frame goes from the receiving task to a one-frame slot (``arrived``), is decoded on the
    codec thread into a second (``ready``), painted on the live thread and encoded on the codec
    thread into the outbox the sending task empties; at each slot the newest frame wins. A
    paint job that finds another frame ready queues the next job itself, so a stream that keeps
    the server busy goes from frame to frame without a round trip through the event loop
    (measured at 2.7 ms between frames, median, lite at 384 px beside a browser on 2 cores: 7%
    of the frame). Other streams' jobs and settings changes queue on the same thread between
    them.
    """

    def __init__(self, service: Any, ws: WebSocket) -> None:
        self.service = service
        self.ws = ws
        self.loop = asyncio.get_running_loop()
        self.painter = LivePainter()
        self.settings_raw: dict[str, Any] = {}
        self.pending_settings: dict[str, Any] | None = None
        self.pending_error: str | None = None
        self.wake = asyncio.Event()
        self.closed = False
        self.dropped = 0
        self.frames = 0
        # Shared with the live and codec threads, under the lock: the two slots and whether a
        # decode or paint job is queued or running, the painted frames and errors not yet sent
        # (at most two painted frames: a client that stops reading stops the jobs), and when the
        # running paint job began.
        self.lock = threading.Lock()
        self.arrived: tuple[float, bytes] | None = None  # the newest frame, not yet decoded
        self.decoding = False  # a decode job is queued or running
        self.ready: tuple[float, np.ndarray] | None = None  # the newest decoded, not yet painted
        self.scheduled = False
        self.outbox: deque[bytes | str] = deque()
        self.unsent = 0
        self.painting_since: float | None = None
        self.job: Future | None = None
        self.configuring = False
        #: Bytes of the server's memory budget this stream holds: one frame's, while it streams.
        self.reserved = 0

    # -- receiving: never blocks on the painter ---------------------------------------------
    async def receive(self) -> None:
        try:
            while True:
                msg = await self.ws.receive()
                if msg["type"] == "websocket.disconnect":
                    break
                data, text = msg.get("bytes"), msg.get("text")
                if data is not None:
                    await self._take_frame(data)
                elif text is not None:
                    self._take_settings(text)
                self.wake.set()
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            self.closed = True
            self.wake.set()

    async def _take_frame(self, data: bytes) -> None:
        """Check a frame (its header, the image's format and pixels), hold one frame's memory
        for the stream, and put it in the slot (the one it replaces is dropped)."""
        cfg = self.service.config
        if len(data) <= FRAME_HEADER.size:
            self.pending_error = ("a frame is 8 bytes of timestamp followed by an image (JPEG, "
                                  "PNG or WebP)")
            return
        if not self.painter.ready and not self.configuring and self.pending_settings is None:
            self.pending_error = NO_STYLE
            return
        image = data[FRAME_HEADER.size:]
        try:
            header = probe_upload(image, "camera frame", cfg)
        except (PainterlyError, HTTPError) as exc:
            self.pending_error = _message(exc)
            return
        side = self.painter.settings.size if self.painter.settings else DEFAULT_LIVE_SIZE
        painted = min(header.pixels, side * side)
        # one frame decoded and painted, plus the pipeline's RGB copies: the next frame decoded
        # while one paints, and two painted frames being encoded
        need = header.pixels * (KEPT_BYTES_PER_PIXEL + DECODE_BYTES_PER_PIXEL + 3) + \
            (WORK_BYTES_PER_PIXEL + 6) * painted
        if need > self.reserved:  # a larger frame than before: hold its memory instead
            if not await self.service.memory.acquire(need - self.reserved, cfg.memory_wait):
                self.pending_error = "server busy: no memory for this frame now (it was dropped)"
                return
            self.reserved = need
        with self.lock:
            if self.arrived is not None:
                self.dropped += 1
            self.arrived = (FRAME_HEADER.unpack_from(data)[0], image)
            start = not self.decoding
            self.decoding = True
        if start:
            self._submit_decode()

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

    # -- painting: on the live thread, the newest frame, job after job -----------------------
    def _may_paint(self) -> bool:
        """Whether a waiting frame may be painted now (under the lock): the stream is open, its
        painter has settings and none are about to change, and the client reads what it gets
        (at most two painted frames unsent)."""
        return (self.ready is not None and not self.closed and self.painter.ready
                and not self.configuring and self.pending_settings is None and self.unsent < 2)

    def _claim_paint(self) -> bool:
        """Under the lock: whether to queue a paint job now (a frame may be painted and no job
        is queued), marking one queued if so; the caller then calls :meth:`_submit`."""
        start = not self.scheduled and self._may_paint()
        self.scheduled = self.scheduled or start
        return start

    def _submit_decode(self) -> None:
        """Queue a decode job on the codec thread (the caller set ``decoding``)."""
        try:
            self.service.live.codec.submit(self._decode_job)
        except RuntimeError:  # the server is shutting down
            with self.lock:
                self.decoding = False

    def _decode_job(self) -> None:
        """Decode the newest frame that arrived into the slot the paint jobs take from (the
        one it replaces there is dropped), and queue a paint job if none is."""
        with self.lock:
            item, self.arrived = self.arrived, None
            if item is None or self.closed:
                self.decoding = False
                return
        stamp, image = item
        try:
            frame = np.asarray(decode_upload(image, "camera frame", self.service.config))
        except Exception as exc:
            frame, error = None, _failure(exc)
        with self.lock:
            if frame is not None:
                if self.ready is not None:
                    self.dropped += 1
                self.ready = (stamp, frame)
            start = self._claim_paint()
            again = self.arrived is not None and not self.closed
            self.decoding = again
        if frame is None:
            self._deliver(error)
        if start:
            self._submit()
        if again:
            self._submit_decode()

    def _submit(self) -> None:
        """Queue a paint job (the caller set ``scheduled``)."""
        try:
            self.job = self.service.live.executor.submit(self._job)
        except RuntimeError:  # the server is shutting down
            with self.lock:
                self.scheduled = False

    def _job(self) -> None:
        """Paint the newest frame, hand the result to the event loop, and queue the next job
        if a frame is waiting and the client is reading (else the event loop will)."""
        with self.lock:
            item, self.ready = self.ready, None
            if item is None or self.closed:
                self.scheduled = False
                return
            self.painting_since = time.monotonic()
        stamp, frame = item
        t0 = time.perf_counter()
        error: str | None = None
        try:
            painted = self.painter(frame)
            model_ms = self.painter.model_seconds[-1] * 1000
        except Exception as exc:
            error = _failure(exc)
        server_ms = (time.perf_counter() - t0) * 1000
        with self.lock:
            self.painting_since = None
            if error is None:
                self.unsent += 1  # counted now: the encoding below is on its way to the outbox
            self.scheduled = False
            again = self._claim_paint()
        if again:
            self._submit()
        if error is not None:
            self._deliver(error)
            return
        try:
            self.service.live.codec.submit(self._encode, painted, stamp, model_ms, server_ms)
        except RuntimeError:  # the server is shutting down
            pass

    def _encode(self, painted: np.ndarray, stamp: float, model_ms: float, server_ms: float) -> None:
        """A painted frame as the client gets it (on the codec thread), into the outbox."""
        from PIL import Image

        try:
            jpeg = encode_image(Image.fromarray(painted), "JPEG", quality=LIVE_JPEG_QUALITY)
        except Exception as exc:
            with self.lock:
                self.unsent -= 1
            self._deliver(_failure(exc))
            return
        self._deliver(PAINTED_HEADER.pack(stamp, model_ms, server_ms, self.dropped) + jpeg)

    def _deliver(self, message: bytes | str) -> None:
        """Hand a painted frame (bytes) or an error (text) to the sending task."""
        with self.lock:
            self.outbox.append(message)
        try:
            self.loop.call_soon_threadsafe(self.wake.set)
        except RuntimeError:  # the event loop is gone (the server stopped)
            pass

    def _resume(self) -> None:
        """Queue a paint job for a waiting frame when none is queued (after settings changed or
        the client read what was painted)."""
        with self.lock:
            start = self._claim_paint()
            orphan = (self.ready is not None and not self.painter.ready and not self.configuring
                      and self.pending_settings is None)
            if orphan:  # its settings failed: there is nothing to paint it with
                self.ready = None
        if start:
            self._submit()
        if orphan:
            self.pending_error = NO_STYLE
            self.wake.set()

    # -- the stream's own task: settings, errors and sending ---------------------------------
    async def run(self) -> None:
        cfg = self.service.config
        await self.ws.send_json({"type": "ready", "methods": list(self._methods()),
                                 "builtin_styles": list(BUILTIN_STYLES),
                                 "default_size": DEFAULT_LIVE_SIZE,
                                 "max_size": min(cfg.max_size, MAX_LIVE_SIZE)})
        receiver = asyncio.create_task(self.receive())
        try:
            while True:
                try:
                    await asyncio.wait_for(self.wake.wait(), min(1.0, cfg.timeout))
                except TimeoutError:
                    pass
                self.wake.clear()
                if self.closed:
                    break
                await self._check_timeout()
                if self.pending_error is not None:
                    error, self.pending_error = self.pending_error, None
                    await self._send_json({"type": "error", "error": error})
                if self.pending_settings is not None:
                    changes, self.pending_settings = self.pending_settings, None
                    await self._configure(changes)
                await self._flush()
                self._resume()
        except (WebSocketDisconnect, ConnectionError):
            pass
        finally:
            receiver.cancel()
            await asyncio.gather(receiver, return_exceptions=True)
            with self.lock:
                self.closed = True
                self.arrived = self.ready = None
                job = self.job
            if job is not None:  # the memory is the running frame's until it is done
                await asyncio.wait([asyncio.wrap_future(job)])
            try:  # and the decoding and encoding queued before the close
                await asyncio.wrap_future(self.service.live.codec.submit(int))
            except RuntimeError:  # the server is shutting down
                pass
            self.service.memory.release(self.reserved)
            self.reserved = 0

    async def _check_timeout(self) -> None:
        """Close the stream when a frame has been painting for longer than the timeout."""
        cfg = self.service.config
        since = self.painting_since
        if since is None or time.monotonic() - since <= cfg.timeout:
            return
        await self._send_json({"type": "error", "error": f"a frame took longer than "
                                                         f"{cfg.timeout:g} s"})
        raise _Closed(1011)

    async def _flush(self) -> None:
        """Send what the jobs painted (and their errors), in order."""
        while True:
            with self.lock:
                if not self.outbox:
                    return
                message = self.outbox.popleft()
            if isinstance(message, str):
                await self._send_json({"type": "error", "error": message})
                continue
            try:
                await self._send_bytes(message)
            finally:
                with self.lock:
                    self.unsent -= 1
            self.frames += 1
            self.service.live.frames += 1

    def _methods(self) -> list[str]:
        summary = self.service.methods_summary()
        return [m for m in LIVE_METHODS if summary[m]["available"]]

    async def _configure(self, changes: dict[str, Any]) -> None:
        merged = {**self.settings_raw, **changes}
        try:
            settings = self._settings(merged)
        except (PainterlyError, HTTPError) as exc:
            await self._send_json({"type": "error", "error": _message(exc)})
            return
        self.configuring = True  # no new paint job until the painter has the new settings
        try:
            await asyncio.wrap_future(self.service.live.executor.submit(self.painter.configure,
                                                                        settings))
        except (PainterlyError, HTTPError) as exc:
            await self._send_json({"type": "error", "error": _message(exc)})
            return
        finally:
            self.configuring = False
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


def _failure(exc: BaseException) -> str:
    """What a client is told of a frame that failed: the reason for a bad frame or option,
    the memory for an out-of-memory error, and no more for a bug (logged here)."""
    if isinstance(exc, (PainterlyError, HTTPError)):
        return _message(exc)
    if is_out_of_memory(exc):
        return "out of memory; try a smaller size"
    log.error("a live frame failed", exc_info=exc)
    return "internal server error"


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
