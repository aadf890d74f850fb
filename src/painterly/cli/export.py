"""``painterly export onnx``: write ONNX graphs for inference without PyTorch."""

from __future__ import annotations

import argparse
import time

from .. import registry
from . import positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a model for deployment (ONNX)",
                       description="Export an AdaIN decoder or a fast network to ONNX. adain: "
                                   "-o NAME.onnx writes NAME.onnx (content graph), "
                                   "NAME_style.onnx (style statistics graph) and NAME.onnx.json; "
                                   "fast: NAME.onnx and NAME.onnx.json. See docs/DEPLOY.md.")
    p.add_argument("format", choices=("onnx",), help="export format")
    p.add_argument("--method", choices=("adain", "fast"), required=True)
    p.add_argument("--network", choices=registry.CHOICES, default=None,
                   help=f"adain: auto (default, as for stylize) or {', '.join(registry.NETWORKS)}")
    p.add_argument("--decoder", default=None,
                   help="adain: decoder or lite network weights (.safetensors/.pth; default: the "
                        "installed one of --network)")
    p.add_argument("--model", default=None,
                   help="fast: network file or installed model name (default: the installed one)")
    p.add_argument("-o", "--output", required=True, help="output .onnx file")
    p.add_argument("--opset", type=positive_int, default=None, help="ONNX opset (default 17)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..export import DEFAULT_OPSET, export_onnx

    t0 = time.perf_counter()
    paths = export_onnx(args.method, args.output, model=args.model, decoder=args.decoder,
                        opset=args.opset or DEFAULT_OPSET, overwrite=args.overwrite,
                        network=args.network)
    for path in paths.values():
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    print(f"exported {args.method} in {time.perf_counter() - t0:.1f} s")
    return 0
