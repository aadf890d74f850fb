"""The server's AdaIN path (serve/engine.py) is the library's.

Small images (<= 96 px) and a random AdaIN decoder keep it fast on CPU (the ``decoder_file`` and
``client`` fixtures in conftest.py, the helpers in serve_helpers.py).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from conftest import make_image  # noqa: E402
from serve_helpers import CONTENT, SMALL_STYLE, STYLE, decode, png  # noqa: E402


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


def test_large_contents_are_not_batched():
    """A batch is one untiled pass over all its pixels: a content over the limit runs alone
    (and is tiled), smaller ones of one padded size share a key."""
    import torch

    from painterly.serve.engine import batch_key

    small, big = torch.zeros(1, 3, 60, 90), torch.zeros(1, 3, 2048, 2048)
    assert batch_key(small, "lite", 10_000) == batch_key(small.clone(), "lite", 10_000)
    assert batch_key(big, "lite", 10_000) != batch_key(big.clone(), "lite", 10_000)
    assert batch_key(big, "lite") == batch_key(big.clone(), "lite")  # no limit: by size alone
