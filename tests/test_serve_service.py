"""Loading, admission and running requests (serve/service.py): queue limit, timeout, Gatys
caps, fast models, a broken model.

Small images (<= 96 px) and a random AdaIN decoder keep it fast on CPU (the ``decoder_file`` and
``client`` fixtures in conftest.py, the helpers in serve_helpers.py).
"""

from __future__ import annotations

import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import torch
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from fastapi.testclient import TestClient  # noqa: E402
from serve_helpers import config, decode, post, stylize  # noqa: E402

from painterly.serve import create_app  # noqa: E402
from painterly.serve.runner import BackgroundServer  # noqa: E402


def _blocking_engine(service, gate: threading.Event):
    real = service.adain.stylize_batch

    def blocked(jobs):
        gate.wait(30)
        return real(jobs)

    service.adain.stylize_batch = blocked


def test_queue_full_is_503_and_timeout_is_504(decoder_file):
    cfg = config(decoder_file, queue_size=1, timeout=2.0, batch_wait_ms=0)
    with BackgroundServer(cfg) as srv:
        gate = threading.Event()
        _blocking_engine(srv.service, gate)
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(post, srv.url)
            for _ in range(200):  # wait until the first request holds the only slot
                if srv.service.in_flight == 1:
                    break
                time.sleep(0.02)
            busy = post(srv.url)
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
        assert post(srv.url).status_code == 200
        stats = httpx.get(f"{srv.url}/v1/stats").json()
        assert stats["timeouts"] == 1 and stats["rejected_busy"] == 1


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


#: For each AdaIN option a client may send, a value that must change the answer (``seed`` is
#: accepted and ignored: AdaIN is deterministic). A new http option fails the first assertion
#: until it is listed here with a value that shows it is used.
ADAIN_CHANGES = {"size": 48, "style_size": 32, "preserve_color": "luminance", "alpha": 0.3,
                 "network": "lite"}


def test_every_adain_option_the_server_takes_changes_the_answer(client):
    from painterly.options import AdaINOptions
    from painterly.schema import options_of

    assert set(ADAIN_CHANGES) | {"seed"} == {o.name for o in options_of(AdaINOptions) if o.http}
    base = stylize(client)
    assert base.status_code == 200
    assert stylize(client, seed=7).content == base.content
    for name, value in ADAIN_CHANGES.items():
        if name == "network":
            continue  # this server serves its own --decoder file only: the next test
        r = stylize(client, **{name: value})
        assert r.status_code == 200, (name, r.text)
        assert r.content != base.content, f"option {name} was accepted and ignored"


def test_network_picks_a_shipped_network_and_never_replaces_a_users_model(client):
    with TestClient(create_app(config(None))) as shipped:  # no --decoder: the shipped networks
        base = stylize(shipped)
        other = "vgg" if base.headers["X-Painterly-Network"] == "lite" else "lite"
        r = stylize(shipped, network=other)
        assert r.status_code == 200 and r.headers["X-Painterly-Network"] == other
        assert r.content != base.content
    # A server started with a user's model answers with it, or refuses: never a shipped one.
    assert stylize(client, network="vgg").headers["X-Painterly-Network"] == "vgg"
    r = stylize(client, network=ADAIN_CHANGES["network"])
    assert r.status_code == 400, r.text
    assert "was asked for, but" in r.json()["error"] and "vgg network" in r.json()["error"]
