"""The server's AdaIN path: networks loaded once, contents of one size batched across requests.

Built on :mod:`painterly.adain`, so the server's pictures are the CLI's pictures: the input rules
of :mod:`painterly.adain.stylize` (sizes, style tensors, histogram and luminance color) and the
one inference path, :class:`painterly.adain.pipeline.AdaINPipeline` (networks, precision, the
AdaIN step, tiling over the device's pixel budget). The server only adds its own smallest side
(:data:`MIN_SIDE`). One pipeline per network ("vgg", "lite"), loaded on first use; a request's
``network`` option picks one ("auto": the server's default).

Unlike ``AdaINStylizer.stylize_tensor`` (one style set per stylizer), a server batch mixes
requests: each item carries its own style statistics and alpha. The whole batch runs as one
pass (:meth:`AdaINPipeline.run_items`: encoder, the AdaIN step with the items' targets and
alphas stacked, decoder). Style
statistics are cached per distinct style image (LRU), so a popular style costs one encoder pass.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from .. import registry
from ..adain.core import Stats, StyleStats
from ..adain.pipeline import AdaINPipeline
from ..adain.stylize import (
    DEFAULT_STYLE_SIZE,
    check_content_size,
    finish_colors,
    recolor_styles,
    style_tensors,
)
from ..device import resolve_device
from ..image import pil_to_tensor, tensor_to_pil
from ..options import AdaINOptions
from .config import MIN_SIDE

#: A style ready for the encoder and the key its statistics are cached by (None: not cached).
StyleInput = tuple[torch.Tensor, str | None]


@dataclass
class AdaINJob:
    """One content image of a batch with its own style target and trade-off."""

    content: torch.Tensor  # (1, 3, H, W) in [0, 1], CPU
    stats: StyleStats
    alpha: float = 1.0
    network: str = "auto"


def batch_key(content: torch.Tensor, network: str = "auto",
              alone_above: int | None = None) -> tuple:
    """Contents that pad to the same size, for the same network, can share a batch; one over
    ``alone_above`` pixels gets a key of its own (a batch of them would be one untiled pass
    over all their pixels: a batch of six 2048x2048 images took 5 GB)."""
    hp, wp = AdaINPipeline.padded_size(*content.shape[-2:])
    if alone_above is not None and hp * wp > alone_above:
        return (hp, wp, network, object())
    return (hp, wp, network)


class AdaINEngine:
    """The AdaIN pipelines on one device, a style-statistics cache and a batched forward.

    ``decoder_path``: the server's default model (a VGG decoder or a lite network file; None:
    the shipped one ``network`` names, "auto" choosing by device).
    """

    #: A request's style size when it names none (the stylizer's default).
    default_style_size = DEFAULT_STYLE_SIZE

    def __init__(self, decoder_path: str | None, device: str | torch.device = "auto",
                 cache_size: int = 32, network: str = "auto") -> None:
        self.device = resolve_device(device)
        default = AdaINPipeline.load(decoder_path, network, self.device)
        self.network = default.network
        self.config = default.nets.config
        self.decoder_path = str(decoder_path) if decoder_path is not None else None
        self.nets = default.nets
        self._pipelines: dict[str, AdaINPipeline] = {"auto": default, default.network: default}
        self._cache: OrderedDict[str, Stats] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def pipeline(self, network: str = "auto") -> AdaINPipeline:
        """The pipeline of ``network`` ("auto": the server's default), loaded on first use."""
        with self._lock:
            hit = self._pipelines.get(network)
        if hit is not None:
            return hit
        loaded = AdaINPipeline.load(None, network, self.device)
        with self._lock:
            return self._pipelines.setdefault(network, loaded)

    def resolve_network(self, network: str | None) -> str:
        """The concrete network ("vgg" or "lite") a request's option means. A server started
        with a user's model file serves that model only: another network is refused, never
        answered with a shipped model the user did not choose."""
        if network in (None, "auto", self.network):
            return self.network
        if self.decoder_path is not None:  # the message the CLI gives for the same mix
            raise registry.mismatch(str(network), self.network, Path(self.decoder_path).name)
        return registry.spec(network).name

    def batch_limit(self, network: str, max_batch: int) -> int:
        """Pixels above which a content is painted alone: a full batch of contents at this size
        stays within one pass's memory budget (its pipeline's pixel budget)."""
        return max(1, self.pipeline(network).nets.pixel_budget() // max(1, max_batch))

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

    def style_inputs(self, styles: Sequence[Image.Image], sources: Sequence[bytes],
                     content: torch.Tensor, options: AdaINOptions) -> list[StyleInput]:
        """Each style as the stylizer prepares it (resized to ``options.style_size``, at least
        :data:`MIN_SIDE` px a side) with the key its statistics are cached by: its source (one
        per style) and every option that changes the statistics
        (:meth:`AdaINOptions.style_key`: the style size, the network...). With
        ``preserve_color="histogram"`` the styles are recolored to ``content`` and get no key:
        their statistics depend on the content."""
        nets = self.pipeline(options.network).nets  # the caller resolved it (resolve_network)
        tensors = style_tensors(styles, options.style_size, min_side=MIN_SIDE, nets=nets)
        if options.preserve_color == "histogram":
            return [(s, None) for s in recolor_styles(tensors, content)]
        key = options.style_key()
        return [(s, self.cache_key(src, key)) for s, src in zip(tensors, sources)]

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
    def style_stats(self, style: torch.Tensor, cache_key: str | None = None,
                    network: str = "auto") -> Stats:
        """relu4_1 ``(1, C, 1, 1)`` mean/std of a ``(1, 3, H, W)`` style (cached by key)."""
        if cache_key is not None:
            with self._lock:
                hit = self._cache.get(cache_key)
                if hit is not None:
                    self._cache.move_to_end(cache_key)
                    return hit
        mean, std = self.pipeline(network).style_stats(style)
        stats = (mean.cpu(), std.cpu())
        if cache_key is not None:
            with self._lock:
                self._cache[cache_key] = stats
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return stats

    @torch.inference_mode()
    def stylize_batch(self, jobs: Sequence[AdaINJob]) -> list[torch.Tensor]:
        """Stylize contents that pad to one size (:func:`batch_key`), each with its own style
        target and alpha (the pipeline pads them, once); returns ``(1, 3, H, W)`` CPU tensors in
        [0, 1]."""
        out = self.pipeline(jobs[0].network).run_items([job.content for job in jobs],
                                                       [job.stats for job in jobs],
                                                       [float(job.alpha) for job in jobs])
        return [y.clamp(0, 1).cpu() for y in out]
