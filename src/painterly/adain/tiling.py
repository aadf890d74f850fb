"""Tiled AdaIN for images over a device's pixel budget.

An image is encoded window by window (each window padded alone, never the whole image) and the
relu4_1 statistics of the whole image are gathered (:class:`WholeStats`), so every window is
normalized as the whole image would be; then each window's features (kept from the first pass
when the stitched map is small, else encoded again with a margin) are transformed and decoded,
and the outputs blended with cosine-feathered weights over the overlaps into the output. So the
working set is a few windows plus the output image: it follows the output's size, not the
feature map's. :func:`encode_transform_decode` is the one entry point: untiled when no tile is
asked for or the image fits in one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from ..padding import pad_bottom_right, pad_to_multiple
from .core import Stats
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


#: Above this many bytes the stitched relu4_1 map of a tiled image is not kept: its statistics
#: are gathered in a first pass and each window is encoded again (with a margin) in the second,
#: so the working set follows the output, not the input (docs/LIMITS.md, memory).
MAX_FEATURE_BYTES = 256 * 2**20
#: Margin (px, a multiple of 8) around a window encoded again in the second pass: features
#: ``TILE_OVERLAP / 2`` from a cut edge are those of an untiled encoding (see encode_tiled).
REENCODE_MARGIN = TILE_OVERLAP // 2

#: Bytes per output pixel of a streamed tiled pass beyond its windows: the float32 input and
#: output and the 8-bit result.
STREAMED_BYTES_PER_PIXEL = 28

#: A window of the relu4_1 grid: rows ``[r0, r1)``, columns ``[c0, c1)``.
Rect = tuple[int, int, int, int]


class WholeStats:
    """Statistics of a whole relu4_1 map gathered window by window (float64 sums), so tiles are
    normalized as the whole image would be: each item's per-channel mean and std, and with
    ``masks`` (the whole image's feature-grid masks) each mask's region mean and std."""

    def __init__(self, masks: torch.Tensor | None = None, eps: float = 1e-5) -> None:
        self.masks = masks
        self.eps = eps
        self.count = 0
        self.s1: torch.Tensor | None = None
        self.s2: torch.Tensor | None = None
        self.m0: list[torch.Tensor] = []
        self.m1: list[torch.Tensor] = []
        self.m2: list[torch.Tensor] = []

    def add(self, f: torch.Tensor, rect: Rect) -> None:
        """Fold in features ``f`` (``(N, C, h, w)``) of window ``rect`` (no window twice)."""
        d = torch.float64
        s1 = f.sum(dim=(2, 3), dtype=d)
        sq = f.float().square()
        s2 = sq.sum(dim=(2, 3), dtype=d)
        self.count += f.shape[-2] * f.shape[-1]
        self.s1 = s1 if self.s1 is None else self.s1 + s1
        self.s2 = s2 if self.s2 is None else self.s2 + s2
        if self.masks is None:
            return
        r0, r1, c0, c1 = rect
        m = self.masks[..., r0:r1, c0:c1].to(f.device, torch.float32)
        m = m / m.sum(1, keepdim=True).clamp_min(1.0)  # as masked_adain normalizes them
        for k in range(m.shape[1]):
            w = m[:, k: k + 1]
            parts = (w.sum(dim=(2, 3), dtype=d), (f * w).sum(dim=(2, 3), dtype=d),
                     (sq * w).sum(dim=(2, 3), dtype=d))
            for acc, part in zip((self.m0, self.m1, self.m2), parts):
                if len(acc) <= k:
                    acc.append(part)
                else:
                    acc[k] = acc[k] + part

    def _stats(self, total: torch.Tensor, s1: torch.Tensor, s2: torch.Tensor) -> Stats:
        mean = s1 / total
        var = (s2 / total - mean.square()).clamp_min(0) + self.eps
        return (mean.float()[..., None, None], var.sqrt().float()[..., None, None])

    def content(self) -> Stats:
        """Each item's ``(N, C, 1, 1)`` mean and std over the whole map."""
        assert self.s1 is not None and self.s2 is not None
        return self._stats(torch.tensor(float(self.count), dtype=torch.float64), self.s1, self.s2)

    def regions(self) -> list[Stats] | None:
        """Each mask's region mean and std over the whole map (None without masks)."""
        if self.masks is None:
            return None
        return [self._stats(m0.clamp_min(1e-6), m1, m2)
                for m0, m1, m2 in zip(self.m0, self.m1, self.m2)]


def _window(x: torch.Tensor, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
    """Rows ``[y0, y1)`` and columns ``[x0, x1)`` of ``x`` padded to a multiple of 8 (as
    :func:`~painterly.padding.pad_to_multiple` pads the whole image), without padding it:
    a window past the bottom or right edge is padded alone, which gives the same pixels."""
    h, w = x.shape[-2:]
    win = x[..., y0: min(y1, h), x0: min(x1, w)]
    if not win.is_floating_point():  # an 8-bit image (a large style): float window by window
        win = win.float().div_(255)
    return pad_bottom_right(win, y1 - h, x1 - w)


def encode_tiled(nets: Codec, x: torch.Tensor, plan: TilePlan, whole: WholeStats | None = None,
                 keep: bool = True) -> torch.Tensor | None:
    """relu4_1 of an image (padded to ``plan``'s size window by window), stitched into one
    float32 feature map (None when ``keep`` is off or the map is over
    :data:`MAX_FEATURE_BYTES`), its statistics folded into ``whole``.

    Each window supplies the features up to the middle of its overlaps, at least
    ``TILE_OVERLAP / 2 - 8`` px from its cut edges: beyond the encoder's reach, so the stitched
    map equals an untiled encoding (and content statistics are those of the whole image).
    """
    n = x.shape[0]
    m = MULTIPLE
    fh, fw = plan.height // m, plan.width // m
    out: torch.Tensor | None = None
    rows = _own_ranges(plan.ys, plan.tile_h, plan.height)
    cols = _own_ranges(plan.xs, plan.tile_w, plan.width)
    for y0, (ra, rb) in zip(plan.ys, rows):
        for x0, (ca, cb) in zip(plan.xs, cols):
            f = nets.encode(_window(x, y0, y0 + plan.tile_h, x0, x0 + plan.tile_w))
            own = f[..., (ra - y0) // m: (rb - y0) // m, (ca - x0) // m: (cb - x0) // m]
            if whole is not None:
                whole.add(own, (ra // m, rb // m, ca // m, cb // m))
            if keep and out is None:
                keep = n * f.shape[1] * fh * fw * 4 <= MAX_FEATURE_BYTES
                if keep:
                    out = torch.empty((n, f.shape[1], fh, fw), dtype=torch.float32, device=f.device)
            if out is not None:
                out[..., ra // m: rb // m, ca // m: cb // m] = own
    return out


def _window_features(nets: Codec, x: torch.Tensor, plan: TilePlan, y0: int, x0: int) -> torch.Tensor:
    """The relu4_1 features of one window as the stitched map holds them: the window encoded
    again with :data:`REENCODE_MARGIN` px around it, cropped. At an image edge the larger window
    slides inward instead of shrinking, so every window has one shape (a CPU builds its conv
    kernels once per shape: nine shapes cost more than the second pass itself)."""
    e, m = REENCODE_MARGIN, MULTIPLE
    hh, ww = min(plan.height, plan.tile_h + 2 * e), min(plan.width, plan.tile_w + 2 * e)
    ya = min(max(0, y0 - e), plan.height - hh)
    xa = min(max(0, x0 - e), plan.width - ww)
    f = nets.encode(_window(x, ya, ya + hh, xa, xa + ww))
    return f[..., (y0 - ya) // m: (y0 - ya + plan.tile_h) // m, (x0 - xa) // m: (x0 - xa + plan.tile_w) // m]


def decode_tiled(nets: Codec, features: torch.Tensor | None, plan: TilePlan,
                 transform: Callable[..., torch.Tensor], whole: WholeStats | None,
                 x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Each window's features (cut from ``features``, or encoded again from ``x``) transformed
    (``transform(f, whole, rect)``), decoded, and blended with cosine-feathered weights over
    the overlaps (zero within ``FEATHER_MARGIN`` of a cut edge) into an output of ``size``
    (the image's, unpadded). The weights are products of one weight per axis, so the sums they
    are normalized by are two vectors, not a map."""
    n, m = x.shape[0], MULTIPLE
    h, w = size
    out = torch.zeros((n, 3, h, w), dtype=torch.float32, device=x.device)
    norm_y = torch.zeros(h, dtype=torch.float32, device=x.device)
    norm_x = torch.zeros(w, dtype=torch.float32, device=x.device)
    wxs = [_axis_weights(plan.xs, plan.tile_w, j, FEATHER_MARGIN, x.device) for j in range(len(plan.xs))]
    for j, x0 in enumerate(plan.xs):
        cw = min(w, x0 + plan.tile_w) - x0
        norm_x[x0: x0 + cw] += wxs[j][:cw].to(norm_x.device)
    for i, y0 in enumerate(plan.ys):
        wy = _axis_weights(plan.ys, plan.tile_h, i, FEATHER_MARGIN, x.device)
        ch = min(h, y0 + plan.tile_h) - y0
        norm_y[y0: y0 + ch] += wy[:ch].to(norm_y.device)
        for j, x0 in enumerate(plan.xs):
            rect = (y0 // m, (y0 + plan.tile_h) // m, x0 // m, (x0 + plan.tile_w) // m)
            f = (features[..., rect[0]: rect[1], rect[2]: rect[3]] if features is not None
                 else _window_features(nets, x, plan, y0, x0))
            y = nets.decode(transform(f, whole, rect))
            del f
            cw = min(w, x0 + plan.tile_w) - x0
            weight = (wy[:ch, None] * wxs[j][None, :cw])[None, None]
            out[..., y0: y0 + ch, x0: x0 + cw] += y[..., :ch, :cw].to(out.device) * weight
    out /= norm_y.clamp_min(1e-6)[:, None]
    out /= norm_x.clamp_min(1e-6)
    return out


def encode_transform_decode(nets: Codec, x: torch.Tensor,
                            transform: Callable[..., torch.Tensor],
                            tile: int | None = None, masks: torch.Tensor | None = None) -> torch.Tensor:
    """``decode(transform(encode(x)))`` for a batch of any size (padded to a multiple of 8 here,
    the output cropped back), tiled when ``tile`` is set and the padded image is larger than one
    tile. Untiled, ``transform(f)`` sees the whole feature map; tiled, it is called per window
    as ``transform(f, whole, rect)`` with the whole image's statistics (:class:`WholeStats`,
    with ``masks``' region statistics) and the window's place on the feature grid, and the
    working set stays that of a few windows plus the output: a first pass gathers the
    statistics (and keeps the stitched map when it is small), the second decodes."""
    h, w = x.shape[-2:]
    hp, wp = h + (-h) % MULTIPLE, w + (-w) % MULTIPLE
    if tile is None or (hp <= tile and wp <= tile):
        xp, _ = pad_to_multiple(x, MULTIPLE)
        return nets.decode(transform(nets.encode(xp)))[..., :h, :w]
    plan = plan_tiles(hp, wp, tile)
    whole = WholeStats(masks)
    features = encode_tiled(nets, x, plan, whole)
    return decode_tiled(nets, features, plan, transform, whole, x, (h, w))
