"""Shared fixtures: small generated images so tests never need ../shared."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "images"


def make_image(w: int = 96, h: int = 64, seed: int = 0) -> Image.Image:
    """A smooth colourful test image with some structure (gradients + a disc)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = (xx / w)
    g = (yy / h)
    b = 0.5 + 0.5 * np.sin(xx / 7.0 + seed) * np.cos(yy / 5.0)
    disc = ((xx - w * 0.6) ** 2 + (yy - h * 0.4) ** 2) < (min(w, h) * 0.25) ** 2
    arr = np.stack([r, g, b], -1)
    arr[disc] = rng.uniform(0, 1, 3)
    return Image.fromarray((np.clip(arr, 0, 1) * 255).astype(np.uint8))


@pytest.fixture
def content_image() -> Image.Image:
    return make_image(96, 64, seed=1)


@pytest.fixture
def style_image() -> Image.Image:
    rng = np.random.default_rng(3)
    arr = rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)
    img = Image.fromarray(arr).resize((96, 96), Image.Resampling.NEAREST)
    return img


@pytest.fixture
def shared_images() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared/images is not present")
    return SHARED


# ------------------------------------------------------------------------------ training tests
# The training dataset's content folder holds one unreadable file on purpose: the scan says so in
# one line on stderr, not with a Python warning.
@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """content/ (3 images, one nested, one unreadable file) and style/ (2 images), for the
    training tests (a test file may define its own ``data``, as test_training_cache.py does)."""
    from helpers import train_image

    root = tmp_path_factory.mktemp("train_data")
    rng = np.random.default_rng(0)
    (root / "content" / "nested").mkdir(parents=True)
    (root / "style").mkdir()
    train_image(rng, 40, 48).save(root / "content" / "a.png")
    train_image(rng, 48, 40).save(root / "content" / "b.jpg")
    train_image(rng, 44, 44).save(root / "content" / "nested" / "c.png")
    (root / "content" / "broken.jpg").write_bytes(b"this is not a jpeg")
    train_image(rng, 40, 40).save(root / "style" / "s1.png")
    train_image(rng, 48, 56).save(root / "style" / "s2.jpg")
    return root


@pytest.fixture(scope="module")
def encoder():
    """The frozen VGG encoder (relu1_1..relu4_1), built once per test module."""
    from painterly.adain.model import Encoder

    torch.set_num_threads(1)
    return Encoder()


# --------------------------------------------------------------------------------- serve tests
@pytest.fixture(scope="module")
def decoder_file(tmp_path_factory) -> str:
    """The serve tests' random AdaIN decoder (serve_helpers.make_decoder); test_adain.py and
    test_video.py define their own ``decoder_file``."""
    from serve_helpers import make_decoder

    return make_decoder(tmp_path_factory.mktemp("dec") / "decoder.safetensors")


@pytest.fixture(scope="module")
def client(decoder_file):
    """A ``TestClient`` on the service with :func:`decoder_file` (one per test module)."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient
    from serve_helpers import config

    from painterly.serve import create_app

    with TestClient(create_app(config(decoder_file)), raise_server_exceptions=False) as c:
        yield c
