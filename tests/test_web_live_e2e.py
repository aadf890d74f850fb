"""End-to-end: the web page's live mode in headless Chromium with a fake camera.

Chromium plays a panning clip the test makes from a photo (``--use-file-for-fake-video-capture``)
as the camera; the page streams it to ``/live`` and shows the painted frames. Checks that painted
frames arrive and differ from the camera's, that a style switch mid-stream changes the output,
that a stream past ``--max-live-streams`` shows the refusal in the page, and that closing the tab
ends the stream on the server. Skips only where no browser or Playwright client is installed.
"""

from __future__ import annotations

import base64
import io
import time

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("websockets")
pytest.importorskip("imageio_ffmpeg")
playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")

from test_web_e2e import CHROMIUM_FLAGS, browser_path  # noqa: E402,F401

from painterly.serve import ServeConfig  # noqa: E402
from painterly.serve.runner import BackgroundServer  # noqa: E402
from painterly.synthetic import synthetic_camera  # noqa: E402

GRAB_OUTPUT = """() => document.getElementById('live-output').toDataURL('image/png')"""
GRAB_CAMERA = """() => {
    const v = document.getElementById('live-camera');
    const c = document.createElement('canvas');
    c.width = v.videoWidth; c.height = v.videoHeight;
    c.getContext('2d').drawImage(v, 0, 0);
    return c.toDataURL('image/png');
}"""


def _image(data_url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))).convert("RGB"),
                      np.float32)


def _wait_frames(page, n: int, timeout: float = 60.0) -> None:
    page.wait_for_function(f"window.painterlyLive.shown.length >= {n}", timeout=timeout * 1000)


def test_live_mode_paints_the_camera_switches_styles_and_ends_with_the_tab(tmp_path, browser_path):  # noqa: F811
    clip = synthetic_camera(tmp_path / "camera.y4m", frames=30, size=(320, 240), fps=15)
    cfg = ServeConfig(device="cpu", preload_gatys=False, max_live_streams=1)
    flags = CHROMIUM_FLAGS + ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                              f"--use-file-for-fake-video-capture={clip}"]
    with BackgroundServer(cfg) as srv, playwright_api.sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=browser_path, headless=True, args=flags,
            viewport={"width": 1200, "height": 1100})
        try:
            page = ctx.new_page()
            page.goto(f"{srv.url}/")
            page.wait_for_selector("#builtin-styles button")
            page.select_option("#method", "fast")
            page.select_option("#live-size", "256")
            page.click("#builtin-styles button[data-name='udnie']")
            page.click("#live-start")
            _wait_frames(page, 4)
            assert page.is_hidden("#live-error"), page.text_content("#live-error")
            assert srv.service.live.open == 1
            first = _image(page.evaluate(GRAB_OUTPUT))
            camera = _image(page.evaluate(GRAB_CAMERA))
            assert max(first.shape[:2]) == 256 and first.std() > 5
            cam = np.asarray(Image.fromarray(camera.astype(np.uint8)).resize(
                (first.shape[1], first.shape[0])), np.float32)
            assert np.abs(first - cam).mean() > 10  # painted, not the camera's frame
            assert "frames/s" in page.text_content("#live-stats")

            # A second stream past --max-live-streams 1: the refusal is shown in its page.
            other = ctx.new_page()
            other.goto(f"{srv.url}/")
            other.wait_for_selector("#builtin-styles button")
            other.click("#live-start")
            other.wait_for_selector("#live-error:not([hidden])", timeout=30_000)
            assert "max-live-streams" in other.text_content("#live-error")
            other.close()

            # A style switch mid-stream, without reconnecting, changes the output.
            acks = page.evaluate("window.painterlyLive.settingsAcks")
            page.click("#builtin-styles button[data-name='mondrian']")
            page.wait_for_function(f"window.painterlyLive.settingsAcks > {acks}", timeout=30_000)
            shown = page.evaluate("window.painterlyLive.shown.length")
            _wait_frames(page, shown + 3)
            after = _image(page.evaluate(GRAB_OUTPUT))
            assert after.shape == first.shape
            assert np.abs(after - first).mean() > 10, "the style switch did not change the output"
            page.screenshot(path=str(tmp_path / "live.png"))

            page.close()  # closing the tab ends the stream on the server
            deadline = time.monotonic() + 15
            while srv.service.live.open and time.monotonic() < deadline:
                time.sleep(0.1)
            assert srv.service.live.open == 0
            assert srv.service.live.frames >= 7
        finally:
            ctx.close()
