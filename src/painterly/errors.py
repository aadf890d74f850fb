"""One error type for user mistakes, shown as a single line by the CLI and the server."""

from __future__ import annotations


class PainterlyError(Exception):
    """A problem with what the user gave us (a file, an option, a value).

    The CLI prints ``error: <message>`` and exits with status 2; the HTTP service answers 400 with
    the message as JSON. Anything else that escapes is a bug in painterly.
    """


def check(condition: bool, message: str) -> None:
    """Raise :class:`PainterlyError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise PainterlyError(message)
