"""Command-line interface: parses arguments and calls the library; nothing else lives here.

Each sub-command is a module of this package with ``register(subparsers)``; user mistakes
(:class:`painterly.PainterlyError`) are printed once as ``error: ...`` with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from ..errors import PainterlyError, brief, is_out_of_memory, printable

#: Sub-command modules, in the order ``--help`` lists them.
COMMANDS = ("stylize", "demo", "sweep", "train", "models", "eval", "export", "serve", "video",
            "live")


class Parser(argparse.ArgumentParser):
    """An argument parser whose mistakes are one line (``error: ...``, exit status 2) like every
    other user mistake, pointing at ``--help`` instead of printing the whole usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (sub-commands whose module is missing are left out)."""
    from .. import __version__

    parser = Parser(
        prog="painterly", description="Neural style transfer: Gatys, AdaIN and fast networks.")
    parser.add_argument("--version", action="version", version=f"painterly {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{name}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``painterly`` console script."""
    for stream in (sys.stdout, sys.stderr):  # a file name in a message never breaks the print
        try:
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            pass
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except PainterlyError as exc:
        print(f"error: {printable(brief(str(exc)))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # a training run says where its checkpoint is (exit 130/143)
        print(printable(str(exc) or "interrupted"), file=sys.stderr)
        return int(getattr(exc, "exit_code", 130))
    except (MemoryError, RuntimeError) as exc:  # torch's allocator raises a RuntimeError
        if not is_out_of_memory(exc):
            raise
        print("error: out of memory (make --size or --style-size smaller, or free memory)",
              file=sys.stderr)
        return 2
    except OSError as exc:  # a full or read-only disk under a write: one line naming both
        line = _disk_error(exc)
        if line is None:
            raise
        print(f"error: {printable(line)}", file=sys.stderr)
        return 2


def _disk_error(exc: OSError) -> str | None:
    """``cannot write PATH: no space left on device (the file system at ...)`` for an error of
    the disk itself (full, over quota, read-only); None for any other."""
    import errno

    from ..atomic import NO_SPACE, describe_disk

    if exc.errno not in NO_SPACE | {errno.EROFS}:
        return None
    where = exc.filename or "a file"
    reason = exc.strerror or str(exc)
    if "file system at" not in reason and exc.filename:
        reason = f"{reason} ({describe_disk(exc.filename)})"
    return f"cannot write {where}: {reason}"


def _whole(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _whole(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _whole(text, 0)


def non_negative_float(text: str) -> float:
    """argparse type: a finite float >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite float > 0."""
    value = non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def float_list(text: str) -> list[float]:
    """argparse type: comma-separated non-negative floats."""
    return [non_negative_float(t) for t in text.replace(" ", "").split(",") if t]


def name_list(text: str) -> list[str]:
    """argparse type: comma-separated names."""
    return [t for t in text.replace(" ", "").split(",") if t]
