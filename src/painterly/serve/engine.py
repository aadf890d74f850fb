"""The server's AdaIN engine: networks loaded once, contents of one size batched across requests.

Built on :mod:`painterly.adain` (``AdaINNetworks`` for precision/layout/encoder padding,
``StyleStats`` and ``adain_transform`` for the feature-space step, the tiled encode/decode for
images over the device's pixel budget), so the server's pictures are the CLI's pictures.

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

from ..adain.model import pad_to_multiple
from ..adain.stylize import (
    MULTIPLE,
    AdaINNetworks,
    StyleStats,
    adain_transform,
    decode_tiled,
    encode_tiled,
    plan_tiles,
    resolve_decoder,
)
from ..device import resolve_device
from ..losses import mean_std


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

    def __init__(self, decoder_path: str, device: str | torch.device = "auto",
                 cache_size: int = 32) -> None:
        self.device = resolve_device(device)
        decoder, config = resolve_decoder(decoder_path)
        self.config = config
        self.decoder_path = str(decoder_path)
        self.nets = AdaINNetworks(decoder, config, self.device)
        self._cache: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    @staticmethod
    def cache_key(data: bytes, *extra: object) -> str:
        """Key for style bytes plus whatever else changes their statistics (the style size)."""
        h = hashlib.sha256(data)
        for e in extra:
            h.update(repr(e).encode())
        return h.hexdigest()

    def cached_stats(self, cache_key: str | None) -> tuple[torch.Tensor, torch.Tensor] | None:
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
                    cache_key: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """relu4_1 ``(1, C, 1, 1)`` mean/std of a ``(1, 3, H, W)`` style (cached by key)."""
        if cache_key is not None:
            with self._lock:
                hit = self._cache.get(cache_key)
                if hit is not None:
                    self._cache.move_to_end(cache_key)
                    return hit
        x, _ = pad_to_multiple(style, MULTIPLE)
        mean, std = mean_std(self.nets.encode(x))
        stats = (mean.cpu(), std.cpu())
        if cache_key is not None:
            with self._lock:
                self._cache[cache_key] = stats
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return stats

    @staticmethod
    def make_stats(per_style: Sequence[tuple[torch.Tensor, torch.Tensor]],
                   weights: Sequence[float]) -> StyleStats:
        """Several styles' statistics and their blend weights as one :class:`StyleStats`."""
        return StyleStats(torch.cat([m for m, _ in per_style]), torch.cat([s for _, s in per_style]),
                          torch.tensor(list(weights), dtype=torch.float32))

    @torch.inference_mode()
    def stylize_batch(self, jobs: Sequence[AdaINJob]) -> list[torch.Tensor]:
        """Stylize contents that pad to one size; returns ``(1, 3, H, W)`` CPU tensors in [0, 1]."""
        padded, sizes = [], []
        for job in jobs:
            x, hw = pad_to_multiple(job.content.float(), MULTIPLE)
            padded.append(x)
            sizes.append(hw)
        x = torch.cat(padded)
        ph, pw = x.shape[-2:]
        tiled = len(jobs) == 1 and ph * pw > self.nets.pixel_budget()
        if tiled:
            plan = plan_tiles(ph, pw, self.nets.default_tile())
            f = encode_tiled(self.nets, x, plan)
        else:
            f = self.nets.encode(x)
        t = torch.cat([adain_transform(f[i: i + 1], job.stats.to(f.device), float(job.alpha))
                       for i, job in enumerate(jobs)])
        del f
        y = decode_tiled(self.nets, t, plan) if tiled else self.nets.decode(t)
        y = y.clamp(0, 1).cpu()
        return [y[i: i + 1, :, :h, :w] for i, (h, w) in enumerate(sizes)]
