"""The server's settings and fixed limits: :class:`ServeConfig` (what ``painterly serve`` sets).

Every other module of :mod:`painterly.serve` reads its limits from here, so a reader finds in one
place how large, how many and how long a request may be.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import PainterlyError

#: Most style images (uploaded + built-in) one request may blend.
MAX_STYLES = 8
#: Smallest image side AdaIN takes: the decoder's reflection padding needs a 2x2 feature map.
MIN_SIDE = 16
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


@dataclass
class ServeConfig:
    """Everything ``painterly serve`` can set; the defaults keep a small server safe."""

    device: str = "auto"
    decoder: str | None = None  # AdaIN decoder file (default: the shipped one, if any)
    model: str | None = None  # default fast-network model (file or registry name)
    max_upload_mb: float = 20.0  # whole request body
    max_pixels: int = 4096 * 4096  # per uploaded image
    max_request_pixels: int = 4 * 4096 * 4096  # all of one request's images: content + styles
    max_request_mb: float = 1024.0  # their estimated decoded memory (from the headers), per request
    memory_budget_mb: float = 2048.0  # the same estimate summed over the requests in progress
    memory_wait: float = 5.0  # seconds a request waits for memory in progress to free, then 503
    max_size: int = 2048  # long side processed by adain/fast; larger uploads are shrunk
    queue_size: int = 16  # requests admitted at once (waiting + running)
    timeout: float = 120.0  # seconds per request
    max_steps: int = 200  # gatys steps cap (also its default here)
    max_gatys_size: int = 512  # gatys output long side cap (also its default here)
    max_batch: int = 8
    batch_wait_ms: float = 5.0
    workers: int = 1  # threads for non-batched methods (gatys, fast)
    preload_gatys: bool = True
    style_cache: int = 32
    allowed_formats: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")
    header_timeout: float = 10.0  # seconds for a request's whole header block (408 and close)
    body_timeout: float = 60.0  # seconds for a request's whole body, from its headers (408 and close)
    keep_alive_timeout: float = 5.0  # seconds an idle kept-alive connection stays open
    eager_load: bool = False  # load models before serving (tests); else in a background thread

    def check(self) -> None:
        """Reject nonsensical limits early, with the flag's name in the message."""
        for name in ("max_upload_mb", "max_pixels", "max_size", "queue_size", "timeout",
                     "max_steps", "max_gatys_size", "max_batch", "workers", "header_timeout",
                     "body_timeout", "keep_alive_timeout", "max_request_pixels", "max_request_mb",
                     "memory_budget_mb"):
            value = getattr(self, name)
            if not value > 0 or value == float("inf"):
                raise PainterlyError(f"--{name.replace('_', '-')} must be positive and finite")
        if self.batch_wait_ms < 0:
            raise PainterlyError("--batch-wait-ms must be >= 0")
        if not 0 <= self.memory_wait < float("inf"):
            raise PainterlyError("--memory-wait must be >= 0 and finite")
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
                "formats": list(self.allowed_formats)}
