"""The server's settings and fixed limits: :class:`ServeConfig` (what ``painterly serve`` sets).

Every other module of :mod:`painterly.serve` reads its limits from here, so a reader finds in one
place how large, how many and how long a request may be.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import PainterlyError, echo
from ..image import MIN_SIDE as IMAGE_MIN_SIDE

#: Most style images (uploaded + built-in) one request may blend.
MAX_STYLES = 8
#: Seconds a live stream's painted frame may wait for a client that does not read before the
#: stream is closed (the frame in flight is all it holds meanwhile).
LIVE_SEND_TIMEOUT = 10.0
#: Smallest image side (every method's: :data:`painterly.image.MIN_SIDE`).
MIN_SIDE = IMAGE_MIN_SIDE
#: Most commas a JSON body may hold, counted before it is parsed: every list item and key after
#: the first needs one, and a request has at most 8 styles and one value per option (base64 has
#: none), so a body over this is refused (400) without building millions of objects.
MAX_JSON_SEPARATORS = 256

# What a request's images cost in memory, estimated from their headers before any decoding
# (:func:`painterly.serve.parsing.request_budget`): every decoded image is kept as 8-bit RGB
# (Pillow stores it in 4 bytes a pixel) until the request ends, plus its working copies at the
# processed size (a resized image and its float32 tensor, at most ``max_size`` on the long side),
# plus, while one image decodes, the conversions to RGB (16-bit and float images go through
# float64 arrays; palette and alpha images through RGBA and a white background).
#: Bytes a pixel of each decoded image holds until its request ends.
KEPT_BYTES_PER_PIXEL = 4
#: Bytes a pixel of an image's working copies at the processed size.
WORK_BYTES_PER_PIXEL = 16
#: Bytes a pixel while one image decodes, by Pillow mode (others: ``DECODE_BYTES_PER_PIXEL``).
DECODE_BYTES_BY_MODE = {"I;16": 26, "I;16B": 26, "I;16L": 26, "I": 28, "F": 28,
                        "P": 16, "PA": 16, "RGBA": 16, "LA": 16}
DECODE_BYTES_PER_PIXEL = 12


def setting(default: Any, help: str, shown: str | None = None) -> Any:
    """A :class:`ServeConfig` field that is a ``painterly serve`` flag: its default, its help
    (the default is added to it, as ``shown`` when given)."""
    return field(default=default, metadata={"help": help, "shown": shown})


@dataclass
class ServeConfig:
    """Everything ``painterly serve`` can set; the defaults keep a small server safe. Each field
    made with :func:`setting` is a flag (``--max-upload-mb`` for ``max_upload_mb``), its type,
    default and help derived from here (:mod:`painterly.cli.serve`)."""

    device: str = setting("auto", "auto, cpu, cuda, mps")
    decoder: str | None = setting(None, "AdaIN decoder or lite network file", "the shipped one")
    network: str = setting("auto", "AdaIN network a request without one gets: auto (lite on a "
                                   "CPU, vgg on a GPU) or a registered name; with --decoder, the "
                                   "file's network or auto")
    model: str | None = setting(None, "default fast-network model (file or name)", "none")
    max_upload_mb: float = setting(20.0, "largest request body in MB (413 above)")
    max_pixels: int = setting(4096 * 4096, "largest uploaded image in pixels (413 above)",
                              "4096*4096")
    max_request_pixels: int = setting(
        4 * 4096 * 4096, "most pixels of one request's images together, content and styles "
                         "(413 above, from the headers)", "4*4096*4096")
    max_request_mb: float = setting(
        1024.0, "most memory one request's images may need decoded, estimated from their "
                "headers (413 above)")
    memory_budget_mb: float = setting(
        2048.0, "memory the images of all requests in progress may need together; a request "
                "waits for room, then 503")
    memory_wait: float = setting(5.0, "seconds a request waits for --memory-budget-mb to free")
    max_size: int = setting(2048, "long side processed by adain/fast; larger uploads are shrunk")
    queue_size: int = setting(16, "requests admitted at once, waiting or running (503 above)")
    timeout: float = setting(120.0, "seconds per request before 504")
    header_timeout: float = setting(10.0, "seconds a client has to send a request's headers "
                                          "(408 and close)")
    body_timeout: float = setting(60.0, "seconds a client has to send a request's body "
                                        "(408 and close)")
    keep_alive_timeout: float = setting(5.0, "seconds an idle kept-alive connection stays open")
    max_steps: int = setting(200, "gatys: most steps a request may ask for, and the default")
    max_gatys_size: int = setting(512, "gatys: largest output long side, and the default")
    max_batch: int = setting(8, "adain: most requests stylized in one batch")
    batch_wait_ms: float = setting(5.0, "adain: how long a request waits for others to batch with")
    workers: int = setting(1, "threads for gatys/fast requests")
    preload_gatys: bool = setting(True, "load VGG19 for gatys at start-up")
    style_cache: int = setting(32, "adain: style statistics kept (LRU; 0: none)")
    token: str | None = setting(None, "require 'Authorization: Bearer TOKEN' on /v1/* and the live "
                                      "socket (or env PAINTERLY_TOKEN); /ping and /invocations "
                                      "stay open", "none")
    max_live_streams: int = setting(4, "live camera streams (/live) painted at once; one more is "
                                       "refused with a message")
    ssl_certfile: str | None = setting(None, "TLS certificate (PEM) for https:// and wss:// (a phone's "
                                             "camera needs a secure page)", "none")
    ssl_keyfile: str | None = setting(None, "TLS private key (PEM) of --ssl-certfile", "none")
    allowed_formats: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")
    eager_load: bool = False  # load models before serving (tests); else in a background thread

    def check(self) -> None:
        """Reject nonsensical limits early, with the flag's name in the message."""
        for name in ("max_upload_mb", "max_pixels", "max_size", "queue_size", "timeout",
                     "max_steps", "max_gatys_size", "max_batch", "workers", "header_timeout",
                     "body_timeout", "keep_alive_timeout", "max_request_pixels", "max_request_mb",
                     "memory_budget_mb", "max_live_streams"):
            value = getattr(self, name)
            if not value > 0 or value == float("inf"):
                raise PainterlyError(f"--{name.replace('_', '-')} must be positive and finite")
        if not isinstance(self.style_cache, int) or self.style_cache < 0:
            raise PainterlyError("--style-cache must be a whole number >= 0 (0: no cache)")
        if self.batch_wait_ms < 0:
            raise PainterlyError("--batch-wait-ms must be >= 0")
        if not 0 <= self.memory_wait < float("inf"):
            raise PainterlyError("--memory-wait must be >= 0 and finite")
        if self.token is not None and (len(self.token) < 8 or not self.token.isprintable()
                                       or " " in self.token):
            raise PainterlyError("--token must be at least 8 printable characters without spaces")
        from .. import registry

        if self.network not in registry.CHOICES:
            raise PainterlyError(f"--network {echo(self.network)} is unknown "
                                 f"(choose from {', '.join(registry.CHOICES)})")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise PainterlyError("--ssl-certfile and --ssl-keyfile go together (give both)")
        for flag, path in (("--ssl-certfile", self.ssl_certfile), ("--ssl-keyfile", self.ssl_keyfile)):
            if path is not None:
                from pathlib import Path

                if not Path(path).is_file():
                    raise PainterlyError(f"{flag} file not found: {path}")
        if self.max_request_mb > self.memory_budget_mb:
            raise PainterlyError(f"--max-request-mb ({self.max_request_mb:g}) must not be over "
                                 f"--memory-budget-mb ({self.memory_budget_mb:g}): such a request "
                                 "could never be admitted")

    def limits(self) -> dict[str, object]:
        """The limits a client may want to know (``GET /v1/methods``); no paths, no devices."""
        return {"max_upload_mb": self.max_upload_mb, "max_pixels": self.max_pixels,
                "max_request_pixels": self.max_request_pixels,
                "max_request_mb": self.max_request_mb,
                "max_size": self.max_size, "max_steps": self.max_steps,
                "max_gatys_size": self.max_gatys_size, "timeout_s": self.timeout,
                "header_timeout_s": self.header_timeout, "body_timeout_s": self.body_timeout,
                "formats": list(self.allowed_formats), "max_live_streams": self.max_live_streams}
