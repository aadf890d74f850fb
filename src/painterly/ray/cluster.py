"""Reaching Ray and sizing the actor pool.

:func:`require_ray` imports Ray Data or says how to install it; :func:`connect` starts or joins
a Ray instance; :func:`plan_actors` turns the running cluster's resources (and any values the
caller gave) into an :class:`ActorPlan`: one GPU per actor where the cluster has GPUs, else one
actor per node running torch on the node's cores while holding one logical CPU (less where the
actors would otherwise hold every CPU and leave none for Ray Data's read and write tasks).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import PainterlyError

INSTALL_HINT = "pip install 'painterly[ray]'"
#: Logical CPUs the actors leave free: Ray Data's read and write tasks take one each (Ray's
#: default), and with every CPU held by actors they never start: the job waits forever.
IO_CPUS = 1.0
#: Seconds to wait for a Ray address to answer. ``ray.init`` itself retries an address where
#: nothing listens for minutes, printing a warning every 30 s.
CONNECT_TIMEOUT_S = 10.0


def require_ray() -> Any:
    """The ``ray`` module with Ray Data, or a one-line error saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise PainterlyError(f"Ray Data is not installed: {INSTALL_HINT}") from None
    return ray


def _probe(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Refuse, within ``timeout`` seconds, a ``HOST:PORT`` or ``ray://HOST:PORT`` address where
    nothing answers (``auto``, ``local`` and other schemes are left to Ray)."""
    target = address[len("ray://"):] if address.startswith("ray://") else address
    if address in ("auto", "local") or "://" in target:
        return
    host, sep, port = target.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise PainterlyError(f"not a Ray address: {address!r} (give HOST:PORT, ray://HOST:10001 or auto)")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        why = exc.strerror or str(exc) or type(exc).__name__
        raise PainterlyError(f"cannot reach the Ray cluster at {address}: nothing answers at "
                             f"{host}:{port} ({why})") from None


def connect(address: str | None = None, quiet: bool = False) -> bool:
    """Start or join Ray unless it is running in this process; True if this call started it.

    ``address``: None or "" for a local instance (or the cluster in ``RAY_ADDRESS``), ``auto``
    for the cluster this node belongs to, ``ray://HOST:10001`` for Ray Client; an address where
    nothing answers is refused within :data:`CONNECT_TIMEOUT_S`. ``quiet``: keep Ray's own log
    lines and progress reports off the terminal (the CLI's output is its own lines; Ray's logs
    stay in its session folder).
    """
    ray = require_ray()
    if quiet:
        ray.data.DataContext.get_current().enable_progress_bars = False
        for name in ("ray", "ray.data"):
            logging.getLogger(name).setLevel(logging.ERROR)
    if ray.is_initialized():
        return False
    if address or os.environ.get("RAY_ADDRESS"):
        _probe(address or os.environ["RAY_ADDRESS"])
    quiet_args = {"logging_level": logging.ERROR, "log_to_driver": False} if quiet else {}
    try:
        ray.init(address=address or None, **quiet_args)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise PainterlyError(f"cannot start or reach {where}: {str(exc).splitlines()[0][:200]}") from None
    return True


@contextlib.contextmanager
def native_stderr_to_log() -> Iterator[str]:
    """Send what Ray's C++ core writes straight to file descriptor 2 (``core_worker.cc: ...``
    lines, which no Python logger controls) into a log file while Python's ``sys.stderr``
    keeps the terminal; yields the log's path, removed at the end unless the block raised and
    something was written there."""
    fd, log = tempfile.mkstemp(prefix=f"painterly-ray-{os.getpid()}-", suffix=".log")
    sys.stderr.flush()
    saved = os.dup(2)
    stream = sys.stderr
    try:
        own = stream.fileno() == 2
    except (AttributeError, OSError, ValueError):  # pytest's capture and the like: left as it is
        own = False
    if own:
        sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1, encoding=stream.encoding,
                               errors=stream.errors)
    os.dup2(fd, 2)
    os.close(fd)
    failed = False
    try:
        yield log
    except BaseException:
        failed = True
        raise
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        if own:
            sys.stderr.close()
            sys.stderr = stream
        with contextlib.suppress(OSError):
            if not failed or os.path.getsize(log) == 0:
                os.unlink(log)


def job_error(exc: BaseException, log: str | None = None) -> PainterlyError | None:
    """The one-line error for an exception that a Ray job raised (None if it is not Ray's): a
    :class:`PainterlyError` raised in an actor or task keeps its message; anything else is
    named by its last line and where Ray's logs are (``log``: :func:`native_stderr_to_log`'s)."""
    ray = require_ray()
    if not isinstance(exc, ray.exceptions.RayError):
        return None
    cause = getattr(exc, "cause", None)
    if isinstance(cause, PainterlyError):
        return PainterlyError(str(cause))
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    marker = "PainterlyError: "
    for line in reversed(lines):
        if marker in line:
            return PainterlyError(line.split(marker, 1)[1][:300])
    last = lines[-1] if lines else type(exc).__name__
    logs = f"{log} and /tmp/ray/session_latest/logs" if log else "/tmp/ray/session_latest/logs"
    return PainterlyError(f"the Ray job failed: {last[:300]} (Ray's logs: {logs})")


@dataclass(frozen=True)
class ActorPlan:
    """How many actors and what each holds: ``num_gpus`` (0 on CPUs), ``num_cpus`` (logical,
    for Ray's scheduler) and ``threads`` (torch threads on CPU actors; None on GPU actors)."""

    concurrency: int
    num_gpus: float
    num_cpus: float
    threads: int | None


def _positive(value: Any, name: str, integer: bool = True) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
            or (integer and value != int(value)) or not math.isfinite(value):
        kind = "a positive whole number" if integer else "a positive number"
        raise PainterlyError(f"{name} must be {kind}, got {value!r}")


def plan_actors(concurrency: int | None = None, num_gpus: float | None = None,
                num_cpus: float | None = None, threads: int | None = None) -> ActorPlan:
    """Actors for the running Ray cluster: one GPU each where it has GPUs (as many actors as
    GPUs), else one actor per node with the node's cores as torch threads. Given values win."""
    ray = require_ray()
    for value, name, integer in ((concurrency, "concurrency", True), (num_cpus, "num_cpus", False),
                                 (threads, "threads", True)):
        if value is not None:
            _positive(value, name, integer)
    total = ray.cluster_resources()
    gpus = float(total.get("GPU", 0))
    if num_gpus is None:
        num_gpus = 1.0 if gpus >= 1 else 0.0
    if isinstance(num_gpus, bool) or not isinstance(num_gpus, (int, float)) or not num_gpus >= 0:
        raise PainterlyError(f"num_gpus must be 0 or more, got {num_gpus!r}")
    if num_gpus > gpus:
        raise PainterlyError(f"each actor asks for {num_gpus:g} GPU(s) but the Ray cluster has {gpus:g}")
    nodes = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0]
    if concurrency is None:
        concurrency = max(1, int(gpus // num_gpus)) if num_gpus else max(1, len(nodes))
    if num_gpus == 0 and threads is None:
        per_node = math.ceil(concurrency / max(1, len(nodes)))
        node_cpus = min((int(n["Resources"]["CPU"]) for n in nodes), default=1)
        threads = max(1, node_cpus // per_node)
    cpus = float(total.get("CPU", 0))
    free = max(0.0, cpus - IO_CPUS)  # what the actors may hold: reads and writes need the rest
    if num_cpus is None:
        num_cpus = min(1.0, free / concurrency)
    elif concurrency * num_cpus > free + 1e-9:
        raise PainterlyError(
            f"{concurrency} actor(s) x {num_cpus:g} CPU(s) leave no CPU for reading and writing on a "
            f"Ray cluster of {cpus:g} CPUs (the job would wait forever): ask for fewer actors or CPUs "
            f"per actor (at most {free:g} CPUs for all actors together)")
    return ActorPlan(int(concurrency), float(num_gpus), float(num_cpus),
                     None if num_gpus else threads)
