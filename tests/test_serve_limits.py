"""The server's limits across requests (issue #20): a pixel and memory budget over ALL of a
request's images, measured from their headers before anything is decoded, and admission against
the server's total (serve/config.py, parsing.py, service.py, app.py); JSON bodies counted before
they are parsed, and parsed off the event loop; ``painterly serve``'s start-up errors (cli/serve.py,
serve/runner.py). Every case is a 4xx/503 JSON answer or one ``error:`` line with exit 2.

Concurrency is bounded (at most 16 requests, each thread joined with a timeout) and nothing here
times a parse: what is checked is where the work happens and what is answered.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import httpx
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from fastapi.testclient import TestClient  # noqa: E402
from serve_helpers import CONTENT, STYLE, config, png, post  # noqa: E402

from painterly.cli import main  # noqa: E402
from painterly.serve import create_app, parsing  # noqa: E402
from painterly.serve.errors import HTTPError  # noqa: E402
from painterly.serve.parsing import ParsedRequest  # noqa: E402
from painterly.serve.runner import BackgroundServer  # noqa: E402


def tiny_huge_png(side: int = 4096) -> bytes:
    """A ``side`` x ``side`` 1-bit PNG of about 2 kB (16.8 MP decoded at 4096)."""
    buf = io.BytesIO()
    Image.new("1", (side, side)).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def files(content: bytes, styles: list[bytes]) -> list:
    return [("content", ("c.png", content, "image/png"))] + [
        ("style", (f"s{i}.png", s, "image/png")) for i, s in enumerate(styles)]


@pytest.fixture
def no_decoding(monkeypatch):
    """Any image decoded by the server's upload path fails the test (and costs no memory)."""
    def refuse(*args, **kwargs):
        raise AssertionError("an upload was decoded")

    monkeypatch.setattr(parsing, "load_image", refuse)


def _wait_for(condition, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


# ---------------------------------------------------------------------------------------------
# 1. the per-request budget (all images, from their headers) and admission against the total


def test_request_pixels_counted_across_all_images_before_decoding(client, no_decoding):
    big = tiny_huge_png()
    assert len(big) < 4000
    r = client.post("/v1/stylize", files=files(big, [big] * 7))
    assert r.status_code == 413, r.text
    msg = r.json()["error"]
    assert "134.2 megapixels together" in msg and "(8 images)" in msg and "at most 67.1" in msg


def test_request_memory_estimate_refused_before_decoding(decoder_file, no_decoding):
    big = tiny_huge_png()
    with TestClient(create_app(config(decoder_file, max_request_mb=100))) as c:
        r = c.post("/v1/stylize", files=files(big, [big]))
    assert r.status_code == 413, r.text
    assert "2 image(s) would need about 470 MB to decode" in r.json()["error"]
    assert "at most 100 MB per request" in r.json()["error"]


def test_builtin_styles_count_toward_the_request_pixels(decoder_file):
    from painterly.serve.parsing import request_budget

    cfg = config(decoder_file, max_request_pixels=200_000)
    req = ParsedRequest(png(CONTENT), builtin_styles=["udnie"] * 2)
    with pytest.raises(HTTPError, match="megapixels together") as exc:
        request_budget(req, cfg)
    assert exc.value.status == 413


def test_config_refuses_a_request_cap_over_the_total():
    from painterly.errors import PainterlyError
    from painterly.serve import ServeConfig

    with pytest.raises(PainterlyError, match="--max-request-mb .* must not be over --memory-budget-mb"):
        ServeConfig(max_request_mb=300, memory_budget_mb=200).check()
    for name in ("max_request_pixels", "max_request_mb", "memory_budget_mb"):
        with pytest.raises(PainterlyError, match=name.replace("_", "-")):
            ServeConfig(**{name: 0}).check()
    with pytest.raises(PainterlyError, match="--memory-wait"):
        ServeConfig(memory_wait=-1).check()


def _holding_process(service, gates: list[threading.Event]):
    """Replace ``service.process``: the n-th request holds its admission (slot and memory)
    until ``gates[n]`` is set (bounded), then answers a small image without decoding."""
    calls = []

    async def process(req, token):
        n = len(calls)
        calls.append(n)
        if n < len(gates):
            for _ in range(3000):  # at most 30 s
                if gates[n].is_set():
                    break
                await asyncio.sleep(0.01)
        return Image.new("RGB", (8, 8)), {"X-Painterly-Method": "adain"}

    service.process = process
    return calls


def test_admission_waits_for_memory_then_503_with_retry_after(decoder_file):
    from painterly.serve.parsing import request_budget

    req = ParsedRequest(png(CONTENT), [png(STYLE)])
    probe = config(decoder_file)
    need = request_budget(req, probe)
    # Room for one such request, not two.
    budget_mb = 1.5 * need / 1e6
    cfg = config(decoder_file, memory_budget_mb=budget_mb, max_request_mb=budget_mb, memory_wait=60)
    with BackgroundServer(cfg) as srv:
        memory = srv.service.memory
        gates = [threading.Event(), threading.Event(), threading.Event()]
        _holding_process(srv.service, gates)
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(post, srv.url)
            _wait_for(lambda: memory.used == need)
            second = pool.submit(post, srv.url)  # waits for the first one's memory
            _wait_for(lambda: len(memory._waiters) == 1)
            assert httpx.get(f"{srv.url}/ping", timeout=10).status_code == 200
            gates[0].set()
            assert first.result(timeout=30).status_code == 200
            # the second one, admitted, now holds it
            _wait_for(lambda: memory.used == need and not memory._waiters)
            assert httpx.get(f"{srv.url}/v1/stats", timeout=10).json()["memory_in_use_mb"] > 0
            srv.service.config.memory_wait = 0.3
            third = post(srv.url)  # still no room after memory_wait: 503, asked to come back
            assert third.status_code == 503, third.text
            assert third.headers.get("retry-after") == "2"
            assert "server busy" in third.json()["error"] and "MB" in third.json()["error"]
            gates[1].set()
            assert second.result(timeout=30).status_code == 200
        _wait_for(lambda: memory.used == 0 and srv.service.in_flight == 0)
        gates[2].set()
        assert post(srv.url).status_code == 200
        stats = httpx.get(f"{srv.url}/v1/stats", timeout=10).json()
        assert stats["rejected_memory"] == 1 and stats["memory_in_use_mb"] == 0


def test_burst_of_tiny_huge_pngs_keeps_the_server_serving(decoder_file, no_decoding):
    """16 concurrent requests, each a content and 7 styles of 4096x4096 1-bit PNGs (~2 kB each):
    every one is refused from the headers, nothing is decoded, and the server keeps serving."""
    big = tiny_huge_png()
    with BackgroundServer(config(decoder_file)) as srv:
        def send(_: int) -> int:
            return httpx.post(f"{srv.url}/v1/stylize", files=files(big, [big] * 7),
                              timeout=60).status_code

        with ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(send, range(16), timeout=120))
        assert codes == [413] * 16, codes
        assert httpx.get(f"{srv.url}/ping", timeout=10).status_code == 200
        assert srv.service.memory.used == 0 and srv.service.in_flight == 0


# ---------------------------------------------------------------------------------------------
# 2. JSON bodies: counted before they are parsed, parsed in a worker thread


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _huge_json(kind: str) -> bytes:
    """16 MB-class JSON bodies that used to hold the event loop for seconds (issue #20)."""
    head = b'{"content": "' + _b64(png(CONTENT)).encode() + b'", '
    if kind == "4M-empty-styles":
        return head + b'"style": [' + b",".join([b'""'] * 4_000_000) + b"]}"
    if kind == "2M-style-weights":
        return head + b'"builtin_style": "udnie", "style_weights": [' + b",".join([b"1"] * 2_000_000) + b"]}"
    return b"{" + b",".join(b'"k%d": 1' % i for i in range(1_000_000)) + b"}"


@pytest.mark.parametrize("kind", ["4M-empty-styles", "2M-style-weights", "1M-unknown-keys"])
def test_huge_json_lists_and_key_counts_refused_before_json_loads(client, monkeypatch, kind):
    body = _huge_json(kind)
    calls = []
    monkeypatch.setattr(parsing, "json", SimpleNamespace(loads=lambda raw: calls.append(len(raw))))
    assert len(body) < 20e6  # under the body limit: only the counts refuse it
    r = client.post("/v1/stylize", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert "items (commas), over the 256 a request can use" in r.json()["error"]
    assert calls == []  # refused without parsing the structure


@pytest.mark.parametrize("fields, message", [
    ({"style": ["x"] * 9}, "style holds 9 items; at most 8"),
    ({"builtin_style": ["udnie"] * 9}, "builtin_style holds 9 items; at most 8"),
    ({"style_weights": [1] * 9, "builtin_style": "udnie"}, "style_weights has 9 values"),
    ({"style_weights": ",".join(["1"] * 100), "builtin_style": "udnie"}, "style_weights has 100 values"),
    ({"style_layer_weights": [1] * 65, "method": "gatys"}, "style_layer_weights has 65 values; at most 64"),
    ({f"k{i}": 1 for i in range(20)}, "unknown option.s.: k0, k1, .* and 12 more"),
])
def test_json_lists_counted_before_their_items_are_decoded(client, fields, message):
    body = {"content": _b64(png(CONTENT)), **fields}
    r = client.post("/v1/stylize", json=body)
    assert r.status_code == 400, r.text
    assert re.search(message, r.json()["error"]), r.json()["error"]


def test_multipart_style_weights_counted_before_parsing(client):
    r = client.post("/v1/stylize", files=files(png(CONTENT), [png(STYLE)]),
                    data={"style_weights": ",".join(["1"] * 100_000)})
    assert r.status_code == 400 and "style_weights has 100000 values" in r.json()["error"]


def test_json_is_parsed_in_a_worker_thread_and_ping_is_not_blocked(decoder_file, monkeypatch):
    """While a JSON body is being parsed (held here), the event loop still answers /ping."""
    started, release = threading.Event(), threading.Event()
    on_loop = []

    def held_loads(raw):
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        started.set()
        release.wait(15)  # bounded: if this ran on the loop, /ping below would time out
        return json.loads(raw)

    monkeypatch.setattr(parsing, "json", SimpleNamespace(loads=held_loads))
    body = {"content": _b64(png(CONTENT)), "builtin_style": "udnie", "style_size": 64}
    with BackgroundServer(config(decoder_file)) as srv, ThreadPoolExecutor(1) as pool:
        pending = pool.submit(httpx.post, f"{srv.url}/v1/stylize", json=body, timeout=60)
        assert started.wait(15)
        try:
            ping = httpx.get(f"{srv.url}/ping", timeout=5)
        finally:
            release.set()
        assert ping.status_code == 200
        assert pending.result(timeout=60).status_code == 200
    assert on_loop == [False]


# ---------------------------------------------------------------------------------------------
# 3. `painterly serve` start-up errors: one line, exit 2, never a server left running


@pytest.fixture
def no_serving(monkeypatch):
    """A server that would start fails the test instead of running for ever."""
    import uvicorn

    def refuse(*args, **kwargs):
        raise AssertionError("the server started")

    monkeypatch.setattr(uvicorn, "run", refuse)
    monkeypatch.setattr(uvicorn.Server, "run", refuse)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


SERVE = ["serve", "--device", "cpu", "--no-preload-gatys"]


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def test_serve_port_out_of_range(capsys, no_serving):
    with pytest.raises(SystemExit) as exc:
        main([*SERVE, "--port", "70000"])
    assert exc.value.code == 2
    assert "--port: must be a TCP port, 1..65535, got 70000" in _one_error_line(capsys)


def test_serve_port_in_use(capsys, decoder_file, no_serving):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main([*SERVE, "--decoder", decoder_file, "--port", str(port)]) == 2
    err = _one_error_line(capsys)
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in err


def test_serve_host_that_does_not_resolve(capsys, decoder_file, no_serving, monkeypatch):
    def no_such_host(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    assert main([*SERVE, "--decoder", decoder_file, "--host", "no-such-host.invalid"]) == 2
    assert "cannot listen on no-such-host.invalid:8080: the host does not resolve" in \
        _one_error_line(capsys)


def test_serve_named_decoder_that_is_not_a_model(capsys, tmp_path, no_serving):
    Image.new("RGB", (8, 8)).save(tmp_path / "not-a-model.png")
    assert main([*SERVE, "--decoder", str(tmp_path / "not-a-model.png"), "--port", _free_port()]) == 2
    err = _one_error_line(capsys)
    assert "--decoder" in err and "not-a-model.png could not be loaded" in err


def test_serve_named_model_that_does_not_exist(capsys, decoder_file, no_serving):
    assert main([*SERVE, "--decoder", decoder_file, "--model", "nope", "--port", _free_port()]) == 2
    err = _one_error_line(capsys)
    assert "--model nope could not be loaded" in err and "unknown model 'nope'" in err


def test_serve_starts_on_the_socket_it_bound(decoder_file, monkeypatch, capsys):
    import uvicorn

    seen = {}

    def fake_run(self, sockets=None):
        seen["sockets"] = [s.getsockname() for s in sockets]
        seen["adain"] = self.config.app.state.service.adain is not None  # loaded before serving
        self.started = True

    monkeypatch.setattr(uvicorn.Server, "run", fake_run)
    port = int(_free_port())
    assert main([*SERVE, "--decoder", decoder_file, "--port", str(port)]) == 0
    assert seen == {"sockets": [("127.0.0.1", port)], "adain": True}
    assert f"serving on http://127.0.0.1:{port}/" in capsys.readouterr().out


def test_bind_sockets_errors_are_painterly_errors():
    from painterly.errors import PainterlyError
    from painterly.serve.runner import bind_sockets

    with pytest.raises(PainterlyError, match="0..65535"):
        bind_sockets("127.0.0.1", 70000)
    socks = bind_sockets("127.0.0.1", 0)
    try:
        port = socks[0].getsockname()[1]
        socks[0].listen()
        with pytest.raises(PainterlyError, match="in use"):
            bind_sockets("127.0.0.1", port)
    finally:
        for s in socks:
            s.close()
