"""Peak memory of ``painterly stylize`` against the memory rule, each case in a fresh process.

The rule (docs/LIMITS.md, "Memory"): peak RSS at most 1 GB + 40 bytes per output pixel, and a
refusal spends at most 1 GB. Each case runs the CLI in its own interpreter, which prints its
own peak (VmHWM) when the command returns, so one case's peak never hides another's:

* ``lite`` / ``vgg`` / ``fast``: a 3000x2250 photo painted at ``--size`` on its long side
  (8192 by default: a 50-Mpx output), AdaIN with either network and the shipped ``artworks8``;
* ``style``: ``--style-size 8000`` with a 512 px content (the output is small, the style is not);
* ``refuse lite`` / ``refuse fast``: a 16000x16000 1-bit PNG (under the 268-Mpx decoding cap)
  at full size under an address-space cap of ``--cap-gb`` (8 GiB, as a small machine or a
  container has): the command must exit 2 with one line, spending at most 1 GB;
* ``server lite`` / ``server vgg`` (``--server``): ``painterly serve --network N`` takes 16
  concurrent 4096x4096 JPEG uploads; its peak must stay within ``--memory-budget-mb`` (2048)
  + the loaded models (its RSS after one warm-up request) + 1 GB, and ``/ping`` answers.

    python benchmarks/bench_memory.py                  # all cases at 8192 (several minutes)
    python benchmarks/bench_memory.py --size 4096 --no-vgg --server
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "images" / "dev"
GB = 1024  # MB

RUNNER = r"""
import re, sys
from painterly.cli import main
rc = main(sys.argv[1:])
kb = int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1))
print("PEAK_MB", kb // 1024, "RC", rc)
"""


def make_inputs(folder: Path) -> tuple[Path, Path, Path]:
    """A 3000x2250 photo (a dev photo or a built-in one, resized), a 512 px one, and a
    16000x16000 1-bit PNG."""
    from PIL import Image

    from painterly.image import load_image

    src = SHARED / "content" / "blue-moon-lake.jpg"
    img = load_image(src if src.is_file() else "builtin:astronaut")
    big = folder / "photo_3000.jpg"
    img.resize((3000, 2250), Image.Resampling.LANCZOS).save(big, quality=92)
    small = folder / "photo_512.jpg"
    img.resize((512, 384), Image.Resampling.LANCZOS).save(small, quality=92)
    bits = folder / "bits_16000.png"
    Image.new("1", (16000, 16000), 1).save(bits)
    return big, small, bits


def run(args: list[str], cap_gb: float | None = None) -> tuple[int, int, float, str]:
    """(peak MB, exit code, seconds, last stderr line) of ``painterly ARGS`` in a fresh process."""
    def cap() -> None:
        import resource

        limit = int(cap_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", RUNNER, *args], capture_output=True, text=True,
                          preexec_fn=cap if cap_gb else None)
    seconds = time.perf_counter() - t
    m = re.search(r"PEAK_MB (\d+) RC (-?\d+)", done.stdout)
    err = (done.stderr.strip().splitlines() or [""])[-1]
    if m is None:  # killed, or a traceback before the runner's last line
        return -1, done.returncode, seconds, err
    return int(m.group(1)), int(m.group(2)), seconds, err


def server_case(network: str, style: Path, photo: Path, port: int) -> str:
    """One row: a server flooded with 16 concurrent 4096x4096 uploads (see the module doc)."""
    import io
    import signal
    import threading

    import httpx
    from PIL import Image

    buf = io.BytesIO()
    Image.open(photo).convert("RGB").resize((4096, 4096)).save(buf, "JPEG", quality=90)
    content, style_bytes = buf.getvalue(), style.read_bytes()
    proc = subprocess.Popen([sys.executable, "-m", "painterly", "serve", "--port", str(port),
                             "--network", network], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"

    def mb(key: str) -> int:
        text = open(f"/proc/{proc.pid}/status").read()
        return int(re.search(key + r":\s+(\d+)", text).group(1)) // 1024

    def post(data: bytes) -> int:
        files = [("content", ("c.jpg", data, "image/jpeg")), ("style", ("s.jpg", style_bytes, "image/jpeg"))]
        try:
            return httpx.post(f"{url}/v1/stylize", files=files, timeout=900).status_code
        except httpx.HTTPError:
            return -1

    try:
        for _ in range(240):
            try:
                if httpx.get(f"{url}/ping", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        post(style_bytes)  # loads the models
        models = mb("VmRSS")
        codes: list[int] = []
        pings: list[float] = []
        threads = [threading.Thread(target=lambda: codes.append(post(content))) for _ in range(16)]

        def ping() -> None:
            while len(codes) < 16:
                t = time.perf_counter()
                try:
                    httpx.get(f"{url}/ping", timeout=30)
                except httpx.HTTPError:
                    pass
                pings.append(time.perf_counter() - t)
                time.sleep(0.5)

        threads.append(threading.Thread(target=ping))
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        peak, bar = mb("VmHWM"), 2048 + models + GB
        ok = peak <= bar and codes.count(200) > 0 and all(c in (200, 503) for c in codes)
        return (f"{'server ' + network:<12} {'16 x 16.8':>10} {peak:>8} {bar:>7} {'yes' if ok else 'NO':>5} "
                f"{'':>4} {time.perf_counter() - t0:>6.1f}  {codes.count(200)} x 200, "
                f"{codes.count(503)} x 503; models {models} MB; /ping max {max(pings):.2f} s")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=8192, help="long side of the painted photo (8192)")
    p.add_argument("--style-size", type=int, default=8000)
    p.add_argument("--cap-gb", type=float, default=8.0, help="address-space cap of the refusals")
    p.add_argument("--no-vgg", action="store_true", help="skip the VGG cases (the slow ones)")
    p.add_argument("--server", action="store_true", help="also flood a server (lite, vgg)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        big, small, bits = make_inputs(folder)
        out = str(folder / "out.png")
        w, h = args.size, round(args.size * 2250 / 3000)
        cases = [("lite", ["stylize", str(big), "--style", "builtin:udnie", "--network", "lite",
                           "--size", str(args.size)], w * h, None)]
        if not args.no_vgg:
            cases.append(("vgg", ["stylize", str(big), "--style", "builtin:udnie", "--network",
                                  "vgg", "--size", str(args.size)], w * h, None))
        cases += [
            ("fast", ["stylize", str(big), "--method", "fast", "--style", "udnie", "--size",
                      str(args.size)], w * h, None),
            ("style", ["stylize", str(small), "--style", str(big), "--network", "lite",
                       "--style-size", str(args.style_size)], 512 * 384, None),
            ("refuse lite", ["stylize", str(bits), "--style", "builtin:udnie", "--network", "lite"],
             0, args.cap_gb),
            ("refuse fast", ["stylize", str(bits), "--method", "fast", "--style", "udnie"],
             0, args.cap_gb),
        ]
        print(f"{'case':<12} {'output Mpx':>10} {'peak MB':>8} {'bar MB':>7} {'held':>5} {'exit':>4} "
              f"{'s':>6}  last line")
        for name, argv, pixels, cap in cases:
            peak, rc, seconds, err = run([*argv, "-o", out, "--overwrite"], cap)
            bar = GB + 40 * pixels / 2**20
            refused = name.startswith("refuse")
            ok = peak >= 0 and peak <= bar and (rc == 2 if refused else rc == 0)
            print(f"{name:<12} {pixels / 1e6:>10.1f} {peak:>8} {bar:>7.0f} {'yes' if ok else 'NO':>5} "
                  f"{rc:>4} {seconds:>6.1f}  {err[:90] if (refused or rc) else ''}", flush=True)
        if args.server:
            style = SHARED / "style" / "brushstrokes.jpg"
            style = style if style.is_file() else small
            for i, network in enumerate(["lite"] + ([] if args.no_vgg else ["vgg"])):
                print(server_case(network, style, big, 18790 + i), flush=True)


if __name__ == "__main__":
    main()
