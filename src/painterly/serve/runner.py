"""Run the service in a background thread on a free loopback port (tests, benchmarks, demos)."""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import uvicorn

from .app import create_app
from .config import ServeConfig
from .protocol import uvicorn_options


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class BackgroundServer:
    """``with BackgroundServer(ServeConfig(...)) as srv: srv.url`` -> a started, ready server.

    uvicorn runs in a daemon thread; entering waits until ``GET /ping`` answers 200 (models
    loaded), leaving asks uvicorn to exit and joins the thread.
    """

    def __init__(self, config: ServeConfig | None = None, host: str = "127.0.0.1",
                 port: int | None = None, ready_timeout: float = 120.0) -> None:
        self.host = host
        self.port = port or free_port(host)
        config = config or ServeConfig()
        self.app = create_app(config)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host=host, port=self.port,
                                                    log_level="warning", access_log=False,
                                                    **uvicorn_options(config)))
        self.thread = threading.Thread(target=self.server.run, name="painterly-uvicorn", daemon=True)
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
