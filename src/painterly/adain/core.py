"""The AdaIN feature-space step, written once (as pytorch-AdaIN's ``function.py``).

Pure tensor functions on relu4_1 features ``(N, C, h, w)``; no networks, no images, no devices:

* statistics: :func:`mean_std` (from :mod:`painterly.losses`) and :func:`masked_mean_std`;
* the transform: :func:`adain` (optionally with given content statistics, the hook that video
  uses for statistics smoothed over frames, see :class:`SmoothedStats`) and :func:`masked_adain`
  (one style per spatial mask);
* the content-style trade-off :func:`trade_off` (``alpha``) and the multi-style blend
  :func:`blend_stats` (AdaIN is affine in the target, so blending targets blends the outputs);
* :class:`StyleStats` and :func:`adain_transform`, the whole step as the stylizer, the server's
  engine, video and the ONNX export run it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..errors import PainterlyError
from ..losses import mean_std

__all__ = ["SmoothedStats", "StyleStats", "StyleTarget", "adain", "adain_affine", "adain_transform",
           "blend_stats", "masked_adain", "masked_mean_std", "mean_std", "style_target", "trade_off"]

Stats = tuple[torch.Tensor, torch.Tensor]


def masked_mean_std(features: torch.Tensor, mask: torch.Tensor, eps: float = 1e-5) -> Stats:
    """Per-channel mean/std over the region where ``mask`` (N,1,h,w in [0,1]) is on (weighted)."""
    w = mask.to(features.dtype)
    total = w.sum(dim=(2, 3), keepdim=True).clamp_min(1e-6)
    mean = (features * w).sum(dim=(2, 3), keepdim=True) / total
    var = ((features - mean).pow(2) * w).sum(dim=(2, 3), keepdim=True) / total
    return mean, (var + eps).sqrt()


def adain(content: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor,
          eps: float = 1e-5, content_stats: Stats | None = None) -> torch.Tensor:
    """Give ``content`` features the per-channel mean/std of the style (batched, broadcasting).

    ``content_stats``: the ``(mean, std)`` to normalize by instead of the content's own (video
    passes statistics smoothed over frames); ``eps`` applies only when they are computed here.
    """
    c_mean, c_std = content_stats if content_stats is not None else mean_std(content, eps)
    scale, shift = adain_affine(style_mean, style_std, c_mean, c_std)
    return torch.addcmul(shift, content, scale)


def adain_affine(style_mean: torch.Tensor, style_std: torch.Tensor, content_mean: torch.Tensor,
                 content_std: torch.Tensor, alpha: float | torch.Tensor = 1.0) -> Stats:
    """AdaIN and the trade-off as the per-channel affine map ``f * scale + shift`` they are:
    ``(f - m_c) / s_c * s_s + m_s`` is ``f * (s_s / s_c) + (m_s - m_c * s_s / s_c)``, and
    ``alpha * t + (1 - alpha) * f`` scales both parts. So the step is one pass over the
    features (``torch.addcmul``) instead of five, on ``(N or 1, C, 1, 1)`` statistics; the same
    values to float rounding. (End to end it made no clear difference: an interleaved A/B of a
    lite call at 384 px gave 0.99x / 1.00x on one thread in bf16 / fp32, and 0.79x / 0.97x on
    two, within this machine's drift.) ``alpha``: a number or one value per item (``1 - alpha``
    in its own dtype, as :func:`trade_off`)."""
    scale = style_std / content_std
    shift = style_mean - content_mean * scale
    if isinstance(alpha, torch.Tensor):
        a = alpha.reshape(-1, 1, 1, 1)
        keep = (1 - a).to(scale)
        a = a.to(scale)
        return a * scale + keep, a * shift
    if alpha == 1.0:
        return scale, shift
    return alpha * scale + (1.0 - alpha), alpha * shift


def masked_adain(features: torch.Tensor, masks: torch.Tensor, style_mean: torch.Tensor,
                 style_std: torch.Tensor, eps: float = 1e-5,
                 regions: Sequence[Stats] | None = None) -> torch.Tensor:
    """AdaIN with spatial control: style ``k`` where mask ``k`` is on, the content elsewhere.

    ``masks``: ``(1 or N, S, h, w)`` in [0, 1], one per style; ``style_mean``/``style_std``:
    ``(S, C, 1, 1)``, or ``(N, S, C, 1, 1)`` for styles of their own per batch item. Each style
    is applied with the content statistics of its own region and the results are mixed by the
    masks; where the masks sum to less than 1 the content features are kept, masks summing
    above 1 are normalized. ``regions``: each mask's region statistics, given (a tile of a
    larger image: those of the whole image's region) instead of computed.
    """
    masks = masks.to(features)
    total = masks.sum(1, keepdim=True)
    masks = masks / total.clamp_min(1.0)
    masks = masks.expand(features.shape[0], -1, -1, -1)
    if style_mean.dim() == 4:  # one style set for the whole batch
        style_mean, style_std = style_mean[None], style_std[None]
    t = features * (1.0 - masks.sum(1, keepdim=True))
    for k in range(masks.shape[1]):
        m = masks[:, k: k + 1]
        region = regions[k] if regions is not None else masked_mean_std(features, m, eps)
        t = t + m * adain(features, style_mean[:, k], style_std[:, k], content_stats=region)
    return t


def trade_off(stylized: torch.Tensor, features: torch.Tensor,
              alpha: float | torch.Tensor) -> torch.Tensor:
    """The content-style trade-off in feature space: ``alpha * t + (1 - alpha) * features``.

    ``alpha`` is a number (1 returns ``stylized`` as it is) or a tensor of one value per batch
    item (the exported graph's input, always mixed so the graph has one shape). ``1 - alpha``
    is taken in the alpha's own dtype before the cast to the features' (and their device), so a
    float64 tensor mixes as the numbers it holds would.
    """
    if isinstance(alpha, torch.Tensor):
        a = alpha.reshape(-1, 1, 1, 1)
        return a.to(stylized) * stylized + (1 - a).to(features) * features
    if alpha == 1.0:
        return stylized
    return alpha * stylized + (1.0 - alpha) * features


def blend_stats(mean: torch.Tensor, std: torch.Tensor, weights: torch.Tensor) -> Stats:
    """Weighted ``(1, C, 1, 1)`` target from ``(S, C, 1, 1)`` statistics and ``(S,)`` weights."""
    w = weights.view(-1, 1, 1, 1).to(mean)
    return (w * mean).sum(0, keepdim=True), (w * std).sum(0, keepdim=True)


@dataclass(frozen=True)
class StyleStats:
    """Cached relu4_1 statistics of one or more styles and their blend weights.

    ``mean``/``std``: ``(S, C, 1, 1)`` float32; ``weights``: ``(S,)`` summing to 1.
    """

    mean: torch.Tensor
    std: torch.Tensor
    weights: torch.Tensor

    @classmethod
    def stack(cls, per_style: Sequence[Stats], weights: Sequence[float] | torch.Tensor) -> StyleStats:
        """Several styles' ``(1, C, 1, 1)`` statistics and their blend weights as one object."""
        w = weights if isinstance(weights, torch.Tensor) else torch.tensor(list(weights), dtype=torch.float32)
        return cls(torch.cat([m for m, _ in per_style]), torch.cat([s for _, s in per_style]), w)

    @property
    def n_styles(self) -> int:
        return int(self.mean.shape[0])

    def blended(self) -> Stats:
        """Weighted target ``(1, C, 1, 1)`` mean and std: AdaIN is affine in the target, so
        blending targets equals blending the AdaIN outputs (the paper's style interpolation)."""
        return blend_stats(self.mean, self.std, self.weights)

    def to(self, device: torch.device | str) -> StyleStats:
        return StyleStats(self.mean.to(device), self.std.to(device), self.weights.to(device))


#: What the AdaIN step takes as its style: one style set for the whole batch, one per batch
#: item (a server batch mixes requests), or a ready ``(mean, std)`` target ``(1 or N, C, 1, 1)``
#: (the exported graph's inputs, a fast-lite network's baked blend).
StyleTarget = StyleStats | Sequence[StyleStats] | Stats


def style_target(stats: StyleTarget) -> Stats:
    """The blended ``(mean, std)`` target of :data:`StyleTarget`: ``(1, C, 1, 1)`` for one
    style set, ``(N, C, 1, 1)`` for one per item, a given target as it is."""
    if isinstance(stats, StyleStats):
        return stats.blended()
    if isinstance(stats, tuple) and isinstance(stats[0], torch.Tensor):
        return stats
    pairs = [s.blended() for s in stats]
    return torch.cat([m for m, _ in pairs]), torch.cat([s for _, s in pairs])


def _mask_styles(stats: StyleTarget, n_masks: int) -> Stats:
    """Each style's own ``(mean, std)`` for :func:`masked_adain`: ``(S, C, 1, 1)`` for one
    style set, ``(N, S, C, 1, 1)`` for one per item; a mask per style."""
    if isinstance(stats, tuple) and isinstance(stats[0], torch.Tensor):
        raise ValueError("masks need each style's statistics, not a blended target")
    sets = [stats] if isinstance(stats, StyleStats) else list(stats)
    for s in sets:
        if n_masks != s.n_styles:
            raise PainterlyError(f"{n_masks} mask(s) for {s.n_styles} style(s)")
    if isinstance(stats, StyleStats):
        return stats.mean, stats.std
    return torch.stack([s.mean for s in sets]), torch.stack([s.std for s in sets])


def adain_transform(features: torch.Tensor, stats: StyleTarget, alpha: float | torch.Tensor = 1.0,
                    masks: torch.Tensor | None = None, eps: float = 1e-5,
                    content_stats: Stats | None = None,
                    regions: Sequence[Stats] | None = None) -> torch.Tensor:
    """The feature-space part of AdaIN for a batch ``(N, C, h, w)`` (float32).

    ``stats``: a :data:`StyleTarget`. Without ``masks``: normalize by the content's own
    statistics (or ``content_stats``) and apply the blended style target. With ``masks`` (one
    per style): :func:`masked_adain` (``regions``: their region statistics, when given). Then
    the trade-off ``alpha * t + (1 - alpha) * features`` (``alpha``: a number, or a tensor of
    one per item).
    """
    if masks is None:  # AdaIN and the trade-off in one pass (adain_affine)
        s_mean, s_std = style_target(stats)
        c_mean, c_std = content_stats if content_stats is not None else mean_std(features, eps)
        scale, shift = adain_affine(s_mean, s_std, c_mean, c_std, alpha)
        return torch.addcmul(shift, features, scale)
    else:
        if content_stats is not None:
            raise ValueError("content_stats and masks exclude each other (masks use region statistics)")
        s_mean, s_std = _mask_styles(stats, masks.shape[1])
        t = masked_adain(features, masks, s_mean, s_std, eps, regions)
    return trade_off(t, features, alpha)


class SmoothedStats:
    """Content statistics smoothed over a stream of frames (the hook for :func:`adain`).

    An exponential moving average ``m_t = smooth * m_{t-1} + (1 - smooth) * m(frame_t)`` of the
    per-channel mean and std; ``smooth=0`` gives each frame its own statistics.
    """

    def __init__(self, smooth: float) -> None:
        self.smooth = float(smooth)
        self.reset()

    def reset(self) -> None:
        """Forget the running statistics: the next frame's are taken as they are."""
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None

    def update(self, mean: torch.Tensor, std: torch.Tensor, restart: bool = False) -> Stats:
        """Fold one frame's statistics in (``restart``: at a hard cut) and return the running ones."""
        if self.mean is None or self.std is None or self.smooth == 0 or restart:
            self.mean, self.std = mean, std
        else:
            k = self.smooth
            self.mean = k * self.mean + (1 - k) * mean
            self.std = k * self.std + (1 - k) * std
        return self.mean, self.std
