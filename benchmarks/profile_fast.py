"""Where a fast network's inference time goes on this machine: convolutions against the rest.

Runs each model through :class:`painterly.fast.FastStylizer` (the one fast pipeline, its default
precision) under ``torch.profiler`` and prints, per model, the share of operator time by kind
(convolutions; normalization and statistics; padding, resizing and layout copies; elementwise
activations and the rest), the convolutions' FLOPs and the rate they ran at, against this
machine's peak measured in the same process (a large matmul and a large convolution at the same
precision). A network far below the peak in its convolutions, or with much time outside them,
is bound by memory traffic and small operators, not by its FLOPs.

    python benchmarks/profile_fast.py                          # the shipped models, 512 px
    python benchmarks/profile_fast.py --model runs/f8/model.safetensors --size 1024 --top 12
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import defaultdict

import torch
from bench_realtime import default_images  # beside this script (its folder is on sys.path)
from torch.profiler import ProfilerActivity, profile

from painterly.fast import FastStylizer
from painterly.image import resize

#: Operator-name fragments of each kind, first match wins (aten names, lower case).
KINDS = (
    ("convolution", ("conv", "mkldnn_convolution")),
    ("norm / statistics", ("norm", "var", "std", "mean", "sum", "rsqrt", "sqrt")),
    ("pad / resize / layout", ("pad", "upsample", "interpolate", "copy", "contiguous", "to",
                               "clone", "cat", "slice", "empty", "resize")),
)


def kind(name: str) -> str:
    n = name.lower()
    for label, parts in KINDS:
        if any(p in n for p in parts):
            return label
    return "elementwise / other"


def peak_gflops(dtype: torch.dtype) -> tuple[float, float]:
    """GFLOP/s of a 2048^3 matmul and of a 3x3 convolution (128 -> 128 channels, 128x128), best of
    five, at ``dtype``: what this CPU does when compute is the limit."""
    a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
    x = torch.randn(1, 128, 128, 128, dtype=dtype).contiguous(memory_format=torch.channels_last)
    w = torch.randn(128, 128, 3, 3, dtype=dtype).contiguous(memory_format=torch.channels_last)

    def best(fn, flops: float) -> float:
        fn()
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return flops / min(times) / 1e9

    with torch.inference_mode():
        mm = best(lambda: a @ b, 2 * 2048 ** 3)
        conv = best(lambda: torch.nn.functional.conv2d(x, w, padding=1), 2 * 128 * 128 * 9 * 128 * 128)
    return mm, conv


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", action="append", default=None,
                   help="fast model file or name (repeat; default: the shipped models)")
    p.add_argument("--size", type=int, default=512, help="photo long side")
    p.add_argument("--calls", type=int, default=5, help="profiled calls (after one warm-up)")
    p.add_argument("--top", type=int, default=8, help="operators listed per model")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from painterly.fast.registry import shipped_models

    photo = resize(default_images()[0], args.size)
    models = args.model or [str(m.path) for m in shipped_models()]
    print(f"# profile_fast: {args.calls} calls at {photo.width}x{photo.height} (torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads, "
          f"{torch.backends.cpu.get_cpu_capability()}, {os.cpu_count()} CPUs)")
    peaks: dict[torch.dtype, tuple[float, float]] = {}
    for m in models:
        stylizer = FastStylizer([], model=m, device="cpu")
        dtype = stylizer._dtype or torch.float32
        if dtype not in peaks:
            peaks[dtype] = peak_gflops(dtype)
        stylizer(photo)  # warm-up: buffers and kernels
        walls = []
        for _ in range(args.calls):
            t0 = time.perf_counter()
            stylizer(photo)
            walls.append(time.perf_counter() - t0)
        wall = statistics.median(walls)
        with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
            for _ in range(args.calls):
                stylizer(photo)
        events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
        total = sum(e.self_cpu_time_total for e in events)
        by_kind: dict[str, float] = defaultdict(float)
        for e in events:
            by_kind[kind(e.key)] += e.self_cpu_time_total
        conv_us = by_kind["convolution"]
        conv_flops = sum(e.flops for e in events if kind(e.key) == "convolution") / args.calls
        mm, conv_peak = peaks[dtype]
        rate = conv_flops / (conv_us / args.calls / 1e6) / 1e9 if conv_us else 0.0
        name = os.path.basename(str(m)).removesuffix(".safetensors")
        print(f"\n## {name} ({stylizer.precision}): {wall * 1000:,.0f} ms per call (median of "
              f"{args.calls}, unprofiled), {total / args.calls / 1000:,.0f} ms of operator time "
              f"profiled, {conv_flops / 1e9:.2f} GFLOP in convolutions")
        print("| kind | share of operator time |")
        print("| --- | ---: |")
        for label in [k[0] for k in KINDS] + ["elementwise / other"]:
            print(f"| {label} | {by_kind[label] / total:.0%} |")
        print(f"\nconvolutions ran at {rate:,.0f} GFLOP/s; this CPU's peak at {dtype}: "
              f"{mm:,.0f} (2048^3 matmul), {conv_peak:,.0f} (128-channel 3x3 conv): "
              f"{rate / max(mm, conv_peak):.0%} of it")
        print("\n| top operators (self time) | ms per call | share | kind |")
        print("| --- | ---: | ---: | --- |")
        for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:args.top]:
            print(f"| {e.key} | {e.self_cpu_time_total / args.calls / 1000:.1f} | "
                  f"{e.self_cpu_time_total / total:.0%} | {kind(e.key)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
