"""The fast feed-forward objective (Johnson et al. 2016), one network for one or several styles
via conditional instance norm (Dumoulin et al. 2017): the part both fast networks share (styles,
targets, the two losses and their terms) and the transformer network's own (build, ``--init``,
export); the fast-lite network's are in :mod:`.fast_lite`.

Perceptual loss from the shared VGG19 extractor: content at ``content_layers`` (relu2_2), Gram
style at ``style_layers`` (relu1_2, relu2_2, relu3_3, relu4_3), total variation. Each batch item
gets a random style (one-hot, drawn from the sample's own random key so runs are deterministic);
style Gram targets are computed once per style with the style image's short side at ``style_size``
(default: the crop size).
Losses are per layer normalized (see :mod:`painterly.losses`) and computed per sample, averaged.

``warmup_recon``: the first iterations train the content loss alone (the style loss is still
computed and logged), then the style loss's weight rises linearly over as many iterations again.

``teacher``: distillation: the content target is an AdaIN model's stylization of the photo with
the sample's style (see :mod:`.fast_targets`, which computes every fixed target of a run).

``luminance``: train on luminance (Y of YIQ, as gray RGB) for both content and styles, so the
network learns texture, not color; at inference the content's colors are put back
(``color.luminance_transfer``) -- color preservation.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import nn

from ..adain.core import adain
from ..adain.model import CONTENT_LAYER, STYLE_LAYERS
from ..errors import PainterlyError
from ..fast.model import TransformerNet, load_model, save_model
from ..image import load_image, pil_to_tensor, tensor_to_pil
from ..losses import (
    adain_losses,
    color_loss,
    content_loss,
    grid_loss,
    laplacian_loss,
    per_sample_features,
    style_loss_gram,
    tv_loss,
    weighted_mean,
)
from .config import FastConfig, TrainConfig
from .fast_targets import adain_targets, build_teacher, perceptual_targets, style_target_size, to_luminance
from .objective import Objective, Terms, add_term, sum_terms
from .stability import stability_terms


class FastObjective(Objective):
    """Styles, targets and the loss of a fast network, and the transformer network's build,
    ``--init`` and export (``network == "lite"``: :class:`~.fast_lite.FastLiteObjective`,
    which :func:`painterly.training.build_trainer` picks)."""

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
        """:func:`~.fast_targets.style_target_size` at this run's style size."""
        return style_target_size(img, source, self.cfg.style_size or self.train.crop, device)

    def _prep(self, x: torch.Tensor) -> torch.Tensor:
        return to_luminance(x) if self.cfg.luminance else x

    def build(self, device: torch.device) -> nn.Module:
        """The network; also the loss network and the per-style targets on ``device`` (Gram
        matrices for the perceptual loss, VGG19 statistics for the adain loss)."""
        self.targets: dict[str, torch.Tensor] = {}
        self.style_stats: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        crop = self.cfg.style_size or self.train.crop
        if self.cfg.loss_kind() == "adain":
            self.encoder, self.style_stats, self.style_grams = adain_targets(
                self.cfg, crop, self.style_images, self._prep, device)
        else:
            self.extractor, self.targets = perceptual_targets(self.cfg, crop, self.style_images,
                                                              self._prep, device)
        self.teacher = (build_teacher(self.cfg, self.train, self.style_images, self._prep, device)
                        if self.cfg.teacher else None)
        return self._network(device)

    def _network(self, device: torch.device) -> nn.Module:
        """The trainable network on ``device``."""
        return TransformerNet(len(self.style_images), self.cfg.width, self.cfg.n_residual).to(device)

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
        ls = weighted_mean(torch.stack([
            style_loss_gram({k: feats_y[k][i:i + 1].float() for k in self.cfg.style_layers},
                            {k: self.targets[k][int(idx[i]):int(idx[i]) + 1] for k in self.cfg.style_layers})
            for i in range(x.shape[0])]), self._item_weights(idx)) / len(self.cfg.style_layers)
        return self._total(x, y, target, lc, ls, iteration, stable)

    def _adain_loss(self, x: torch.Tensor, idx: torch.Tensor, y: torch.Tensor, iteration: int,
                    stable: Terms) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """The AdaIN model's loss with each item's painting (:func:`painterly.losses.adain_losses`,
        the two figures ``painterly eval`` reports); with ``gram_weight``, Gram-matrix distances
        at relu1_1..relu4_1 too (channel statistics fix a palette and a contrast per channel, not
        which features occur together: the strokes)."""
        stats = {k: (m[idx], sd[idx]) for k, (m, sd) in self.style_stats.items()}
        with torch.no_grad():
            target = adain(self.encoder(x).float(), *stats[CONTENT_LAYER])
            pixel_target = x if self.teacher is None else self._prep(self.teacher_output(x, idx))
        layers = self.encoder.layers(self._prep(y) if self.cfg.luminance else y)
        items = per_sample_features(layers, STYLE_LAYERS)  # each item against its own painting
        weights = self._item_weights(idx)
        lc, ls = adain_losses(layers, target, stats, items=items, weights=weights)

        def gram() -> torch.Tensor:
            grams = {k: g[idx] for k, g in self.style_grams.items()}
            return weighted_mean(torch.stack([
                style_loss_gram(feats, {k: g[i:i + 1] for k, g in grams.items()})
                for i, feats in enumerate(items)]), weights) / len(STYLE_LAYERS)

        extra = add_term(dict(stable), "gram", self.cfg.gram_weight, gram, self.style_ramp(iteration))
        return self._total(x, y, pixel_target, lc, ls, iteration, extra)

    def _item_weights(self, idx: torch.Tensor) -> torch.Tensor | None:
        """Each batch item's multiplier of its style terms, from its style's ``per_style_weight``
        (None: all 1)."""
        if not self.cfg.per_style_weight:
            return None
        return torch.tensor(self.cfg.per_style_weight, dtype=torch.float32, device=idx.device)[idx]

    def _total(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor, lc: torch.Tensor,
               ls: torch.Tensor, iteration: int, extra: Terms | None = None
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """Content and style losses weighted, plus total variation, the ``extra`` terms, then the
        optional pixel, color, Laplacian and grid terms (pixel and color against ``target``: the
        teacher's output or the photo)."""
        ltv = tv_loss(y.float())
        style_weight = self.cfg.style_weight * self.style_ramp(iteration)
        total = self.cfg.content_weight * lc + style_weight * ls + self.cfg.tv_weight * ltv
        y_px = self._prep(y) if self.cfg.luminance else y  # compared with the target in pixels
        terms = dict(extra or {})
        add_term(terms, "pixel", self.cfg.pixel_weight,
                 lambda: torch.nn.functional.l1_loss(y_px.float(), target.float()))
        add_term(terms, "color", self.cfg.color_weight, lambda: color_loss(y_px.float(), target.float()))
        add_term(terms, "laplacian", self.cfg.laplacian_weight,
                 lambda: laplacian_loss(y_px.float(), x.float()))
        add_term(terms, "grid", self.cfg.grid_weight, lambda: grid_loss(y.float().clamp(0, 1)))
        parts: dict[str, torch.Tensor] = {}
        total = sum_terms(total, terms, parts)
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
        per-style norms become this run's, in order: fine-tune on the same styles or refine)."""
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
        self._save(net, path, {"luminance": self.cfg.luminance, "training": config})
        return path

    def _save(self, net: nn.Module, path: str, extra: dict) -> None:
        save_model(net, path, self.style_names, extra)
