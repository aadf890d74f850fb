"""Body size and deadline guards (serve/middleware.py): 413s for bodies, pixels and bombs; one
rule for both guards (answer only while no response started).

Small images (<= 96 px) and a random AdaIN decoder keep it fast on CPU (the ``decoder_file`` and
``client`` fixtures in conftest.py, the helpers in serve_helpers.py).
"""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from conftest import make_image  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from serve_helpers import config, stylize  # noqa: E402

from painterly.serve import create_app  # noqa: E402
from painterly.serve.middleware import BodyLimitMiddleware, BodyTimeoutMiddleware, ResponseTracker  # noqa: E402


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


def test_decompression_bomb_is_413_with_default_limits(client):
    for side in (5000, 30000):  # over --max-pixels; over Pillow's own bomb limit
        r = client.post("/v1/stylize", files=[("content", ("bomb.png", png_header(side, side)))],
                        data={"builtin_style": "retina"})
        assert r.status_code == 413, r.text
    assert client.get("/ping").status_code == 200


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


def test_a_token_guards_the_api_and_leaves_ping_and_the_page_open(decoder_file):
    token = "s3cret-token-for-tests"
    with TestClient(create_app(config(decoder_file, token=token))) as c:
        assert c.get("/ping").status_code == 200  # SageMaker's health check
        assert c.get("/").status_code == 200
        r = c.get("/v1/methods")
        assert r.status_code == 401 and "token" in r.json()["error"]
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert c.get("/v1/methods", headers={"Authorization": "Bearer wrong-token-xx"}).status_code == 401
        assert c.get("/v1/methods", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert c.get(f"/v1/methods?token={token}").status_code == 200  # what an <img> can send
        assert stylize(c).status_code == 401
        assert stylize(c, headers={"Authorization": f"Bearer {token}"}).status_code == 200
        # /invocations is left to SageMaker's own authentication
        files = {"content": ("c.png", b"not an image", "image/png")}
        assert c.post("/invocations", files=files).status_code != 401
    with TestClient(create_app(config(decoder_file))) as c:  # no token: all open, as before
        assert c.get("/v1/methods").status_code == 200
