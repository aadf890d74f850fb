"""``painterly sweep``: a grid of Gatys runs from a TOML/YAML file and/or flags."""

from __future__ import annotations

import argparse
from typing import Any

from . import float_list, name_list, non_negative_float, positive_int


def layer_groups(text: str) -> list[list[str]]:
    """argparse type: layer sets separated by ';', layers in a set by ','
    (``conv4_2;conv5_2;conv4_2,conv5_2`` is three runs)."""
    groups = [name_list(g) for g in text.split(";")]
    return [g for g in groups if g]


def register(sub: argparse._SubParsersAction) -> None:
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
    g = p.add_argument_group("grid axes (comma-separated values; each value is one run)")
    g.add_argument("--optimizers", type=name_list, default=None, metavar="O1,O2",
                   help="lbfgs, adam, sgd, adagrad, adadelta, rmsprop")
    g.add_argument("--content-layers", type=layer_groups, default=None, metavar="L;L1,L2",
                   help="layer sets separated by ';' (layers in a set by ',')")
    g.add_argument("--style-layers", type=layer_groups, default=None, metavar="L;L1,L2")
    g.add_argument("--content-weights", type=float_list, default=None, metavar="W1,W2")
    g.add_argument("--style-weights", type=float_list, default=None, metavar="W1,W2",
                   help="style loss weights to compare (not style blend weights)")
    g.add_argument("--tv-weights", type=float_list, default=None, metavar="W1,W2")
    g.add_argument("--backbones", type=name_list, default=None, metavar="B1,B2")
    g.add_argument("--sizes", type=lambda t: [positive_int(v) for v in name_list(t)],
                   default=None, metavar="S1,S2")
    g.add_argument("--lrs", type=float_list, default=None, metavar="LR1,LR2")
    f = p.add_argument_group("fixed settings")
    f.add_argument("--steps", type=positive_int, default=None)
    f.add_argument("--seed", type=int, default=None)
    f.add_argument("--device", default=None)
    f.add_argument("--init", default=None)
    f.add_argument("--style-loss", choices=("gram", "mean_std"), default=None)
    f.add_argument("--scales", type=positive_int, default=None)
    f.add_argument("--weights", default=None)
    f.add_argument("--pooling", choices=("max", "avg"), default=None)
    f.add_argument("--preserve-color", choices=("luminance", "histogram"), default=None)
    f.add_argument("--style-scale", type=non_negative_float, default=None)
    p.set_defaults(func=run)


_AXES = {"optimizers": "optimizer", "content_layers": "content_layers",
         "style_layers": "style_layers", "content_weights": "content_weight",
         "style_weights": "style_weight", "tv_weights": "tv_weight", "backbones": "backbone",
         "sizes": "size", "lrs": "lr"}
_FIXED = ("steps", "seed", "device", "init", "style_loss", "scales", "weights", "pooling",
          "preserve_color", "style_scale")


def build_spec_dict(args: argparse.Namespace) -> dict[str, Any]:
    """Merge the sweep file (if any) with the flags (flags win)."""
    from ..errors import PainterlyError
    from ..sweep import _read_file

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
    for flag, key in _AXES.items():
        value = getattr(args, flag)
        if value is not None:
            data["grid"][key] = value
            data["options"].pop(key, None)
            data.pop(key, None)
    for key in _FIXED:
        value = getattr(args, key)
        if value is not None:
            data["options"][key] = value
            data["grid"].pop(key, None)
            data.pop(key, None)
    return data


def run(args: argparse.Namespace) -> int:
    from ..sweep import run_sweep, spec_from_dict

    spec = spec_from_dict(build_spec_dict(args), source=args.file or "sweep")
    run_sweep(spec, args.output)
    return 0
