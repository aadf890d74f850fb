"""Request parsing (serve/parsing.py): options, uploads, Accept; bad requests are 4xx with one
clear JSON message.

Small images (<= 96 px) and a random AdaIN decoder keep it fast on CPU (the ``decoder_file`` and
``client`` fixtures in conftest.py, the helpers in serve_helpers.py).
"""

from __future__ import annotations

import base64
import io

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from conftest import make_image  # noqa: E402
from serve_helpers import CONTENT, SMALL_STYLE, STYLE, png, stylize  # noqa: E402

from painterly.serve.parsing import choose_output, parse_options  # noqa: E402


def test_accept_negotiation():
    assert choose_output(None) == ("image/png", "PNG")
    assert choose_output("*/*") == ("image/png", "PNG")
    assert choose_output("image/jpeg") == ("image/jpeg", "JPEG")
    assert choose_output("image/png;q=0.5, image/webp") == ("image/webp", "WEBP")
    assert choose_output("text/html, image/*;q=0.1") == ("image/png", "PNG")


def test_parse_options_types_and_empty_values():
    opts = parse_options({"alpha": "0.25", "size": "", "style_weights": "1, 2", "steps": 5,
                          "preserve_color": "none", "content_layers": "conv4_2"})
    assert opts == {"alpha": 0.25, "style_weights": [1.0, 2.0], "steps": 5,
                    "content_layers": ["conv4_2"]}


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


@pytest.mark.parametrize("field, extra", [
    ("network", {}), ("method", {}), ("preserve_color", {}), ("builtin_style", {}),
    ("optimizer", {"method": "gatys"}), ("pooling", {"method": "gatys"}),
    ("style_loss", {"method": "gatys"}), ("init", {"method": "gatys"})])
def test_error_bodies_do_not_echo_a_huge_value(client, field, extra):
    """A 1 MB option value comes back cut (errors.echo), in a body of at most a few hundred bytes."""
    r = stylize(client, **{field: "x" * 1_000_000, **extra})
    assert r.status_code == 400, r.text[:200]
    assert len(r.content) < 400 and "xxxx" in r.json()["error"], r.text[:400]
