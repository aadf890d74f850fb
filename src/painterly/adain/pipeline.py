"""The AdaIN inference path, written once (as pytorch-AdaIN's ``style_transfer()``)::

    x = pad(content)                                  # sides to a multiple of 8
    f = encoder(x)                                    # relu4_1 (tiled above the pixel budget)
    t = alpha * AdaIN(f, style) + (1 - alpha) * f     # adain.core: blends, masks, smoothing
    y = decoder(t)[crop]

:class:`AdaINPipeline` holds the networks (the VGG decoder or the lite network, on a device, in
a precision: :class:`~painterly.adain.networks.AdaINNetworks`) and runs that path for every front
end: the stylizer, the server's engine (a batch whose items each carry their own style and
alpha), video (content statistics smoothed over frames), style augmentation, the fast trainer's
teacher, and the ONNX export (which traces :meth:`AdaINPipeline.run` itself, as
:class:`PipelineGraph`).
A new network is a row of :mod:`painterly.registry`; a new option in
feature space at :mod:`painterly.adain.core` and :mod:`painterly.options`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..device import resolve_device
from ..padding import pad_bottom_right, pad_to_multiple
from .core import Stats, StyleStats, StyleTarget, adain_transform, mean_std
from .model import MULTIPLE
from .networks import AdaINModel, AdaINNetworks, networks_for
from .tiling import Rect, WholeStats, encode_transform_decode

#: Per-item content statistics: given, or a function of each image's own (whole-image) relu4_1
#: statistics that returns the ones to use (video's hook: smoothed over frames).
ContentStats = Stats | Callable[[Stats], Stats] | None


class AdaINPipeline:
    """pad -> encode -> AdaIN step -> decode -> crop, on one set of networks.

    Build it with :meth:`from_options` (the typed :class:`~painterly.options.AdaINOptions`) or
    around :class:`AdaINNetworks` made elsewhere. Outputs are float32, not clamped (colour
    finishing is the front end's: :func:`painterly.adain.stylize.finish_colors`).
    """

    def __init__(self, nets: AdaINNetworks) -> None:
        self.nets = nets
        self.device = nets.device

    @classmethod
    def from_options(cls, options: Any, decoder: str | AdaINModel | None = None) -> AdaINPipeline:
        """The networks ``options`` name (``network``, ``decoder``, ``device``, ``precision``,
        ``channels_last``, ``compile``); ``decoder`` overrides ``options.decoder``."""
        device = resolve_device(options.device)
        return cls(networks_for(decoder if decoder is not None else options.decoder,
                                options.network, device, options.precision, options.channels_last,
                                options.compile))

    @classmethod
    def load(cls, decoder: str | AdaINModel | None = None, network: str = "vgg",
             device: str | torch.device | None = "auto", precision: str = "auto",
             channels_last: bool | None = None) -> AdaINPipeline:
        """The pipeline of a model file or module (or the shipped one of ``network``)."""
        return cls(networks_for(decoder, network, resolve_device(device), precision, channels_last))

    @property
    def network(self) -> str:
        """The registered network it runs ("vgg", "lite", ...)."""
        return self.nets.network

    # ------------------------------------------------------------------ style statistics

    @torch.inference_mode()
    def style_stats(self, style: torch.Tensor) -> Stats:
        """``(N, C, 1, 1)`` mean/std of the encoder's features of a style batch (any size)."""
        return self.nets.style_stats(style)

    def style_set(self, styles: Sequence[torch.Tensor],
                  weights: Sequence[float] | torch.Tensor) -> StyleStats:
        """Each style ``(1, 3, H, W)`` encoded once, with its blend weight."""
        w = weights if isinstance(weights, torch.Tensor) else torch.tensor(list(weights), dtype=torch.float32)
        return StyleStats.stack([self.style_stats(s) for s in styles], w.to(self.device))

    # ------------------------------------------------------------------ the path

    def run(self, content: torch.Tensor, stats: StyleTarget,
            alpha: float | Sequence[float] | torch.Tensor = 1.0, masks: torch.Tensor | None = None,
            content_stats: ContentStats = None, tile: int | None = None,
            auto_tile: bool = True) -> torch.Tensor:
        """Stylize a batch ``(N, 3, H, W)`` in [0, 1] -> ``(N, 3, H, W)`` float32 on the device.

        ``stats``: one style set for the whole batch, one per item (the server's batches mix
        requests), or a ready ``(mean, std)`` target (:data:`~painterly.adain.core.StyleTarget`);
        ``alpha``: one value, or one per item. ``masks``: feature-grid masks, one per
        style (:func:`painterly.adain.stylize.feature_masks`). ``content_stats``: the statistics
        to normalize by instead of each image's own (or a function of its own that gives them:
        video smoothing). ``tile``: tile side; with ``auto_tile`` an image over the device's
        pixel budget is tiled anyway (a tile is normalized by the whole image's statistics).
        The whole batch goes through each step at once: the items' targets and alphas are
        stacked, not looped over.
        """
        n = content.shape[0]
        self.nets.check_memory(n, content.shape[-2], content.shape[-1],
                               f"a {content.shape[-1]}x{content.shape[-2]} image")
        x = content.float()
        w = x.shape[-1]
        margin = self.nets.right_margin
        if margin:  # painted with the network's right-border stripe off the picture, cut below
            x = pad_bottom_right(x, 0, margin)
            if masks is not None:
                masks = F.pad(masks, (0, margin // MULTIPLE, 0, 0), mode="replicate")
        h, wx = x.shape[-2:]
        target = _target_on(stats, n, self.device)
        a = _batch_alpha(alpha, n)

        memo: dict[str, Any] = {}  # a tiled image's statistics, once for all its windows

        def image_stats(f: torch.Tensor, whole: WholeStats | None) -> tuple[Any, Any]:
            if whole is not None and "cs" in memo:
                return memo["cs"], memo["regions"]
            own = whole.content() if whole is not None else None
            regions = whole.regions() if whole is not None else None
            if callable(content_stats):  # once per image: video's hook folds each frame in once
                cs = content_stats(own if own is not None else mean_std(f))
            else:
                cs = content_stats if content_stats is not None else own
            if regions is not None:  # region statistics replace the content's (masked AdaIN)
                cs = None
            memo.update(cs=cs, regions=regions)
            return cs, regions

        def transform(f: torch.Tensor, whole: WholeStats | None = None,
                      rect: Rect | None = None) -> torch.Tensor:
            cs, regions = image_stats(f, whole)
            m = masks if masks is None or rect is None else masks[..., rect[0]: rect[1], rect[2]: rect[3]]
            return adain_transform(f, target, a, m, content_stats=cs, regions=regions)

        if tile is None and auto_tile:
            tile = self.nets.tile_for(*self.padded_size(h, wx))
        y = encode_transform_decode(self.nets, x, transform, tile, masks)
        return y[..., :w] if margin else y

    def run_items(self, contents: Sequence[torch.Tensor], stats: Sequence[StyleStats],
                  alpha: Sequence[float]) -> list[torch.Tensor]:
        """Contents ``(1, 3, H, W)`` of different sizes that pad to one size (the server's
        batches), each with its own style set and alpha: one pass, each output ``(1, 3, H, W)``
        cropped back to its content's size. Each content is padded once, here; one content
        alone is :meth:`run` (tiled above the pixel budget), several share one untiled pass
        (they are small enough to share it)."""
        if len(contents) == 1:
            return [self.run(contents[0], stats, alpha)]
        items = [pad_to_multiple(c.float(), MULTIPLE) for c in contents]
        if len({x.shape[-2:] for x, _ in items}) > 1:
            raise ValueError("contents of one batch must pad to one size (padded_size)")
        y = self.run(torch.cat([x for x, _ in items]), stats, alpha, auto_tile=False)
        return [y[i: i + 1, :, :h, :w] for i, (_, (h, w)) in enumerate(items)]

    @staticmethod
    def padded_size(height: int, width: int) -> tuple[int, int]:
        """The size an image of ``height x width`` is painted at (sides to the networks' multiple)."""
        return height + (-height) % MULTIPLE, width + (-width) % MULTIPLE

    def graph(self) -> PipelineGraph:
        """:meth:`run` as a traceable module (untiled, one ready style target): ONNX export."""
        return PipelineGraph(self)

    def style_graph(self) -> StyleGraph:
        """Style image -> its statistics, as a traceable module (ONNX export)."""
        return StyleGraph(self.nets.encoder)


def _target_on(stats: StyleTarget, n: int, device: torch.device) -> StyleTarget:
    """``stats`` on ``device``; one set per item must be ``n`` sets."""
    if isinstance(stats, StyleStats):
        return stats.to(device)
    if isinstance(stats, tuple) and isinstance(stats[0], torch.Tensor):
        return stats[0].to(device), stats[1].to(device)
    if len(stats) != n:
        raise ValueError(f"{len(stats)} style sets for a batch of {n}")
    return [s.to(device) for s in stats]


def _batch_alpha(alpha: float | Sequence[float] | torch.Tensor, n: int) -> float | torch.Tensor:
    """The trade-off for a batch of ``n``: one number when every item has the same (at 1 the
    mix is skipped), else one value per item (float64, so each item mixes as its number would
    alone); a tensor (the exported graph's input) as it is."""
    if isinstance(alpha, torch.Tensor):
        return alpha
    if not isinstance(alpha, (list, tuple)):
        return float(alpha)
    if len(alpha) != n:
        raise ValueError(f"{len(alpha)} alphas for a batch of {n}")
    values = [float(v) for v in alpha]
    if all(v == values[0] for v in values):
        return values[0]
    return torch.tensor(values, dtype=torch.float64)


class StyleGraph(nn.Module):
    """Style image -> per-channel mean and std of its encoder features."""

    def __init__(self, encoder: nn.Module, eps: float = 1e-5) -> None:
        super().__init__()
        self.encoder = encoder
        self.eps = eps

    def forward(self, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return mean_std(self.encoder(style), self.eps)


class PipelineGraph(nn.Module):
    """Content + style statistics + alpha -> stylized image in [0, 1]: :meth:`AdaINPipeline.run`
    itself, untiled, with the ``(mean, std)`` inputs as its style target (one per item, or one
    for the batch) and a tensor alpha, so the padding is traced with dynamic sizes. The
    networks are registered as submodules so a trace sees their weights as parameters."""

    def __init__(self, pipeline: AdaINPipeline) -> None:
        super().__init__()
        self.pipeline = pipeline
        self.encoder = pipeline.nets.encoder
        self.decoder = pipeline.nets.fast_decoder

    def forward(self, content: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor,
                alpha: torch.Tensor) -> torch.Tensor:
        return self.pipeline.run(content, (style_mean, style_std), alpha, auto_tile=False).clamp(0, 1)
