"""The 2-px hatch at print size: hatch scores of the real-time networks' outputs at 1024 px.

``painterly eval`` scores the hatch at 384 px beside the losses; at print size the losses cost a
VGG pass each, and the hatch needs none. For every photo x painting (the lite network, with the
dev paintings; ``artworks8``, with its own eight styles; ``vgg``, the VGG19 decoder, as the
reference with the dev paintings) this paints the photo at ``--size`` and prints the mean and the
largest hatch score per method and the pairs above the flag (:data:`painterly.evaluate.HATCH_FLAG`,
0.9), each with the painting's own score, beside the photos' own score. The hatch score is
not a training loss of the VGG decoder; it is one of the lite network's and artworks8's since
run 9 (docs/runs/adain_lite.md), so read it with the pictures.

    python benchmarks/bench_hatch.py                              # 15 dev photos at 1024 px
    python benchmarks/bench_hatch.py --size 2048 --methods lite --fast-model FILE
    python benchmarks/bench_hatch.py --size 384 --methods lite,vgg   # beside the reference
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from painterly.evaluate import HATCH_FLAG, image_hatch_score
from painterly.image import BUILTIN_STYLES, load_image

SHARED = Path(__file__).resolve().parents[2] / "shared" / "images" / "dev"
IMAGE_TYPES = (".jpg", ".jpeg", ".png", ".webp")


def images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_TYPES)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--content", type=Path, default=None,
                    help="a folder of photos (default: the dev photos, else three built-ins)")
    ap.add_argument("--style", type=Path, default=None,
                    help="a folder of paintings (default: the dev paintings, else the built-ins)")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--methods", default="lite,fast", help="lite, fast and/or vgg")
    ap.add_argument("--lite-model", default=None, help="a lite network file (default: shipped)")
    ap.add_argument("--fast-model", default=None, help="a fast network file (default: artworks8)")
    args = ap.parse_args()

    from painterly.api import make_stylizer

    for given in (args.content, args.style):
        if given is not None and not given.is_dir():
            raise SystemExit(f"error: not a folder: {given}")
    content = args.content or SHARED / "content"
    style = args.style or SHARED / "style"
    if content.is_dir():
        photos = [load_image(str(p)) for p in images_in(content)]
    else:
        print("(no dev photos: three built-in photos instead)")
        photos = [load_image(f"builtin:{n}") for n in ("astronaut", "chelsea", "coffee")]
    for p in photos:
        p.thumbnail((args.size, args.size))
    styles = ([str(p) for p in images_in(style)] if style.is_dir()
              else [f"builtin:{n}" for n in BUILTIN_STYLES])
    print(f"{len(photos)} photos at {args.size} px; photos' own hatch "
          f"{statistics.mean(image_hatch_score(p) for p in photos):.3f}\n")
    print(f"{'method':<10} {'pairs':>6} {'hatch':>7} {'max':>7} {'> ' + str(HATCH_FLAG):>6} "
          f"{'s/image':>8}")
    for method in args.methods.split(","):
        own: dict[str, float] = {}
        if method in ("lite", "vgg"):
            opts = {"network": method,
                    **({"decoder": args.lite_model} if args.lite_model and method == "lite" else {})}
            stylizers = [(Path(s).stem, make_stylizer("adain", [s], None, size=args.size, **opts))
                         for s in styles]
            own = {Path(s).stem: image_hatch_score(load_image(s)) for s in styles}
        elif method == "fast":
            opts = {"model": args.fast_model} if args.fast_model else {}
            first = make_stylizer("fast", ["udnie"], None, size=args.size, **opts)
            stylizers = [(n, make_stylizer("fast", [n], None, size=args.size, **opts))
                         for n in first.style_names]
        else:
            raise SystemExit(f"unknown method {method!r} (lite, fast, vgg)")
        scores, flagged, t0 = [], [], time.perf_counter()
        for name, stylize in stylizers:
            for i, photo in enumerate(photos):
                score = image_hatch_score(stylize(photo))
                scores.append(score)
                if score > HATCH_FLAG:
                    mark = f" (the painting's own {own[name]:.2f})" if name in own else ""
                    flagged.append(f"photo {i} x {name}: {score:.2f}{mark}")
        seconds = (time.perf_counter() - t0) / len(scores)
        print(f"{method:<10} {len(scores):>6} {statistics.mean(scores):>7.3f} {max(scores):>7.3f} "
              f"{len(flagged):>6} {seconds:>8.2f}", flush=True)
        for line in flagged:
            print(f"    {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
