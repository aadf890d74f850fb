"""``painterly serve``: the HTTP service (FastAPI + uvicorn) with its web page at ``/``."""

from __future__ import annotations

import argparse

from . import non_negative_float, positive_float, positive_int


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
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, mps")
    p.add_argument("--decoder", default=None, help="AdaIN decoder file (default: the shipped one)")
    p.add_argument("--model", default=None, help="default fast-network model (file or name)")
    p.add_argument("--max-upload-mb", type=non_negative_float, default=20.0,
                   help="largest request body in MB (413 above; default 20)")
    p.add_argument("--max-pixels", type=positive_int, default=4096 * 4096,
                   help="largest uploaded image in pixels (413 above; default 4096*4096)")
    p.add_argument("--max-request-pixels", type=positive_int, default=4 * 4096 * 4096,
                   help="most pixels of one request's images together, content and styles "
                        "(413 above, from the headers; default 4*4096*4096)")
    p.add_argument("--max-request-mb", type=positive_float, default=1024.0,
                   help="most memory one request's images may need decoded, estimated from "
                        "their headers (413 above; default 1024)")
    p.add_argument("--memory-budget-mb", type=positive_float, default=2048.0,
                   help="memory the images of all requests in progress may need together; a "
                        "request waits for room, then 503 (default 2048)")
    p.add_argument("--memory-wait", type=non_negative_float, default=5.0,
                   help="seconds a request waits for --memory-budget-mb to free (default 5)")
    p.add_argument("--max-size", type=positive_int, default=2048,
                   help="long side processed by adain/fast; larger uploads are shrunk (default 2048)")
    p.add_argument("--queue-size", type=positive_int, default=16,
                   help="requests admitted at once, waiting or running (503 above; default 16)")
    p.add_argument("--timeout", type=non_negative_float, default=120.0,
                   help="seconds per request before 504 (default 120)")
    p.add_argument("--header-timeout", type=positive_float, default=10.0,
                   help="seconds a client has to send a request's headers (408 and close; default 10)")
    p.add_argument("--body-timeout", type=positive_float, default=60.0,
                   help="seconds a client has to send a request's body (408 and close; default 60)")
    p.add_argument("--keep-alive-timeout", type=positive_float, default=5.0,
                   help="seconds an idle kept-alive connection stays open (default 5)")
    p.add_argument("--max-steps", type=positive_int, default=200,
                   help="gatys: most steps a request may ask for, and the default (200)")
    p.add_argument("--max-gatys-size", type=positive_int, default=512,
                   help="gatys: largest output long side, and the default (512)")
    p.add_argument("--max-batch", type=positive_int, default=8,
                   help="adain: most requests stylized in one batch (default 8)")
    p.add_argument("--batch-wait-ms", type=non_negative_float, default=5.0,
                   help="adain: how long a request waits for others to batch with (default 5)")
    p.add_argument("--workers", type=positive_int, default=1,
                   help="threads for gatys/fast requests (default 1)")
    p.add_argument("--no-preload-gatys", dest="preload_gatys", action="store_false",
                   help="do not load VGG19 for gatys at start-up")
    p.add_argument("--log-level", default="info",
                   choices=("critical", "error", "warning", "info", "debug"))
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):  # -> ServeConfig
    """Build the server's config from parsed arguments."""
    from ..serve import ServeConfig

    cfg = ServeConfig(device=args.device, decoder=args.decoder, model=args.model,
                      max_upload_mb=args.max_upload_mb, max_pixels=args.max_pixels,
                      max_request_pixels=args.max_request_pixels,
                      max_request_mb=args.max_request_mb, memory_budget_mb=args.memory_budget_mb,
                      memory_wait=args.memory_wait,
                      max_size=args.max_size, queue_size=args.queue_size, timeout=args.timeout,
                      max_steps=args.max_steps, max_gatys_size=args.max_gatys_size,
                      max_batch=args.max_batch, batch_wait_ms=args.batch_wait_ms,
                      workers=args.workers, preload_gatys=args.preload_gatys,
                      header_timeout=args.header_timeout, body_timeout=args.body_timeout,
                      keep_alive_timeout=args.keep_alive_timeout)
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

    resolve_device(args.device)  # an unknown or missing device is an error now, not per request
    cfg = config_from_args(args)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from ..serve.protocol import uvicorn_options
    from ..serve.runner import bind_sockets

    sockets = bind_sockets(args.host, args.port)  # a taken port, a host that does not resolve
    try:
        app = create_app(cfg)
        app.state.service.load_named()  # a --decoder/--model that cannot be loaded: exit 2
        print(f"painterly serving on http://{args.host}:{args.port}/ (device {args.device})")
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
