"""``painterly stylize``: one image, or a folder of contents x a folder of styles."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from . import float_list, name_list, non_negative_float, positive_float, positive_int


def add_method_options(p: argparse.ArgumentParser) -> None:
    """Options of every method; each defaults to None so only what the user set is passed on."""
    p.add_argument("--method", choices=("adain", "gatys", "fast"), default=None,
                   help="default: adain when its decoder is installed, else gatys")
    p.add_argument("--style-weights", type=float_list, default=None, metavar="W1,W2",
                   help="blend weights, one per --style (normalized to sum to 1)")
    p.add_argument("--size", type=positive_int, default=None,
                   help="long side of the output in pixels (default: method's; adain keeps "
                        "the content size)")
    p.add_argument("--style-size", type=positive_int, default=None,
                   help="long side the style image is resized to")
    p.add_argument("--preserve-color", choices=("luminance", "histogram"), default=None)
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda, mps")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default=None,
                   help="auto (default): bf16 on CUDA and on CPUs with native bf16 math, else fp32")

    g = p.add_argument_group("gatys (optimization)")
    g.add_argument("--steps", type=positive_int, default=None)
    g.add_argument("--optimizer", default=None,
                   help="lbfgs (default), adam, sgd, adagrad, adadelta, rmsprop")
    g.add_argument("--lr", type=non_negative_float, default=None, help="learning rate")
    g.add_argument("--content-layers", type=name_list, default=None, metavar="L1,L2")
    g.add_argument("--style-layers", type=name_list, default=None, metavar="L1,L2")
    g.add_argument("--style-layer-weights", type=float_list, default=None, metavar="W1,W2")
    g.add_argument("--content-weight", type=non_negative_float, default=None)
    g.add_argument("--style-weight", type=non_negative_float, default=None)
    g.add_argument("--tv-weight", type=non_negative_float, default=None)
    g.add_argument("--style-loss", choices=("gram", "mean_std"), default=None)
    g.add_argument("--init", default=None, help="content (default), noise, style or an image path")
    g.add_argument("--style-scale", type=non_negative_float, default=None,
                   help="style image size relative to the output (default 1)")
    g.add_argument("--scales", type=positive_int, default=None,
                   help="coarse-to-fine levels (default: 1, more for large outputs)")
    g.add_argument("--backbone", choices=("vgg19", "vgg16", "resnet50"), default=None)
    g.add_argument("--weights", default=None,
                   help="feature weights: caffe (VGG19 default), torchvision, or a file")
    g.add_argument("--pooling", choices=("max", "avg"), default=None)
    g.add_argument("--save-every", type=positive_int, default=None,
                   help="write an intermediate image every K steps (into --log-dir)")
    g.add_argument("--log-dir", default=None,
                   help="write a run record: per-step CSV, config JSON, loss plot")

    a = p.add_argument_group("adain (arbitrary real-time)")
    a.add_argument("--alpha", type=float, default=None, help="content-style trade-off in [0, 1]")
    a.add_argument("--mask", action="append", default=None, metavar="MASK",
                   help="one mask image per --style: where that style applies")
    a.add_argument("--decoder", default=None, help="decoder weights (.safetensors or .pth)")
    a.add_argument("--tile", type=positive_int, default=None,
                   help="stylize in overlapping tiles of this size (auto for large images)")

    f = p.add_argument_group("fast (feed-forward networks)")
    f.add_argument("--model", default=None, help="model name (see `painterly models`) or file")


METHOD_OPTIONS = (
    "size", "style_size", "preserve_color", "device", "seed", "steps", "optimizer", "lr",
    "content_layers", "style_layers", "style_layer_weights", "content_weight", "style_weight",
    "tv_weight", "style_loss", "init", "style_scale", "scales", "backbone", "weights", "pooling",
    "save_every", "log_dir", "alpha", "mask", "decoder", "tile", "model", "precision",
)


def method_options(args: argparse.Namespace) -> dict[str, Any]:
    """The method options the user actually set."""
    return {k: getattr(args, k) for k in METHOD_OPTIONS if getattr(args, k, None) is not None}


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
    add_method_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..image import pixel_limit

    mp = getattr(args, "max_megapixels", None)
    with pixel_limit(None if mp is None else max(1, int(mp * 1e6))):
        return _run(args)


def _inputs(args: argparse.Namespace) -> list[str]:
    """Every file the user gave (never written over, even with --overwrite)."""
    inputs = [args.content, *(args.style or []), *(getattr(args, "mask", None) or [])]
    for name in ("init", "decoder", "model", "onnx_model"):
        value = getattr(args, name, None)
        if isinstance(value, str):
            inputs.append(value)
    return inputs


def _run(args: argparse.Namespace) -> int:
    from ..errors import PainterlyError
    from ..image import check_output, load_image, save_image

    options = method_options(args)
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
    try:
        result = stylizer(load_image(args.content, what="content image", draft=draft))
    except PainterlyError as exc:
        partial = getattr(exc, "image", None)  # gatys: the last good image before a NaN/inf
        if partial is None:
            raise
        save_image(partial, out, overwrite=args.overwrite)
        raise PainterlyError(f"{exc}; saved it to {out}") from None
    save_image(result, out, overwrite=args.overwrite)
    print(f"wrote {out} ({result.width}x{result.height}) in {time.perf_counter() - t0:.1f} s")
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

    t0 = time.perf_counter()
    # No style images (fast: the styles live in the model): --style-weights blends the model's.
    n = stylize_folder(args.content, args.style or [], args.output,
                       lambda group: make_stylizer(args.method, group or None,
                                                   None if group else args.style_weights, **options),
                       str(options.get("model") or "model"), args.overwrite)
    print(f"{n.summary(args.output)} in {time.perf_counter() - t0:.1f} s")
    return 0
