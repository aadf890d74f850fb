"""The lite network's objective: distil the VGG19 AdaIN model into the lite network
(:mod:`painterly.adain.lite`), with the frozen VGG19 as loss network.

For a content crop ``c`` and a style crop ``s``::

    g = lite_decoder(AdaIN(lite_encoder(c), lite_encoder(s)))        # the student, end to end
    T = AdaIN(vgg(c), vgg(s))                                         # the full model's target
    content   = ||vgg(g) - T||^2 at relu4_1                           # as the VGG decoder's loss
    style     = sum over relu1_1..relu4_1 of mean/std distances of vgg(g) and vgg(s)
    embed     = ||W lite_encoder(c) - vgg(c)||^2                     # Collaborative Distillation
    laplacian = Laplacian structure loss of g against c               # optional (Li et al. 2017)

All normalized per layer and averaged per sample, as :mod:`painterly.training.adain`. The two
VGG passes that only read the frozen encoder (``vgg(c)`` and the statistics of ``s``) come from
the caches of :mod:`.cache`, which here keep the crops' pixels too; so a step runs the small
student and one VGG pass (with its backward) on the output.
"""

from __future__ import annotations

import torch
from PIL import Image
from torch import nn

from ..adain.core import adain
from ..adain.lite import LiteNetwork, fit_decoder, lite_from_teachers, load_lite, save_lite
from ..adain.model import Encoder
from ..errors import PainterlyError
from ..image import pil_to_tensor, tensor_to_pil
from ..losses import content_loss, grid_loss, laplacian_loss, mean_std
from .adain import AdaINObjective
from .cache import ContentFeatureCache, StyleStatsBank, cached_batches
from .objective import add_term, sum_terms
from .stability import stability_terms


def _unwrap(net: nn.Module) -> LiteNetwork:
    """The LiteNetwork inside a DDP or compiled wrapper."""
    while not isinstance(net, LiteNetwork):
        inner = getattr(net, "module", None) or getattr(net, "_orig_mod", None)
        if inner is None:
            raise PainterlyError("the lite objective trains a LiteNetwork")
        net = inner
    return net


class LiteObjective(AdaINObjective):
    """Builds the lite network from the full model, computes its distillation loss, exports it."""

    def build(self, device: torch.device) -> nn.Module:
        from ..adain.networks import resolve_decoder

        if self.encoder is None:
            self.encoder = Encoder(padding=self.cfg.encoder_padding)
        self.encoder = self.encoder.to(device)
        from ..adain.networks import network_kind
        from ..errors import PainterlyError

        teacher, _ = resolve_decoder(self.cfg.teacher or None, "vgg" if not self.cfg.teacher else "auto")
        if network_kind(teacher) != "vgg":  # the lite network is cut from a VGG decoder
            raise PainterlyError(f"--teacher {self.cfg.teacher} is a {network_kind(teacher)} "
                                 f"network: the lite network is cut from a VGG decoder (a "
                                 f"`painterly train adain` export); to start from a lite "
                                 f"network, use --init")
        self.teacher = teacher.to(device).eval().requires_grad_(False)
        net = self._decoder if self._decoder is not None else lite_from_teachers(
            self.teacher, encoder_padding=self.cfg.encoder_padding, skip=self.cfg.lite_skip,
            decoder_widths=self.cfg.lite_decoder_widths or None, upsample=self.cfg.upsample)
        return net.to(device)

    def in_warmup(self, iteration: int) -> bool:
        return False

    def loss(self, net: nn.Module, batch: dict, iteration: int
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        c, s = batch["content"], batch["style"]
        f_c, s_stats, target = self.targets(batch)
        g, embedded = net(c, s)
        lc, ls = self.content_style_losses(g, target, s_stats)
        total = self.cfg.content_weight * lc + self.cfg.style_weight * ls
        parts = {"content": lc.detach(), "style": ls.detach()}
        terms = add_term({}, "embed", self.cfg.embed_weight,
                         lambda: content_loss(embedded.float(), f_c.float()))
        add_term(terms, "laplacian", self.cfg.laplacian_weight, lambda: laplacian_loss(g, c))
        add_term(terms, "grid", self.cfg.grid_weight, lambda: grid_loss(g))
        terms.update(stability_terms(lambda view: net(view, s)[0], c, g, iteration, self.train.seed,
                                     self.cfg.hatch_weight, self.cfg.shift_weight))
        total = sum_terms(total, terms, parts)
        return total, {"loss": total.detach(), **parts}, g

    def uses_cache(self, iteration: int) -> bool:
        return self.cfg.style_bank > 0

    def cached_batches(self, train, content_paths, style_paths, device: torch.device,
                       rank: int, world_size: int, start: int):
        """Cached VGG features and statistics, with the crops' pixels for the student."""
        content = ContentFeatureCache(content_paths, train.resize, train.crop, train.seed, self.encoder,
                                      device, self.cfg.content_cache_mb / max(1, world_size),
                                      keep_pixels=True)
        style = StyleStatsBank(style_paths, train.resize, train.crop, train.seed + 1, self.encoder,
                               device, self.cfg.style_bank, augment=train.style_augment, keep_pixels=True)
        self.caches = (content, style)
        return cached_batches(content, style, train.batch_size, rank, world_size, start)

    def load_init(self, net: nn.Module, path: str) -> None:
        """Warm start from an exported lite network (same encoder widths; one without a skip also
        starts a run with one: the skip's conv stays zero, so the pictures are the same at first;
        a narrower decoder is widened with the same function, a wider one pruned (``narrow``))."""
        init, _ = load_lite(path)
        own = _unwrap(net)
        if init.widths != own.widths:
            raise PainterlyError(f"--init {path}: a lite network of widths {list(init.widths)}, this "
                                 f"run trains {list(own.widths)}")
        if init.skip and init.skip != own.skip:
            raise PainterlyError(f"--init {path}: a lite network with the {init.skip} skip; this run "
                                 f"trains {'none' if not own.skip else own.skip} (--lite-skip)")
        pairs = list(zip(own.decoder_widths, init.decoder_widths))
        if any(a < b for a, b in pairs) and any(a > b for a, b in pairs):
            raise PainterlyError(f"--init {path}: its decoder widths {list(init.decoder_widths)} "
                                 f"are wider in some blocks and narrower in others than this "
                                 f"run's {list(own.decoder_widths)}")
        # The decoder as is, widened (same pictures) or pruned (a faster network); the rest copied.
        fit_decoder(own.decoder, init.decoder.state_dict())
        rest = {k: v for k, v in init.state_dict().items() if not k.startswith("decoder.")}
        own.load_state_dict({**own.state_dict(), **rest})

    @torch.no_grad()
    def validation_rows(self, net: nn.Module, device: torch.device
                        ) -> tuple[list[list[Image.Image]], list[str]]:
        """content | style | lite | the full VGG model (what it distils)."""
        lite = _unwrap(net)
        rows = []
        for c_img, s_img in zip(self.val_content, self.val_style):
            c = pil_to_tensor(c_img, device)
            s = pil_to_tensor(s_img, device)
            g, _ = lite(c, s)
            full = self.teacher(adain(self.encoder(c), *mean_std(self.encoder(s))))
            rows.append([c_img, s_img, tensor_to_pil(g.float()), tensor_to_pil(full.float())])
        return rows, ["content", "style", "lite", "vgg"]

    def export(self, net: nn.Module, run_dir, config: dict) -> str:
        """``RUN_DIR/lite.safetensors`` (fp16) + JSON with the training config."""
        path = str(run_dir / "lite.safetensors")
        save_lite(_unwrap(net), path, {"training": config})
        return path
