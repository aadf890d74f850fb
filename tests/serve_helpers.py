"""Helpers of the serve tests (test_serve_*.py; import after ``pytest.importorskip("fastapi")``).

Small images (<= 96 px) and a random AdaIN decoder keep them fast on CPU; the decoder's last layer
is scaled so its output varies (a plain random decoder paints a flat grey picture, which would
make "each request got its own result" checks vacuous). The ``decoder_file`` and ``client``
fixtures are in conftest.py.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import httpx
import numpy as np
import torch
from conftest import make_image
from PIL import Image

from painterly.image import encode_image
from painterly.serve import ServeConfig

if TYPE_CHECKING:
    from fastapi.testclient import TestClient


def make_decoder(path) -> str:
    """A random AdaIN decoder whose output is not flat: last conv scaled, bias mid-grey."""
    from painterly.adain.model import Decoder, save_decoder

    torch.manual_seed(0)
    dec = Decoder()
    with torch.no_grad():
        dec.net[-1].weight.mul_(20.0)
        dec.net[-1].bias.fill_(0.5)
    # a training config as a real run writes one: it names the trainer's folders
    save_decoder(dec, str(path), {"training": {"out": "/home/trainer/runs/dec",
                                               "content_dir": "/data/photos"}}, half=False)
    return str(path)


def png(img: Image.Image) -> bytes:
    return encode_image(img, "PNG")


def config(decoder: str | None, **kw) -> ServeConfig:
    base = dict(device="cpu", decoder=decoder, preload_gatys=False, eager_load=True)
    base.update(kw)
    return ServeConfig(**base)


#: Style images are encoded at this long side in tests (the default, 512, is slow on CPU).
SMALL_STYLE = 64
CONTENT = make_image(96, 64, seed=1)
STYLE = make_image(64, 64, seed=7).rotate(90)


def stylize(c: TestClient, content: Image.Image = CONTENT, style: Image.Image | None = STYLE,
            headers: dict | None = None, **fields) -> httpx.Response:
    """POST /v1/stylize through a ``TestClient`` ``c`` (multipart; small style by default)."""
    files = [("content", ("c.png", png(content), "image/png"))]
    if style is not None:
        files.append(("style", ("s.png", png(style), "image/png")))
    if fields.get("method", "adain") == "adain":
        fields.setdefault("style_size", SMALL_STYLE)
    return c.post("/v1/stylize", files=files, data={k: str(v) for k, v in fields.items()},
                  headers=headers or {})


def decode(resp: httpx.Response) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(resp.content)).convert("RGB"), dtype=np.int16)


def post(url: str, content: Image.Image = CONTENT, style: Image.Image = STYLE, **fields) -> httpx.Response:
    """POST /v1/stylize to a real server at ``url`` (httpx, 60 s timeout)."""
    files = [("content", ("c.png", png(content))), ("style", ("s.png", png(style)))]
    fields.setdefault("style_size", SMALL_STYLE)
    return httpx.post(f"{url}/v1/stylize", files=files, data={k: str(v) for k, v in fields.items()},
                      timeout=60)
