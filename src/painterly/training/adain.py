"""The AdaIN objective (Huang & Belongie 2017): train a decoder to invert a frozen VGG19 encoder
so that decoding AdaIN-mixed features gives the stylized image.

    t = AdaIN(f(c), f(s));  g = decoder(t)
    content loss = ||f(g) - t||^2 at relu4_1
    style loss   = sum over relu1_1..relu4_1 of ||mean(f(g)) - mean(f(s))||^2 + ||std(..) - std(..)||^2

Scale: the default encoder is the raw Caffe VGG19, whose activations differ ~20x between layers;
both losses are normalized per layer by the target's scale (``losses.content_loss`` and
``losses.style_loss_mean_std(normalize=True)``), so each layer counts about equally. They are
computed **per sample** and averaged over the batch, so the loss of a batch is the mean of its
items' losses -- which makes a DDP step exactly a single-process step on the combined batch.

Optional reconstruction warm-up: the first ``warmup_recon`` iterations train plain autoencoding,
pixel MSE + normalized relu4_1 feature MSE of ``decoder(f(c))`` against ``c``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..adain.core import adain
from ..adain.model import CONTENT_LAYER, Decoder, Encoder, load_decoder, save_decoder
from ..errors import PainterlyError
from ..image import pil_to_tensor, tensor_to_pil
from ..losses import adain_losses, grid_loss, layer_stats, mean_std, per_sample_content_loss
from ..weights import save_model_file
from .cache import ContentFeatureCache, StyleStatsBank, cached_batches
from .config import AdaINConfig, TrainConfig
from .objective import Objective, add_term, sum_terms


class AdaINObjective(Objective):
    """Builds the decoder, computes the loss of a batch, renders validation rows, exports."""

    name = "adain"
    uses_style_stream = True

    def __init__(self, cfg: AdaINConfig, train: TrainConfig, decoder: nn.Module | None = None,
                 encoder: Encoder | None = None) -> None:
        cfg.check()
        self.cfg, self.train = cfg, train
        self._decoder, self.encoder = decoder, encoder
        self.val_content: list[Image.Image] = []
        self.val_style: list[Image.Image] = []

    def build(self, device: torch.device) -> nn.Module:
        """The trainable decoder (the frozen encoder is kept here, on ``device``)."""
        if self.encoder is None:
            self.encoder = Encoder(padding=self.cfg.encoder_padding)
        self.encoder = self.encoder.to(device)
        decoder = self._decoder if self._decoder is not None else Decoder(padding=self.cfg.decoder_padding,
                                                                         upsample=self.cfg.upsample)
        return decoder.to(device)

    def in_warmup(self, iteration: int) -> bool:
        return iteration < self.cfg.warmup_recon

    def loss(self, net: nn.Module, batch: dict, iteration: int
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """Total loss, its named parts (detached) and the decoder output (for health checks)."""
        if self.in_warmup(iteration):
            c = batch["content"]
            with torch.no_grad():
                f_c = self.encoder(c)
            g = net(f_c)
            pixel = F.mse_loss(g.float(), c.float())
            feat = per_sample_content_loss(self.encoder(g).float(), f_c.float())
            total = pixel + feat
            return total, {"loss": total.detach(), "recon_pixel": pixel.detach(),
                           "recon_feature": feat.detach()}, g
        f_c, s_stats, t = self.targets(batch)
        g = net(t.to(f_c.dtype))
        lc, ls = self.content_style_losses(g, t, s_stats)
        total = self.cfg.content_weight * lc + self.cfg.style_weight * ls
        parts = {"content": lc.detach(), "style": ls.detach()}
        terms = add_term({}, "grid", self.cfg.grid_weight, lambda: grid_loss(g))
        total = sum_terms(total, terms, parts)
        return total, {"loss": total.detach(), **parts}, g

    @torch.no_grad()
    def targets(self, batch: dict) -> tuple[torch.Tensor, dict, torch.Tensor]:
        """The content's relu4_1 features, the style's statistics at relu1_1..relu4_1 (from the
        caches, see cache.py, or the frozen encoder) and the AdaIN target ``AdaIN(f(c), f(s))``."""
        if "content_features" in batch:  # the cached path: the encoder's work is done
            f_c, s_stats = batch["content_features"], batch["style_stats"]
        else:
            f_c = self.encoder(batch["content"])
            s_stats = layer_stats(self.encoder.layers(batch["style"]))
        return f_c, s_stats, adain(f_c.float(), *s_stats[CONTENT_LAYER])

    def content_style_losses(self, g: torch.Tensor, target: torch.Tensor,
                             s_stats: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """The AdaIN losses of output ``g`` (:func:`painterly.losses.adain_losses`, the figures
        ``painterly eval`` reports), with this run's style reduction and distance."""
        return adain_losses(self.encoder.layers(g), target, s_stats, reduce=self.cfg.style_loss_reduce,
                            distance=self.cfg.style_distance)

    def uses_cache(self, iteration: int) -> bool:
        """Whether ``iteration`` takes its batch from the caches (style phase, caching on)."""
        return self.cfg.style_bank > 0 and not self.in_warmup(iteration)

    def cached_batches(self, train: TrainConfig, content_paths, style_paths, device: torch.device,
                       rank: int, world_size: int, start: int):
        """Batches of cached content features and style statistics (see :mod:`.cache`)."""
        content = ContentFeatureCache(content_paths, train.resize, train.crop, train.seed, self.encoder,
                                      device, self.cfg.content_cache_mb / max(1, world_size))
        style = StyleStatsBank(style_paths, train.resize, train.crop, train.seed + 1, self.encoder,
                               device, self.cfg.style_bank, augment=train.style_augment)
        self.caches = (content, style)
        return cached_batches(content, style, train.batch_size, rank, world_size, start)

    def load_init(self, net: nn.Module, path: str) -> None:
        """Warm start: the weights of an exported decoder (its padding must match this run's)."""
        decoder, config = load_decoder(path)
        if not isinstance(net, Decoder):
            raise PainterlyError("--init needs painterly's own decoder layout")
        if decoder.padding != net.padding:
            raise PainterlyError(f"--init {path}: a decoder with {decoder.padding} padding, this run "
                                 f"trains one with {net.padding} padding (pass --decoder-padding "
                                 f"{decoder.padding})")
        net.load_state_dict(decoder.state_dict())

    def style_loss_name(self, iteration: int) -> str | None:
        """Which logged value the stall check watches now (none during warm-up)."""
        return None if self.in_warmup(iteration) else "style"

    def set_validation(self, content: list[Image.Image], style: list[Image.Image]) -> None:
        self.val_content, self.val_style = content, style

    @torch.no_grad()
    def validation_rows(self, net: nn.Module, device: torch.device
                        ) -> tuple[list[list[Image.Image]], list[str]]:
        """content | style | stylized | reconstruction (decoder(f(c)): how well it inverts)."""
        rows = []
        for c_img, s_img in zip(self.val_content, self.val_style):
            c = pil_to_tensor(c_img, device)
            s = pil_to_tensor(s_img, device)
            f_c = self.encoder(c)
            t = adain(f_c, *mean_std(self.encoder(s)))
            rows.append([c_img, s_img, tensor_to_pil(net(t).float()), tensor_to_pil(net(f_c).float())])
        return rows, ["content", "style", "stylized", "reconstruction"]

    def export(self, net: nn.Module, run_dir, config: dict) -> str:
        """``RUN_DIR/decoder.safetensors`` (fp16) + JSON with the training config."""
        path = str(run_dir / "decoder.safetensors")
        meta = {"encoder_padding": self.cfg.encoder_padding, "training": config}
        if isinstance(net, Decoder):
            save_decoder(net, path, meta)
        else:  # an experimental decoder passed in by the caller: keep its weights as they are
            save_model_file(net.state_dict(), {"kind": "adain-decoder-custom", **meta}, path)
        return path
