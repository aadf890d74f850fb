"""Live mode end to end: Chromium with a fake camera, the web page, ``/live``, the painter.

The same set-up as ``tests/test_web_live_e2e.py``: a panning clip made from a photo plays as the
camera (640x480 at ``--fps``); the page streams it to a server in this process and shows the
painted frames. For each configuration (method fast / lite, live size 384 / 512) it runs
``--seconds`` and prints, from the page's own measurements (``window.painterlyLive``):

* frames/s over the run, and the median and p95 capture-to-display latency, the p95 over the
  first and over the last third (frame dropping works when the last is no higher);
* beside them, the model's own time for one frame of that size (:class:`painterly.live.LivePainter`
  on a camera frame, median of 15 after warm-up, nothing else running), measured in the same run
  just before and just after the configuration's stream (their mean), and the bar's target:
  0.7 x min(camera fps, 1 / model time).

Then ``--streams`` pages at once (fast, 384): each page's frames/s against the single stream's,
``/ping``'s slowest answer during the run, the server's peak RSS, and one more page past
``--max-live-streams`` (its message).

    python benchmarks/bench_live.py                  # 60 s per configuration
    python benchmarks/bench_live.py --seconds 20 --screenshot docs/images/live.png
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_web_e2e import CHROMIUM_FLAGS, find_chromium  # noqa: E402  (the tests' browser set-up)

FLAGS = CHROMIUM_FLAGS + [
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
    # several pages stream at once: none of them is a throttled background tab
    "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows"]
CONFIGS = (("fast", 384), ("lite", 384), ("fast", 512), ("lite", 512))


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return float("nan")


def model_ms(method: str, size: int) -> float:
    """The painter's own time for one camera frame at ``size`` (ms, median of 15)."""
    from painterly.image import load_image
    from painterly.live import LivePainter, LiveSettings

    photo = np.asarray(load_image("builtin:chelsea").resize((640, 480)))
    options = {"network": "lite"} if method == "lite" else {}
    settings = LiveSettings("adain" if method == "lite" else "fast",
                            ("builtin:udnie",) if method == "lite" else ("udnie",), size=size,
                            options={**options, "device": "cpu"})
    painter = LivePainter(settings)
    for _ in range(5):
        painter(photo)
    painter.model_seconds.clear()
    for _ in range(15):
        painter(photo)
    return statistics.median(painter.model_seconds) * 1000


def open_page(browser, url: str, method: str, size: int):
    """A page in a context of its own (a window of its own: no page is a background tab)."""
    page = browser.new_context(viewport={"width": 1200, "height": 1100}).new_page()
    page.goto(url)
    page.wait_for_selector("#builtin-styles button")
    page.select_option("#method", "adain" if method == "lite" else "fast")
    if method == "lite":
        page.select_option("#network", "lite")
    page.select_option("#live-size", str(size))
    page.click("#builtin-styles button[data-name='udnie']")
    page.click("#live-start")
    page.wait_for_function("window.painterlyLive.shown.length >= 2", timeout=120_000)
    page.evaluate("window.painterlyLive.shown.length = 0; window.painterlyLive.latency.length = 0;")
    return page


def page_figures(page) -> dict:
    shown, lat, stages, model = page.evaluate(
        "[window.painterlyLive.shown, window.painterlyLive.latency, window.painterlyLive.stages, "
        "window.painterlyLive.model]")
    shown, lat = np.array(shown), np.array(lat)
    if len(shown) < 3:
        return {"fps": 0.0, "median": float("nan"), "p95": float("nan"), "p95_first": float("nan"),
                "p95_last": float("nan"), "frames": len(shown)}
    span = (shown[-1] - shown[0]) / 1000
    third = (shown[-1] - shown[0]) / 3
    first, last = lat[shown <= shown[0] + third], lat[shown >= shown[-1] - third]
    st = np.median(np.array(stages), axis=0) if stages else [float("nan")] * 4
    return {"series": (shown.tolist(), lat.tolist()), "stages": st,
            "painter": float(np.median(model)) if model else float("nan"),
            "fps": (len(shown) - 1) / span, "median": float(np.median(lat)),
            "p95": float(np.percentile(lat, 95)), "p95_first": float(np.percentile(first, 95)),
            "p95_last": float(np.percentile(last, 95)), "frames": len(shown)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--fps", type=float, default=30.0, help="the fake camera's frame rate")
    ap.add_argument("--streams", type=int, default=4,
                    help="pages at once in the last part (0: skip it)")
    ap.add_argument("--configs", default=",".join(f"{m}:{s}" for m, s in CONFIGS))
    ap.add_argument("--inflight", type=int, default=None,
                    help="frames the page keeps in flight (the page's default: 2)")
    ap.add_argument("--no-pace", action="store_true",
                    help="the page sends its second frame at once, not when the server is "
                         "about to be free (the old behaviour, for comparison)")
    ap.add_argument("--early", type=float, default=None,
                    help="ms earlier than the server's estimated free time the page times a frame "
                         "to arrive (the page's default: 30%% of the server's time a frame, at "
                         "least 4)")
    ap.add_argument("--dump", default=None,
                    help="write each configuration's frames (shown time, latency) to this JSON")
    ap.add_argument("--screenshot", default=None, help="save the live panel mid-stream here (PNG)")
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    from painterly.serve import ServeConfig
    from painterly.serve.runner import BackgroundServer
    from painterly.synthetic import synthetic_camera

    browser = find_chromium()
    if browser is None:
        print("no Chromium installed (apt-get install chromium)")
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="painterly-bench-live-"))
    camera = synthetic_camera(tmp / "camera.y4m", frames=int(args.fps * 6), size=(640, 480),
                              fps=args.fps, pan=2.0)
    configs = [(c.split(":")[0], int(c.split(":")[1])) for c in args.configs.split(",")]
    own = {c: model_ms(*c) for c in configs}
    if (("fast", 384)) not in own:
        own[("fast", 384)] = model_ms("fast", 384)
    cfg = ServeConfig(device="cpu", preload_gatys=False, max_live_streams=max(1, args.streams))
    print(f"camera 640x480 at {args.fps:g} fps; {args.seconds:g} s per configuration\n")
    print(f"{'config':<10} {'frames/s':>8} {'target':>7} {'model ms':>8} {'lat med':>8} "
          f"{'lat p95':>8} {'p95 1st':>8} {'p95 last':>8} {'x model':>8}")
    single, breakdown, dumped = {}, [], {}
    with BackgroundServer(cfg) as srv, sync_playwright() as pw:
        ctx = pw.chromium.launch(executable_path=browser, headless=True,
                                 args=FLAGS + [f"--use-file-for-fake-video-capture={camera}"])
        query = ([f"inflight={args.inflight}"] if args.inflight else []) + \
            (["pace=0"] if args.no_pace else []) + ([f"early={args.early:g}"] if args.early else [])
        url = f"{srv.url}/" + (f"?{'&'.join(query)}" if query else "")
        try:
            for method, size in configs:
                page = open_page(ctx, url, method, size)
                time.sleep(args.seconds)
                f = page_figures(page)
                if args.screenshot and (method, size) == configs[0]:
                    Path(args.screenshot).parent.mkdir(parents=True, exist_ok=True)
                    page.locator("#live-panel").screenshot(path=args.screenshot)
                page.close()
                # the mean of the model's time before and after the run: this machine's speed
                # drifts by tens of percent within minutes, and the target follows the model
                m = (own[(method, size)] + model_ms(method, size)) / 2
                target = 0.7 * min(args.fps, 1000 / m)
                single[(method, size)] = f["fps"]
                if args.dump:
                    dumped[f"{method}:{size}"] = f.get("series")
                print(f"{method}:{size:<5} {f['fps']:8.1f} {target:7.1f} {m:8.0f} {f['median']:8.0f} "
                      f"{f['p95']:8.0f} {f['p95_first']:8.0f} {f['p95_last']:8.0f} "
                      f"{f['median'] / m:8.2f}", flush=True)
                breakdown.append(f"{method}:{size}: capture to sent {f['stages'][0]:.0f} ms, "
                                 f"sent to answered {f['stages'][1]:.0f} (the server's part "
                                 f"{f['stages'][2]:.0f}, its painter's "
                                 f"{f['painter']:.0f}), answered to shown {f['stages'][3]:.0f}")
            if args.dump:
                Path(args.dump).write_text(json.dumps(dumped))
            if args.streams <= 0:
                print("\nmedian latency by stage:\n  " + "\n  ".join(breakdown))
                return 0
            # Several streams at once.
            base = single.get(("fast", 384)) or float("nan")
            rss0 = rss_mb()
            pages = [open_page(ctx, url, "fast", 384) for _ in range(args.streams)]
            pings: list[float] = []
            peak = [rss_mb()]
            stop = threading.Event()

            def watch() -> None:
                while not stop.is_set():
                    t0 = time.perf_counter()
                    with urllib.request.urlopen(f"{srv.url}/ping", timeout=10) as r:
                        r.read()
                    pings.append(time.perf_counter() - t0)
                    peak.append(rss_mb())
                    time.sleep(0.25)

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            time.sleep(args.seconds)
            stop.set()
            watcher.join()
            figures = [page_figures(p) for p in pages]
            extra = ctx.new_context().new_page()
            extra.goto(url)
            extra.wait_for_selector("#builtin-styles button")
            extra.click("#live-start")
            extra.wait_for_selector("#live-error:not([hidden])", timeout=30_000)
            refusal = extra.text_content("#live-error")
            for p in pages + [extra]:
                p.close()
        finally:
            ctx.close()
    print("\nmedian latency by stage:\n  " + "\n  ".join(breakdown))
    rates = ", ".join(f"{f['fps']:.1f}" for f in figures)
    share = min(f["fps"] for f in figures) / base if base else float("nan")
    print(f"\n{args.streams} streams (fast:384): frames/s {rates}; the slowest {100 * share:.0f}% of "
          f"the single stream's ({base:.1f})")
    print(f"/ping during them: slowest {1000 * max(pings):.0f} ms over {len(pings)} calls; "
          f"server RSS {rss0:.0f} MB before, peak {max(peak):.0f} MB")
    print(f"stream {args.streams + 1}: {refusal}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
