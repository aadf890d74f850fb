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


@dataclass
class ServeConfig:
    """Everything ``painterly serve`` can set; the defaults keep a small server safe."""

    device: str = "auto"
    decoder: str | None = None  # AdaIN decoder file (default: the shipped one, if any)
    model: str | None = None  # default fast-network model (file or registry name)
    max_upload_mb: float = 20.0  # whole request body
    max_pixels: int = 4096 * 4096  # per uploaded image
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
                     "body_timeout", "keep_alive_timeout"):
            value = getattr(self, name)
            if not value > 0 or value == float("inf"):
                raise PainterlyError(f"--{name.replace('_', '-')} must be positive and finite")
        if self.batch_wait_ms < 0:
            raise PainterlyError("--batch-wait-ms must be >= 0")

    def limits(self) -> dict[str, object]:
        """The limits a client may want to know (``GET /v1/methods``); no paths, no devices."""
        return {"max_upload_mb": self.max_upload_mb, "max_pixels": self.max_pixels,
                "max_size": self.max_size, "max_steps": self.max_steps,
                "max_gatys_size": self.max_gatys_size, "timeout_s": self.timeout,
                "header_timeout_s": self.header_timeout, "body_timeout_s": self.body_timeout,
                "formats": list(self.allowed_formats)}
