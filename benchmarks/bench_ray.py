"""Folder mode against Ray Data on one machine: images per second, side by side in one run.

The same ``--images`` content images at ``--size`` x ``--size`` (crops of the built-in photos, or
of ``--content-dir``) are stylized with AdaIN and one style, as whole jobs from call to PNGs on
disk, through

* folder mode (:func:`painterly.batch.stylize_folder`, one process, torch on every core), and
* Ray (:func:`painterly.ray.stylize_path`: read tasks -> actor pool -> write tasks) for each
  ``--ray-configs`` entry ``ACTORSxTHREADS`` (``1x2``: one actor with 2 torch threads).

Each job includes loading the networks (folder mode's process cache is cleared first; Ray's
actors are new per job). Starting the local Ray instance is timed on its own line: on a cluster
it is up already. Rounds are interleaved (``--repeats``) so machine load hits every path alike;
the best round of each is compared, and every Ray result is checked against folder mode's.

    python benchmarks/bench_ray.py                              # 64 images, 512 px, 1x2 and 2x1
    python benchmarks/bench_ray.py --repeats 2 --json runs/bench_ray.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from painterly.adain.networks import NETWORKS
from painterly.api import make_stylizer
from painterly.batch import stylize_folder
from painterly.image import BUILTIN_CONTENT, list_images, load_image


def make_contents(folder: Path, n: int, size: int, source_dir: str | None, seed: int = 0) -> None:
    """``n`` different ``size`` x ``size`` JPEGs: random crops (and flips) of the source photos."""
    rng = np.random.default_rng(seed)
    sources = ([load_image(p) for p in list_images(source_dir)] if source_dir
               else [load_image(f"builtin:{name}") for name in BUILTIN_CONTENT])
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = sources[i % len(sources)]
        side = int(min(img.size) * rng.uniform(0.6, 1.0))
        x = int(rng.integers(0, img.width - side + 1))
        y = int(rng.integers(0, img.height - side + 1))
        crop = img.crop((x, y, x + side, y + side)).resize((size, size), Image.Resampling.LANCZOS)
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        crop.save(folder / f"img{i:04d}.jpg", quality=92)


def run_folder(content: Path, style: Path, out: Path, precision: str) -> float:
    """Folder mode, whole job (networks loaded inside); seconds."""
    NETWORKS.clear()
    t0 = time.perf_counter()
    n = stylize_folder(str(content), [str(style)], str(out),
                       lambda group: make_stylizer("adain", group, precision=precision), "m", overwrite=True)
    seconds = time.perf_counter() - t0
    assert int(n) == len(list_images(content)), n
    return seconds


def run_ray(content: Path, style: Path, out: Path, actors: int, threads: int, batch_size: int,
            precision: str) -> float:
    """Ray Data, whole job (actors start and load the networks inside); seconds."""
    from painterly.ray import stylize_path

    t0 = time.perf_counter()
    n = stylize_path(str(content), [str(style)], str(out), method="adain", overwrite=True, quiet=True,
                     concurrency=actors, threads=threads, batch_size=batch_size, precision=precision)
    seconds = time.perf_counter() - t0
    assert int(n) == len(list_images(content)), n
    return seconds


def max_difference(a: Path, b: Path) -> int:
    """Largest 8-bit difference between same-named results of two output folders."""
    worst = 0
    for p in sorted(a.iterdir()):
        x = np.asarray(Image.open(p), dtype=np.int16)
        y = np.asarray(Image.open(b / p.name), dtype=np.int16)
        worst = max(worst, int(np.abs(x - y).max()))
    return worst


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--style", default="builtin:udnie")
    ap.add_argument("--content-dir", default=None, help="crop these photos instead of the built-in ones")
    ap.add_argument("--ray-configs", default="1x2,2x1", help="ACTORSxTHREADS entries, comma-separated")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args()
    configs = [tuple(int(v) for v in c.lower().split("x")) for c in args.ray_configs.split(",") if c]

    import ray
    import ray.data

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        root = Path(tmp)
        content, style = root / "content", root / "style.png"
        make_contents(content, args.images, args.size, args.content_dir)
        load_image(args.style).save(style)
        print(f"{args.images} images {args.size}x{args.size}, style {args.style}, AdaIN (shipped decoder), "
              f"precision {args.precision}, {os.cpu_count()} CPUs, load average {load_before:.1f}")

        t0 = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - t0
        ray.data.DataContext.get_current().enable_progress_bars = False
        print(f"local Ray instance started in {ray_start:.1f} s (not counted below: a cluster is up already)")

        times: dict[str, list[float]] = {"folder": []}
        for a, t in configs:
            times[f"ray {a}x{t}"] = []
        try:
            for r in range(args.repeats):
                times["folder"].append(run_folder(content, style, root / "folder", args.precision))
                for a, t in configs:
                    key = f"ray {a}x{t}"
                    times[key].append(run_ray(content, style, root / key.replace(" ", "_"), a, t,
                                              args.batch_size, args.precision))
                print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items()))
            diffs = {k: max_difference(root / "folder", root / k.replace(" ", "_"))
                     for k in times if k != "folder"}
        finally:
            ray.shutdown()

    base = args.images / min(times["folder"])
    print(f"\n{'path':<14} {'best s':>8} {'images/s':>9} {'vs folder':>10} {'max 8-bit diff':>15}")
    rows = {}
    for key, ts in times.items():
        ips = args.images / min(ts)
        rows[key] = {"seconds": ts, "images_per_s": ips, "vs_folder": ips / base,
                     "max_diff": diffs.get(key, 0)}
        label = "folder mode" if key == "folder" else f"{key} (actors x threads, batch {args.batch_size})"
        print(f"{key:<14} {min(ts):>8.1f} {ips:>9.2f} {ips / base:>9.2f}x {diffs.get(key, 0):>15}   {label}")
    load_after = os.getloadavg()[0]
    print(f"load average after: {load_after:.1f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "images": args.images, "size": args.size, "style": args.style, "precision": args.precision,
            "cpus": os.cpu_count(), "batch_size": args.batch_size, "ray_start_s": ray_start,
            "load_before": load_before, "load_after": load_after, "paths": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
