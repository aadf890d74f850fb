"""AdaIN inference: content-style trade-off, style interpolation, color preservation, spatial
control with masks, batches and tiled high-resolution images (Huang & Belongie, ICCV 2017).

The pipeline for a content batch ``x``::

    f = encoder(x)                                   # relu4_1, (N, 512, H/8, W/8)
    t = sum_k w_k * AdaIN(f, style_k)                # style interpolation = blend the targets
    t = alpha * t + (1 - alpha) * f                  # content-style trade-off, in feature space
    y = decoder(t)

The path itself is :class:`painterly.adain.pipeline.AdaINPipeline` (the feature-space step is
:mod:`painterly.adain.core`, the networks on a device :mod:`painterly.adain.networks`, images over
a pixel budget :mod:`painterly.adain.tiling`). This module holds :class:`AdaINStylizer` and the
input rules every AdaIN front end shares
(resized style tensors, masks on the feature grid, color preservation before and after), so
the server's pictures are the CLI's pictures.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..color import luminance_transfer, match_histogram
from ..errors import PainterlyError
from ..image import (
    LOAD_BYTES_PER_PIXEL,
    MIN_SIDE,
    ImageLike,
    load_image,
    pil_to_tensor,
    resize,
    resized_size,
    tensor_to_pil,
)
from ..options import DEFAULT_STYLE_SIZE, AdaINOptions, check_style_weights, options_from, require_styles
from ..padding import pad_to_multiple
from .core import StyleStats
from .model import MULTIPLE
from .pipeline import AdaINPipeline, ContentStats
from .tiling import MIN_TILE

__all__ = ["DEFAULT_STYLE_SIZE", "MIN_SIDE", "AdaINStylizer", "check_content_size", "feature_masks",
           "finish_colors", "recolor_styles", "style_tensors"]



# --------------------------------------------------------------------------------------------
# Inputs: the rules every AdaIN front end (stylizer, server) applies the same way


def check_content_size(height: int, width: int, min_side: int = MIN_SIDE) -> None:
    """Refuse a content image with a side under ``min_side`` pixels."""
    if min(height, width) < min_side:
        raise PainterlyError(f"content image is too small ({width}x{height}); AdaIN needs at least "
                             f"{min_side} px on each side")


def style_tensors(styles: Sequence[Image.Image], style_size: int,
                  min_side: int | None = None, nets: Any = None) -> list[torch.Tensor]:
    """Each style resized to ``style_size`` on its long side, as ``(1, 3, H, W)`` in [0, 1];
    ``min_side``: refuse a style that comes out thinner than that; ``nets``
    (:class:`~painterly.adain.networks.AdaINNetworks`): refuse, before resizing, a style whose
    encoding would not fit in memory, and keep one over its pixel budget as 8-bit
    (``uint8``, 0..255: a quarter of the memory; it is encoded window by window, each window
    made float as it goes: :meth:`~painterly.adain.networks.AdaINNetworks.style_stats`)."""
    out = []
    for i, style in enumerate(styles):
        if not isinstance(style, Image.Image):  # a path, builtin:NAME, an array: as load_image takes
            style = load_image(style, what=f"style image {i + 1}")
        w, h = resized_size(style.size, style_size)
        large = nets is not None and w * h > nets.pixel_budget()
        if nets is not None:
            nets.check_memory(1, h, w, f"a {w}x{h} style image", whole=not large,
                              hint="use a smaller --style-size")
        style = resize(style, style_size)
        if min_side is not None and min(style.size) < min_side:
            raise PainterlyError(f"style image {i + 1} is too small or thin at style_size {style_size} "
                                 f"({style.width}x{style.height}; each side must be at least "
                                 f"{min_side} px)")
        if large:
            out.append(torch.from_numpy(np.array(style.convert("RGB"))).permute(2, 0, 1)[None])
        else:
            out.append(pil_to_tensor(style))
    return out


def recolor_styles(styles: Sequence[torch.Tensor], content: torch.Tensor) -> list[torch.Tensor]:
    """``preserve_color="histogram"``: each style recolored to the content's color histogram
    (the statistics then depend on the content, so they are not cached)."""
    return [match_histogram(s if s.is_floating_point() else s.float().div_(255), content)
            for s in styles]


def finish_colors(out: torch.Tensor, content: torch.Tensor, preserve_color: str | None,
                  inplace: bool = False) -> torch.Tensor:
    """Decoder output clamped to [0, 1] (``inplace``: in ``out`` itself, no copy of a large
    image); with ``preserve_color="luminance"`` the result's luminance on the content's
    chrominance."""
    out = out.clamp_(0, 1) if inplace else out.clamp(0, 1)
    if preserve_color == "luminance":
        out = luminance_transfer(out, content)
    return out


def feature_masks(masks: Sequence[torch.Tensor], height: int, width: int) -> torch.Tensor:
    """Masks ``(1, 1, h, w)`` resized to the content, padded like it, then averaged to relu4_1's
    grid: ``(1, S, H/8, W/8)``. Each must have the content's aspect ratio."""
    out = []
    for i, m in enumerate(masks):
        mh, mw = m.shape[-2:]
        if abs((mw / mh) / (width / height) - 1.0) > 0.02:
            raise PainterlyError(f"mask {i + 1} is {mw}x{mh} but the content is {width}x{height}: a "
                                 f"mask must have the content image's aspect ratio")
        m = F.interpolate(m, size=(height, width), mode="bilinear", align_corners=False,
                          antialias=(mh > height or mw > width)).clamp(0, 1)
        m, _ = pad_to_multiple(m, MULTIPLE)
        out.append(F.avg_pool2d(m, MULTIPLE))
    return torch.cat(out, dim=1)


# --------------------------------------------------------------------------------------------
# The stylizer


def _load_mask(source: ImageLike, index: int) -> torch.Tensor:
    """A mask image as ``(1, 1, H, W)`` float in [0, 1] (any image becomes grayscale)."""
    what = f"mask {index + 1}"
    if isinstance(source, torch.Tensor):
        t = source.detach().float().cpu()
        while t.dim() < 4:
            t = t.unsqueeze(0)
        if t.dim() != 4 or t.shape[0] != 1 or t.shape[1] not in (1, 3):
            raise PainterlyError(f"{what} tensor must be HxW, 1xHxW or 3xHxW, got {tuple(source.shape)}")
        if not torch.isfinite(t).all():
            raise PainterlyError(f"{what} holds NaN or infinite values")
        return t.mean(1, keepdim=True).clamp(0, 1)
    img = load_image(source, what=what).convert("L")
    return pil_to_tensor(img.convert("RGB"))[:, :1]


class AdaINStylizer:
    """Arbitrary style transfer with a trained AdaIN decoder; style work done once here.

    ``options``: an :class:`~painterly.options.AdaINOptions`, or the same as keywords: ``alpha``
    (content-style trade-off in [0, 1], default 1), ``preserve_color`` ("luminance" or
    "histogram"), ``mask`` (one mask image per style), ``size`` (content long side; default:
    keep), ``style_size`` (default 512), ``network`` ("auto": the lite network on a CPU, the
    VGG decoder on a GPU; "vgg"; "lite"), ``decoder`` (a file or module of that network; default:
    the installed one), ``device``, ``tile`` (tile side; default: automatic above a pixel budget),
    ``precision`` ("auto": bf16/fp16 on CUDA and bf16 on CPUs with native bf16, else fp32),
    ``channels_last``, ``compile`` (``torch.compile`` the networks). ``seed`` is accepted and
    ignored: AdaIN is deterministic.
    """

    def __init__(self, styles: Sequence[Image.Image], style_weights: Sequence[float] | None = None,
                 options: AdaINOptions | None = None, **keywords: Any) -> None:
        self.options = opts = cast(AdaINOptions, options_from("adain", options, keywords))
        require_styles("adain", styles)
        self.alpha = opts.alpha
        self.preserve_color = opts.preserve_color
        self.size = opts.size
        self.style_size = opts.style_size
        self.tile = opts.tile
        if self.tile is not None and self.tile < MIN_TILE:
            raise PainterlyError(f"tile must be at least {MIN_TILE} pixels, got {self.tile}")
        weights = check_style_weights(style_weights, len(styles))
        self.pipeline = AdaINPipeline.from_options(opts)
        self.nets = self.pipeline.nets
        self.device = self.pipeline.device

        mask = opts.mask
        if mask is not None:
            masks = [mask] if not isinstance(mask, (list, tuple)) else list(mask)
            if len(masks) != len(styles):
                raise PainterlyError(f"{len(masks)} mask(s) given for {len(styles)} style image(s): "
                                     f"give one mask per --style")
            self.masks: list[torch.Tensor] | None = [_load_mask(m, i) for i, m in enumerate(masks)]
        else:
            self.masks = None
        self._mask_cache: dict[tuple[int, int], torch.Tensor] = {}

        self._style_images = style_tensors(styles, self.style_size, nets=self.nets)
        self._weights = torch.tensor(weights, dtype=torch.float32)
        # Histogram matching recolors each style to the content, so those statistics depend on
        # the content and are computed per image; otherwise once, here.
        self.style_stats: StyleStats | None = None
        if self.preserve_color != "histogram":
            self.style_stats = self.compute_style_stats(self._style_images)

    @torch.inference_mode()
    def compute_style_stats(self, style_images: Sequence[torch.Tensor]) -> StyleStats:
        """Encode each style image ``(1, 3, H, W)`` once and keep its relu4_1 mean/std."""
        return self.pipeline.style_set(style_images, self._weights)

    def __call__(self, content: Image.Image) -> Image.Image:
        """Stylize one PIL image (resized to ``size`` if set) and return a PIL image."""
        content = load_image(content, what="content image")
        self.check_fits(content.size, decoded=True)  # before the resize allocates it
        if self.size is not None:
            content = resize(content, self.size)
        return tensor_to_pil(self.stylize_tensor(pil_to_tensor(content))[0])

    def check_fits(self, size: tuple[int, int], decoded: bool = False) -> None:
        """Refuse a content of ``size`` (width, height; before the resize to ``size``) whose
        pass cannot fit in memory, with one line naming its size and the free memory; before
        it is ``decoded``, its decoding counts too."""
        w, h = resized_size(size, self.size)
        load = 0 if decoded else size[0] * size[1] * LOAD_BYTES_PER_PIXEL
        self.nets.check_memory(1, h, w, f"a {w}x{h} image", extra=load)

    @torch.inference_mode()
    def stylize_tensor(self, content: torch.Tensor, stats: StyleStats | None = None,
                       content_stats: ContentStats = None) -> torch.Tensor:
        """Stylize a batch ``(N, 3, H, W)`` in [0, 1] (any H, W) -> ``(N, 3, H, W)`` on the CPU.

        The batched entry point (HTTP server, video): style statistics are the cached ones unless
        ``stats`` is given; color preservation and masks apply as configured; ``content_stats``
        replaces the content's relu4_1 mean/std (video smooths them over frames).
        """
        if content.dim() != 4 or content.shape[1] != 3:
            raise PainterlyError(f"content batch must be (N, 3, H, W), got {tuple(content.shape)}")
        h, w = content.shape[-2:]
        check_content_size(h, w)
        content = content.float()
        masks = self._feature_masks(h, w)
        if stats is not None:
            out = self._run(content, stats.to(self.device), masks, content_stats)
        elif self.style_stats is not None:
            out = self._run(content, self.style_stats, masks, content_stats)
        else:  # histogram: recolor the styles to each content image
            outs = []
            for i in range(content.shape[0]):
                c = content[i: i + 1]
                styles = recolor_styles(self._style_images, c)
                outs.append(self._run(c, self.compute_style_stats(styles), masks, content_stats))
            out = torch.cat(outs)
        return finish_colors(out, content, self.preserve_color, inplace=True)  # out is ours

    def _feature_masks(self, h: int, w: int) -> torch.Tensor | None:
        """Masks resized to the content, padded like it, then averaged to relu4_1's grid."""
        if self.masks is None:
            return None
        if (h, w) in self._mask_cache:
            return self._mask_cache[(h, w)]
        masks = feature_masks(self.masks, h, w).to(self.device)
        self._mask_cache = {(h, w): masks}
        return masks

    def _run(self, content: torch.Tensor, stats: StyleStats, masks: torch.Tensor | None,
             content_stats: ContentStats = None) -> torch.Tensor:
        """The pipeline (tiled if large or asked), on the CPU."""
        return self.pipeline.run(content, stats, self.alpha, masks, tile=self.tile,
                                 content_stats=content_stats).cpu()
