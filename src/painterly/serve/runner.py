"""Listening sockets bound before uvicorn starts (:func:`bind_sockets`: a taken port or a host
that does not resolve is one :class:`~painterly.PainterlyError`), and the service run in a
background thread on a free loopback port (tests, benchmarks, demos)."""

from __future__ import annotations

import errno
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import uvicorn

from ..errors import PainterlyError
from .app import create_app
from .config import ServeConfig
from .protocol import uvicorn_options


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def bind_sockets(host: str, port: int) -> list[socket.socket]:
    """TCP sockets bound to every address ``host`` resolves to, on ``port`` (0: a free one), not
    yet listening (uvicorn listens on them: ``Server.run(sockets=...)``). A port out of range,
    a host that does not resolve or an address that cannot be bound (in use, not this
    machine's, no permission) is a :class:`PainterlyError` naming it, before anything starts."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise PainterlyError(f"port must be a whole number in 0..65535, got {port!r}")
    where = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise PainterlyError(f"cannot listen on {where}: the host does not resolve "
                             f"({exc.strerror or exc})") from None
    except (UnicodeError, ValueError) as exc:  # e.g. a label over 63 characters
        raise PainterlyError(f"cannot listen on {where}: not a valid host name ({exc})") from None
    sockets: list[socket.socket] = []
    seen = set()
    try:
        for family, kind, proto, _, addr in infos:
            if (family, addr) in seen:
                continue
            seen.add((family, addr))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # as asyncio does
            sock.bind(addr)
            sock.setblocking(False)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        hint = " (is another server running on it? choose another --port)" \
            if exc.errno == errno.EADDRINUSE else ""
        raise PainterlyError(f"cannot listen on {where}: {exc.strerror or exc}{hint}") from None
    return sockets


class BackgroundServer:
    """``with BackgroundServer(ServeConfig(...)) as srv: srv.url`` -> a started, ready server.

    The socket is bound here (``port`` None: a free one, no race with another process), so a
    taken port is a :class:`PainterlyError` at once; uvicorn runs in a daemon thread; entering
    waits until ``GET /ping`` answers 200 (models loaded), leaving asks uvicorn to exit and
    joins the thread.
    """

    def __init__(self, config: ServeConfig | None = None, host: str = "127.0.0.1",
                 port: int | None = None, ready_timeout: float = 120.0) -> None:
        self.host = host
        sockets = bind_sockets(host, port or 0)
        for extra in sockets[1:]:  # one address is enough for a local server
            extra.close()
        self.sockets = sockets[:1]
        self.port = self.sockets[0].getsockname()[1]
        config = config or ServeConfig()
        self.app = create_app(config)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host=host, port=self.port,
                                                    log_level="warning", access_log=False,
                                                    **uvicorn_options(config)))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": self.sockets},
                                       name="painterly-uvicorn", daemon=True)
        self.ready_timeout = ready_timeout

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def service(self) -> Any:
        return self.app.state.service

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if not self.thread.is_alive():
                raise RuntimeError("the server thread exited during start-up")
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=2) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        self.__exit__(None, None, None)
        raise RuntimeError(f"server not ready after {self.ready_timeout:.0f} s")

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        for sock in self.sockets:
            sock.close()
