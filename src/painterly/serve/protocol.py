"""Connection-level timeouts for uvicorn, so a slow client cannot hold a connection or a worker.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but waits for ever on a client
that sends its request headers a byte at a time (slowloris). :func:`protocol_class` returns
uvicorn's h11 protocol with a *header timeout*: from the moment a connection opens (or, on a
kept-alive connection, from the first byte of the next request) the whole header block must
arrive within ``header_timeout`` seconds, else the server answers ``408`` and closes the
connection. The request *body* has its own deadline, enforced in the app
(:class:`painterly.serve.middleware.BodyTimeoutMiddleware`), so the 408 there is a normal JSON answer.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("painterly.serve")


def timeout_response(message: str) -> bytes:
    """A complete ``408`` HTTP/1.1 answer with a JSON body that closes the connection."""
    body = json.dumps({"error": message}).encode()
    return (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body)


class HeaderTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol; a request whose headers take over ``header_timeout`` s is dropped."""

    header_timeout: float = 10.0

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        self._header_timer: Any = None
        super().connection_made(transport)
        self._arm_header_timer()

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._header_timed_out)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def data_received(self, data: bytes) -> None:
        # The first bytes of a new request on a kept-alive connection start its header clock.
        if self._between_requests():
            self._arm_header_timer()
        super().data_received(data)

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not before:  # a request's headers are complete: its cycle has started
            self._cancel_header_timer()

    def handle_websocket_upgrade(self, event: Any) -> None:
        # The connection becomes a WebSocket (the live stream): no more request headers come, so
        # the header clock stops here, or it would close a stream a few seconds in.
        self._cancel_header_timer()
        self._upgraded = True
        super().handle_websocket_upgrade(event)

    def on_response_complete(self) -> None:
        self._cancel_header_timer()  # idle until the next request: uvicorn's keep-alive timeout
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if getattr(self, "_upgraded", False) or self.transport.is_closing() or \
                not self._between_requests():
            return
        peer = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
        log.info("closed the connection from %s: no complete request headers within %g s", peer,
                 self.header_timeout)
        try:
            self.transport.write(timeout_response(
                f"request headers not received within {self.header_timeout:g} s"))
        finally:
            self.transport.close()


def protocol_class(header_timeout: float) -> type[H11Protocol]:
    """uvicorn's ``http=`` protocol with this header timeout (seconds)."""
    if not header_timeout > 0:
        raise ValueError("header_timeout must be positive")
    return type("PainterlyH11Protocol", (HeaderTimeoutH11Protocol,),
                {"header_timeout": float(header_timeout)})


def uvicorn_options(config: Any) -> dict[str, Any]:
    """The ``uvicorn.Config`` options a :class:`~painterly.serve.config.ServeConfig` sets: the
    header-timeout protocol, the keep-alive timeout (the body timeout lives in the app), the
    largest WebSocket message (the upload limit: a live frame is an upload) and TLS."""
    options: dict[str, Any] = {"http": protocol_class(config.header_timeout),
                               "timeout_keep_alive": config.keep_alive_timeout,
                               "ws_max_size": int(config.max_upload_mb * 1e6),
                               "ws_max_queue": 4}
    if getattr(config, "ssl_certfile", None):
        options.update(ssl_certfile=config.ssl_certfile, ssl_keyfile=config.ssl_keyfile)
    return options


__all__ = ["HeaderTimeoutH11Protocol", "protocol_class", "timeout_response", "uvicorn_options"]
