"""End-to-end: the web page in headless Chromium against a real server on 127.0.0.1.

Uploads a photo through the file picker and drops a style on the page (drag and drop), moves
the alpha slider, clicks
Stylize and checks the image the page shows: decoded, it has the content's size and is not the
content. Then checks that a server error is shown in the page. Uses AdaIN with a random decoder
(fast on CPU). Skips only where no browser or Playwright client is installed (.ci/run installs
both: Debian's chromium and the Python playwright package).
"""

from __future__ import annotations

import base64
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")

from conftest import make_image  # noqa: E402

from painterly.serve import ServeConfig  # noqa: E402
from painterly.serve.runner import BackgroundServer  # noqa: E402

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def find_chromium() -> str | None:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser"),
                      shutil.which("google-chrome")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.fixture(scope="module")
def browser_path() -> str:
    path = find_chromium()
    if path is None:
        pytest.skip("no Chromium installed (apt-get install chromium)")
    return path


def _decoder(tmp_path: Path) -> str:
    import torch

    from painterly.adain.model import Decoder, save_decoder

    torch.manual_seed(0)
    dec = Decoder()
    with torch.no_grad():  # a random decoder paints flat grey; this one paints something
        dec.net[-1].weight.mul_(20.0)
        dec.net[-1].bias.fill_(0.5)
    path = tmp_path / "decoder.safetensors"
    save_decoder(dec, str(path), half=False)
    return str(path)


def test_page_uploads_stylizes_and_shows_result(tmp_path, browser_path):
    content = make_image(120, 80, seed=2)
    content_path = tmp_path / "photo.png"
    content.save(content_path)
    style_path = tmp_path / "art.png"
    make_image(64, 64, seed=9).rotate(45).save(style_path)
    cfg = ServeConfig(device="cpu", decoder=_decoder(tmp_path), preload_gatys=False)

    with BackgroundServer(cfg) as srv, playwright_api.sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=browser_path, headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1200, "height": 850})
        try:
            page = ctx.new_page()
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(f"{srv.url}/")
            page.wait_for_selector("#builtin-styles button")  # /v1/methods answered
            assert page.input_value("#method") == "adain"
            page.set_input_files("#content-file", str(content_path))  # the file picker
            # The style by drag and drop: a real File in a DataTransfer, dropped on the zone.
            style_b64 = base64.b64encode(style_path.read_bytes()).decode()
            transfer = page.evaluate_handle("""(b64) => {
                const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                const dt = new DataTransfer();
                dt.items.add(new File([bytes], "art.png", { type: "image/png" }));
                return dt;
            }""", style_b64)
            page.dispatch_event("#style-drop", "dragover", {"dataTransfer": transfer})
            page.dispatch_event("#style-drop", "drop", {"dataTransfer": transfer})
            assert page.text_content("#style-drop .drop-hint") == "art.png"
            assert page.is_visible("#style-preview")
            page.fill("#alpha", "0.8")
            assert page.text_content("#alpha-value") == "0.80"
            page.click("#stylize")
            page.wait_for_selector("#result:not([hidden]), #error:not([hidden])", timeout=120_000)
            assert page.is_hidden("#error"), page.text_content("#error")
            assert page.is_visible("#result")
            assert page.get_attribute("#download", "href").startswith("blob:")
            data_url = page.evaluate("""async () => {
                const r = await fetch(document.getElementById('result').src);
                const b = await r.blob();
                return await new Promise((ok) => { const f = new FileReader();
                    f.onload = () => ok(f.result); f.readAsDataURL(b); });
            }""")
            page.screenshot(path=str(tmp_path / "page.png"))
            result = Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))).convert("RGB")
            assert result.size == content.size
            diff = np.abs(np.asarray(result, np.int16) - np.asarray(content, np.int16)).mean()
            assert diff > 5, diff
            assert np.asarray(result).std() > 2  # a picture, not a flat fill

            # A server-side error is shown in the page, and the last result stays.
            page.fill("#size", "99999")
            page.click("#stylize")
            page.wait_for_selector("#error:not([hidden])", timeout=60_000)
            assert "limit" in page.text_content("#error")
            assert page.is_visible("#result")
            # Everything the page loaded came from the server itself (works offline).
            assert requests and all(u.startswith((srv.url, "blob:", "data:")) for u in requests)
        finally:
            ctx.close()
