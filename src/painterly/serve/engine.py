"""The server's AdaIN path: networks loaded once, contents of one size batched across requests.

Built on :mod:`painterly.adain`, so the server's pictures are the CLI's pictures: the input rules
of :mod:`painterly.adain.stylize` (sizes, style tensors, histogram and luminance color), the
networks of :mod:`painterly.adain.networks` (precision, layout, encoder padding), the step of
:mod:`painterly.adain.core` and :func:`painterly.adain.tiling.encode_transform_decode` for images
over the device's pixel budget. The server only adds its own smallest side (:data:`MIN_SIDE`).

Unlike ``AdaINStylizer.stylize_tensor`` (one style set per stylizer), a server batch mixes
requests: each item carries its own style statistics and alpha. The expensive encoder and decoder
passes run once per batch; the cheap per-item AdaIN step runs per item in between. Style
statistics are cached per distinct style image (LRU), so a popular style costs one encoder pass.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from ..adain.core import Stats, StyleStats, adain_transform
from ..adain.model import MULTIPLE, pad_to_multiple
from ..adain.networks import AdaINNetworks, resolve_decoder
from ..adain.stylize import (
    DEFAULT_STYLE_SIZE,
    check_content_size,
    finish_colors,
    recolor_styles,
    style_tensors,
)
from ..adain.tiling import encode_transform_decode
from ..device import resolve_device
from ..image import pil_to_tensor, tensor_to_pil
from .config import MIN_SIDE

#: A style ready for the encoder and the key its statistics are cached by (None: not cached).
StyleInput = tuple[torch.Tensor, str | None]


@dataclass
class AdaINJob:
    """One content image of a batch with its own style target and trade-off."""

    content: torch.Tensor  # (1, 3, H, W) in [0, 1], CPU
    stats: StyleStats
    alpha: float = 1.0


def batch_key(content: torch.Tensor) -> tuple[int, int]:
    """Contents that pad to the same size can share a batch."""
    h, w = content.shape[-2:]
    return (h + (-h) % MULTIPLE, w + (-w) % MULTIPLE)


class AdaINEngine:
    """Encoder + decoder on one device, a style-statistics cache and a batched forward."""

    #: A request's style size when it names none (the stylizer's default).
    default_style_size = DEFAULT_STYLE_SIZE

    def __init__(self, decoder_path: str, device: str | torch.device = "auto",
                 cache_size: int = 32) -> None:
        self.device = resolve_device(device)
        decoder, config = resolve_decoder(decoder_path)
        self.config = config
        self.decoder_path = str(decoder_path)
        self.nets = AdaINNetworks(decoder, config, self.device)
        self._cache: OrderedDict[str, Stats] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    @staticmethod
    def cache_key(data: bytes, *extra: object) -> str:
        """Key for style bytes plus whatever else changes their statistics (the style size)."""
        h = hashlib.sha256(data)
        for e in extra:
            h.update(repr(e).encode())
        return h.hexdigest()

    @staticmethod
    def content_tensor(content: Image.Image) -> torch.Tensor:
        """The content as ``(1, 3, H, W)`` in [0, 1], refused under the server's :data:`MIN_SIDE`."""
        check_content_size(content.height, content.width, MIN_SIDE)
        return pil_to_tensor(content)

    def style_inputs(self, styles: Sequence[Image.Image], sources: Sequence[bytes], style_size: int,
                     content: torch.Tensor, preserve_color: str | None) -> list[StyleInput]:
        """Each style as the stylizer prepares it (resized to ``style_size``, at least
        :data:`MIN_SIDE` px a side) with the key its statistics are cached by (from ``sources``,
        one per style). With ``preserve_color="histogram"`` the styles are recolored to
        ``content`` and get no key: their statistics depend on the content."""
        tensors = style_tensors(styles, style_size, min_side=MIN_SIDE)
        if preserve_color == "histogram":
            return [(s, None) for s in recolor_styles(tensors, content)]
        return [(s, self.cache_key(src, style_size)) for s, src in zip(tensors, sources)]

    @staticmethod
    def finish(out: torch.Tensor, content: torch.Tensor, preserve_color: str | None) -> Image.Image:
        """A batch item as the stylizer finishes it (``preserve_color="luminance"``), as PIL."""
        return tensor_to_pil(finish_colors(out, content, preserve_color))

    def cached_stats(self, cache_key: str | None) -> Stats | None:
        """The cached statistics for ``cache_key``, or None (cheap: safe on the event loop)."""
        if cache_key is None:
            return None
        with self._lock:
            hit = self._cache.get(cache_key)
            if hit is not None:
                self._cache.move_to_end(cache_key)
            return hit

    @torch.inference_mode()
    def style_stats(self, style: torch.Tensor,
                    cache_key: str | None = None) -> Stats:
        """relu4_1 ``(1, C, 1, 1)`` mean/std of a ``(1, 3, H, W)`` style (cached by key)."""
        if cache_key is not None:
            with self._lock:
                hit = self._cache.get(cache_key)
                if hit is not None:
                    self._cache.move_to_end(cache_key)
                    return hit
        mean, std = self.nets.style_stats(style)
        stats = (mean.cpu(), std.cpu())
        if cache_key is not None:
            with self._lock:
                self._cache[cache_key] = stats
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return stats

    @torch.inference_mode()
    def stylize_batch(self, jobs: Sequence[AdaINJob]) -> list[torch.Tensor]:
        """Stylize contents that pad to one size; returns ``(1, 3, H, W)`` CPU tensors in [0, 1]."""
        padded, sizes = [], []
        for job in jobs:
            x, hw = pad_to_multiple(job.content.float(), MULTIPLE)
            padded.append(x)
            sizes.append(hw)
        x = torch.cat(padded)

        def transform(f: torch.Tensor) -> torch.Tensor:  # each item its own target and alpha
            return torch.cat([adain_transform(f[i: i + 1], job.stats.to(f.device), float(job.alpha))
                              for i, job in enumerate(jobs)])

        # Only a single image is tiled: a batch is of contents small enough to share one pass.
        tile = self.nets.tile_for(x.shape[-2], x.shape[-1]) if len(jobs) == 1 else None
        y = encode_transform_decode(self.nets, x, transform, tile).clamp(0, 1).cpu()
        return [y[i: i + 1, :, :h, :w] for i, (h, w) in enumerate(sizes)]
