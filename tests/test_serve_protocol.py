"""Connection timeouts (serve/protocol.py): slow headers and bodies are dropped with 408, a
client gone mid-body is one info line (a real uvicorn on 127.0.0.1).

Small images (<= 96 px) and a random AdaIN decoder keep it fast on CPU (the ``decoder_file`` and
``client`` fixtures in conftest.py, the helpers in serve_helpers.py).
"""

from __future__ import annotations

import time

import httpx
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from serve_helpers import config  # noqa: E402

from painterly.serve.runner import BackgroundServer  # noqa: E402


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
