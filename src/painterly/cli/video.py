"""``painterly video``: stylize a video clip, keeping frame rate, size and audio."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from . import float_list, non_negative_float, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("video", help="stylize a video (frame rate, size and audio kept)",
                       description="Stylize every frame of INPUT. AdaIN smooths the content "
                                   "statistics over frames (--smooth) against flicker; fast "
                                   "networks run per frame.")
    p.add_argument("input", help="input video (anything ffmpeg reads)")
    p.add_argument("--style", action="append", default=None, metavar="STYLE",
                   help="style image or builtin:NAME (adain); repeat to blend")
    p.add_argument("--style-weights", type=float_list, default=None, metavar="W1,W2",
                   help="blend weights: one per --style (adain) or per model style (fast)")
    p.add_argument("-o", "--output", required=True, help="output video (.mp4, .mov, .mkv, .avi)")
    p.add_argument("--method", choices=("adain", "fast"), default="adain")
    p.add_argument("--decoder", default=None, help="adain: decoder weights")
    p.add_argument("--model", default=None, help="fast: network file")
    p.add_argument("--alpha", type=float, default=None, help="adain: content-style trade-off")
    p.add_argument("--size", type=positive_int, default=None,
                   help="long side of the output frames (default: the input's size)")
    p.add_argument("--style-size", type=positive_int, default=None,
                   help="adain: long side of the style image (default 512)")
    p.add_argument("--smooth", type=non_negative_float, default=None,
                   help="adain: EMA factor for the content statistics, 0 = off (default 0.5)")
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda, mps")
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
        style_size=args.style_size)
    result = stylize_video(args.input, args.output, stylizer, size=args.size,
                           overwrite=args.overwrite, progress=not args.quiet,
                           max_frames=args.max_frames)
    rate = result.frames / result.seconds if result.seconds > 0 else float("inf")
    flicker = "n/a" if math.isnan(result.flicker) else f"{result.flicker:.3f}"
    print(f"wrote {result.output} ({result.frames} frames, {result.size[0]}x{result.size[1]}, "
          f"{result.fps:.3g} fps{', audio' if result.has_audio else ''}) in {result.seconds:.1f} s "
          f"({rate:.1f} frames/s); flicker ratio {flicker}")
    return 0
