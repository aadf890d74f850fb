"""The option schema: how one option is declared, checked and converted.

An :class:`Option` is one option's rule: its kind (``int``, ``float``, ``choice``...), default,
range or choices, help text, and where it may come from (a command-line flag, a field of the HTTP
API with the server's tighter :class:`Limit`, the ONNX backend). Each method's stylize options are
a dataclass whose fields are declared with :func:`option` (see :mod:`painterly.options`); the CLI's
arguments, the server's parsing and OpenAPI fields, sweep's keys and the ONNX backend's options
are all derived from those declarations, and every value from any of them passes the same
:meth:`Option.check`. The training options are declared the same way
(:mod:`painterly.train_options`: ``painterly train``'s flags and its ``--loss-config`` keys).

Plain Python only (no torch, no PIL): the ONNX backend and the CLI's argument parser import it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields, replace
from functools import cache
from typing import Any, ClassVar

from .errors import PainterlyError, echo

#: What an option's value is: a whole number, a finite number, one of ``choices``, a list of
#: numbers, of whole numbers (``length`` of them, if given) or of names (a list or comma-separated
#: text), free text, a yes/no flag, or any object (a file name or an in-memory network, an image,
#: a device).
KINDS = ("int", "float", "choice", "floats", "ints", "names", "text", "flag", "value")
#: The kinds whose value is a list.
LIST_KINDS = ("floats", "ints", "names")
#: Largest whole number any option takes (a torch size or index is a signed 64-bit integer).
INT_MAX = 2**63 - 1
#: Longest digit string read as a number: ``int()`` of a huge one is slow, and no option needs one.
MAX_DIGITS = 40
_NAME = re.compile(r"[A-Za-z0-9_]+")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class OptionError(PainterlyError):
    """A bad option value: ``str()`` is the one-line message; ``reason`` is the same without the
    option's name, for a front end that names the option itself (``argument --lr: ...``)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Limit:
    """A tighter rule the HTTP server applies to an option it accepts (the library's stays as
    declared): a narrower range, fewer choices, or a pattern with its own refusal."""

    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    pattern: str | None = None
    message: str = ""


@dataclass(frozen=True)
class Option:
    """One option's rule; ``name`` is its dataclass field's (filled by :func:`options_of`)."""

    name: str = ""
    kind: str = "text"
    help: str = ""
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    positive: bool = False  # a number > minimum (0 unless given), not >=
    choices: tuple[str, ...] = ()
    label: str = ""  # words for a bad choice ("color preservation mode"); default: the name
    empty: tuple[str, ...] = ()  # words meaning "none" for a choice ("none" for preserve_color)
    empty_value: Any = None  # what an ``empty`` word gives (None; "" for a training option)
    length: int | None = None  # ints: exactly this many
    cli: bool = True  # a command-line flag (`painterly stylize`; `painterly train`: listed in --help)
    cli_name: str = ""  # the flag's name where it is not the option's ("style" for styles)
    group: str = ""  # the --help group of a training option's flag
    http: bool = False  # a field of the HTTP API
    server: Limit | None = None  # the server's tighter rule (with http)
    onnx: bool = False  # honored by the ONNX backend
    file: bool = False  # may name an input file (never written over)
    repeat: bool = False  # a CLI flag given once per value (--mask A --mask B)
    metavar: str | None = None

    @property
    def flag(self) -> str:
        """The CLI flag: ``--style-size`` for ``style_size`` (``cli_name`` where given)."""
        return "--" + (self.cli_name or self.name).replace("_", "-")

    def check(self, value: Any, server: bool = False) -> Any:
        """``value`` (a Python value, or the text of a flag, form field or query parameter)
        checked and converted; None or blank text gives the default. ``server``: apply the
        server's :class:`Limit` too."""
        if value is None or (isinstance(value, str) and not value.strip()):
            return self.default
        if isinstance(value, str):
            value = value.strip()
        out = _CHECKS[self.kind](self, value)
        if server and self.server is not None:
            _check_limit(self, self.server, out)
        return out

    def fail(self, reason: str, message: str | None = None) -> OptionError:
        """The error for a bad value: ``message`` or "<name> <reason>"."""
        return OptionError(message or f"{self.name} {reason}", reason)


def option(default: Any = None, **rule: Any) -> Any:
    """A dataclass field declaring one option: its default and the :class:`Option` rule. A list
    default gives each object its own copy (the rule keeps it as a tuple)."""
    if rule.get("kind", "text") not in KINDS:
        raise ValueError(f"unknown option kind {rule['kind']!r}")
    if isinstance(default, list):
        frozen = tuple(default)
        return field(default_factory=lambda: list(frozen),
                     metadata={"option": Option(default=frozen, **rule)})
    return field(default=default, metadata={"option": Option(default=default, **rule)})


@cache
def options_of(cls: type) -> tuple[Option, ...]:
    """The options an options dataclass declares, in field order, each with its name."""
    return tuple(replace(f.metadata["option"], name=f.name) for f in fields(cls) if "option" in f.metadata)


class MethodOptions:
    """Base of the per-method options dataclasses: every field is an option, checked (and
    converted: ``"64"`` -> 64) when the object is built, so a stylizer given one can trust it."""

    #: The method these options are for (``"adain"``...), for messages.
    method: ClassVar[str] = ""
    #: A few words on the method, for the title of its group of CLI flags.
    summary: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for opt in options_of(type(self)):
            setattr(self, opt.name, opt.check(getattr(self, opt.name)))

    def as_dict(self) -> dict[str, Any]:
        """Option name -> value (a shallow view: for run records and for building a copy)."""
        return {o.name: getattr(self, o.name) for o in options_of(type(self))}


# ----------------------------------------------------------------------------------------------
# Value checks, one per kind


def _show(x: float) -> str:
    """A bound for a message: ``2**63 - 1`` rather than 9223372036854775807."""
    for k in (63, 64):
        for v, text in ((2**k, f"2**{k}"), (2**k - 1, f"2**{k} - 1"), (-(2**k), f"-2**{k}")):
            if x == v:
                return text
    return f"{x:g}" if isinstance(x, float) else str(x)


def _whole(opt: Option, v: Any) -> int:
    if isinstance(v, bool):
        raise opt.fail(f"must be a whole number, got {echo(v)}")
    if isinstance(v, int):
        x = v
    else:
        text = str(v)
        if len(text) > MAX_DIGITS:
            raise opt.fail(f"must be a whole number, got {len(text)} characters")
        try:
            x = int(text)
        except ValueError:
            try:
                f = float(text)
            except (TypeError, ValueError):
                raise opt.fail(f"must be a whole number, got {echo(v)}") from None
            if not math.isfinite(f) or f != int(f):
                raise opt.fail(f"must be a whole number, got {echo(v)}") from None
            x = int(f)
    lo, hi = opt.minimum, opt.maximum
    if lo is not None and hi is not None and not lo <= x <= hi:
        raise opt.fail(f"must be between {_show(lo)} and {_show(hi)}, got {x}")
    if lo is not None and x < lo:
        raise opt.fail(f"must be at least {_show(lo)}, got {x}")
    if x > (INT_MAX if hi is None else hi):
        raise opt.fail(f"must be at most {_show(INT_MAX if hi is None else hi)}, got {x}")
    return x


def _range_words(lo: float | None, hi: float | None, positive: bool) -> str:
    if lo is not None and hi is not None:
        return f" in [{_show(lo)}, {_show(hi)}]"
    if positive:
        return f" > {_show(lo)}"
    return f" >= {_show(lo)}" if lo is not None else ""


def _number(opt: Option, v: Any) -> float:
    if isinstance(v, bool):
        raise opt.fail(f"must be a number, got {echo(v)}")
    try:
        x = float(v)
    except (TypeError, ValueError, OverflowError):
        raise opt.fail(f"must be a number, got {echo(v)}") from None
    lo, hi = opt.minimum, opt.maximum
    floor = 0.0 if lo is None and opt.positive else lo
    low = floor is not None and (x <= floor if opt.positive else x < floor)
    if not math.isfinite(x) or low or (hi is not None and x > hi):
        raise opt.fail(f"must be a finite number{_range_words(floor, hi, opt.positive)}, got {x:g}")
    return x


def _choice(opt: Option, v: Any) -> str | None:
    s = str(v).lower()
    if s in opt.empty:
        return opt.empty_value
    if s not in opt.choices:
        what = opt.label or opt.name
        where = f"{opt.name}: " if opt.label else ""
        raise opt.fail(f"invalid choice: {echo(str(v))} (choose from {', '.join(opt.choices)})",
                       f"unknown {what} {echo(v)} ({where}choose from {', '.join(opt.choices)})")
    return s


def _items(v: Any) -> list[Any]:
    if isinstance(v, (list, tuple)):
        return list(v)
    return [t for t in str(v).replace(" ", "").split(",") if t]


def _numbers(opt: Option, v: Any) -> list[float]:
    out = []
    for t in _items(v):
        try:
            x = float(t) if not isinstance(t, bool) else math.nan
        except (TypeError, ValueError):
            raise opt.fail(f"must be comma-separated numbers, got {echo(v)}") from None
        if not math.isfinite(x) or (opt.minimum is not None and x < opt.minimum):
            raise opt.fail(f"must be finite numbers{_range_words(opt.minimum, None, False)}, got {echo(t)}")
        out.append(x)
    return out


_COUNTS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}


def _integers(opt: Option, v: Any) -> list[int]:
    """Whole numbers in [minimum, maximum], ``length`` of them if given; none at all is the
    empty list (an option's "not given")."""
    items = _items(v)
    if not items:
        return []
    out = []
    for t in items:
        try:
            x = int(t) if isinstance(t, int) and not isinstance(t, bool) else int(str(t).strip())
        except ValueError:
            x = None
        if isinstance(t, bool) or x is None or (opt.minimum is not None and x < opt.minimum) or (
                opt.maximum is not None and x > opt.maximum):
            out = None
            break
        out.append(x)
    if out is None or (opt.length is not None and len(out) != opt.length):
        count = _COUNTS.get(opt.length, str(opt.length)) + " " if opt.length else ""
        words = ("positive integers" if opt.minimum == 1 else
                 f"integers >= {_show(opt.minimum)}" if opt.minimum is not None else "integers")
        if opt.maximum is not None:
            words += f" (at most {_show(opt.maximum)})"
        text = ",".join(str(t) for t in items) if isinstance(v, (list, tuple)) else str(v)
        reason = f"{echo(text)} is not {count}{words}"
        raise opt.fail(reason, f"{opt.name}: {reason}")
    return out


def _names(opt: Option, v: Any) -> list[str]:
    out = [str(t).strip() for t in _items(v)]
    if not out or any(not _NAME.fullmatch(t) for t in out):
        raise opt.fail(f"must be one or more comma-separated names (letters, digits, _), got {echo(v)}")
    return out


def _flag(opt: Option, v: Any) -> bool:
    if not isinstance(v, str):
        return bool(v)
    if v.lower() in _TRUE + _FALSE:
        return v.lower() in _TRUE
    raise opt.fail(f"must be true or false, got {echo(v)}")


_CHECKS = {
    "int": _whole, "float": _number, "choice": _choice, "floats": _numbers, "ints": _integers,
    "names": _names,
    "text": lambda opt, v: str(v), "flag": _flag, "value": lambda opt, v: v,
}


def _check_limit(opt: Option, limit: Limit, value: Any) -> None:
    """The server's tighter rule on an already checked value."""
    lo, hi = limit.minimum, limit.maximum
    if isinstance(value, (int, float)) and not isinstance(value, bool) and (
            (lo is not None and value < lo) or (hi is not None and value > hi)):
        if lo is not None and hi is not None:
            words = f"in [{_show(lo)}, {_show(hi)}]"
        else:
            words = f"at least {_show(lo)}" if lo is not None else f"at most {_show(hi)}"
        raise opt.fail(f"must be {words} on this server, got {_show(value)}")
    if limit.choices is not None and value not in limit.choices:
        raise opt.fail(f"must be one of {', '.join(limit.choices)} on this server, got {echo(value)}")
    if limit.pattern is not None and not re.fullmatch(limit.pattern, str(value)):
        raise opt.fail(f"is not allowed on this server: {echo(value)}", limit.message or None)
