"""The HTTP service's routes and handlers (serve/app.py): ping, methods, stylize, invocations,
Accept negotiation, 500s without tracebacks, the web page.

Small images (<= 96 px) and a random AdaIN decoder keep it fast on CPU (the ``decoder_file`` and
``client`` fixtures in conftest.py, the helpers in serve_helpers.py).
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from fastapi.testclient import TestClient  # noqa: E402
from serve_helpers import CONTENT, SMALL_STYLE, STYLE, config, decode, png, stylize  # noqa: E402

from painterly.serve import create_app  # noqa: E402


def test_ping_is_503_until_models_are_loaded(decoder_file, monkeypatch):
    from painterly.serve.service import Service

    gate = threading.Event()
    real_load = Service.load

    def slow_load(self):
        gate.wait(30)
        real_load(self)

    monkeypatch.setattr(Service, "load", slow_load)
    app = create_app(config(decoder_file, eager_load=False))
    with TestClient(app) as c:
        r = c.get("/ping")
        assert r.status_code == 503 and "error" in r.json()
        r = stylize(c)
        assert r.status_code == 503
        gate.set()
        for _ in range(200):
            if c.get("/ping").status_code == 200:
                break
            time.sleep(0.05)
        assert c.get("/ping").status_code == 200


def test_methods_lists_methods_models_and_builtin_styles(client, decoder_file):
    data = client.get("/v1/methods").json()
    assert data["ready"] and data["default_method"] == "adain"
    assert set(data["methods"]) == {"adain", "gatys", "fast"}
    assert data["methods"]["adain"]["available"] is True
    for m in data["methods"].values():
        assert isinstance(m["reason"], str)
    assert data["models"]["adain_decoder"]["file"] == "decoder.safetensors"
    assert decoder_file not in str(data)  # no server paths
    # nor the training run's (a shipped file's config names the trainer's folders)
    assert "training" not in data["models"]["adain_decoder"] and "/" not in json.dumps(
        {k: v for k, v in data["models"]["adain_decoder"].items() if k != "card"})
    assert data["models"]["adain_decoder"]["card"].endswith("MODEL_CARD.md")
    names = [s["name"] for s in data["builtin_styles"]]
    assert "retina" in names
    thumb = client.get(data["builtin_styles"][0]["thumbnail"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumb.content)).size) <= 160
    assert client.get("/v1/styles/nope").status_code == 404


def test_methods_without_decoder_says_why_adain_is_unavailable(tmp_path, monkeypatch):
    # An install without the shipped decoder (deleted, or a build that left assets out).
    from dataclasses import replace

    from painterly import registry  # where every front end looks the shipped files up

    for name, row in list(registry.NETWORKS.items()):
        monkeypatch.setitem(registry.NETWORKS, name, replace(row, asset=tmp_path / f"no_{name}.safetensors"))
    with TestClient(create_app(config(None))) as c:
        adain = c.get("/v1/methods").json()["methods"]["adain"]
        r = stylize(c, method="adain")
    assert adain["available"] is False and "--decoder" in adain["reason"]
    assert r.status_code == 503 and "--decoder" in r.json()["error"]


def test_stylize_multipart_returns_png_of_content_size(client):
    r = stylize(client, alpha=0.8)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert r.headers["x-painterly-method"] == "adain"
    out = decode(r)
    assert out.shape == (64, 96, 3)
    assert np.abs(out - np.asarray(CONTENT, dtype=np.int16)).mean() > 5  # not the content back


def test_invocations_with_json_base64_and_jpeg_accept(client):
    body = {"content": base64.b64encode(png(CONTENT)).decode(),
            "style": "data:image/png;base64," + base64.b64encode(png(STYLE)).decode(),
            "alpha": 0.5, "size": 48, "style_size": SMALL_STYLE}
    r = client.post("/invocations", json=body, headers={"Accept": "image/jpeg"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(r.content)).format == "JPEG"
    assert Image.open(io.BytesIO(r.content)).size == (48, 32)


def test_invocations_with_a_raw_image_body_and_query_options(client):
    """SageMaker clients often send the image itself (application/x-image)."""
    r = client.post(f"/invocations?builtin_style=retina&alpha=0.5&style_size={SMALL_STYLE}",
                    content=png(CONTENT), headers={"content-type": "application/x-image"})
    assert r.status_code == 200, r.text
    assert decode(r).shape == (64, 96, 3)
    r = client.post("/invocations?alpha=7&builtin_style=retina", content=png(CONTENT),
                    headers={"content-type": "image/png"})
    assert r.status_code == 400 and "alpha" in r.json()["error"]


def test_builtin_style_and_alpha_zero_differs_from_alpha_one(client):
    a0 = decode(stylize(client, style=None, builtin_style="retina", alpha=0))
    a1 = decode(stylize(client, style=None, builtin_style="retina", alpha=1))
    assert a0.shape == a1.shape == (64, 96, 3)
    assert np.abs(a0 - a1).mean() > 1


def test_406_when_no_acceptable_type(client):
    r = stylize(client, headers={"Accept": "text/html"})
    assert r.status_code == 406 and "image/png" in r.json()["error"]


def test_unexpected_error_is_500_without_traceback_and_server_lives(decoder_file):
    app = create_app(config(decoder_file))
    with TestClient(app, raise_server_exceptions=False) as c:
        engine = app.state.service.adain

        def boom(jobs):
            raise RuntimeError("secret internals /home/x/y.py line 3")

        engine.stylize_batch = boom
        r = stylize(c)
        assert r.status_code == 500
        assert r.json() == {"error": "internal server error"}
        assert "secret" not in r.text and "Traceback" not in r.text
        assert c.get("/ping").status_code == 200


def test_web_page_is_self_contained(client):
    r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    html = r.text
    assert "/static/app.js" in html and "/static/style.css" in html
    for asset in ("/static/app.js", "/static/style.css"):
        a = client.get(asset)
        assert a.status_code == 200
        assert "http://" not in a.text and "https://" not in a.text  # no CDN: works offline
    assert "https://" not in html and "http://" not in html
