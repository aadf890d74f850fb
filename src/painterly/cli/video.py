"""``painterly video``: stylize a video clip, keeping frame rate, size and audio."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from . import non_negative_float, positive_int

#: The method options ``painterly video`` takes, with their flags, help and checks derived from
#: the declarations in :mod:`painterly.options` (as ``painterly stylize``'s).
VIDEO_OPTIONS = ("network", "decoder", "model", "alpha", "size", "style_size", "device")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("video", help="stylize a video (frame rate, size and audio kept)",
                       description="Stylize every frame of INPUT. AdaIN smooths the content "
                                   "statistics over frames (--smooth) against flicker; fast "
                                   "networks run per frame.")
    p.add_argument("input", help="input video (anything ffmpeg reads)")
    p.add_argument("--style", action="append", default=None, metavar="STYLE",
                   help="style image or builtin:NAME (adain); repeat to blend")
    p.add_argument("-o", "--output", required=True, help="output video (.mp4, .mov, .mkv, .avi)")
    p.add_argument("--method", choices=("adain", "fast"), default="adain")
    from ..options import STYLE_WEIGHTS, shared_options
    from .stylize import add_option_flag

    add_option_flag(p, STYLE_WEIGHTS)
    for opt, _ in shared_options():
        if opt.name in VIDEO_OPTIONS:
            add_option_flag(p, opt)
    p.add_argument("--smooth", type=non_negative_float, default=None,
                   help="adain: EMA factor for the content statistics, 0 = off (default 0.5)")
    p.add_argument("--max-frames", type=positive_int, default=None,
                   help="stop after this many frames (previews)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import PainterlyError
    from ..video import DEFAULT_SMOOTH, check_output, make_frame_stylizer, probe, stylize_video

    if args.smooth is not None and args.method != "adain":
        raise PainterlyError("--smooth applies to --method adain (fast runs per frame)")
    # Cheap checks first, before any model is loaded.
    check_output(Path(args.output), Path(args.input), args.overwrite)
    probe(args.input)
    stylizer = make_frame_stylizer(
        args.method, args.style, style_weights=args.style_weights, decoder=args.decoder,
        model=args.model, alpha=args.alpha,
        smooth=DEFAULT_SMOOTH if args.smooth is None else args.smooth, device=args.device,
        style_size=args.style_size, network=args.network)
    result = stylize_video(args.input, args.output, stylizer, size=args.size,
                           overwrite=args.overwrite, progress=not args.quiet,
                           max_frames=args.max_frames)
    rate = result.frames / result.seconds if result.seconds > 0 else float("inf")
    flicker = "n/a" if math.isnan(result.flicker) else f"{result.flicker:.3f}"
    print(f"wrote {result.output} ({result.frames} frames, {result.size[0]}x{result.size[1]}, "
          f"{result.fps:.3g} fps{', audio' if result.has_audio else ''}) in {result.seconds:.1f} s "
          f"({rate:.1f} frames/s); flicker ratio {flicker}")
    return 0
