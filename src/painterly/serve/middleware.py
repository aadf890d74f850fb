"""Pure-ASGI guards on request bodies: a size limit (413) and a deadline (408 and close).

Both work the same way: they wrap ``receive`` to watch the body arrive and raise their signal
(:class:`~painterly.serve.errors.BodyTooLarge`, :class:`~painterly.serve.errors.BodyTimeout`)
through the app, and wrap ``send`` in a :class:`ResponseTracker` so that, when the signal comes
back out, they answer with JSON only if the app had not started a response of its own. The
header deadline is enforced one level lower, in uvicorn's protocol
(:mod:`painterly.serve.protocol`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from .errors import BodyTimeout, BodyTooLarge

log = logging.getLogger("painterly.serve")


class ResponseTracker:
    """An ASGI ``send`` that passes every message on and remembers whether a response started.

    A guard may answer with its own status only while ``started`` is False: once the app has sent
    ``http.response.start``, a second start would be a protocol error.
    """

    def __init__(self, send: Any) -> None:
        self._send = send
        self.started = False

    async def __call__(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


async def send_json_error(send: Any, status: int, message: str,
                          headers: tuple[tuple[bytes, bytes], ...] = ((b"connection", b"close"),)
                          ) -> None:
    """A whole ``{"error": message}`` answer with ``status`` (by default one that asks to close
    the connection)."""
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


class BodyTimeoutMiddleware:
    """The whole request body must arrive within ``seconds`` of the request's start, else ``408``
    (JSON) and the connection is closed. Once the body is complete, ``receive()`` is passed
    through untimed (it then only reports a disconnect)."""

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

        tracker = ResponseTracker(send)
        try:
            await self.app(scope, timed_receive, tracker)
        except BodyTimeout:
            client = scope.get("client")
            log.info("closed the connection from %s: request body not received within %g s",
                     f"{client[0]}:{client[1]}" if client else "a client", self.seconds)
            if not tracker.started:
                await send_json_error(send, 408, f"request body not received within {self.seconds:g} s")


class BodyLimitMiddleware:
    """``413`` as soon as a request body passes ``max_bytes``, declared (``content-length``) or
    streamed (chunked, or a client that sends more than it declared)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _reject(self, send: Any) -> None:
        await send_json_error(send, 413, f"request body too large (limit {self.max_bytes / 1e6:.1f} MB)")

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

        async def limited_receive() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge()
            return message

        tracker = ResponseTracker(send)
        try:
            await self.app(scope, limited_receive, tracker)
        except BodyTooLarge:
            if not tracker.started:
                await self._reject(send)


#: Paths a token guards: the API and the live socket. ``/ping`` and ``/invocations`` stay open,
#: as SageMaker expects (its endpoint does the authentication); ``/`` and ``/static`` are the
#: page itself, which holds no data.
GUARDED_PREFIXES = ("/v1/", "/live")


class TokenMiddleware:
    """``--token``: a request to a guarded path must carry ``Authorization: Bearer TOKEN`` (or
    ``?token=TOKEN``, for what a browser cannot give a header: image tags, WebSockets), compared
    in constant time; else ``401`` (HTTP) or a close with code 1008 (WebSocket)."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.token = token.encode()

    def _given(self, scope: dict) -> bytes:
        for key, value in scope.get("headers", []):
            if key == b"authorization" and value[:7].lower() == b"bearer ":
                return value[7:].strip()
        from urllib.parse import parse_qs

        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        return query.get("token", [""])[0].encode("latin-1", "replace")

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        import hmac

        if scope["type"] not in ("http", "websocket") or \
                not scope.get("path", "").startswith(GUARDED_PREFIXES) or \
                hmac.compare_digest(self._given(scope), self.token):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await send_json_error(send, 401, "missing or wrong token: send 'Authorization: Bearer "
                                         "TOKEN' (the token the server was started with)",
                              ((b"www-authenticate", b'Bearer realm="painterly"'),))
