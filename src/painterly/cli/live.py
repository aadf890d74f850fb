"""``painterly live``: a camera, clip or stream painted in real time, in a window and/or a file."""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path
from typing import Any

from . import non_negative_float, positive_float, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    from ..live import DEFAULT_LIVE_SIZE, LIVE_METHODS
    from ..temporal import DEFAULT_WEIGHT, STEADY_WEIGHT
    from .stylize import add_option_flag
    from .video import video_options

    p = sub.add_parser(
        "live", help="paint a camera, a clip or a stream in real time (window and/or file)",
        description="Paint each frame of SOURCE as it comes, with the flow-guided temporal "
                    "blending of `painterly video`. A camera or a stream drops the frames the "
                    "painter cannot keep up with (the latest frame wins); a file is painted "
                    "frame by frame. In the window: n / Right / space the next style, p / Left "
                    "the previous one, q / Escape quits. Prints frames/s and latency when it stops.")
    p.add_argument("source", help="camera index (0, 1, ...), a video file, or a stream URL")
    p.add_argument("--style", action="append", default=None, metavar="STYLE",
                   help="a style: builtin:NAME, a painting (adain) or a model's style name "
                        "(fast); repeat to cycle through them with the keys (default: every "
                        "built-in painting)")
    p.add_argument("--method", choices=LIVE_METHODS, default="adain")
    p.add_argument("--size", type=positive_int, default=DEFAULT_LIVE_SIZE,
                   help=f"long side of the painted frames (default {DEFAULT_LIVE_SIZE})")
    p.add_argument("--temporal", type=non_negative_float, default=None, metavar="WEIGHT",
                   help=f"flow-guided blending weight (0 = off; default {STEADY_WEIGHT:g} for a "
                        f"network with bilinear upsampling, the shipped lite one and artworks8, "
                        f"else {DEFAULT_WEIGHT:g})")
    for opt in video_options():
        if opt.name != "size":
            add_option_flag(p, opt)
    p.add_argument("-o", "--output", default=None,
                   help="also write the painted frames to this video (.mp4, .mov, .mkv, .avi)")
    p.add_argument("--no-window", action="store_true", help="no window (with -o: only the file)")
    p.add_argument("--max-frames", type=positive_int, default=None, help="stop after this many frames")
    p.add_argument("--seconds", type=positive_float, default=None, help="stop after this many seconds")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.set_defaults(func=run)


def style_list(method: str, given: list[str] | None, model: str | None) -> list[str]:
    """The styles to cycle through: the ones given, else every built-in painting (adain) or
    every style of the model (fast)."""
    if given:
        return list(given)
    if method == "fast":
        from ..fast.registry import default_model, read_config, resolve_model

        path = resolve_model(model) if model else default_model()
        names = read_config(path).get("style_names") or []
        if names:
            return list(names)
    from ..image import BUILTIN_STYLES

    return [f"builtin:{name}" for name in BUILTIN_STYLES]


def run(args: argparse.Namespace) -> int:
    from ..atomic import atomic_path
    from ..errors import PainterlyError
    from ..live import FrameSource, LiveMeter, LivePainter, LiveSettings, describe
    from ..video import _close_quietly, _start_writer, check_output, exact_fps

    if args.no_window and args.output is None:
        raise PainterlyError("--no-window needs -o FILE (else nothing would be shown or kept)")
    out = Path(args.output) if args.output is not None else None
    if out is not None:
        check_output(out, Path(args.source), args.overwrite)
    from .video import video_options

    options = {o.name: getattr(args, o.name) for o in video_options()
               if o.name != "size" and getattr(args, o.name, None) is not None}
    styles = style_list(args.method, args.style, options.get("model"))
    settings = [LiveSettings(args.method, (s,), size=args.size, temporal=args.temporal,
                             options=options) for s in styles]
    painter = LivePainter(settings[0])  # a bad style or option fails here, before the source
    window = None
    if not args.no_window:
        from .window import LiveWindow

        window = LiveWindow()
    meter = LiveMeter()
    index = 0
    t_end = None if args.seconds is None else time.perf_counter() + args.seconds
    with contextlib.ExitStack() as stack:
        if window is not None:
            stack.callback(window.close)
        source = stack.enter_context(FrameSource(args.source))
        writer = None
        try:
            for frame in source:
                if window is not None:
                    window.update()
                    actions = window.keys()
                    if "quit" in actions:
                        break
                    step = actions.count("next") - actions.count("previous")
                    if step:
                        index = (index + step) % len(settings)
                        painter.configure(settings[index])
                        print(f"style: {_label(styles[index])}", flush=True)
                painted = painter(frame.pixels)
                if out is not None and writer is None:
                    final = stack.enter_context(atomic_path(out, exclusive=not args.overwrite,
                                                            keep_suffix=True))
                    h, w = painted.shape[:2]
                    writer = _start_writer(final, (w, h), exact_fps(source.fps), 8.0)
                    stack.callback(_close_quietly, writer)
                if writer is not None:
                    writer.send(painted)
                if window is not None:
                    window.show(painted, f"painterly live: {_label(styles[index])} "
                                         f"({len(meter.shown) + 1} frames)")
                meter.record(frame.captured)
                if args.max_frames is not None and len(meter.shown) >= args.max_frames:
                    break
                if t_end is not None and time.perf_counter() >= t_end:
                    break
        except KeyboardInterrupt:  # Ctrl-C is how a camera run ends: keep what was painted
            pass
        meter.dropped = source.dropped
        if not meter.shown:
            raise PainterlyError(f"no frames came from {args.source}")
        if writer is not None:
            writer.close()
    summary = meter.summary(painter.model_seconds)
    where = f"wrote {out}; " if out is not None else ""
    print(f"{where}{describe(summary)}")
    return 0


def _label(style: Any) -> str:
    return str(style).removeprefix("builtin:")
