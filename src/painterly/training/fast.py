"""The fast feed-forward objective (Johnson et al. 2016), one network for one or several styles
via conditional instance norm (Dumoulin et al. 2017).

Perceptual loss from the shared VGG19 extractor: content at ``content_layers`` (relu2_2), Gram
style at ``style_layers`` (relu1_2, relu2_2, relu3_3, relu4_3), total variation. Each batch item
gets a random style (one-hot, drawn from the sample's own random key so runs are deterministic);
style Gram targets are computed once per style with the style image's short side at ``style_size``
(default: the crop size).
Losses are per layer normalized (see :mod:`painterly.losses`) and computed per sample, averaged.

``warmup_recon``: the first iterations train the content loss alone (the style loss is still
computed and logged), then the style loss's weight rises linearly over as many iterations again.

``teacher``: distillation. The content target is not the photo but an AdaIN decoder's
stylization of it with the sample's style (the shipped decoder or a file), so the network learns
to reproduce a known-good stylization (a supervised target converges in far fewer iterations
than the perceptual objective alone, which is what a CPU budget needs); the Gram style loss
still pulls towards the painting itself.

``luminance``: train on luminance (Y of YIQ, as gray RGB) for both content and styles, so the
network learns texture, not color; at inference the content's colors are put back
(``color.luminance_transfer``) -- color preservation.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from .. import registry
from ..adain.core import StyleStats, adain
from ..adain.model import CONTENT_LAYER, MULTIPLE, STYLE_LAYERS
from ..adain.networks import resolve_decoder
from ..adain.pipeline import AdaINPipeline
from ..color import rgb_to_yiq
from ..errors import PainterlyError
from ..fast.model import TransformerNet, load_model, save_model
from ..features import build_extractor
from ..image import load_image, pil_to_tensor, resize, tensor_to_pil
from ..losses import (
    color_loss,
    content_loss,
    gram_matrix,
    grid_loss,
    laplacian_loss,
    mean_std,
    style_loss_gram,
    style_loss_mean_std,
    tv_loss,
)
from .adain import per_sample_content_loss
from .config import FastConfig, TrainConfig
from .data import resize_short
from .stability import stability_terms

#: Memory per pixel of a style image's VGG19 forward for its Gram targets (as gatys's targets).
STYLE_BYTES_PER_PIXEL = 1500


def to_luminance(x: torch.Tensor) -> torch.Tensor:
    """RGB -> its luminance as a gray RGB image (same shape)."""
    return rgb_to_yiq(x)[:, :1].expand(-1, 3, -1, -1).contiguous()


class FastObjective:
    """Builds the transformer network, computes the perceptual loss, validation rows, exports."""

    name = "fast"
    uses_style_stream = False

    def __init__(self, cfg: FastConfig, train: TrainConfig) -> None:
        cfg.check()
        self.cfg, self.train = cfg, train
        self.style_images = [load_image(s, what="style image") for s in cfg.styles]
        self.style_names = [Path(s).stem if not str(s).startswith("builtin:") else str(s).split(":", 1)[1]
                            for s in cfg.styles]
        for src, img in zip(cfg.styles, self.style_images):
            self._style_target_size(img, src)  # refused here, before any model is built
        self.val_content: list[Image.Image] = []

    def _style_target_size(self, img: Image.Image, source: str, device: torch.device | None = None
                           ) -> tuple[int, int]:
        """The size a style image is resized to (short side ``style_size``, else the crop), refused
        with one line when it would be over the pixel cap or (on ``device``) over the memory its
        Gram targets need: a 1x20000 image would become 256x5120000 and take ~20 GB."""
        from ..image import max_pixels

        w, h = img.size
        crop = self.cfg.style_size or self.train.crop
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

    def _prep(self, x: torch.Tensor) -> torch.Tensor:
        return to_luminance(x) if self.cfg.luminance else x

    def build(self, device: torch.device) -> nn.Module:
        """The network; also the loss network and the per-style targets on ``device`` (Gram
        matrices for the perceptual loss, VGG19 statistics for the adain loss)."""
        self.targets: dict[str, torch.Tensor] = {}
        self.style_stats: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        if self.cfg.loss_kind() == "adain":
            self._build_adain_targets(device)
        else:
            self._build_perceptual_targets(device)
        self.teacher = self._build_teacher(device) if self.cfg.teacher else None
        n = len(self.style_images)
        if self.cfg.network == "lite":
            # The shipped lite AdaIN network with these styles baked in: it starts at the
            # arbitrary model's pictures (an --init file's weights replace these after this; its
            # architecture, a skip or none, is the one built here).
            return self._lite_start().to(device)
        return TransformerNet(n, self.cfg.width, self.cfg.n_residual).to(device)

    def _build_adain_targets(self, device: torch.device) -> None:
        """The frozen VGG19 to relu4_1 and each painting's statistics at relu1_1..relu4_1 (and
        their Gram matrices for ``gram_weight``), the painting resized to ``teacher_style_size``
        on its long side (as ``painterly eval`` and the AdaIN stylizer see it), stacked per style."""
        from ..adain.model import Encoder

        self.encoder = Encoder().to(device)
        per_style, grams = [], []
        with torch.no_grad():
            for src, img in zip(self.cfg.styles, self.style_images):
                self._style_target_size(img, src, device)
                s = self._prep(pil_to_tensor(resize(img, self.cfg.teacher_style_size), device))
                feats = self.encoder.layers(s)
                per_style.append({k: mean_std(v.float()) for k, v in feats.items()})
                if self.cfg.gram_weight > 0:
                    grams.append({k: gram_matrix(v.float()) for k, v in feats.items()})
        self.style_stats = {k: (torch.cat([p[k][0] for p in per_style]),
                                torch.cat([p[k][1] for p in per_style])) for k in STYLE_LAYERS}
        self.style_grams = {k: torch.cat([g[k] for g in grams]) for k in STYLE_LAYERS} if grams else {}

    def _build_perceptual_targets(self, device: torch.device) -> None:
        """The VGG19 extractor and each style's Gram matrices at ``style_layers``."""
        layers = list(self.cfg.content_layers) + list(self.cfg.style_layers)
        self.extractor = build_extractor("vgg19").to(device)
        self.extractor.resolve(layers)  # unknown layer names fail here, before training
        with torch.no_grad():
            grams = []
            for src, img in zip(self.cfg.styles, self.style_images):
                self._style_target_size(img, src, device)
                s = self._prep(pil_to_tensor(resize_short(img, self.cfg.style_size or self.train.crop),
                                             device))
                feats = self.extractor(s, self.cfg.style_layers)
                grams.append({k: gram_matrix(v) for k, v in feats.items()})
            self.targets = {k: torch.cat([g[k] for g in grams]) for k in self.cfg.style_layers}

    def _lite_start(self) -> nn.Module:
        """The network a ``--network lite`` run builds: the ``--init`` file's architecture (a
        lite AdaIN file baked with this run's styles, or a fast-lite file's own), else the
        shipped lite network baked."""
        from ..adain.lite import is_lite_config
        from ..fast.lite import fast_lite_from_state, is_fast_lite_config
        from ..weights import load_model_file

        if self.train.init:
            state, config = load_model_file(self.train.init)
            if is_lite_config(config):
                return self._bake(self.train.init)
            if is_fast_lite_config(config):
                return self._fast_lite_init(fast_lite_from_state(state, config, self.train.init),
                                            config, self.cfg.lite_decoder_widths or None)
        return self._bake(None)

    def _fast_lite_init(self, net: nn.Module, config: dict,
                        decoder_widths: Sequence[int] | None) -> nn.Module:
        """A fast-lite ``--init`` network for this run: as it is for the same styles (a
        fine-tune or a continuation), else its encoder and decoder with this run's styles baked
        in (:func:`~painterly.fast.lite.rebake`: a user's painting started from the shipped
        eight); its decoder refit to ``decoder_widths`` if given."""
        from ..fast.lite import rebake, refit

        if list(config.get("style_names") or []) != self.style_names:
            net = rebake(net, [self._prep_image(img) for img in self.style_images],
                         self.cfg.teacher_style_size)
        return refit(net, decoder_widths, self.cfg.upsample or None)

    def _bake(self, lite_path: str | None) -> nn.Module:
        """A fast-lite network from a lite AdaIN network file (None: the shipped one) and this
        run's styles (their statistics at ``teacher_style_size``, as the AdaIN stylizer sees
        them), its decoder pruned or widened to ``lite_decoder_widths`` if given."""
        from ..adain.lite import load_lite
        from ..adain.networks import default_model_path
        from ..fast.lite import bake

        path = str(lite_path or default_model_path("lite"))
        lite, _ = load_lite(path)
        return bake(lite, [self._prep_image(img) for img in self.style_images],
                    self.cfg.teacher_style_size, self.cfg.lite_decoder_widths or None,
                    self.cfg.upsample or None)

    def _prep_image(self, img: Image.Image) -> Image.Image:
        """A style image as the network sees it (gray for a --luminance run)."""
        return tensor_to_pil(self._prep(pil_to_tensor(img))) if self.cfg.luminance else img

    def _build_teacher(self, device: torch.device) -> tuple[AdaINPipeline, list[StyleStats]]:
        """The AdaIN model to distil (the VGG decoder by default, or any AdaIN model file), with
        each style's statistics. In fp32, or in bf16 (channels-last on a CPU) when the run is
        ``--amp bf16``: its pictures are targets of 4x4-block colors or pixels, which bf16 moves
        by about 0.001, and the VGG decoder's forward was most of a fast-lite iteration in fp32
        (0.84 -> 0.31 s for 4 crops of 192 px on a 2-core CPU with native bf16)."""
        if self.train.crop % MULTIPLE:
            raise PainterlyError(f"--teacher needs a crop that is a multiple of {MULTIPLE}, "
                                 f"got {self.train.crop}")
        # A registered network's name (its shipped file; "default": the VGG decoder, the
        # option's old word), else a model file of any network.
        name = "vgg" if self.cfg.teacher == "default" else self.cfg.teacher
        shipped = name in registry.NETWORKS
        model, _ = resolve_decoder(None if shipped else name, name if shipped else "auto")
        bf16 = self.train.amp == "bf16"
        pipeline = AdaINPipeline.load(copy.deepcopy(model), "auto", device,
                                      precision="bf16" if bf16 else "fp32",
                                      channels_last=bf16 and device.type == "cpu")
        one = torch.ones(1, device=device)
        stats = []
        for img in self.style_images:
            style = pil_to_tensor(resize(img, self.cfg.teacher_style_size), device)
            mean, std = pipeline.style_stats(self._prep(style))
            stats.append(StyleStats(mean.clone(), std.clone(), one))
        return pipeline, stats

    @torch.no_grad()
    def teacher_output(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """The teacher's stylization of each (prepared) content with its own style."""
        assert self.teacher is not None
        pipeline, stats = self.teacher
        return pipeline.run(x, [stats[int(i)] for i in idx], auto_tile=False).clamp(0, 1)

    def loss(self, net: nn.Module, batch: dict, iteration: int
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """The loss of a batch (perceptual or adain); each item stylized with its own style."""
        x = self._prep(batch["content"])
        n_styles = len(self.style_images)
        idx = (batch["content_key"] % n_styles).to(x.device)
        onehot = torch.nn.functional.one_hot(idx, n_styles).float()
        y = net(x, onehot)
        stable = stability_terms(lambda view: net(view, onehot), x, y, iteration,
                                 self.train.seed, self.cfg.hatch_weight, self.cfg.shift_weight)
        if self.cfg.loss_kind() == "adain":
            return self._adain_loss(x, idx, y, iteration, stable)
        feats_y = self.extractor(self._prep(y) if self.cfg.luminance else y,
                                 list(self.cfg.content_layers) + list(self.cfg.style_layers))
        with torch.no_grad():
            target = x if self.teacher is None else self._prep(self.teacher_output(x, idx))
            feats_x = self.extractor(target, self.cfg.content_layers)
        lc = sum(torch.stack([content_loss(feats_y[k][i:i + 1].float(), feats_x[k][i:i + 1].float())
                              for i in range(x.shape[0])]).mean() for k in self.cfg.content_layers)
        lc = lc / len(self.cfg.content_layers)
        ls = torch.stack([
            style_loss_gram({k: feats_y[k][i:i + 1].float() for k in self.cfg.style_layers},
                            {k: self.targets[k][int(idx[i]):int(idx[i]) + 1] for k in self.cfg.style_layers})
            for i in range(x.shape[0])]).mean() / len(self.cfg.style_layers)
        return self._total(x, y, target, lc, ls, iteration, stable)

    def _adain_loss(self, x: torch.Tensor, idx: torch.Tensor, y: torch.Tensor, iteration: int,
                    stable: dict[str, tuple[float, torch.Tensor]]
                    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """The AdaIN model's loss with each item's painting: relu4_1 of the output against AdaIN
        of the photo's relu4_1 with the painting's statistics, and mean/std distances at
        relu1_1..relu4_1 to the painting's (the two figures ``painterly eval`` reports); with
        ``gram_weight``, Gram-matrix distances at the same layers too (channel statistics fix a
        palette and a contrast per channel, not which features occur together: the strokes)."""
        stats = {k: (m[idx], sd[idx]) for k, (m, sd) in self.style_stats.items()}
        with torch.no_grad():
            target = adain(self.encoder(x).float(), *stats[CONTENT_LAYER])
            pixel_target = x if self.teacher is None else self._prep(self.teacher_output(x, idx))
        layers = self.encoder.layers(self._prep(y) if self.cfg.luminance else y)
        lc = per_sample_content_loss(layers[CONTENT_LAYER].float(), target)
        # Each item against its own painting: the style losses are per sample, then averaged.
        items = [{k: layers[k][i:i + 1].float() for k in STYLE_LAYERS} for i in range(x.shape[0])]
        ls = torch.stack([
            style_loss_mean_std(feats, {k: (m[i:i + 1], sd[i:i + 1]) for k, (m, sd) in stats.items()})
            for i, feats in enumerate(items)]).mean()
        extra = dict(stable)  # the hatch and shift terms (training.stability)
        if self.cfg.gram_weight > 0:
            grams = {k: g[idx] for k, g in self.style_grams.items()}
            lg = torch.stack([
                style_loss_gram(feats, {k: g[i:i + 1] for k, g in grams.items()})
                for i, feats in enumerate(items)]).mean() / len(STYLE_LAYERS)
            extra["gram"] = (self.cfg.gram_weight * self.style_ramp(iteration), lg)
        return self._total(x, y, pixel_target, lc, ls, iteration, extra)

    def _total(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor, lc: torch.Tensor,
               ls: torch.Tensor, iteration: int,
               extra: dict[str, tuple[float, torch.Tensor]] | None = None
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """Content and style losses weighted, plus total variation, the optional pixel, color,
        Laplacian and grid terms (pixel and color against ``target``: the teacher's output or
        the photo) and ``extra`` terms (name: (weight, loss))."""
        ltv = tv_loss(y.float())
        style_weight = self.cfg.style_weight * self.style_ramp(iteration)
        total = self.cfg.content_weight * lc + style_weight * ls + self.cfg.tv_weight * ltv
        parts = {}
        for name, (weight, term) in (extra or {}).items():
            total = total + weight * term
            parts[name] = term.detach()
        y_px = self._prep(y) if self.cfg.luminance else y  # compared with the target in pixels
        if self.cfg.pixel_weight > 0:
            lpix = torch.nn.functional.l1_loss(y_px.float(), target.float())
            total = total + self.cfg.pixel_weight * lpix
            parts["pixel"] = lpix.detach()
        if self.cfg.color_weight > 0:
            lcol = color_loss(y_px.float(), target.float())
            total = total + self.cfg.color_weight * lcol
            parts["color"] = lcol.detach()
        if self.cfg.laplacian_weight > 0:
            ll = laplacian_loss(y_px.float(), x.float())
            total = total + self.cfg.laplacian_weight * ll
            parts["laplacian"] = ll.detach()
        if self.cfg.grid_weight > 0:
            lg = grid_loss(y.float().clamp(0, 1))
            total = total + self.cfg.grid_weight * lg
            parts["grid"] = lg.detach()
        return total, {"loss": total.detach(), "content": lc.detach(), "style": ls.detach(),
                       "tv": ltv.detach(), **parts}, y

    def in_warmup(self, iteration: int) -> bool:
        """The first ``warmup_recon`` iterations train the content loss only: a network that first
        learns to pass the photo through does not fall into painting one fixed, photo-independent
        blob (the failure seen when the style loss drives a fresh network from the start)."""
        return iteration < self.cfg.warmup_recon

    def style_ramp(self, iteration: int) -> float:
        """The style loss's share: 0 in the warm-up, then rising linearly to 1 over as many
        iterations again. Switching it on at once makes Adam (whose moments saw only the content
        loss's small gradients) take steps ~30x its lr and wreck the network."""
        w = self.cfg.warmup_recon
        return 1.0 if w == 0 else min(1.0, max(0.0, (iteration - w + 1) / w))

    def style_loss_name(self, iteration: int) -> str | None:
        return None if self.in_warmup(iteration) else "style"

    def load_init(self, net: nn.Module, path: str) -> None:
        """Warm start from an exported network of the same architecture and style count (its
        per-style norms become this run's, in order: fine-tune on the same styles or refine).
        A ``--network lite`` run also takes a lite AdaIN network file, baked with this run's
        styles."""
        from ..weights import load_model_file

        if self.cfg.network == "lite":
            from ..adain.lite import is_lite_config
            from ..fast.lite import is_fast_lite_config

            _, config = load_model_file(path)
            if is_lite_config(config):
                init = self._bake(path)
            elif is_fast_lite_config(config):
                init = self._fast_lite_init(load_model(path)[0], config, net.decoder_widths)
            else:
                raise PainterlyError(f"--init {path}: a --network lite run starts from a lite AdaIN "
                                     f"network or a fast-lite network, not kind "
                                     f"'{config.get('kind', 'unknown')}'")
            if (init.n_styles, init.widths) != (net.n_styles, net.widths):
                raise PainterlyError(f"--init {path}: a fast-lite network with {init.n_styles} "
                                     f"style(s), widths {list(init.widths)}; this run trains "
                                     f"{net.n_styles}, {list(net.widths)}")
            net.load_state_dict(init.state_dict())
            return
        init, config = load_model(path)
        if not isinstance(init, TransformerNet):
            raise PainterlyError(f"--init {path}: a {config.get('kind')} network; this run trains "
                                 f"a transformer network (use --network lite for it)")
        mine = (net.n_styles, net.width, len(net.res))
        theirs = (init.n_styles, init.width, len(init.res))
        if mine != theirs:
            raise PainterlyError(f"--init {path}: a network with {theirs[0]} style(s), width {theirs[1]}, "
                                 f"{theirs[2]} residual blocks; this run trains {mine[0]}, {mine[1]}, "
                                 f"{mine[2]}")
        net.load_state_dict(init.state_dict())

    def set_validation(self, content: list[Image.Image], style: list[Image.Image]) -> None:
        self.val_content = content

    @torch.no_grad()
    def validation_rows(self, net: nn.Module, device: torch.device
                        ) -> tuple[list[list[Image.Image]], list[str]]:
        """content | its stylization with each style."""
        rows = []
        for c_img in self.val_content:
            x = self._prep(pil_to_tensor(c_img, device))
            rows.append([c_img] + [tensor_to_pil(net(x, i).float()) for i in range(len(self.style_images))])
        return rows, ["content"] + self.style_names

    def export(self, net: nn.Module, run_dir, config: dict) -> str:
        """``RUN_DIR/model.safetensors`` + JSON (style names, architecture, training config)."""
        path = str(run_dir / "model.safetensors")
        extra = {"luminance": self.cfg.luminance, "training": config}
        if self.cfg.network == "lite":
            from ..fast.lite import save_fast_lite

            save_fast_lite(net, path, self.style_names, extra)
        else:
            save_model(net, path, self.style_names, extra)
        return path
