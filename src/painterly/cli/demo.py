"""``painterly demo``: the main job on built-in images (no files needed, works offline)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from . import positive_int

DEMO_CONTENT = "builtin:chelsea"
#: A shipped public-domain painting (Matisse, Woman with a Hat, 1905): see assets/styles/NOTICE.md.
DEMO_STYLE = "builtin:woman_with_hat"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="stylize a built-in photo with a built-in style",
                       description="Paint scikit-image's cat photo in the style of a built-in "
                                   "painting (the shipped AdaIN model: the lite network on a CPU, "
                                   "under a second; the VGG decoder on a GPU) and write the result "
                                   "plus a content | style | result sheet.")
    p.add_argument("-o", "--output", default="painterly-demo.png", help="result image")
    p.add_argument("--content", default=DEMO_CONTENT, help="content image (default: %(default)s)")
    p.add_argument("--style", default=DEMO_STYLE, help="style image (default: %(default)s)")
    p.add_argument("--method", choices=("adain", "gatys", "fast"), default=None)
    p.add_argument("--size", type=positive_int, default=None, help="output long side")
    p.add_argument("--steps", type=positive_int, default=None, help="gatys steps")
    p.add_argument("--device", default=None)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..api import default_method, make_stylizer
    from ..errors import PainterlyError
    from ..image import contact_sheet, load_image, output_format, save_image

    out = Path(args.output)
    sheet_path = out.with_name(f"{out.stem}_sheet.png")
    output_format(out)
    for p in (out, sheet_path):
        if p.exists() and not args.overwrite:
            raise PainterlyError(f"output exists: {p} (pass --overwrite to replace it)")
    method = args.method or default_method()
    options = {k: v for k, v in (("size", args.size), ("steps", args.steps),
                                 ("device", args.device)) if v is not None}
    if method == "gatys":  # about a minute on a 2-core CPU
        options.setdefault("size", 320)
        options.setdefault("steps", 150)
    t0 = time.perf_counter()
    content = load_image(args.content, what="content image")
    style = load_image(args.style, what="style image")
    # fast: the shipped network holds the built-in paintings as styles, picked by name
    result = make_stylizer(method, [args.style] if method == "fast" else [style], None, **options)(content)
    save_image(result, out, overwrite=args.overwrite)
    sheet = contact_sheet([content, style, result], ["content", "style", f"painterly {method}"],
                          columns=3, cell=320)
    save_image(sheet, sheet_path, overwrite=args.overwrite)
    print(f"wrote {out} and {sheet_path} ({method}, {result.width}x{result.height}) "
          f"in {time.perf_counter() - t0:.1f} s")
    return 0
