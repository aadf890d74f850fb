"""``painterly sweep``: a grid of Gatys runs from a TOML/YAML file and/or flags.

Every flag is derived from the Gatys option declarations (:class:`painterly.options.GatysOptions`):
the grid axes (:data:`painterly.sweep.GRID_AXES`) take several values each, checked one by one by
the option's own rule; every other option a sweep may set is a fixed flag, as in ``painterly
stylize``.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..schema import Option, OptionError


def axis_flag(opt: Option) -> str:
    """A grid axis's flag: the option's flag for a list option (``--content-layers``, sets
    separated by ';'), its plural otherwise (``--optimizers``, ``--sizes``)."""
    return opt.flag if _is_list(opt) else opt.flag + "s"


def _is_list(opt: Option) -> bool:
    return opt.kind in ("names", "floats")


def _axis_type(opt: Option) -> Any:
    """argparse ``type=`` of an axis: its values (';'-separated sets for a list option, else
    ','-separated), each checked by the option's rule."""
    sep = ";" if _is_list(opt) else ","

    def convert(text: str) -> list[Any]:
        try:
            values = [opt.check(v) for v in text.split(sep) if v.strip()]
        except OptionError as exc:
            raise argparse.ArgumentTypeError(exc.reason) from None
        if not values:
            raise argparse.ArgumentTypeError("no values")
        return values

    convert.__name__ = f"{opt.kind} values"
    return convert


def _axis_option(name: str) -> Option:
    from ..options import GatysOptions
    from ..schema import options_of

    return next(o for o in options_of(GatysOptions) if o.name == name)


def fixed_options() -> tuple[Option, ...]:
    """The Gatys options that are fixed flags of ``painterly sweep``."""
    from ..options import GatysOptions
    from ..schema import options_of
    from ..sweep import _FORBIDDEN, GRID_AXES

    return tuple(o for o in options_of(GatysOptions)
                 if o.cli and o.name not in GRID_AXES and o.name not in _FORBIDDEN)


def register(sub: argparse._SubParsersAction) -> None:
    from ..sweep import GRID_AXES
    from .stylize import add_option_flag

    p = sub.add_parser(
        "sweep", help="compare Gatys settings: a grid of runs, results table, plot, contact sheet",
        description="Run every combination of the given Gatys settings and write results.csv, "
                    "results.md, losses.png, contact_sheet.png and per-run records into -o. "
                    "Settings come from FILE (.toml/.yaml; see docs/GATYS.md) and/or flags; "
                    "flags override the file.")
    p.add_argument("file", nargs="?", default=None, help="sweep file (.toml, .yaml)")
    p.add_argument("-o", "--output", required=True, help="output folder (must not hold results)")
    p.add_argument("--content", default=None, help="content image or builtin:NAME")
    p.add_argument("--style", action="append", default=None, help="style image; repeat to blend")
    p.add_argument("--name", default=None, help="title of the tables and plots")
    g = p.add_argument_group("grid axes (each value is one run: ',' between values, ';' between "
                             "layer sets)")
    for name in GRID_AXES:
        opt = _axis_option(name)
        g.add_argument(axis_flag(opt), dest=f"axis_{name}", type=_axis_type(opt), default=None,
                       metavar="V1;V2" if _is_list(opt) else "V1,V2",
                       help=f"{opt.help} (one run per value)")
    f = p.add_argument_group("fixed settings")
    for opt in fixed_options():
        add_option_flag(f, opt)
    p.set_defaults(func=run)


def build_spec_dict(args: argparse.Namespace) -> dict[str, Any]:
    """Merge the sweep file (if any) with the flags (flags win)."""
    from ..errors import PainterlyError
    from ..sweep import GRID_AXES, _read_file

    data: dict[str, Any] = {}
    if args.file:
        from pathlib import Path

        data = _read_file(Path(args.file))
    elif not args.content or not args.style:
        raise PainterlyError("give a sweep FILE, or --content and --style with grid flags")
    data.setdefault("grid", {})
    data.setdefault("options", {})
    if not isinstance(data["grid"], dict) or not isinstance(data["options"], dict):
        raise PainterlyError(f"{args.file}: 'grid' and 'options' must be tables")
    if args.content:
        data["content"] = args.content
    if args.style:
        data["style"] = args.style
    if args.name:
        data["name"] = args.name
    for key in GRID_AXES:
        value = getattr(args, f"axis_{key}")
        if value is not None:
            data["grid"][key] = value
            data["options"].pop(key, None)
            data.pop(key, None)
    for opt in fixed_options():
        value = getattr(args, opt.name)
        if value is not None:
            data["options"][opt.name] = value
            data["grid"].pop(opt.name, None)
            data.pop(opt.name, None)
    return data


def run(args: argparse.Namespace) -> int:
    from ..sweep import run_sweep, spec_from_dict

    spec = spec_from_dict(build_spec_dict(args), source=args.file or "sweep")
    run_sweep(spec, args.output)
    return 0
