"""The fixed targets of the fast objectives (:mod:`.fast`, :mod:`.fast_lite`), computed once per
run from the style images: each image's size, its Gram matrices (the perceptual loss), its VGG19
statistics (the adain loss) and the AdaIN teacher with each style's statistics.

``teacher``: distillation. The content target is not the photo but an AdaIN decoder's
stylization of it with the sample's style (the shipped decoder or a file), so the network learns
to reproduce a known-good stylization (a supervised target converges in far fewer iterations
than the perceptual objective alone, which is what a CPU budget needs); the Gram style loss
still pulls towards the painting itself.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
from PIL import Image

from .. import registry
from ..adain.core import StyleStats
from ..adain.model import MULTIPLE, STYLE_LAYERS, Encoder
from ..color import rgb_to_yiq
from ..errors import PainterlyError
from ..image import pil_to_tensor, resize
from ..losses import gram_matrix, layer_stats
from .config import FastConfig, TrainConfig
from .data import resize_short

if TYPE_CHECKING:
    from ..adain.pipeline import AdaINPipeline
    from ..features import FeatureExtractor

#: Memory per pixel of a style image's VGG19 forward for its Gram targets (as gatys's targets).
STYLE_BYTES_PER_PIXEL = 1500

#: How the objective prepares an image tensor (luminance or as it is).
Prep = Callable[[torch.Tensor], torch.Tensor]
Stats = dict[str, tuple[torch.Tensor, torch.Tensor]]


def to_luminance(x: torch.Tensor) -> torch.Tensor:
    """RGB -> its luminance as a gray RGB image (same shape)."""
    return rgb_to_yiq(x)[:, :1].expand(-1, 3, -1, -1).contiguous()


def style_target_size(img: Image.Image, source: str, crop: int, device: torch.device | None = None
                      ) -> tuple[int, int]:
    """The size a style image is resized to (short side ``crop``: ``style_size``, else the
    training crop), refused with one line when it would be over the pixel cap or (on ``device``)
    over the memory its Gram targets need: a 1x20000 image would become 256x5120000 and take
    ~20 GB."""
    from ..image import max_pixels

    w, h = img.size
    scale = crop / min(w, h)
    tw, th = max(crop, round(w * scale)), max(crop, round(h * scale))
    cap = max_pixels()
    if tw * th > cap:
        raise PainterlyError(f"style image {source} is {w}x{h}: with its short side resized to "
                             f"{crop} px it would be {tw}x{th} = {tw * th / 1e6:.0f} megapixels, "
                             f"over the {cap / 1e6:.0f} megapixel cap; crop it to a less extreme shape")
    if device is not None:
        from ..device import available_memory

        need, free = tw * th * STYLE_BYTES_PER_PIXEL, available_memory(device)
        if free is not None and need > free:
            raise PainterlyError(f"style image {source} ({w}x{h}, {tw}x{th} at a short side of "
                                 f"{crop} px) "
                                 f"needs about {need / 2**30:.1f} GiB for its style targets, but only "
                                 f"{free / 2**30:.1f} GiB is free on {device.type}: crop it to a less "
                                 f"extreme shape or lower --crop / --style-size")
    return tw, th


def perceptual_targets(cfg: FastConfig, crop: int, images: Sequence[Image.Image], prep: Prep,
                       device: torch.device) -> tuple[FeatureExtractor, dict[str, torch.Tensor]]:
    """The VGG19 extractor and each style's Gram matrices at ``style_layers`` (stacked per style),
    the style image's short side at ``crop``."""
    from ..features import build_extractor

    extractor = build_extractor("vgg19").to(device)
    extractor.resolve(list(cfg.content_layers) + list(cfg.style_layers))  # unknown layers fail here
    with torch.no_grad():
        grams = []
        for src, img in zip(cfg.styles, images):
            style_target_size(img, src, crop, device)
            s = prep(pil_to_tensor(resize_short(img, crop), device))
            feats = extractor(s, cfg.style_layers)
            grams.append({k: gram_matrix(v) for k, v in feats.items()})
        targets = {k: torch.cat([g[k] for g in grams]) for k in cfg.style_layers}
    return extractor, targets


def adain_targets(cfg: FastConfig, crop: int, images: Sequence[Image.Image], prep: Prep,
                  device: torch.device) -> tuple[Encoder, Stats, dict[str, torch.Tensor]]:
    """The frozen VGG19 to relu4_1 and each painting's statistics at relu1_1..relu4_1 (and their
    Gram matrices for ``gram_weight``), the painting resized to ``teacher_style_size`` on its long
    side (as ``painterly eval`` and the AdaIN stylizer see it), stacked per style."""
    encoder = Encoder().to(device)
    per_style, grams = [], []
    with torch.no_grad():
        for src, img in zip(cfg.styles, images):
            style_target_size(img, src, crop, device)
            s = prep(pil_to_tensor(resize(img, cfg.teacher_style_size), device))
            feats = encoder.layers(s)
            per_style.append(layer_stats(feats))
            if cfg.gram_weight > 0:
                grams.append({k: gram_matrix(v.float()) for k, v in feats.items()})
    stats = {k: (torch.cat([p[k][0] for p in per_style]), torch.cat([p[k][1] for p in per_style]))
             for k in STYLE_LAYERS}
    return encoder, stats, {k: torch.cat([g[k] for g in grams]) for k in STYLE_LAYERS} if grams else {}


def build_teacher(cfg: FastConfig, train: TrainConfig, images: Sequence[Image.Image], prep: Prep,
                  device: torch.device) -> tuple[AdaINPipeline, list[StyleStats]]:
    """The AdaIN model to distil (the VGG decoder by default, or any AdaIN model file), with
    each style's statistics. In fp32, or in bf16 (channels-last on a CPU) when the run is
    ``--amp bf16``: its pictures are targets of 4x4-block colors or pixels, which bf16 moves
    by about 0.001, and the VGG decoder's forward was most of a fast-lite iteration in fp32
    (0.84 -> 0.31 s for 4 crops of 192 px on a 2-core CPU with native bf16)."""
    from ..adain.networks import resolve_decoder
    from ..adain.pipeline import AdaINPipeline

    if train.crop % MULTIPLE:
        raise PainterlyError(f"--teacher needs a crop that is a multiple of {MULTIPLE}, "
                             f"got {train.crop}")
    # A registered network's name (its shipped file; "default": the VGG decoder, the
    # option's old word), else a model file of any network.
    name = "vgg" if cfg.teacher == "default" else cfg.teacher
    shipped = name in registry.NETWORKS
    model, _ = resolve_decoder(None if shipped else name, name if shipped else "auto")
    bf16 = train.amp == "bf16"
    pipeline = AdaINPipeline.load(copy.deepcopy(model), "auto", device,
                                  precision="bf16" if bf16 else "fp32",
                                  channels_last=bf16 and device.type == "cpu")
    one = torch.ones(1, device=device)
    stats = []
    for img in images:
        style = pil_to_tensor(resize(img, cfg.teacher_style_size), device)
        mean, std = pipeline.style_stats(prep(style))
        stats.append(StyleStats(mean.clone(), std.clone(), one))
    return pipeline, stats
