"""The live loop (painterly.live) and ``painterly live``: the latest-frame slot, the painter's
settings changes, a clip painted to a file, bad input, and the window's keys under Xvfb."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from painterly.errors import PainterlyError
from painterly.live import LatestFrame, LiveMeter, LivePainter, LiveSettings, frame_size

pytest.importorskip("imageio_ffmpeg")


def test_latest_frame_wins_and_counts_the_dropped():
    slot = LatestFrame()
    for i in range(5):
        slot.put(i)
    assert slot.take(0) == 4 and slot.dropped == 4
    assert slot.take(0.01) is None
    threading.Timer(0.05, slot.close).start()
    assert slot.take(5) is None  # closed and empty


def test_frame_size_shrinks_never_enlarges():
    assert frame_size((480, 640, 3), 384) == (384, 288)
    assert frame_size((100, 80, 3), 384) == (80, 100)


def test_painter_swaps_only_settings_that_build():
    built = []

    def build(s: LiveSettings):
        if s.style == ("bad",):
            raise PainterlyError("bad style")
        built.append(s.style)
        return lambda f: 255 - f

    p = LivePainter(LiveSettings("fast", ("a",), size=64), build=build)
    frame = np.zeros((120, 160, 3), np.uint8)
    assert p(frame).shape == (48, 64, 3) and p(frame).min() == 255
    with pytest.raises(PainterlyError, match="bad style"):
        p.configure(LiveSettings("fast", ("bad",), size=64))
    assert p.settings.style == ("a",)  # the old stylizer paints on
    p.configure(LiveSettings("fast", ("a",), size=64))  # unchanged: not rebuilt
    assert built == [("a",)]
    with pytest.raises(PainterlyError, match="live size"):
        p.configure(LiveSettings("fast", ("a",), size=4))
    with pytest.raises(PainterlyError, match="needs a style"):
        p.configure(LiveSettings("adain", ()))
    with pytest.raises(PainterlyError, match="too small"):
        p(np.zeros((4, 4, 3), np.uint8))


def test_meter_summary():
    m = LiveMeter()
    for i in range(11):
        m.record(captured=i * 0.1, shown=i * 0.1 + 0.05)
    s = m.summary([0.02] * 11)
    assert s["frames"] == 11 and abs(s["fps"] - 10) < 1e-6
    assert abs(s["latency_ms_median"] - 50) < 1e-6 and abs(s["model_ms_median"] - 20) < 1e-6


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    from painterly.synthetic import synthetic_clip

    return synthetic_clip(tmp_path_factory.mktemp("live") / "clip.mp4", frames=10, size=(96, 64),
                          audio=False)


def _painterly(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "painterly", "live", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_live_paints_a_clip_to_a_file(clip, tmp_path):
    from painterly.video import probe

    out = tmp_path / "out.mp4"
    r = _painterly(str(clip), "--style", "builtin:udnie", "-o", str(out), "--no-window",
                   "--size", "64")
    assert r.returncode == 0, r.stderr
    assert "10 frames" in r.stdout and "frames/s" in r.stdout and "latency" in r.stdout
    info = probe(out)
    assert info.size == (64, 42) or info.size == (64, 43)
    r = _painterly(str(clip), "--method", "fast", "--style", "mondrian", "-o", str(out),
                   "--no-window", "--size", "64")
    assert r.returncode == 2 and "output exists" in r.stderr  # nothing a user has is overwritten


@pytest.mark.parametrize("args, message", [
    (["--no-window"], "needs -o FILE"),
    (["--style", "builtin:nope", "--no-window", "-o", "x.mp4"], "unknown built-in image"),
    (["--method", "fast", "--style", "nope", "--no-window", "-o", "x.mp4"], "nope"),
    (["--no-window", "-o", "x.txt"], "must end in"),
])
def test_live_bad_input_is_one_line(clip, tmp_path, args, message):
    r = _painterly(str(clip), *[str(tmp_path / a) if a.endswith((".mp4", ".txt")) else a for a in args])
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr and len(r.stderr.splitlines()) == 1


def test_live_missing_camera_and_file_are_one_line(tmp_path):
    for source, message in (("7", "cannot open camera 7"), (str(tmp_path / "none.mp4"), "not found")):
        r = _painterly(source, "--style", "builtin:udnie", "--no-window", "-o", str(tmp_path / "o.mp4"))
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


@pytest.mark.skipif(not (shutil.which("Xvfb") and shutil.which("xdotool")),
                    reason="needs Xvfb and xdotool (apt-get install xvfb xdotool)")
def test_the_window_opens_and_a_key_switches_styles(tmp_path):
    pytest.importorskip("tkinter")
    from painterly.synthetic import synthetic_clip

    long_clip = synthetic_clip(tmp_path / "long.mp4", frames=300, size=(96, 64), audio=False)
    display = f":{90 + os.getpid() % 400}"
    xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "640x480x24"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        env = {**os.environ, "DISPLAY": display}
        proc = subprocess.Popen([sys.executable, "-m", "painterly", "live", str(long_clip),
                                 "--method", "fast", "--style", "udnie", "--style", "mondrian",
                                 "--size", "64", "--temporal", "0"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            window = ""
            deadline = time.monotonic() + 120
            while not window and time.monotonic() < deadline and proc.poll() is None:
                found = subprocess.run(["xdotool", "search", "--name", "painterly live"], env=env,
                                       capture_output=True, text=True)
                window = found.stdout.split()[0] if found.stdout.split() else ""
                time.sleep(0.3)
            assert window, "no window opened"
            subprocess.run(["xdotool", "windowfocus", window], env=env, capture_output=True)
            subprocess.run(["xdotool", "key", "n"], env=env, check=True)
            time.sleep(1.5)
            subprocess.run(["xdotool", "key", "q"], env=env, check=True)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, err
        assert "style: mondrian" in out
        assert "frames/s" in out
    finally:
        xvfb.kill()
