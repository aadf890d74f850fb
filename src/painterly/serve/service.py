"""The running server's state: :class:`Service` loads the models, admits requests and runs them.

Read top to bottom: loading (each method on its own, so one broken model leaves the others
served; the reasons go to ``GET /v1/methods``; a model the operator named that cannot be loaded
is a start-up error, :meth:`Service.load_named`), admission (at most ``queue_size`` requests at
once, and their images' estimated memory within ``memory_budget_mb``, measured from the headers
before anything is decoded: :class:`MemoryBudget`), then running a request: images decoded on
the loop's default executor, AdaIN prepared there and batched across requests on the one model
thread (:mod:`painterly.serve.batching`, :mod:`painterly.serve.engine`), gatys and fast through
the library's stylizers on the worker threads, with the server's limits applied first.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from PIL import Image

from ..api import METHODS, make_stylizer
from ..device import resolve_device
from ..errors import PainterlyError, echo
from ..image import resize
from ..options import AdaINOptions, check_style_weights, parse
from .batching import CancelToken, DynamicBatcher
from .config import ServeConfig
from .errors import HTTPError
from .parsing import ADAIN_OPTIONS, ParsedRequest, builtin_style_image, decode_upload, request_budget

log = logging.getLogger("painterly.serve")



#: What ``/v1/methods`` says of the AdaIN model: its kind and architecture, nothing of its
#: training run (whose config names the trainer's folders).
MODEL_INFO_KEYS = ("kind", "widths", "decoder_widths", "skip", "upsample", "padding",
                   "encoder_padding")
#: Where a client reads what the shipped models are and how they were measured.
MODEL_CARD = "docs/MODEL_CARD.md"

class MemoryBudget:
    """Bytes reserved by the requests in progress, against a ``total``.

    :meth:`acquire` takes a request's estimate when it fits, else waits (on the event loop, no
    thread held) until others :meth:`release` theirs, for at most ``wait`` seconds. Not bound to
    one event loop: each waiter is a future of the loop it runs on.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0
        self._waiters: list[asyncio.Future] = []

    async def acquire(self, need: int, wait: float) -> bool:
        """Reserve ``need`` bytes; False when they did not fit within ``wait`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while self.used + need > self.total:
            left = deadline - loop.time()
            if left <= 0:
                return False
            fut = loop.create_future()
            self._waiters.append(fut)
            try:
                await asyncio.wait_for(fut, left)
            except TimeoutError:
                pass
            finally:
                self._waiters.remove(fut)
        self.used += need
        return True

    def release(self, need: int) -> None:
        """Give back ``need`` bytes and wake every waiter to check again."""
        self.used -= need
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(None)


class Service:
    """Models, executors, the batcher and the admission counter of one running server."""

    def __init__(self, config: ServeConfig) -> None:
        config.check()
        self.config = config
        self.ready = threading.Event()
        self.load_error: str | None = None
        self.adain = None  # AdaINEngine once loaded
        self.adain_reason = "not loaded yet"
        self.fast_reason: str | None = None
        self.fast_models: dict[str, str] = {}  # registry name -> file
        self.default_fast_model: str | None = None
        self.gatys_reason: str | None = None
        self.model_info: dict[str, Any] = {}
        self._loaded: set[str] = set()  # methods load_named already loaded
        self.device_name = "?"
        self.model_executor = ThreadPoolExecutor(1, thread_name_prefix="painterly-model")
        self.executor = ThreadPoolExecutor(config.workers, thread_name_prefix="painterly-work")
        self.batcher = DynamicBatcher(self._run_adain_batch, self.model_executor,
                                      config.max_batch, config.batch_wait_ms)
        from .live import LiveHub  # the live socket's streams and their painting thread

        self.live = LiveHub(config.max_live_streams)
        self.in_flight = 0
        self.memory = MemoryBudget(int(config.memory_budget_mb * 1e6))
        self.counts = {"requests": 0, "ok": 0, "errors": 0, "rejected_busy": 0,
                       "rejected_memory": 0, "timeouts": 0}
        self.started = time.time()

    # -- loading -------------------------------------------------------------------------------
    def load(self) -> None:
        """Load every model the server can serve; never raises (reasons go to /v1/methods)."""
        try:
            self.device_name = str(resolve_device(self.config.device))
        except Exception as exc:
            self.load_error = f"device: {exc}"
        # Each method on its own: one broken model leaves the others served.
        for name, loader in (("adain", self._load_adain), ("fast", self._load_fast),
                             ("gatys", self._load_gatys)):
            if name in self._loaded:
                continue
            try:
                loader()
            except Exception as exc:  # a broken set-up: report it, keep answering
                if not isinstance(exc, PainterlyError):
                    log.exception("loading %s failed", name)
                reason = f"could not be loaded: {exc}"
                setattr(self, f"{name}_reason", reason)
                if name == "adain":
                    self.adain = None
                self.load_error = f"{name}: {exc}"
        self.ready.set()
        log.info("models loaded (device %s): %s", self.device_name, self.methods_summary())

    def load_named(self) -> None:
        """Load the models the operator named (``decoder``, ``model``) now: one that cannot be
        loaded is a :class:`PainterlyError` naming it (``painterly serve`` exits 2), not a server
        that starts without it. :meth:`load` then loads the rest."""
        for name, flag, value, loader in (("adain", "--decoder", self.config.decoder, self._load_adain),
                                          ("fast", "--model", self.config.model, self._load_fast)):
            if value is None:
                continue
            try:
                loader()
            except PainterlyError as exc:
                raise PainterlyError(f"{flag} {value} could not be loaded: {exc}") from None
            except Exception as exc:  # a file that is not a model: whatever its reader raised
                first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
                raise PainterlyError(f"{flag} {value} could not be loaded: "
                                     f"{type(exc).__name__}: {first}") from None
            if name == "adain" and self.adain is None:
                why = self.adain_reason.removeprefix("decoder could not be loaded: ")
                raise PainterlyError(f"{flag} {value} could not be loaded: {why}")
            self._loaded.add(name)

    def _load_adain(self) -> None:
        path = self.config.decoder
        if path is None:
            try:
                from ..adain import networks
            except ImportError:  # a build without AdaIN: reported below like a missing decoder
                networks = None
            if networks is None or not networks.is_available():
                self.adain_reason = ("no AdaIN decoder installed: start the server with --decoder FILE "
                                     "(train one with `painterly train adain`)")
                return
        from .engine import AdaINEngine  # here: the engine needs the AdaIN package, a build may lack it

        try:
            # No --decoder: the shipped model of --network (auto: lite on a CPU, vgg on a GPU).
            self.adain = AdaINEngine(path, self.config.device, self.config.style_cache,
                                     self.config.network)
        except PainterlyError as exc:
            self.adain_reason = f"decoder could not be loaded: {exc}"
            return
        self.adain_reason = ""
        from ..adain.networks import default_model_path

        name = Path(path).name if path is not None else default_model_path(self.adain.network).name
        # The file name and its architecture only: clients need not learn the server's paths
        # (a file's training config names the folders of the machine that trained it).
        self.model_info["adain_decoder"] = {"file": name, "network": self.adain.network, **{
            k: v for k, v in self.adain.config.items() if k in MODEL_INFO_KEYS and _jsonable(v)},
            "card": MODEL_CARD}

    def _load_fast(self) -> None:
        try:
            import painterly.fast as fast_mod
        except ImportError:
            fast_mod = None
        if not hasattr(fast_mod, METHODS["fast"][1]):
            self.fast_reason = "the fast method is not in this build"
            return
        from ..models import list_models

        self.fast_models = {m.name: str(m.path) for m in list_models() if m.error is None}
        self.model_info["fast_models"] = [
            {"name": m.name, "style_names": m.style_names, "width": m.width}
            for m in list_models() if m.error is None]
        if self.config.model is not None:
            from ..fast.model import load_model
            from ..models import resolve_model

            path = resolve_model(self.config.model)
            _, cfg = load_model(str(path))  # fail at start-up, not on the first request
            self.default_fast_model = str(path)
            self.model_info["fast_default"] = {"name": path.stem,
                                               "style_names": cfg.get("style_names", []),
                                               "n_styles": cfg.get("n_styles")}
        elif not self.fast_models:
            self.fast_reason = ("no fast model installed: start the server with --model FILE "
                                "(train one with `painterly train fast`)")

    def _load_gatys(self) -> None:
        try:
            import painterly.gatys as gatys
        except ImportError:
            self.gatys_reason = "the gatys method is not in this build"
            return
        if self.config.preload_gatys:
            # the extractor a default request uses, into gatys's per-process cache
            gatys.preload(str(resolve_device(self.config.device)))

    def methods_summary(self) -> dict[str, dict[str, Any]]:
        """Per method: ``available`` and, when not (or when a choice is needed), the ``reason``."""
        out = {}
        for name in METHODS:
            if name == "adain":
                ok, why = self.adain is not None, self.adain_reason
            elif name == "fast":
                ok, why = self.fast_reason is None, self.fast_reason or ""
                if ok and self.default_fast_model is None and len(self.fast_models) > 1:
                    why = f"choose a model (option model): {', '.join(sorted(self.fast_models))}"
            else:
                ok, why = self.gatys_reason is None, self.gatys_reason or ""
            out[name] = {"available": ok, "reason": why}
        return out

    def default_method(self) -> str:
        """The method a request that names none gets: AdaIN when it loaded, else gatys."""
        return "adain" if self.adain is not None else "gatys"

    # -- running -------------------------------------------------------------------------------
    def _run_adain_batch(self, key: Any, jobs: list) -> list:
        """The batcher's worker: one engine forward for a batch of same-size AdaIN jobs."""
        assert self.adain is not None
        return self.adain.stylize_batch(jobs)

    def admit(self) -> None:
        """Take a slot for a request, or 503 when ``queue_size`` are already in progress."""
        if self.in_flight >= self.config.queue_size:
            self.counts["rejected_busy"] += 1
            raise HTTPError(503, f"server busy ({self.in_flight} requests in progress); retry later",
                            {"Retry-After": "1"})
        self.in_flight += 1

    def release(self, need: int = 0) -> None:
        """Give back a request's slot and its ``need`` bytes of memory (when its work really
        ended, not when its client left)."""
        self.in_flight -= 1
        if need:
            self.memory.release(need)

    async def measure(self, req: ParsedRequest) -> int:
        """The bytes a request's images will need, from their headers, in a worker thread;
        413 over the per-request caps (:func:`~painterly.serve.parsing.request_budget`)."""
        return await asyncio.get_running_loop().run_in_executor(None, request_budget, req,
                                                                 self.config)

    async def admit_request(self, need: int) -> None:
        """A slot (:meth:`admit`), then ``need`` bytes of the memory budget: a request waits up
        to ``memory_wait`` s for others to finish, then gets 503 with ``Retry-After``. Nothing of
        the request is decoded before this returns. Undo with ``release(need)``."""
        self.admit()
        try:
            ok = await self.memory.acquire(need, self.config.memory_wait)
        except BaseException:
            self.in_flight -= 1
            raise
        if not ok:
            self.in_flight -= 1
            self.counts["rejected_memory"] += 1
            raise HTTPError(503, f"server busy: the images of the requests in progress hold "
                                 f"{self.memory.used / 1e6:,.0f} of its "
                                 f"{self.memory.total / 1e6:,.0f} MB and this one needs about "
                                 f"{need / 1e6:,.0f} MB; retry later", {"Retry-After": "2"})

    async def run_in(self, executor: ThreadPoolExecutor | None, token: CancelToken, fn: Any,
                     *args: Any) -> Any:
        """``fn(*args)`` on ``executor`` (None: the loop's default), skipped if already cancelled."""
        def guarded() -> Any:
            if token.cancelled:
                raise asyncio.CancelledError()
            return fn(*args)

        return await asyncio.get_running_loop().run_in_executor(executor, guarded)

    async def process(self, req: ParsedRequest, token: CancelToken) -> tuple[Image.Image, dict]:
        """Decode, validate, stylize; returns the image and response headers."""
        cfg = self.config
        method = req.method or self.default_method()
        status = self.methods_summary()[method]
        if not status["available"]:
            raise HTTPError(400 if method != "adain" else 503,
                            f"method '{method}' is not available on this server: {status['reason']}")
        # Decoding runs on the loop's default executor: never behind a long gatys job.
        content = await self.run_in(None, token, decode_upload, req.content, "content image", cfg)
        styles = []
        for i, data in enumerate(req.styles):
            styles.append(await self.run_in(None, token, decode_upload, data,
                                            f"style image {i + 1}", cfg))
        for n in req.builtin_styles:
            styles.append(await self.run_in(None, token, builtin_style_image, n))
        if method == "adain":
            return await self._adain(req, content, styles, token)
        return await self._other(method, req, content, styles, token)

    def _adain_prepare(self, req: ParsedRequest, content: Image.Image,
                       styles: list[Image.Image]) -> tuple[Any, list, list[float], AdaINOptions]:
        """The request's typed :class:`~painterly.options.AdaINOptions` (the declarations'
        defaults and rules, as every front end), checked against the server's limits, then the
        engine's (the library's) input rules: sizes, tensors, histogram color (CPU work: runs
        in an executor thread)."""
        engine = self.adain
        assert engine is not None
        raw = dict(req.options)
        bad = sorted(k for k in raw if k not in ADAIN_OPTIONS)
        if bad:
            raise PainterlyError(f"option(s) {', '.join(bad)} do not apply to method 'adain'")
        if not styles:
            raise PainterlyError("method 'adain' needs a style image (style or builtin_style)")
        weights = check_style_weights(raw.pop("style_weights", None), len(styles))
        options = parse("adain", raw)
        assert isinstance(options, AdaINOptions)
        size = options.size
        if size is not None and size > self.config.max_size:
            raise PainterlyError(f"size {size} is over this server's limit of {self.config.max_size}")
        if size is None and max(content.size) > self.config.max_size:
            size = self.config.max_size
        c = engine.content_tensor(resize(content, size))
        if options.style_size > self.config.max_size:
            raise PainterlyError(f"style_size {options.style_size} is over this server's limit of "
                                 f"{self.config.max_size}")
        options.network = engine.resolve_network(options.network)
        # What each style's statistics are cached by: its bytes, or a built-in painting's name.
        sources = req.styles + [f"builtin:{name}".encode() for name in req.builtin_styles]
        prepared = engine.style_inputs(styles, sources, c, options)
        return c, prepared, weights, options

    async def _adain(self, req: ParsedRequest, content: Image.Image, styles: list[Image.Image],
                     token: CancelToken) -> tuple[Image.Image, dict]:
        from ..adain.core import StyleStats  # here, as the engine: a build may leave AdaIN out
        from .engine import AdaINJob, batch_key

        engine = self.adain
        assert engine is not None
        c, prepared, weights, options = await self.run_in(None, token, self._adain_prepare, req,
                                                          content, styles)
        # A cached style is looked up here, not queued behind a running batch on the model thread.
        network = options.network
        stats = [engine.cached_stats(key) or
                 await self.run_in(self.model_executor, token, engine.style_stats, s, key, network)
                 for s, key in prepared]
        job = AdaINJob(c, StyleStats.stack(stats, weights), options.alpha, network)
        key = batch_key(c, network, engine.batch_limit(network, self.config.max_batch))
        out, batch_size = await self.batcher.submit_with_size(key, job, token)
        image = await self.run_in(None, token, engine.finish, out, c, options.preserve_color)
        return image, {"X-Painterly-Method": "adain", "X-Painterly-Network": network,
                       "X-Painterly-Batch-Size": str(batch_size)}

    async def _other(self, method: str, req: ParsedRequest, content: Image.Image,
                     styles: list[Image.Image], token: CancelToken) -> tuple[Image.Image, dict]:
        cfg = self.config
        opts = dict(req.options)
        weights = opts.pop("style_weights", None)
        if method == "gatys":
            try:  # gatys's own default for the optimizer, capped by the server's limit
                from ..gatys import DEFAULT_STEPS

                default_steps = DEFAULT_STEPS.get(opts.get("optimizer", "lbfgs"), cfg.max_steps)
            except ImportError:
                default_steps = cfg.max_steps
            steps = opts.setdefault("steps", min(default_steps, cfg.max_steps))
            if steps > cfg.max_steps:
                raise PainterlyError(f"steps {steps} is over this server's limit of {cfg.max_steps}")
            size = opts.setdefault("size", min(512, cfg.max_gatys_size))
            if size > cfg.max_gatys_size:
                raise PainterlyError(f"size {size} is over this server's gatys limit of "
                                     f"{cfg.max_gatys_size}")
            if "style_size" in opts and opts["style_size"] > cfg.max_size:
                raise PainterlyError(f"style_size is over this server's limit of {cfg.max_size}")
        else:
            size = opts.get("size")
            if size is not None and size > cfg.max_size:
                raise PainterlyError(f"size {size} is over this server's limit of {cfg.max_size}")
            if size is None and max(content.size) > cfg.max_size:
                opts["size"] = cfg.max_size
            if method == "fast":
                model = self.fast_model_file(opts.get("model"))
                if model is not None:
                    opts["model"] = model
        opts.setdefault("device", cfg.device)

        def work() -> Image.Image:
            stylizer = make_stylizer(method, styles or None, weights, **opts)
            return stylizer(content)

        return await self.run_in(self.executor, token, work), {"X-Painterly-Method": method}

    def fast_model_file(self, name: str | None) -> str | None:
        """The file of the fast model a request names (names only: a client never names a
        file), or the server's default one for None; an unknown name is a one-line error."""
        if name is None:
            return self.default_fast_model
        if name not in self.fast_models:
            raise PainterlyError(f"unknown model {echo(str(name))} (installed: "
                                 f"{', '.join(sorted(self.fast_models)) or 'none'})")
        return self.fast_models[name]

    def stats(self) -> dict[str, Any]:
        """Counters for ``GET /v1/stats``: readiness, requests, queue and batching."""
        return {"ready": self.ready.is_set(), "device": self.device_name,
                "in_flight": self.in_flight, "queue_size": self.config.queue_size,
                "memory_in_use_mb": round(self.memory.used / 1e6, 1),
                "memory_budget_mb": self.config.memory_budget_mb,
                "uptime_s": round(time.time() - self.started, 1), **self.counts,
                "batching": {**self.batcher.stats.as_dict(), "waiting": self.batcher.waiting,
                             "max_batch": self.config.max_batch,
                             "max_wait_ms": self.config.batch_wait_ms},
                "live": self.live.stats()}


def _jsonable(v: Any) -> bool:
    """Whether ``v`` survives ``json.dumps`` (decoder config values shown to clients)."""
    try:
        json.dumps(v)
        return True
    except (TypeError, ValueError):
        return False

