"""The HTTP service: contract (ping, methods, stylize, OpenAPI), limits, errors, batching.

Small images (<= 96 px) and a random AdaIN decoder keep it fast on CPU; the decoder's last layer
is scaled so its output varies (a plain random decoder paints a flat grey picture, which would
make "each request got its own result" checks vacuous).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from conftest import make_image  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from painterly.image import encode_image  # noqa: E402
from painterly.serve import ServeConfig, create_app  # noqa: E402
from painterly.serve.batching import CancelToken, DynamicBatcher  # noqa: E402
from painterly.serve.middleware import BodyLimitMiddleware, BodyTimeoutMiddleware, ResponseTracker  # noqa: E402
from painterly.serve.parsing import choose_output, parse_options  # noqa: E402
from painterly.serve.runner import BackgroundServer  # noqa: E402


def make_decoder(path) -> str:
    """A random AdaIN decoder whose output is not flat: last conv scaled, bias mid-grey."""
    from painterly.adain.model import Decoder, save_decoder

    torch.manual_seed(0)
    dec = Decoder()
    with torch.no_grad():
        dec.net[-1].weight.mul_(20.0)
        dec.net[-1].bias.fill_(0.5)
    save_decoder(dec, str(path), half=False)
    return str(path)


@pytest.fixture(scope="module")
def decoder_file(tmp_path_factory) -> str:
    return make_decoder(tmp_path_factory.mktemp("dec") / "decoder.safetensors")


def png(img: Image.Image) -> bytes:
    return encode_image(img, "PNG")


def config(decoder: str | None, **kw) -> ServeConfig:
    base = dict(device="cpu", decoder=decoder, preload_gatys=False, eager_load=True)
    base.update(kw)
    return ServeConfig(**base)


@pytest.fixture(scope="module")
def client(decoder_file):
    with TestClient(create_app(config(decoder_file)), raise_server_exceptions=False) as c:
        yield c


#: Style images are encoded at this long side in tests (the default, 512, is slow on CPU).
SMALL_STYLE = 64
CONTENT = make_image(96, 64, seed=1)
STYLE = make_image(64, 64, seed=7).rotate(90)


def stylize(c: TestClient, content: Image.Image = CONTENT, style: Image.Image | None = STYLE,
            headers: dict | None = None, **fields) -> httpx.Response:
    files = [("content", ("c.png", png(content), "image/png"))]
    if style is not None:
        files.append(("style", ("s.png", png(style), "image/png")))
    if fields.get("method", "adain") == "adain":
        fields.setdefault("style_size", SMALL_STYLE)
    return c.post("/v1/stylize", files=files, data={k: str(v) for k, v in fields.items()},
                  headers=headers or {})


def decode(resp: httpx.Response) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(resp.content)).convert("RGB"), dtype=np.int16)


# ---------------------------------------------------------------------------------------------
# Contract


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
    names = [s["name"] for s in data["builtin_styles"]]
    assert "retina" in names
    thumb = client.get(data["builtin_styles"][0]["thumbnail"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumb.content)).size) <= 160
    assert client.get("/v1/styles/nope").status_code == 404


def test_methods_without_decoder_says_why_adain_is_unavailable(tmp_path, monkeypatch):
    # An install without the shipped decoder (deleted, or a build that left assets out).
    import painterly.adain.networks as adain_networks  # where the server looks the decoder up

    missing = tmp_path / "no_decoder.safetensors"
    monkeypatch.setattr(adain_networks, "default_decoder_path", lambda: missing)
    monkeypatch.setattr(adain_networks, "is_available", lambda: False)
    with TestClient(create_app(config(None))) as c:
        adain = c.get("/v1/methods").json()["methods"]["adain"]
        r = stylize(c, method="adain")
    assert adain["available"] is False and "--decoder" in adain["reason"]
    assert r.status_code == 503 and "--decoder" in r.json()["error"]


def test_openapi_schema_is_served_offline(client):
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    for route in ("/v1/stylize", "/invocations", "/ping", "/v1/methods"):
        assert route in spec["paths"]
    body = spec["paths"]["/v1/stylize"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in body and "application/json" in body


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


def test_server_matches_the_adain_stylizer(client, decoder_file):
    """Same pipeline as `painterly stylize --method adain` (preserve_color and blend included)."""
    from painterly.api import make_stylizer

    style2 = make_image(80, 48, seed=11)
    files = [("content", ("c.png", png(CONTENT))), ("style", ("s.png", png(STYLE))),
             ("style", ("t.png", png(style2)))]
    fields = {"alpha": "0.7", "style_weights": "1,3", "preserve_color": "luminance",
              "style_size": str(SMALL_STYLE)}
    r = client.post("/v1/stylize", files=files, data=fields)
    assert r.status_code == 200, r.text
    ref = make_stylizer("adain", [STYLE, style2], [1, 3], alpha=0.7, preserve_color="luminance",
                        style_size=SMALL_STYLE, decoder=decoder_file, device="cpu")(CONTENT)
    diff = np.abs(decode(r) - np.asarray(ref, dtype=np.int16))
    assert diff.max() <= 2, diff.max()


def test_accept_negotiation():
    assert choose_output(None) == ("image/png", "PNG")
    assert choose_output("*/*") == ("image/png", "PNG")
    assert choose_output("image/jpeg") == ("image/jpeg", "JPEG")
    assert choose_output("image/png;q=0.5, image/webp") == ("image/webp", "WEBP")
    assert choose_output("text/html, image/*;q=0.1") == ("image/png", "PNG")


def test_406_when_no_acceptable_type(client):
    r = stylize(client, headers={"Accept": "text/html"})
    assert r.status_code == 406 and "image/png" in r.json()["error"]


# ---------------------------------------------------------------------------------------------
# Bad requests: 4xx with one clear JSON message


@pytest.mark.parametrize("fields, needle", [
    ({"alpha": "3"}, "alpha"),
    ({"alpha": "nan"}, "alpha"),
    ({"size": "-4"}, "size"),
    ({"size": "abc"}, "size"),
    ({"size": "99999"}, "limit"),
    ({"frobnicate": "1"}, "unknown option"),
    ({"method": "picasso"}, "unknown method"),
    ({"steps": "3"}, "do not apply to method 'adain'"),
    ({"preserve_color": "sepia"}, "preserve_color"),
    ({"style_weights": "1,2,3"}, "style weight"),
    ({"builtin_style": "mona_lisa"}, "builtin_style"),
    ({"model": "../../etc/passwd"}, "no paths"),
    ({"size": "8"}, "too small"),
    ({"style_size": "4"}, "too small"),
])
def test_bad_options_are_400_with_message(client, fields, needle):
    r = stylize(client, **fields)
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]
    assert "Traceback" not in r.text


def test_missing_images_are_400(client):
    r = client.post("/v1/stylize", files=[("style", ("s.png", png(STYLE)))])
    assert r.status_code == 400 and "content" in r.json()["error"]
    r = stylize(client, style=None)
    assert r.status_code == 400 and "style" in r.json()["error"]
    r = client.post("/v1/stylize", json={"content": "not base64!!"})
    assert r.status_code == 400 and "base64" in r.json()["error"]
    r = client.post("/v1/stylize", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["error"]
    b64 = base64.b64encode(png(CONTENT)).decode()
    for body in ([1, 2], {"content": 5}, {"content": b64, "method": ["adain"]},
                 {"content": b64, "builtin_style": "retina", "alpha": True}):
        r = client.post("/v1/stylize", json=body)
        assert r.status_code == 400 and r.json()["error"], body
    r = client.post("/v1/stylize", json={"content": b64, "builtin_style": ["retina"] * 9})
    assert r.status_code == 400 and "at most 8" in r.json()["error"]
    thin = make_image(3, 200)  # a side under 16 px cannot go through the decoder
    r = stylize(client, content=thin)
    # the library's rule and wording, with the server's own smallest side
    assert r.status_code == 400 and "too small" in r.json()["error"]
    assert "AdaIN needs at least 16 px on each side" in r.json()["error"]


def test_unsupported_formats_are_415(client):
    r = client.post("/v1/stylize", content=png(CONTENT), headers={"content-type": "text/plain"})
    assert r.status_code == 415 and "multipart" in r.json()["error"]
    r = client.post("/v1/stylize", files=[("content", ("c.txt", b"hello, not an image"))],
                    data={"builtin_style": "retina", "style_size": SMALL_STYLE})
    assert r.status_code == 415 and "content image" in r.json()["error"]
    buf = io.BytesIO()
    CONTENT.save(buf, format="PPM")  # Pillow reads it, but the server does not take it
    r = client.post("/v1/stylize", files=[("content", ("c.ppm", buf.getvalue()))],
                    data={"builtin_style": "retina", "style_size": SMALL_STYLE})
    assert r.status_code == 415 and "PPM" in r.json()["error"]


def test_truncated_image_is_400(client):
    data = png(make_image(96, 96, seed=3))
    r = client.post("/v1/stylize", files=[("content", ("c.png", data[: len(data) // 2]))],
                    data={"builtin_style": "retina", "style_size": SMALL_STYLE})
    assert r.status_code == 400 and "error" in r.json()


def test_body_and_pixel_limits_are_413(decoder_file):
    app = create_app(config(decoder_file, max_upload_mb=0.05, max_pixels=80 * 80))
    with TestClient(app) as c:
        noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), np.uint8))
        r = stylize(c, content=noise)  # ~120 kB of PNG > 50 kB
        assert r.status_code == 413 and "too large" in r.json()["error"]
        r = stylize(c, content=make_image(96, 96))  # small file, 9216 px > 6400 px
        assert r.status_code == 413 and "megapixels" in r.json()["error"]
        assert stylize(c, content=make_image(64, 64)).status_code == 200
        # A decompression bomb: the header claims 30000x30000, refused before any decoding.
        r = c.post("/v1/stylize", files=[("content", ("bomb.png", png_header(30000, 30000)))],
                   data={"builtin_style": "retina"})
        assert r.status_code == 413, r.text


def png_header(w: int, h: int) -> bytes:
    """A PNG that is only a signature, an IHDR claiming ``w`` x ``h`` and an IEND."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_chunked_body_over_the_limit_is_413(decoder_file):
    app = create_app(config(decoder_file, max_upload_mb=0.01))
    with TestClient(app) as c:
        def chunks():
            for _ in range(50):
                yield b"x" * 1000
        r = c.post("/v1/stylize", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


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


# ---------------------------------------------------------------------------------------------
# Queue limit, timeout, batching (through a real uvicorn on 127.0.0.1)


def _blocking_engine(service, gate: threading.Event):
    real = service.adain.stylize_batch

    def blocked(jobs):
        gate.wait(30)
        return real(jobs)

    service.adain.stylize_batch = blocked


def _post(url: str, content: Image.Image = CONTENT, style: Image.Image = STYLE, **fields) -> httpx.Response:
    files = [("content", ("c.png", png(content))), ("style", ("s.png", png(style)))]
    fields.setdefault("style_size", SMALL_STYLE)
    return httpx.post(f"{url}/v1/stylize", files=files, data={k: str(v) for k, v in fields.items()},
                      timeout=60)


def test_queue_full_is_503_and_timeout_is_504(decoder_file):
    cfg = config(decoder_file, queue_size=1, timeout=2.0, batch_wait_ms=0)
    with BackgroundServer(cfg) as srv:
        gate = threading.Event()
        _blocking_engine(srv.service, gate)
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(_post, srv.url)
            for _ in range(200):  # wait until the first request holds the only slot
                if srv.service.in_flight == 1:
                    break
                time.sleep(0.02)
            busy = _post(srv.url)
            assert busy.status_code == 503 and "busy" in busy.json()["error"]
            assert busy.headers.get("retry-after") == "1"
            assert first.result().status_code == 504
            assert "longer than" in first.result().json()["error"]
        # The slot frees only once the stuck work really ends, then the server serves again.
        gate.set()
        for _ in range(300):
            if srv.service.in_flight == 0:
                break
            time.sleep(0.02)
        assert srv.service.in_flight == 0
        assert _post(srv.url).status_code == 200
        stats = httpx.get(f"{srv.url}/v1/stats").json()
        assert stats["timeouts"] == 1 and stats["rejected_busy"] == 1


def test_concurrent_requests_are_batched_and_each_gets_its_own_result(decoder_file):
    """4 requests (different contents, styles, alphas, same size) -> one batch of 4, and each
    answer equals that request stylized alone."""
    cfg = config(decoder_file, max_batch=4, batch_wait_ms=30000)  # flushes when full
    cases = [(make_image(96, 64, seed=s), make_image(48, 48, seed=10 + s), a)
             for s, a in ((1, 1.0), (2, 0.5), (3, 0.8), (4, 1.0))]
    with BackgroundServer(cfg) as srv:
        with ThreadPoolExecutor(4) as pool:
            futs = [pool.submit(_post, srv.url, c, s, alpha=a) for c, s, a in cases]
            answers = [f.result() for f in futs]
        stats = httpx.get(f"{srv.url}/v1/stats").json()["batching"]
        assert [r.status_code for r in answers] == [200] * 4
        assert stats["batches"] == 1 and stats["items"] == 4, stats
        assert all(r.headers["x-painterly-batch-size"] == "4" for r in answers)
        # Now one at a time: the same pictures.
        srv.service.batcher.max_wait = 0.0
        for (c, s, a), r in zip(cases, answers):
            alone = _post(srv.url, c, s, alpha=a)
            assert alone.headers["x-painterly-batch-size"] == "1"
            assert np.abs(decode(alone) - decode(r)).max() <= 2
        outs = [decode(r) for r in answers]
        assert np.abs(outs[0] - outs[1]).mean() > 1  # really different results


def test_dynamic_batcher_groups_by_key_splits_and_isolates_failures():
    calls: list[tuple[str, list[int]]] = []

    def run(key, items):
        calls.append((key, list(items)))
        if -1 in items:
            raise ValueError("bad item")
        return [i * 10 for i in items]

    async def scenario():
        with ThreadPoolExecutor(1) as ex:
            b = DynamicBatcher(run, ex, max_batch=3, max_wait_ms=200)
            jobs = [b.submit("a", i) for i in (1, 2, 3, 4)] + [b.submit("b", 5)]
            res = await asyncio.gather(*jobs)
            bad = await asyncio.gather(b.submit("c", 7), b.submit("c", -1), return_exceptions=True)
            token = CancelToken()
            token.cancel()
            dropped = await asyncio.gather(b.submit("d", 8, token), return_exceptions=True)
            await b.stop()
            return res, bad, dropped, b.stats

    res, bad, dropped, stats = asyncio.run(scenario())
    assert res == [10, 20, 30, 40, 50]
    sizes = sorted(len(items) for key, items in calls[:3])
    assert sizes == [1, 1, 3]  # a: 3 + 1 (max_batch), b: 1
    assert bad[0] == 70 and isinstance(bad[1], ValueError)  # retried alone: one bad, one good
    assert type(dropped[0]).__name__ == "Cancelled" and stats.dropped == 1
    assert not any(8 in items for _, items in calls)


def test_parse_options_types_and_empty_values():
    opts = parse_options({"alpha": "0.25", "size": "", "style_weights": "1, 2", "steps": 5,
                          "preserve_color": "none", "content_layers": "conv4_2"})
    assert opts == {"alpha": 0.25, "style_weights": [1.0, 2.0], "steps": 5,
                    "content_layers": ["conv4_2"]}


def test_gatys_caps_steps_and_size(decoder_file):
    pytest.importorskip("painterly.gatys")
    with TestClient(create_app(config(decoder_file, max_steps=5, max_gatys_size=64))) as c:
        r = stylize(c, method="gatys", steps=50)
        assert r.status_code == 400 and "limit of 5" in r.json()["error"]
        r = stylize(c, method="gatys", size=512)
        assert r.status_code == 400 and "limit of 64" in r.json()["error"]
        r = stylize(c, method="gatys", steps=2, size=48)
        assert r.status_code == 200, r.text
        assert Image.open(io.BytesIO(r.content)).size == (48, 32)


# ---------------------------------------------------------------------------------------------
# The page and the CLI


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


def test_cli_serve_help_and_bad_file(tmp_path, capsys):
    from painterly.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["serve", "--help"])
    assert exc.value.code == 0
    assert "--max-upload-mb" in capsys.readouterr().out
    assert main(["serve", "--decoder", str(tmp_path / "missing.safetensors")]) == 2
    assert "not found" in capsys.readouterr().err


def test_fast_method_with_a_server_model(tmp_path):
    pytest.importorskip("painterly.fast.stylize")
    from painterly.fast.model import TransformerNet, save_model

    torch.manual_seed(0)
    path = tmp_path / "tiny.safetensors"
    save_model(TransformerNet(n_styles=2, width=8, n_residual=1), str(path), ["ink", "oil"])
    with TestClient(create_app(config(None, model=str(path)))) as c:
        info = c.get("/v1/methods").json()
        assert info["methods"]["fast"]["available"] is True
        assert info["models"]["fast_default"]["style_names"] == ["ink", "oil"]
        r = stylize(c, style=None, method="fast", style_weights="1,1")
        assert r.status_code == 200, r.text
        assert decode(r).shape == (64, 96, 3)
        r = stylize(c, method="fast")  # a style image makes no sense for baked-in styles
        assert r.status_code == 400 and "no style image" in r.json()["error"]
        r = stylize(c, style=None, method="fast", model="nonexistent")
        assert r.status_code == 400 and "unknown model" in r.json()["error"]


def test_a_broken_model_leaves_the_other_methods_served(tmp_path, decoder_file):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"this is not a safetensors file")
    with TestClient(create_app(config(decoder_file, model=str(bad)))) as c:
        assert c.get("/ping").status_code == 200
        methods = c.get("/v1/methods").json()["methods"]
        assert methods["fast"]["available"] is False and methods["fast"]["reason"]
        assert methods["adain"]["available"] is True
        assert stylize(c).status_code == 200
        r = stylize(c, style=None, method="fast")
        assert r.status_code == 400 and "not available" in r.json()["error"]


def test_decompression_bomb_is_413_with_default_limits(client):
    for side in (5000, 30000):  # over --max-pixels; over Pillow's own bomb limit
        r = client.post("/v1/stylize", files=[("content", ("bomb.png", png_header(side, side)))],
                        data={"builtin_style": "retina"})
        assert r.status_code == 413, r.text
    assert client.get("/ping").status_code == 200


# ---------------------------------------------------------------------------------------------
# Hostile inputs and slow clients


def test_deeply_nested_json_is_400(client):
    r = client.post("/v1/stylize", content=b"[" * 100_000 + b"]" * 100_000,
                    headers={"content-type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["error"]
    r = client.post("/v1/stylize", content=b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
                    headers={"content-type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["error"]


def test_empty_uploads_are_reported_as_empty(client):
    r = client.post("/v1/stylize", files=[("content", ("c.png", b"", "image/png"))],
                    data={"builtin_style": "retina"})
    assert r.status_code == 400 and "empty" in r.json()["error"] and "c.png" in r.json()["error"]
    r = client.post("/v1/stylize", files=[("content", ("c.png", png(CONTENT), "image/png")),
                                          ("style", ("s.png", b"", "image/png"))])
    assert r.status_code == 400 and "style image ('s.png') is empty" in r.json()["error"]
    r = client.post("/v1/stylize", json={"content": "", "builtin_style": "retina"})
    assert r.status_code == 400 and "empty" in r.json()["error"]
    r = client.post("/v1/stylize", content=b"", headers={"content-type": "image/png"})
    assert r.status_code == 400 and "empty" in r.json()["error"]
    r = client.post("/v1/stylize", content=b"", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "empty" in r.json()["error"]
    # A form without the field at all is still "missing".
    r = client.post("/v1/stylize", files=[("style", ("s.png", png(STYLE)))])
    assert r.status_code == 400 and "missing content image" in r.json()["error"]


def test_huge_seed_is_400(client):
    huge = "99999999999999999999999"
    for method in ("adain", "gatys"):
        r = stylize(client, seed=huge, method=method)
        assert r.status_code == 400 and "seed" in r.json()["error"], r.text
    b64 = base64.b64encode(png(CONTENT)).decode()
    r = client.post("/v1/stylize", json={"content": b64, "builtin_style": "retina", "seed": 10**23})
    assert r.status_code == 400 and "seed" in r.json()["error"]
    r = stylize(client, seed="9" * 5000)  # a digit string too long to be any option's value
    assert r.status_code == 400 and "seed" in r.json()["error"]


# ---------------------------------------------------------------------------------------------
# Body guards (pure ASGI, no server): one rule for both, answer only while no response started


def test_response_tracker_passes_messages_on_and_marks_the_start():
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def run() -> ResponseTracker:
        tracker = ResponseTracker(send)
        await tracker({"type": "http.response.body", "body": b""})
        assert not tracker.started
        await tracker({"type": "http.response.start", "status": 200, "headers": []})
        return tracker

    assert asyncio.run(run()).started
    assert [m["type"] for m in sent] == ["http.response.body", "http.response.start"]


def _guards():
    """Each body guard, with a ``receive`` that trips it, and the status it answers with."""
    async def too_much() -> dict:
        return {"type": "http.request", "body": b"x" * 10, "more_body": True}

    async def too_slow() -> dict:
        await asyncio.sleep(5)
        return {"type": "http.request", "body": b""}

    return [(lambda app: BodyLimitMiddleware(app, max_bytes=3), too_much, 413, "too large"),
            (lambda app: BodyTimeoutMiddleware(app, seconds=0.01), too_slow, 408, "not received")]


@pytest.mark.parametrize("guard, receive, status, needle", _guards(), ids=["limit", "timeout"])
@pytest.mark.parametrize("started_first", [False, True])
def test_body_guards_answer_json_only_before_a_response_started(guard, receive, status, needle,
                                                                 started_first):
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def inner(scope: dict, receive, send) -> None:
        if started_first:  # e.g. a handler that streams its answer before reading the body
            await send({"type": "http.response.start", "status": 200, "headers": []})
        await receive()
        await receive()

    asyncio.run(guard(inner)({"type": "http", "headers": []}, receive, send))
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert len(starts) == 1  # never a second start on a response already begun
    if started_first:
        assert starts[0]["status"] == 200 and len(sent) == 1
    else:
        assert starts[0]["status"] == status
        assert (b"connection", b"close") in starts[0]["headers"]
        body = sent[-1]["body"]
        assert needle in json.loads(body)["error"]
        assert (b"content-length", str(len(body)).encode()) in starts[0]["headers"]


def test_timeouts_are_checked_and_listed():
    from painterly.errors import PainterlyError

    for name in ("header_timeout", "body_timeout", "keep_alive_timeout"):
        with pytest.raises(PainterlyError, match=name.replace("_", "-")):
            ServeConfig(**{name: 0}).check()
        with pytest.raises(PainterlyError, match=name.replace("_", "-")):
            ServeConfig(**{name: float("inf")}).check()


@pytest.fixture(scope="module")
def slow_client_server(decoder_file):
    """A real uvicorn server on 127.0.0.1 with short header and body timeouts."""
    cfg = config(decoder_file, header_timeout=1.0, body_timeout=1.5)
    with BackgroundServer(cfg) as srv:
        yield srv


def _trickle_until_closed(srv, first: bytes, drip: bytes, rounds: int = 150) -> bytes | None:
    """Send ``first``, then ``drip`` every 0.1 s; return what the server sent once it closed the
    connection, or None if it still held it after ``rounds`` drips (far past its timeouts)."""
    import socket

    with socket.create_connection((srv.host, srv.port), timeout=5) as s:
        s.sendall(first)
        s.settimeout(0.1)
        got = b""
        for _ in range(rounds):
            try:
                data = s.recv(65536)
                if not data:
                    return got
                got += data
                continue
            except TimeoutError:
                pass
            except ConnectionError:
                return got
            try:
                s.sendall(drip)
            except OSError:
                return got
        return None


def test_slow_headers_are_dropped_with_408(slow_client_server):
    got = _trickle_until_closed(slow_client_server, b"POST /v1/stylize HTTP/1.1\r\nHost: x\r\n",
                                b"X-Slow: 1\r\n")
    assert got is not None, "the server kept a connection whose headers never ended"
    assert got.startswith(b"HTTP/1.1 408") and b"headers" in got
    # The server still serves others.
    assert httpx.get(f"{slow_client_server.url}/ping", timeout=30).status_code == 200


def test_slow_body_is_dropped_with_408(slow_client_server):
    head = (b"POST /v1/stylize HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
            b"content-length: 100000\r\n\r\n{")
    got = _trickle_until_closed(slow_client_server, head, b" ")
    assert got is not None, "the server kept a connection whose body never ended"
    assert got.startswith(b"HTTP/1.1 408") and b"body not received" in got
    assert slow_client_server.service.in_flight == 0  # it never held a slot


def test_client_gone_mid_body_is_one_info_line(slow_client_server, caplog):
    import logging
    import socket

    caplog.set_level(logging.INFO)
    with socket.create_connection((slow_client_server.host, slow_client_server.port), timeout=5) as s:
        s.sendall(b"POST /v1/stylize HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                  b"content-length: 100000\r\n\r\n{\"content\": \"")
        time.sleep(0.2)
    for _ in range(200):  # wait (bounded) for the server to notice
        if any("disconnected" in r.getMessage() for r in caplog.records):
            break
        time.sleep(0.05)
    mine = [r for r in caplog.records if "disconnected" in r.getMessage()]
    assert len(mine) == 1 and mine[0].levelno == logging.INFO
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not any(r.exc_info for r in caplog.records)
