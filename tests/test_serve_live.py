"""The server's live socket (/live) over real sockets: painting, settings mid-stream, bad input,
backpressure (a burst, a client that never reads), the stream limit, the token, and stills and
/ping answered beside live streams."""

from __future__ import annotations

import io
import json
import struct
import threading
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
ws_client = pytest.importorskip("websockets.sync.client")

from conftest import make_image  # noqa: E402

from painterly.serve import ServeConfig  # noqa: E402
from painterly.serve import live as live_mod  # noqa: E402
from painterly.serve.runner import BackgroundServer  # noqa: E402


def jpeg(w: int = 160, h: int = 120, seed: int = 0) -> bytes:
    buf = io.BytesIO()
    make_image(w, h, seed=seed).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def frame(data: bytes, stamp: float = 1.0) -> bytes:
    return struct.pack("<d", stamp) + data


def painted(msg: bytes) -> tuple[float, float, int, np.ndarray]:
    stamp, model_ms, server_ms, dropped = struct.unpack_from("<dffI", msg)
    assert server_ms >= model_ms > 0
    return stamp, model_ms, dropped, np.asarray(Image.open(io.BytesIO(msg[20:])).convert("RGB"))


def recv_json(ws) -> dict:
    msg = ws.recv(timeout=60)
    assert isinstance(msg, str), "expected a text message"
    return json.loads(msg)


def recv_frame(ws, timeout: float = 60) -> tuple[float, float, int, np.ndarray]:
    while True:
        msg = ws.recv(timeout=timeout)
        if isinstance(msg, bytes):
            return painted(msg)
        assert json.loads(msg)["type"] != "error", msg


@pytest.fixture(scope="module")
def server():
    cfg = ServeConfig(device="cpu", preload_gatys=False, max_live_streams=2, max_pixels=512 * 512,
                      max_upload_mb=2)
    with BackgroundServer(cfg) as srv:
        yield srv


def connect(srv, **kw):
    return ws_client.connect(srv.url.replace("http://", "ws://") + "/live", max_size=None, **kw)


def started(ws, size: int = 96) -> None:
    """Past the ready line, painting fast/udnie at ``size``."""
    recv_json(ws)
    ws.send(json.dumps({"type": "settings", "method": "fast", "style": "udnie", "size": size}))
    assert recv_json(ws)["type"] == "settings"


def closed_with(ws, code: int, expected: str) -> None:
    """The server's last word: an error line saying ``expected``, then a close with ``code``."""
    err = recv_json(ws)
    assert err["type"] == "error" and expected in err["error"], err
    with pytest.raises(Exception):  # noqa: B017 (the close, as the client library raises it)
        ws.recv(timeout=10)
    assert ws.close_code == code


def settle(srv, timeout: float = 10.0) -> None:
    """Every stream ended, and the memory they held is back in the server's budget."""
    deadline = time.monotonic() + timeout
    while (srv.service.live.open or srv.service.memory.used) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.service.live.open == 0
    assert srv.service.memory.used == 0


def test_frames_are_painted_and_settings_change_mid_stream(server):
    with connect(server) as ws:
        ready = recv_json(ws)
        assert ready["type"] == "ready" and "fast" in ready["methods"]
        ws.send(json.dumps({"type": "settings", "method": "fast", "style": "udnie", "size": 128}))
        ack = recv_json(ws)
        assert ack["type"] == "settings" and ack["style"] == ["udnie"] and ack["size"] == 128
        ws.send(frame(jpeg(), 12.5))
        stamp, model_ms, dropped, out = recv_frame(ws)
        assert stamp == 12.5 and model_ms > 0 and dropped == 0
        assert out.shape == (96, 128, 3) and out.std() > 5
        # A new style, without reconnecting: the output changes.
        ws.send(json.dumps({"style": "mondrian"}))
        assert recv_json(ws)["style"] == ["mondrian"]
        ws.send(frame(jpeg(), 13.0))
        other = recv_frame(ws)[3]
        assert np.abs(other.astype(float) - out).mean() > 5
        # AdaIN (any style) on the same stream, with its own option.
        ws.send(json.dumps({"method": "adain", "style": "woman_with_hat", "alpha": 0.6}))
        ack = recv_json(ws)
        assert ack["method"] == "adain" and ack["alpha"] == 0.6
        ws.send(frame(jpeg()))
        assert recv_frame(ws)[3].shape == (96, 128, 3)
    settle(server)


@pytest.mark.parametrize("message, expected", [
    (b"12345678 not an image at all", "not an image"),
    (b"short", "8 bytes of timestamp"),
    ("not json", "JSON settings"),
    (json.dumps({"type": "settings", "style": "nope", "method": "adain"}), "unknown built-in style"),
    (json.dumps({"type": "settings", "size": 99999}), "live size"),
    (json.dumps({"type": "settings", "method": "gatys"}), "adain or fast"),
    (json.dumps({"type": "settings", "method": "fast", "style": "udnie", "alpha": "x"}), "alpha"),
])
def test_bad_messages_get_one_error_and_the_stream_goes_on(server, message, expected):
    with connect(server) as ws:
        started(ws)
        ws.send(message)
        err = recv_json(ws)
        assert err["type"] == "error" and expected in err["error"], err
        assert "Traceback" not in err["error"] and len(err["error"]) < 1000
        ws.send(frame(jpeg()))  # still painting
        assert recv_frame(ws)[3].size
    settle(server)


def test_over_the_pixel_cap_and_message_size(server):
    with connect(server) as ws:
        started(ws)
        big = io.BytesIO()
        Image.new("RGB", (1024, 1024), (40, 90, 160)).save(big, "PNG")  # over max_pixels 512²
        ws.send(frame(big.getvalue()))
        err = recv_json(ws)
        assert "megapixels" in err["error"]
    with connect(server) as ws:  # a message over the upload limit: the socket is closed
        recv_json(ws)
        ws.send(b"\0" * 3_000_000)
        with pytest.raises(Exception):  # noqa: B017 (the close, as the client library raises it)
            for _ in range(5):
                ws.recv(timeout=10)
    settle(server)


def test_a_burst_of_a_thousand_tiny_messages_drops_frames_instead_of_queueing(server):
    with connect(server) as ws:
        started(ws)
        tiny = frame(jpeg(16, 16), 1.0)
        for i in range(1000):
            ws.send(tiny if i % 2 else b"x" * 9)
        ws.send(frame(jpeg(), 99.0))
        seen, errors = [], []
        while True:  # painted frames and errors until the last frame comes back
            msg = ws.recv(timeout=60)
            if isinstance(msg, bytes):
                stamp, _, dropped, _ = painted(msg)
                seen.append(stamp)
                if stamp == 99.0:
                    break
            else:
                errors.append(json.loads(msg)["error"])
        assert len(seen) < 100, "frames were queued, not dropped"
        # The 500 that are not images are refused as they come (one error line for any number
        # of them: the newest is kept); of the 501 frames, all but the few painted are dropped.
        assert dropped > 400 and dropped + len(seen) <= 501
        assert errors and all("not an image" in e for e in errors) and len(errors) <= 500
    settle(server)


def test_a_client_that_never_reads_is_closed_and_holds_nothing(server, monkeypatch):
    monkeypatch.setattr(live_mod, "LIVE_SEND_TIMEOUT", 1.0)
    noise = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (384, 512, 3), np.uint8)).save(noise, "JPEG")
    data = frame(noise.getvalue())
    with connect(server, max_queue=1) as ws:
        ws.socket.setsockopt(__import__("socket").SOL_SOCKET, __import__("socket").SO_RCVBUF, 4096)
        ws.send(json.dumps({"type": "settings", "method": "fast", "style": "udnie", "size": 512}))
        deadline = time.monotonic() + 90
        while server.service.live.open and time.monotonic() < deadline:
            try:
                ws.send(data)  # frames keep coming; the painted ones are never read
            except Exception:
                break
            time.sleep(0.01)
    settle(server, 5)


def test_a_frame_over_the_timeout_closes_the_stream(monkeypatch):
    from painterly import live as live_loop

    cfg = ServeConfig(device="cpu", preload_gatys=False, timeout=1.0)
    slow = live_loop.LivePainter.__call__

    def stalled(self, frame):
        time.sleep(2.5)
        return slow(self, frame)

    with BackgroundServer(cfg) as srv, connect(srv) as ws:
        started(ws)
        monkeypatch.setattr(live_loop.LivePainter, "__call__", stalled)
        ws.send(frame(jpeg()))
        closed_with(ws, 1011, "longer than 1 s")
        settle(srv)


def test_streams_past_the_limit_are_refused_with_a_message(server):
    with connect(server) as a, connect(server) as b:
        recv_json(a), recv_json(b)
        with connect(server) as c:
            closed_with(c, 1013, "--max-live-streams 2")
    settle(server)
    assert server.service.live.refused >= 1


def test_stills_and_ping_are_answered_beside_live_streams(server):
    stop = threading.Event()
    counts = [0, 0]

    def stream(i: int) -> None:
        with connect(server) as ws:
            started(ws, 256)
            while not stop.is_set():
                ws.send(frame(jpeg(320, 240, seed=i)))
                recv_frame(ws)
                counts[i] += 1

    threads = [threading.Thread(target=stream, args=(i,), daemon=True) for i in range(2)]
    for t in threads:
        t.start()
    try:
        while min(counts) < 2:
            time.sleep(0.05)
        t0 = time.monotonic()
        with urllib.request.urlopen(f"{server.url}/ping", timeout=5) as r:
            assert r.status == 200
        ping_s = time.monotonic() - t0
        body = json.dumps({"content": __import__("base64").b64encode(jpeg()).decode(),
                           "builtin_style": "udnie", "method": "adain", "size": 128}).encode()
        req = urllib.request.Request(f"{server.url}/v1/stylize", body,
                                     {"Content-Type": "application/json", "Accept": "image/png"})
        with urllib.request.urlopen(req, timeout=60) as r:
            assert r.status == 200 and Image.open(io.BytesIO(r.read())).size == (128, 96)
        assert ping_s < 2.0
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    settle(server)


def test_a_stream_outlives_the_header_timeout():
    """The connection's header clock stops at the WebSocket upgrade (it closed streams at 10 s)."""
    cfg = ServeConfig(device="cpu", preload_gatys=False, header_timeout=1.0)
    with BackgroundServer(cfg) as srv, connect(srv) as ws:
        recv_json(ws)
        ws.send(json.dumps({"type": "settings", "method": "fast", "style": "udnie", "size": 64}))
        recv_json(ws)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.5:
            ws.send(frame(jpeg(), 2.0))
            assert recv_frame(ws)[0] == 2.0
            time.sleep(0.2)


def test_the_token_guards_the_socket():
    cfg = ServeConfig(device="cpu", preload_gatys=False, token="s3cret-token")
    with BackgroundServer(cfg) as srv:
        url = srv.url.replace("http://", "ws://") + "/live"
        with pytest.raises(Exception):  # noqa: B017 (the close, as the client library raises it)
            with ws_client.connect(url) as ws:
                ws.recv(timeout=10)
        with ws_client.connect(url + "?token=s3cret-token") as ws:
            assert recv_json(ws)["type"] == "ready"


def test_tls_files_are_checked_at_start(tmp_path):
    from painterly.errors import PainterlyError

    with pytest.raises(PainterlyError, match="go together"):
        ServeConfig(ssl_certfile=str(tmp_path / "c.pem")).check()
    with pytest.raises(PainterlyError, match="file not found"):
        ServeConfig(ssl_certfile=str(tmp_path / "c.pem"), ssl_keyfile=str(tmp_path / "k.pem")).check()
    (tmp_path / "c.pem").write_text("x")
    (tmp_path / "k.pem").write_text("x")
    from painterly.serve.protocol import uvicorn_options

    cfg = ServeConfig(ssl_certfile=str(tmp_path / "c.pem"), ssl_keyfile=str(tmp_path / "k.pem"))
    cfg.check()
    assert uvicorn_options(cfg)["ssl_certfile"] == str(tmp_path / "c.pem")


def test_live_frames_are_painted_with_one_core_left_to_the_rest():
    """The live thread runs torch with all threads but one (the camera, browser and encoding
    need a core); the other threads, stills among them, keep torch's count."""
    import torch

    from painterly.live import live_threads

    hub = live_mod.LiveHub(2)
    try:
        inside = hub.executor.submit(torch.get_num_threads).result(timeout=30)
    finally:
        hub.executor.shutdown()
    assert inside == live_threads() == max(1, torch.get_num_threads() - 1)
    assert torch.get_num_threads() >= inside
