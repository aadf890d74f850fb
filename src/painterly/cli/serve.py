"""``painterly serve``: the HTTP service (FastAPI + uvicorn) with its web page at ``/``."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import Field, fields

from . import positive_int


def port_number(text: str) -> int:
    """argparse type: a TCP port, 1..65535."""
    value = positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port, 1..65535, got {value}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the HTTP service and web page",
                       description="Serve POST /v1/stylize (and SageMaker's /ping, /invocations) "
                                   "plus a web page at /. Models load once at start-up.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=port_number, default=8080, help="TCP port, 1..65535 (default 8080)")
    add_config_flags(p)
    p.add_argument("--log-level", default="info",
                   choices=("critical", "error", "warning", "info", "debug"))
    p.set_defaults(func=run)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (a name that resolves to loopback counts)."""
    import ipaddress
    import socket

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False  # bind_sockets says what is wrong with it
    return bool(infos) and all(ipaddress.ip_address(i[4][0].split("%")[0]).is_loopback for i in infos)


def config_flags() -> list[Field]:
    """The :class:`~painterly.serve.config.ServeConfig` fields that are flags (made with
    ``setting``)."""
    from ..serve.config import ServeConfig

    return [f for f in fields(ServeConfig) if "help" in f.metadata]


def add_config_flags(p: argparse.ArgumentParser) -> None:
    """A flag per server setting, its type, default and help from the field; None means "not
    given" (the field's default), so ``ServeConfig.check`` is the one rule for every value."""
    for f in config_flags():
        shown = f.metadata["shown"] or (f"{f.default:g}" if isinstance(f.default, float)
                                        else str(f.default))
        flag = "--" + f.name.replace("_", "-")
        if isinstance(f.default, bool):  # --no-preload-gatys for a setting on by default
            p.add_argument(f"--no-{flag[2:]}" if f.default else flag, dest=f.name,
                           action="store_false" if f.default else "store_true", default=None,
                           help=f"{'do not ' if f.default else ''}{f.metadata['help']}")
            continue
        kind = {"int": int, "float": float}.get(str(f.type).split(" |")[0])
        p.add_argument(flag, dest=f.name, default=None, help=f"{f.metadata['help']} (default {shown})",
                       **({"type": kind, "metavar": f.name.upper()} if kind else {}))


def config_from_args(args: argparse.Namespace):  # -> ServeConfig
    """The server's config from parsed arguments (the flags given; the rest are defaults),
    checked."""
    from ..serve.config import ServeConfig

    given = {f.name: getattr(args, f.name) for f in config_flags()
             if getattr(args, f.name, None) is not None}
    if "token" not in given and os.environ.get("PAINTERLY_TOKEN"):
        given["token"] = os.environ["PAINTERLY_TOKEN"]  # kept out of the process list
    cfg = ServeConfig(**given)
    cfg.check()
    return cfg


def run(args: argparse.Namespace) -> int:
    """Check everything that can fail at start-up (flags, the device, the port, the models the
    operator named), each a one-line error, then serve until interrupted."""
    import logging
    from pathlib import Path

    from ..errors import PainterlyError

    try:
        import uvicorn

        from ..serve import create_app
    except ImportError as exc:
        raise PainterlyError(f"the server needs the 'serve' extra: pip install 'painterly[serve]' "
                             f"({exc.name} is missing)") from None
    for flag, path in (("--decoder", args.decoder), ("--model", args.model)):
        if path and (path.endswith((".safetensors", ".pth", ".pt")) or "/" in path) \
                and not Path(path).is_file():
            raise PainterlyError(f"{flag} file not found: {path}")
    from ..device import resolve_device

    cfg = config_from_args(args)
    resolve_device(cfg.device)  # an unknown or missing device is an error now, not per request
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from ..serve.protocol import uvicorn_options
    from ..serve.runner import bind_sockets

    sockets = bind_sockets(args.host, args.port)  # a taken port, a host that does not resolve
    if not cfg.token and not is_loopback(args.host):  # bound: the warning is about a real server
        print(f"warning: serving on {args.host} without --token: anyone who can reach this "
              f"address can use the server (set --token or PAINTERLY_TOKEN)", file=sys.stderr)
    try:
        app = create_app(cfg)
        app.state.service.load_named()  # a --decoder/--model that cannot be loaded: exit 2
        scheme = "https" if cfg.ssl_certfile else "http"
        print(f"painterly serving on {scheme}://{args.host}:{args.port}/ (device {cfg.device})")
        server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port,
                                               log_level=args.log_level, access_log=False,
                                               **uvicorn_options(cfg)))
        try:
            server.run(sockets=sockets)
        except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it shut down on
            return 0
        except SystemExit:  # uvicorn's own start-up failure (logged above)
            server.started = False
        if not server.started:
            raise PainterlyError("the server did not start (see the log lines above)")
    finally:
        for sock in sockets:
            sock.close()
    return 0
