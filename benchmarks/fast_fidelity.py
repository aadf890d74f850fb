"""How closely fast networks follow the AdaIN decoder they were distilled from, side by side.

For every content x style pair, the shipped AdaIN network's stylization is the reference (what
``--method adain`` runs on this machine unless ``--reference vgg`` or ``lite`` names one), and
each ``--models`` network (multi-style, with the built-in paintings' names) stylizes the same
photo at the same size. A ``--models`` entry may also be an AdaIN model file (a VGG decoder or a
lite network), given each painting as its style image: how far two AdaIN networks, or two
checkpoints of one training run, are from each other is the scale these figures are read on.
Per network and style it prints

* ``pixel``: mean L1 to the reference in pixels (texture included),
* ``color``: mean L1 of 4x4-pixel block means (``losses.color_loss``: local color only),
* ``patches``: the share of 4x4 blocks whose mean color is more than ``--patch`` (Euclidean RGB,
  0-1 scale) away from the reference's: flat patches of a wrong hue, such as the green blotches
  of the first eight-style network under ``church_at_auvers``.

    python benchmarks/fast_fidelity.py --models src/painterly/assets/fast/artworks8.safetensors \\
        runs/fast5/model.safetensors --content ../shared/images/dev/content --size 384
    python benchmarks/fast_fidelity.py --reference vgg --models \\
        src/painterly/assets/fast/artworks8.safetensors src/painterly/assets/adain_lite.safetensors \\
        ../shared/runs/adain-crop128/decoder_it11770.safetensors --content ../shared/images/dev/content
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from painterly.api import make_stylizer
from painterly.fast.registry import read_config
from painterly.image import BUILTIN_CONTENT, contact_sheet, list_images, load_image, pil_to_tensor, resize
from painterly.losses import color_loss

DEV_PHOTOS = ("golden_gate", "blonde_girl", "chicago")
STYLES = Path(__file__).resolve().parents[1] / "src" / "painterly" / "assets" / "styles"


def contents(source: str | None) -> list[tuple[str, Image.Image]]:
    """The dev photos of a folder (or every image in it), else the built-in photos."""
    if source:
        files = list_images(source)
        chosen = [f for f in files if Path(f).stem in DEV_PHOTOS] or files
        return [(Path(f).stem, load_image(f)) for f in chosen]
    return [(name, load_image(f"builtin:{name}")) for name in list(BUILTIN_CONTENT)[:3]]


def adain_network(path: str) -> str | None:
    """The AdaIN network kind of a model file ("vgg" or "lite"), None for a fast network."""
    return {"adain-decoder": "vgg", "adain-lite": "lite"}.get(read_config(path).get("kind", ""))


def patches(y: torch.Tensor, ref: torch.Tensor, threshold: float) -> float:
    """Share of 4x4 blocks whose mean color is over ``threshold`` from the reference's."""
    a, b = F.avg_pool2d(y, 4, ceil_mode=True), F.avg_pool2d(ref, 4, ceil_mode=True)
    return float(((a - b).pow(2).sum(1).sqrt() > threshold).float().mean())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", required=True, help="fast networks (.safetensors)")
    ap.add_argument("--content", default=None, help="folder of photos (default: built-in photos)")
    ap.add_argument("--size", type=int, default=384, help="content long side")
    ap.add_argument("--patch", type=float, default=0.25, help="block color distance that counts as a patch")
    ap.add_argument("--sheet", default=None, help="save teacher | models for the worst pair here")
    ap.add_argument("--reference", choices=("auto", "vgg", "lite"), default="auto",
                    help="the AdaIN network the fast ones are compared with: auto (default) is what "
                         "--method adain runs here (the lite network on a CPU, the VGG19 decoder on "
                         "CUDA); vgg: the VGG19 decoder, the reference of the figures before the lite "
                         "network became the CPU default")
    args = ap.parse_args()
    torch.set_grad_enabled(False)

    labels = [f"{Path(m).parent.name}/{Path(m).stem}" for m in args.models]
    if args.reference == "auto":
        from painterly.device import resolve_device
        from painterly.registry import resolve_network

        args.reference = resolve_network("auto", resolve_device("auto").type)  # as make_stylizer
    kinds = [adain_network(m) for m in args.models]
    fast_models = [m for m, k in zip(args.models, kinds) if k is None]
    if not fast_models:
        ap.error("--models names no fast network (its style names pick the paintings)")
    styles = list(read_config(fast_models[0])["style_names"])
    photos = [(n, resize(img, args.size)) for n, img in contents(args.content)]
    rows: dict[str, dict[str, list[tuple[float, float, float]]]] = {lab: {} for lab in labels}
    worst: tuple[float, list[Image.Image]] = (-1.0, [])
    for style in styles:
        painting = load_image(str(STYLES / f"{style}.jpg"))
        teacher = make_stylizer("adain", [painting], precision="fp32", network=args.reference)
        nets = [make_stylizer("fast", [style], model=m, precision="fp32") if k is None else
                make_stylizer("adain", [painting], precision="fp32", network=k, decoder=m)
                for m, k in zip(args.models, kinds)]
        for _, photo in photos:
            ref_img = teacher(photo)
            ref = pil_to_tensor(ref_img)
            outs = [net(photo) for net in nets]
            for lab, out in zip(labels, outs):
                y = pil_to_tensor(out)
                rows[lab].setdefault(style, []).append(
                    (float((y - ref).abs().mean()), float(color_loss(y, ref)), patches(y, ref, args.patch)))
            gap = rows[labels[0]][style][-1][2]  # the sheet shows the first model's worst pair
            if gap > worst[0]:
                worst = (gap, [photo, ref_img, *outs])

    print(f"{len(photos)} photos x {len(styles)} styles at {args.size} px; reference: the shipped AdaIN "
          f"{args.reference} network; patch = a 4x4 block over {args.patch} from the reference's color")
    print(f"{'style':<18}" + "".join(f"{lab[-28:]:>30}" for lab in labels))
    print(f"{'':<18}" + "".join(f"{'pixel / color / patches':>30}" for _ in labels))
    means = {lab: [] for lab in labels}
    for style in styles + ["mean"]:
        cells = []
        for lab in labels:
            vals = rows[lab][style] if style != "mean" else [v for s in styles for v in rows[lab][s]]
            m = [statistics.mean(v[i] for v in vals) for i in range(3)]
            means[lab] = m
            cells.append(f"{m[0]:.3f} / {m[1]:.3f} / {m[2]:6.2%}")
        print(f"{style:<18}" + "".join(f"{c:>30}" for c in cells))
    if args.sheet and worst[1]:
        contact_sheet(worst[1], ["photo", "reference", *labels], columns=len(worst[1]),
                      cell=args.size).save(args.sheet)
        print(f"photo | reference | {' | '.join(labels)} for the pair with most patches in the first "
              f"model ({worst[0]:.1%}): {args.sheet}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
