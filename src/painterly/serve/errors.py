"""How the server says no: :class:`HTTPError` (a status and a message), the two body-guard
signals the ASGI middlewares raise through the app, and the one JSON shape of every error answer.

Every error the server sends is ``{"error": "..."}``; nothing ever answers with a traceback.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse

from ..errors import brief


class HTTPError(Exception):
    """An error answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class BodyTooLarge(Exception):
    """Raised from ``receive()`` once a streamed body passes the upload limit (answered 413)."""


class BodyTimeout(Exception):
    """Raised from ``receive()`` once a body is not complete in time (answered 408, closed)."""


#: The signals above: request handling must let them through to their middleware.
BODY_GUARD_SIGNALS = (BodyTooLarge, BodyTimeout)


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The server's one error shape, ``{"error": message}``, with ``status``."""
    return JSONResponse({"error": brief(message)}, status_code=status, headers=headers)
