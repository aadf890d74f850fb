"""Tiled AdaIN for images over a device's pixel budget.

A padded image is encoded window by window into one relu4_1 feature map (so the content
statistics are those of the whole image), transformed once, and decoded window by window with
cosine-feathered blending over the overlaps. :func:`encode_transform_decode` is the one entry
point: untiled when no tile is asked for or the image fits in one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from .model import MULTIPLE

#: Overlap between neighbouring tiles, in pixels. The encoder's receptive field at relu4_1 is
#: 68 px and the decoder's about 80 px, so with half the overlap as margin each tile's features
#: and pixels away from its cut edges equal those of an untiled pass.
TILE_OVERLAP = 128
#: Pixels at each cut edge of a tile that get zero blending weight (decoder border effects).
FEATHER_MARGIN = 40
#: Smallest tile side accepted (must leave room for the overlap).
MIN_TILE = 2 * TILE_OVERLAP


class Codec(Protocol):
    """What tiling needs of the networks (:class:`painterly.adain.networks.AdaINNetworks`)."""

    def encode(self, x: torch.Tensor) -> torch.Tensor: ...

    def decode(self, t: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class TilePlan:
    """Windows over a padded image: ``ys``/``xs`` are window starts, ``tile`` their side (px)."""

    height: int
    width: int
    tile_h: int
    tile_w: int
    ys: tuple[int, ...]
    xs: tuple[int, ...]

    @property
    def n_tiles(self) -> int:
        return len(self.ys) * len(self.xs)


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    """Evenly spread window starts (multiples of 8) covering ``length`` with at least ``overlap``."""
    if length <= tile:
        return [0]
    n = math.ceil((length - overlap) / (tile - overlap))
    last = length - tile
    starts = [math.floor(i * last / (n - 1) / MULTIPLE) * MULTIPLE for i in range(n)]
    starts[-1] = last
    return starts


def plan_tiles(height: int, width: int, tile: int, overlap: int = TILE_OVERLAP) -> TilePlan:
    """Windows of side ``tile`` over a ``height x width`` image (both multiples of 8)."""
    tile = max(MULTIPLE, tile // MULTIPLE * MULTIPLE)
    th, tw = min(tile, height), min(tile, width)
    return TilePlan(height, width, th, tw, tuple(_starts(height, th, overlap)),
                    tuple(_starts(width, tw, overlap)))


def _own_ranges(starts: Sequence[int], size: int, length: int) -> list[tuple[int, int]]:
    """The part of the axis each window supplies features for: up to the middle of each overlap."""
    bounds = [0]
    for a, b in zip(starts[:-1], starts[1:]):
        mid = (b + a + size) // 2
        bounds.append(mid // MULTIPLE * MULTIPLE)
    bounds.append(length)
    return list(zip(bounds[:-1], bounds[1:]))


def _ramp(n: int, lo: int, hi: int, device: torch.device) -> torch.Tensor:
    """Cosine ramp over positions ``0..n-1``: 0 before ``lo``, 1 from ``hi`` on."""
    p = torch.arange(n, device=device, dtype=torch.float32)
    r = ((p - lo) / max(1, hi - lo)).clamp(0, 1)
    return 0.5 - 0.5 * torch.cos(math.pi * r)


def _axis_weights(starts: Sequence[int], size: int, i: int, margin: int,
                  device: torch.device) -> torch.Tensor:
    """Blending weights along one axis for window ``i``; neighbours' weights sum to 1."""
    w = torch.ones(size, device=device)
    s = starts[i]
    if i > 0:  # overlap with the previous window: [s, prev_end)
        prev_end = starts[i - 1] + size
        w = w * _ramp(size, margin, prev_end - s - margin, device)
    if i < len(starts) - 1:  # overlap with the next window: [next, s + size)
        nxt = starts[i + 1]
        w = w * (1.0 - _ramp(size, nxt - s + margin, size - margin, device))
    return w


def encode_tiled(nets: Codec, x: torch.Tensor, plan: TilePlan) -> torch.Tensor:
    """relu4_1 of a padded image, window by window, stitched into one float32 feature map.

    Each window supplies the features up to the middle of its overlaps, at least
    ``TILE_OVERLAP / 2 - 8`` px from its cut edges: beyond the encoder's reach, so the stitched
    map equals an untiled encoding (and content statistics are those of the whole image).
    """
    n = x.shape[0]
    fh, fw = plan.height // MULTIPLE, plan.width // MULTIPLE
    out: torch.Tensor | None = None
    rows = _own_ranges(plan.ys, plan.tile_h, plan.height)
    cols = _own_ranges(plan.xs, plan.tile_w, plan.width)
    for y0, (ra, rb) in zip(plan.ys, rows):
        for x0, (ca, cb) in zip(plan.xs, cols):
            f = nets.encode(x[..., y0: y0 + plan.tile_h, x0: x0 + plan.tile_w])
            if out is None:
                out = torch.empty((n, f.shape[1], fh, fw), dtype=torch.float32, device=f.device)
            m = MULTIPLE
            out[..., ra // m: rb // m, ca // m: cb // m] = \
                f[..., (ra - y0) // m: (rb - y0) // m, (ca - x0) // m: (cb - x0) // m]
    assert out is not None
    return out


def decode_tiled(nets: Codec, t: torch.Tensor, plan: TilePlan) -> torch.Tensor:
    """Decode transformed features window by window; blend outputs with cosine-feathered weights
    over the overlaps (zero within ``FEATHER_MARGIN`` of a cut edge), which sum to 1."""
    n = t.shape[0]
    m = MULTIPLE
    out = torch.zeros((n, 3, plan.height, plan.width), dtype=torch.float32, device=t.device)
    norm = torch.zeros((1, 1, plan.height, plan.width), dtype=torch.float32, device=t.device)
    for i, y0 in enumerate(plan.ys):
        wy = _axis_weights(plan.ys, plan.tile_h, i, FEATHER_MARGIN, t.device)
        for j, x0 in enumerate(plan.xs):
            wx = _axis_weights(plan.xs, plan.tile_w, j, FEATHER_MARGIN, t.device)
            y = nets.decode(t[..., y0 // m: (y0 + plan.tile_h) // m, x0 // m: (x0 + plan.tile_w) // m])
            weight = (wy[:, None] * wx[None, :])[None, None]
            out[..., y0: y0 + plan.tile_h, x0: x0 + plan.tile_w] += y.to(out.device) * weight
            norm[..., y0: y0 + plan.tile_h, x0: x0 + plan.tile_w] += weight
    return out / norm.clamp_min(1e-6)


def encode_transform_decode(nets: Codec, x: torch.Tensor,
                            transform: Callable[[torch.Tensor], torch.Tensor],
                            tile: int | None = None) -> torch.Tensor:
    """``decode(transform(encode(x)))`` for a padded batch, tiled when ``tile`` is set and the
    image is larger than one tile (the transform always sees the whole feature map)."""
    if tile is None or (x.shape[-2] <= tile and x.shape[-1] <= tile):
        return nets.decode(transform(nets.encode(x)))
    plan = plan_tiles(x.shape[-2], x.shape[-1], tile)
    f = encode_tiled(nets, x, plan)
    t = transform(f)
    del f
    return decode_tiled(nets, t, plan)
