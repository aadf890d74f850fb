"""``painterly video``: stylize a video clip, keeping frame rate, size and audio."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..schema import Option
from . import non_negative_float, positive_int

#: The methods ``painterly video`` runs; it has a flag for every option of theirs (derived from
#: the declarations in :mod:`painterly.options`, as ``painterly stylize``'s).
VIDEO_METHODS = ("adain", "fast")


def video_options() -> tuple[Option, ...]:
    """Every CLI option of the video methods, declared once in :mod:`painterly.options`."""
    from ..options import shared_options

    return tuple(o for o, methods in shared_options() if o.cli and set(methods) & set(VIDEO_METHODS))


def register(sub: argparse._SubParsersAction) -> None:
    from ..temporal import DEFAULT_SMOOTH, DEFAULT_WEIGHT, STEADY_WEIGHT

    p = sub.add_parser("video", help="stylize a video (frame rate, size and audio kept)",
                       description="Stylize every frame of INPUT. Each output is blended with "
                                   "the previous one carried along the optical flow of the "
                                   "input (--temporal) against flicker and swimming texture; "
                                   "AdaIN can also smooth its content statistics (--smooth).")
    p.add_argument("input", help="input video (anything ffmpeg reads)")
    p.add_argument("--style", action="append", default=None, metavar="STYLE",
                   help="style image or builtin:NAME (adain); repeat to blend")
    p.add_argument("-o", "--output", required=True, help="output video (.mp4, .mov, .mkv, .avi)")
    p.add_argument("--method", choices=VIDEO_METHODS, default="adain")
    from ..options import STYLE_WEIGHTS
    from .stylize import add_option_flag

    add_option_flag(p, STYLE_WEIGHTS)
    for opt in video_options():
        add_option_flag(p, opt)
    p.add_argument("--smooth", type=non_negative_float, default=None,
                   help=f"adain: EMA factor for the content statistics, 0 = off (default "
                        f"{DEFAULT_SMOOTH:g})")
    p.add_argument("--temporal", type=non_negative_float, default=None, metavar="WEIGHT",
                   help=f"flow-guided blending: the share of the previous output, carried along "
                        f"the input's optical flow, kept where the flow is trusted (0 = off, "
                        f"each frame alone; default {STEADY_WEIGHT:g} for a network with bilinear "
                        f"upsampling, the shipped lite one and artworks8, else {DEFAULT_WEIGHT:g})")
    p.add_argument("--warping-error", action="store_true",
                   help="also print the output's warping error, with the flow estimated on the "
                        "input (Lai et al. 2018; lower is steadier)")
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
    options = {o.name: getattr(args, o.name) for o in video_options() if o.name != "size"}
    stylizer = make_frame_stylizer(
        args.method, args.style, style_weights=args.style_weights,
        smooth=DEFAULT_SMOOTH if args.smooth is None else args.smooth, temporal=args.temporal,
        **options)
    result = stylize_video(args.input, args.output, stylizer, size=args.size,
                           overwrite=args.overwrite, progress=not args.quiet,
                           max_frames=args.max_frames, measure_warping=args.warping_error)
    rate = result.frames / result.seconds if result.seconds > 0 else float("inf")
    flicker = "n/a" if math.isnan(result.flicker) else f"{result.flicker:.3f}"
    print(f"wrote {result.output} ({result.frames} frames, {result.size[0]}x{result.size[1]}, "
          f"{result.fps:.3g} fps{', audio' if result.has_audio else ''}) in {result.seconds:.1f} s "
          f"({rate:.1f} frames/s); flicker ratio {flicker}")
    if result.warping is not None:
        w = result.warping
        print(f"warping error {w.error:.3f} (x1000, over the {100 * w.coverage:.0f}% of pixels "
              f"the input's flow trusts, {w.pairs} frame pairs)")
    return 0
