"""``painterly stylize``: one image, or a folder of contents x a folder of styles."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..options import METHOD_OPTIONS, STYLE_WEIGHTS, shared_options
from ..schema import Option, OptionError
from . import positive_float


def _arg_type(opt: Option) -> Callable[[str], Any]:
    """argparse ``type=``: the option's own check, its refusal as argparse's one-line error."""
    def convert(text: str) -> Any:
        if opt.choices and not text.strip():
            raise argparse.ArgumentTypeError(f"must not be empty (choose from "
                                             f"{', '.join(opt.choices + opt.empty)})")
        try:
            return opt.check(text)
        except OptionError as exc:
            raise argparse.ArgumentTypeError(exc.reason) from None

    convert.__name__ = opt.kind
    return convert


def add_option_flag(group: Any, opt: Option) -> None:
    """One flag from one declared option; default None, so only what the user set is passed on."""
    kwargs: dict[str, Any] = {"default": None, "help": opt.help or None, "metavar": opt.metavar}
    if opt.repeat:
        kwargs["action"] = "append"
    if opt.choices:  # shown as argparse shows choices; checked by the option (which knows "none")
        kwargs["metavar"] = opt.metavar or "{" + ",".join(opt.choices + opt.empty) + "}"
    if opt.kind not in ("text", "value"):
        kwargs["type"] = _arg_type(opt)
    group.add_argument(opt.flag, **kwargs)


def cli_options() -> tuple[Option, ...]:
    """The method options ``painterly stylize`` has a flag for (each with the rule any method
    accepts; the method's own applies when its options are built)."""
    return tuple(o for o, _ in shared_options() if o.cli)


def add_method_options(p: argparse.ArgumentParser) -> None:
    """``--method``, ``--style-weights`` and a flag per method option (see
    :mod:`painterly.options`), each defaulting to None so only what the user set is passed on."""
    p.add_argument("--method", choices=tuple(METHOD_OPTIONS), default=None,
                   help="default: adain when its decoder is installed, else gatys")
    add_option_flag(p, STYLE_WEIGHTS)
    # Options of one method go into its group (titled from its options class), options of
    # several into the main list.
    groups = {m: p.add_argument_group(f"{m} ({cls.summary})" if cls.summary else m)
              for m, cls in METHOD_OPTIONS.items()}
    for opt, methods in shared_options():
        if opt.cli:
            add_option_flag(p if len(methods) > 1 else groups[methods[0]], opt)


def method_options(args: argparse.Namespace) -> dict[str, Any]:
    """The method options the user actually set."""
    return {o.name: getattr(args, o.name) for o in cli_options() if getattr(args, o.name, None) is not None}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stylize", help="paint a photo (or a folder of photos) in a style",
                       description="Paint CONTENT in the style of --style. CONTENT may be a "
                                   "folder: then --style may be a folder too and -o is a folder.")
    p.add_argument("content", help="content image, folder, or builtin:NAME")
    p.add_argument("--style", action="append", default=None, metavar="STYLE",
                   help="style image, folder, or builtin:NAME; repeat to blend styles")
    p.add_argument("-o", "--output", required=True, help="output image (.png/.jpg/.webp) or folder")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output (never one of the inputs)")
    p.add_argument("--max-megapixels", type=positive_float, default=None, metavar="MP",
                   help="refuse input images over this many megapixels, from the file header "
                        "(default and most: 268, 16k x 16k)")
    p.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                   help="onnx: run an exported model with onnxruntime (no PyTorch in the path)")
    p.add_argument("--onnx-model", default=None, metavar="MODEL.onnx",
                   help="with --backend onnx: a model from `painterly export onnx`")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run on Ray Data: local Ray, or the cluster at ADDRESS (auto, ray://HOST:10001); "
                        "IN and -o may be s3://, gs://... (docs/SCALE.md)")
    add_method_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..image import pixel_limit

    mp = getattr(args, "max_megapixels", None)
    with pixel_limit(None if mp is None else max(1, int(mp * 1e6))):
        return _run(args)


def _inputs(args: argparse.Namespace) -> list[str]:
    """Every file the user gave (never written over, even with --overwrite): the images and each
    option that may name a file."""
    inputs = [args.content, *(args.style or [])]
    if isinstance(getattr(args, "onnx_model", None), str):
        inputs.append(args.onnx_model)
    for opt in cli_options():
        value = getattr(args, opt.name, None) if opt.file else None
        inputs += [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str)]
    return inputs


def _run(args: argparse.Namespace) -> int:
    from ..errors import PainterlyError, printable
    from ..image import check_output, header_size, load_image, save_image

    options = method_options(args)
    if getattr(args, "ray", None) is not None:
        from ..ray import stylize_cli

        return stylize_cli(args, options)
    if args.backend == "onnx":
        return _run_onnx(args, options)
    if getattr(args, "onnx_model", None):
        raise PainterlyError("--onnx-model needs --backend onnx")
    styles = args.style or []
    content = Path(args.content)
    if content.is_dir() or any(Path(s).is_dir() for s in styles):
        return _run_folder(args, options)
    from ..api import make_stylizer

    t0 = time.perf_counter()
    out = check_output(args.output, _inputs(args), overwrite=args.overwrite)
    stylizer = make_stylizer(args.method, styles or None, args.style_weights, **options)
    # The content is resized to --size (gatys: 512 by default) anyway: a large JPEG may decode
    # at a reduced scale that still covers it.
    draft = options.get("size") or (512 if (args.method or "") == "gatys" else None)
    header = header_size(args.content)
    if header is not None and hasattr(stylizer, "check_fits"):
        stylizer.check_fits(header)  # a refusal before the file is decoded (a 16000^2 PNG)
    try:
        result = stylizer(load_image(args.content, what="content image", draft=draft))
    except PainterlyError as exc:
        partial = getattr(exc, "image", None)  # gatys: the last good image before a NaN/inf
        if partial is None:
            raise
        save_image(partial, out, overwrite=args.overwrite)
        raise PainterlyError(f"{exc}; saved it to {out}") from None
    save_image(result, out, overwrite=args.overwrite)
    print(f"wrote {printable(str(out))} ({result.width}x{result.height}) in "
          f"{time.perf_counter() - t0:.1f} s")
    return 0


def _run_onnx(args: argparse.Namespace, options: dict[str, Any]) -> int:
    """``--backend onnx``: the exported model through onnxruntime (no PyTorch in this path)."""
    from ..onnx_backend import stylize_files

    t0 = time.perf_counter()
    done = stylize_files(args.onnx_model, args.content, args.output, args.style or [],
                         args.style_weights, method=args.method, overwrite=args.overwrite,
                         options=options)
    print(f"{done} in {time.perf_counter() - t0:.1f} s (onnxruntime)")
    return 0


def _run_folder(args: argparse.Namespace, options: dict[str, Any]) -> int:
    """Folder of contents x folder (or list) of styles -> folder of results."""
    from ..api import make_stylizer
    from ..batch import stylize_folder
    from ..errors import printable

    t0 = time.perf_counter()
    # No style images (fast: the styles live in the model): --style-weights blends the model's.
    n = stylize_folder(args.content, args.style or [], args.output,
                       lambda group: make_stylizer(args.method, group or None,
                                                   None if group else args.style_weights, **options),
                       str(options.get("model") or "model"), args.overwrite)
    print(f"{printable(n.summary(args.output))} in {time.perf_counter() - t0:.1f} s")
    return 0
