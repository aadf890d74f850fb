"""One error type for user mistakes, shown as a single line by the CLI and the server."""

from __future__ import annotations


class PainterlyError(Exception):
    """A problem with what the user gave us (a file, an option, a value).

    The CLI prints ``error: <message>`` and exits with status 2; the HTTP service answers 400 with
    the message as JSON. Anything else that escapes is a bug in painterly.
    """


#: Longest piece of a user's value an error message repeats (a 16 MB field must not come back).
ECHO_LIMIT = 64


def echo(value: object) -> str:
    """``repr(value)`` for an error message, cut to :data:`ECHO_LIMIT` characters."""
    text = repr(value)
    return text if len(text) <= ECHO_LIMIT else f"{text[: ECHO_LIMIT - 3]}..."


#: Longest error message the CLI prints or the server sends (a net under :func:`echo`: a message
#: that repeats a value some check forgot to cut still cannot come back a megabyte long).
MESSAGE_LIMIT = 1000


def brief(message: str) -> str:
    """``message`` cut to :data:`MESSAGE_LIMIT` characters."""
    return message if len(message) <= MESSAGE_LIMIT else f"{message[: MESSAGE_LIMIT - 3]}..."


#: What torch's allocators say when memory runs out (a RuntimeError, not a MemoryError).
OUT_OF_MEMORY_WORDS = ("can't allocate memory", "out of memory", "not enough memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is running out of memory: a MemoryError, or torch's allocator error."""
    if isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(w in text for w in OUT_OF_MEMORY_WORDS)


def check(condition: bool, message: str) -> None:
    """Raise :class:`PainterlyError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise PainterlyError(message)


def printable(text: str) -> str:
    """``text`` as one printable line in any terminal encoding: bytes of a file name that are not
    valid UTF-8 (which Python keeps as surrogates) become ``\\xNN``, line breaks and other
    control characters their escapes, so a message naming any file stays one line."""
    try:
        out = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that is no file-name byte
        out = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if not out.isprintable():
        out = "".join(c if c.isprintable() else repr(c)[1:-1] for c in out)
    return out
