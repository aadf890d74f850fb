"""Flicker of stylized video: AdaIN per frame vs with smoothed content statistics (and fast).

Flicker ratio = mean |out_t - out_{t-1}| / mean |in_t - in_{t-1}| over the clip (lower is
steadier; 1.0 = the output changes as much as the input). Clips: synthetic ones made from
``builtin:chelsea`` (a pan; a pan with sensor noise; an object that appears in every other frame)
and/or your own with ``--clip``. Every configuration runs on the same frames in one process, so
the figures are side by side.

    python benchmarks/bench_video_flicker.py --decoder runs/cpu_proof/decoder.safetensors
    python benchmarks/bench_video_flicker.py --decoder random --frames 12 --size 96
    python benchmarks/bench_video_flicker.py --clip my.mp4 --smooth 0,0.5,0.9 --model fast.safetensors
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

from painterly.cli import float_list, positive_int
from painterly.image import load_image
from painterly.synthetic import synthetic_clip
from painterly.video import AdaINVideo, make_frame_stylizer, stylize_video

SYNTHETIC = {
    "pan": {"pan": 2.0},
    "pan+noise": {"pan": 2.0, "noise": 6.0},
    "object": {"pan": 0.5, "sprite": 0.25},
}


def random_decoder(path: str, seed: int = 0) -> None:
    """Save an untrained decoder whose output varies with its input (Kaiming init, output
    around mid-grey), so flicker can be looked at without a trained decoder."""
    import torch

    from painterly.adain.model import Decoder, save_decoder

    torch.manual_seed(seed)
    dec = Decoder()
    with torch.no_grad():
        for m in dec.net:
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                m.bias.zero_()
        dec.net[-1].weight.mul_(0.1)
        dec.net[-1].bias.fill_(0.5)
    save_decoder(dec, path, half=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--decoder", default=None,
                    help="AdaIN decoder file (default: the installed one), or 'random': an "
                         "untrained decoder with signal-preserving init (output depends on the "
                         "content, but it is no style transfer; for a first look without one)")
    ap.add_argument("--model", default=None, help="also measure a fast network (per frame)")
    ap.add_argument("--style", default="builtin:hubble_deep_field")
    ap.add_argument("--clip", action="append", default=None,
                    help="a real clip to measure (repeatable); default: the synthetic clips")
    ap.add_argument("--synthetic", action="store_true",
                    help="measure the synthetic clips too when --clip is given")
    ap.add_argument("--frames", type=positive_int, default=16, help="frames per clip")
    ap.add_argument("--size", type=positive_int, default=128, help="long side of the frames")
    ap.add_argument("--smooth", type=float_list, default=[0.0, 0.5, 0.9])
    ap.add_argument("--style-size", type=positive_int, default=256)
    ap.add_argument("--device", default=None, help="auto (default), cpu, cuda, mps")
    args = ap.parse_args()

    style = load_image(args.style, what="style image")
    with tempfile.TemporaryDirectory() as tmp:
        decoder = args.decoder
        if decoder == "random":
            decoder = str(Path(tmp) / "random_decoder.safetensors")
            random_decoder(decoder)
        clips: list[tuple[str, Path]] = [(Path(c).name, Path(c)) for c in args.clip or []]
        if not args.clip or args.synthetic:
            w = args.size
            h = max(16, round(w * 0.75 / 2) * 2)
            for name, kw in SYNTHETIC.items():
                path = Path(tmp) / f"{name.replace('+', '_')}.mp4"
                synthetic_clip(path, frames=args.frames, size=(w, h), fps=12, audio=False, **kw)
                clips.append((name, path))

        configs = [(f"adain smooth={s:g}", "adain", s) for s in args.smooth]
        if args.model:
            configs.append(("fast per-frame", "fast", None))
        stylizers = {}
        for label, method, smooth in configs:
            if method == "adain":
                stylizers[label] = AdaINVideo([style], None, decoder, smooth=smooth,
                                              style_size=args.style_size, device=args.device)
            else:
                stylizers[label] = make_frame_stylizer("fast", None, model=args.model,
                                                       device=args.device)

        print(f"style {args.style}, decoder {args.decoder or '(installed)'}, "
              f"{args.frames} frames/clip, long side {args.size} px")
        header = f"{'clip':<14}{'config':<22}{'flicker':>9}{'out Δ':>8}{'in Δ':>8}{'frames/s':>10}"
        print(header)
        print("-" * len(header))
        for name, path in clips:
            for label, _, _ in configs:
                st = stylizers[label]
                if hasattr(st, "reset"):
                    st.reset()
                r = stylize_video(path, None, st, size=args.size,
                                  progress=False, max_frames=args.frames)
                fl = "n/a" if math.isnan(r.flicker) else f"{r.flicker:.3f}"
                rate = r.frames / r.seconds if r.seconds > 0 else float("inf")
                print(f"{name:<14}{label:<22}{fl:>9}{r.output_change:>8.2f}{r.input_change:>8.2f}"
                      f"{rate:>10.1f}")
            print()
        print("flicker = mean |out_t - out_t-1| / mean |in_t - in_t-1| (8-bit levels); lower is "
              "steadier.")


if __name__ == "__main__":
    main()
