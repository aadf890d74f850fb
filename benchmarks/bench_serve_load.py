"""Load test of the HTTP service, side by side with the raw batched model throughput.

Starts ``painterly serve`` in a subprocess on 127.0.0.1 (AdaIN; a random decoder unless
``--decoder``), runs ``--clients`` concurrent clients for ``--duration`` seconds (or until
``--max-requests``), each posting a content image of ``--size`` px (all one size, so they can be
batched) with one style, and reports requests/s, p50/p95/p99 latency, errors and the batch sizes
the server formed. Then, in this process and on the same device, it times the engine's batched
forward (``AdaINEngine.stylize_batch``) at the same size with ``--max-batch`` images: the ceiling
the server could reach. ``served / raw`` is the serving efficiency (goal on a GPU: >= 80%).

    python benchmarks/bench_serve_load.py                      # CPU, 128 px, 6 clients, 15 s
    python benchmarks/bench_serve_load.py --device cuda --size 512 --clients 32 --max-batch 16
    python benchmarks/bench_serve_load.py --also-unbatched     # a second run with --max-batch 1

All traffic stays on 127.0.0.1; the server is stopped at the end (also on Ctrl-C or errors).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
from PIL import Image


def make_image(size: int, seed: int) -> Image.Image:
    """A structured colourful test picture (gradients, waves, a disc), ``size`` x ``size``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    arr = np.stack([xx, yy, 0.5 + 0.5 * np.sin(xx * 20 + seed) * np.cos(yy * 13)], -1)
    disc = (xx - rng.uniform(0.3, 0.7)) ** 2 + (yy - rng.uniform(0.3, 0.7)) ** 2 < 0.05
    arr[disc] = rng.uniform(0, 1, 3)
    return Image.fromarray((np.clip(arr, 0, 1) * 255).astype(np.uint8))


def png_bytes(img: Image.Image) -> bytes:
    from painterly.image import encode_image

    return encode_image(img, "PNG")


def random_decoder(folder: Path) -> str:
    import torch

    from painterly.adain.model import Decoder, save_decoder

    torch.manual_seed(0)
    path = folder / "decoder.safetensors"
    save_decoder(Decoder(), str(path))
    return str(path)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def start_server(args: argparse.Namespace, decoder: str, port: int, max_batch: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "painterly", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--device", args.device, "--decoder", decoder, "--max-batch", str(max_batch),
           "--batch-wait-ms", str(args.batch_wait_ms), "--queue-size", str(max(16, 2 * args.clients)),
           "--timeout", "120", "--no-preload-gatys", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited during start-up:\n{proc.stderr.read()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("server not ready after 180 s")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def run_load(args: argparse.Namespace, url: str, contents: list[bytes], style: bytes) -> dict:
    """``args.clients`` threads posting back to back until the time or request budget is spent."""
    latencies: list[float] = []
    statuses: Counter = Counter()
    batch_sizes: Counter = Counter()
    lock = threading.Lock()
    stop_at = time.monotonic() + args.duration
    budget = [args.max_requests]
    fields = {"style_size": str(args.style_size), "alpha": "1.0"}

    def client(i: int) -> None:
        with httpx.Client(timeout=120) as http:
            k = i
            while time.monotonic() < stop_at:
                with lock:
                    if budget[0] <= 0:
                        return
                    budget[0] -= 1
                files = [("content", ("c.png", contents[k % len(contents)], "image/png")),
                         ("style", ("s.png", style, "image/png"))]
                t0 = time.perf_counter()
                try:
                    r = http.post(f"{url}/v1/stylize", files=files, data=fields)
                    status = r.status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                    r = None
                dt = time.perf_counter() - t0
                with lock:
                    statuses[status] += 1
                    if status == 200:
                        latencies.append(dt)
                        batch_sizes[int(r.headers.get("x-painterly-batch-size", 0))] += 1
                k += args.clients

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ok = statuses.get(200, 0)
    return {"wall": wall, "ok": ok, "rps": ok / wall, "lat": latencies,
            "errors": {k: v for k, v in statuses.items() if k != 200}, "batch_sizes": batch_sizes}


def raw_throughput(args: argparse.Namespace, decoder: str, contents: list[bytes], style: bytes,
                   batch: int) -> tuple[float, float]:
    """Images/s of the engine's batched forward at the served size (median of repeats)."""
    import torch

    from painterly.adain.core import StyleStats
    from painterly.image import load_image, pil_to_tensor, resize
    from painterly.serve.engine import AdaINEngine, AdaINJob

    if args.threads:
        torch.set_num_threads(args.threads)
    engine = AdaINEngine(decoder, args.device)
    s = pil_to_tensor(resize(load_image(style), args.style_size))
    stats = StyleStats.stack([engine.style_stats(s)], [1.0])
    jobs = [AdaINJob(pil_to_tensor(load_image(contents[i % len(contents)])), stats, 1.0)
            for i in range(batch)]
    engine.stylize_batch(jobs)  # warm-up
    times = []
    budget_end = time.monotonic() + max(5.0, args.duration / 2)
    while len(times) < args.raw_repeats and (len(times) < 3 or time.monotonic() < budget_end):
        if engine.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        engine.stylize_batch(jobs)
        if engine.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return batch / med, med


def report(name: str, res: dict) -> None:
    lat = [x * 1000 for x in res["lat"]]
    sizes = res["batch_sizes"]
    n = sum(sizes.values())
    mean_b = sum(k * v for k, v in sizes.items()) / n if n else 0.0
    print(f"{name:<22} {res['rps']:8.2f} req/s  ok {res['ok']:5d}  "
          f"p50 {percentile(lat, 50):7.1f} ms  p95 {percentile(lat, 95):7.1f} ms  "
          f"p99 {percentile(lat, 99):7.1f} ms  errors {res['errors'] or 0}  "
          f"mean batch {mean_b:.2f} {dict(sorted(sizes.items()))}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, auto")
    p.add_argument("--size", type=int, default=128, help="content side in px (square), default 128")
    p.add_argument("--style-size", type=int, default=128, help="style long side, default 128")
    p.add_argument("--clients", type=int, default=6, help="concurrent clients (default 6)")
    p.add_argument("--duration", type=float, default=15.0, help="seconds of load (default 15)")
    p.add_argument("--max-requests", type=int, default=2000, help="stop after this many requests")
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--batch-wait-ms", type=float, default=5.0)
    p.add_argument("--decoder", default=None, help="decoder file (default: a random one)")
    p.add_argument("--raw-repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=0, help="torch threads for the raw run (0: default)")
    p.add_argument("--port", type=int, default=0, help="server port (0: a free one)")
    p.add_argument("--also-unbatched", action="store_true",
                   help="also run the load against a server started with --max-batch 1")
    args = p.parse_args()
    from painterly.serve.runner import free_port

    with tempfile.TemporaryDirectory() as tmp:
        decoder = args.decoder or random_decoder(Path(tmp))
        contents = [png_bytes(make_image(args.size, seed)) for seed in range(16)]
        style = png_bytes(make_image(max(args.style_size, 64), 99).rotate(30))
        print(f"painterly serve load test: device {args.device}, {args.size}x{args.size} content, "
              f"style {args.style_size} px, {args.clients} clients, {args.duration:g} s, "
              f"max batch {args.max_batch}, wait {args.batch_wait_ms:g} ms, {os.cpu_count()} CPUs")
        runs = [("served (batched)", args.max_batch)]
        if args.also_unbatched:
            runs.append(("served (max-batch 1)", 1))
        results = {}
        for name, mb in runs:
            port = args.port or free_port()
            proc = start_server(args, decoder, port, mb)
            try:
                url = f"http://127.0.0.1:{port}"
                for i in range(3):  # warm-up (style statistics cached after the first)
                    httpx.post(f"{url}/v1/stylize", timeout=120,
                               files=[("content", ("c.png", contents[i])), ("style", ("s.png", style))],
                               data={"style_size": str(args.style_size)})
                results[name] = run_load(args, url, contents, style)
            finally:
                stop_server(proc)
            report(name, results[name])
        # The raw runs use a worker thread, as the server does (on a busy CPU the main thread's
        # OpenMP team can be several times slower than a worker thread's: compare like with like).
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(1)
        raw_ips, raw_t = pool.submit(raw_throughput, args, decoder, contents, style,
                                     args.max_batch).result()
        print(f"{'raw batched forward':<22} {raw_ips:8.2f} img/s  (batch {args.max_batch}: "
              f"{raw_t * 1000:.1f} ms per batch, same size and device, no HTTP)")
        if args.max_batch > 1:
            one_ips, one_t = pool.submit(raw_throughput, args, decoder, contents, style, 1).result()
            print(f"{'raw forward, batch 1':<22} {one_ips:8.2f} img/s  ({one_t * 1000:.1f} ms per image)")
        served = results["served (batched)"]["rps"]
        print(f"serving efficiency: served / raw = {served / raw_ips:.0%}  (goal on a GPU: >= 80%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
