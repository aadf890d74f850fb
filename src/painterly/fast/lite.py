"""A fast network made of the lite AdaIN network with its styles baked in (kind ``fast-lite``).

The lite AdaIN network (:mod:`painterly.adain.lite`, its building blocks re-exported by
:mod:`painterly.adain`: a slim VGG19 encoder to relu4_1 and its
mirror decoder) paints any style from the style's relu4_1 statistics. For a fixed style set those
statistics are all a style is, so this network keeps one ``(mean, std)`` pair per style as
parameters: no style image and no style encoding per call, and a style blend is a weighted sum of
the pairs (AdaIN's own interpolation: the same as blending the AdaIN outputs, since the normalized
content is shared). :func:`bake` builds it from a lite AdaIN network and the paintings, so it
starts at the arbitrary model's quality; ``painterly train fast --network lite`` then fine-tunes
encoder, decoder and the pairs on those paintings (Gram style loss against each painting, content
against the teacher), which only has to improve on its own styles.

It takes the same calls as :class:`~painterly.fast.model.TransformerNet` (``net(x, style)`` with
an index, a weight vector or a batch of them, for training and the ONNX export; ``freeze(weights)``
for inference), so the fast stylizer, the ONNX export, the server and ``painterly models`` run it
unchanged. Both run the AdaIN path of :mod:`painterly.adain` (its public face only): the forward
pass is :func:`~painterly.adain.encode_transform_decode` with each item's blend as its target,
and the frozen network is an :class:`~painterly.adain.AdaINPipeline` whose one style target is
the blend's fixed statistics (precision, layout and tiling as for the lite AdaIN network).

File: ``.safetensors`` with ``encoder.*``, ``decoder.*``, ``style_mean``, ``style_std`` and a JSON
config of kind ``fast-lite`` (widths, paddings, style names).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from PIL import Image
from torch import nn

from .. import registry
from ..adain import (
    LITE_WIDTHS,
    MULTIPLE,
    AdaINNetworks,
    AdaINPipeline,
    LiteEncoder,
    LiteNetwork,
    Stats,
    adain_transform,
    check_upsample,
    config_skip,
    config_upsample,
    config_widths,
    decoder_widths_for,
    encode_transform_decode,
    fit_decoder,
    lite_decoder,
)
from ..device import check_memory
from ..errors import PainterlyError
from ..losses import mean_std
from ..padding import pad_bottom_right, padded
from ..weights import load_exact, load_model_file, save_model_file

#: The kind written into the config of a fast network of this architecture.
KIND = "fast-lite"
#: Smallest std a baked style keeps (a trained pair must not reach zero or below).
MIN_STD = 1e-5


def style_vector(style: torch.Tensor | int | None, n_styles: int, batch: int,
                 device: torch.device) -> torch.Tensor:
    """Index, weight vector or batch of weight vectors -> ``(N, n_styles)`` float32."""
    if style is None:
        style = 0
    if isinstance(style, int):
        v = torch.zeros(batch, n_styles, device=device)
        v[:, style] = 1.0
        return v
    style = style.to(device=device, dtype=torch.float32)
    return style.expand(batch, -1) if style.dim() == 1 else style


#: Smallest padded side: the decoder's reflection padding needs a 2x2 relu4_1 map.
MIN_PADDED = 2 * MULTIPLE


def _restyle(f: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """The AdaIN step (:func:`painterly.adain.adain_transform`) with the given ``(N, C)``
    target statistics, in float32 (a bf16 variance is too coarse), returned in ``f``'s dtype."""
    return adain_transform(f.float(), (mean.float()[:, :, None, None],
                                       std.float()[:, :, None, None])).to(f.dtype)


class LiteFastNet(nn.Module):
    """Lite encoder, AdaIN with per-style baked statistics, lite decoder.

    ``width`` (the first block's channels) and ``n_styles`` as on a TransformerNet, for the
    stylizer's memory estimate and ``painterly models``. Its forward pass (training, the ONNX
    export) is the AdaIN path (:func:`painterly.adain.encode_transform_decode`) with each
    item's blend of the baked statistics as its target; inference runs the AdaIN pipeline
    itself (:meth:`freeze`).
    """

    #: Sides the network pads to (three poolings), and the smallest it takes (the ONNX export's).
    multiple = MULTIPLE
    min_side = MIN_PADDED
    #: The AdaIN network it runs as (its pipeline's, :class:`painterly.adain.AdaINNetworks`).
    network_name = "lite"

    def __init__(self, n_styles: int, widths: Sequence[int] = LITE_WIDTHS,
                 encoder_padding: str = "zeros", decoder_padding: str = "reflect",
                 skip: str = "", decoder_widths: Sequence[int] | None = None,
                 upsample: str = "nearest") -> None:
        super().__init__()
        if n_styles < 1:
            raise PainterlyError("a fast-lite network needs at least one style")
        self.widths = tuple(int(w) for w in widths)
        self.n_styles = int(n_styles)
        self.width = self.widths[0]
        self.encoder_padding = encoder_padding
        self.encoder = LiteEncoder(self.widths, encoder_padding, skip=skip)
        self.skip = self.encoder.skip
        self.decoder_widths = decoder_widths_for(self.widths, decoder_widths)
        self.upsample = check_upsample(upsample)
        self.decoder = lite_decoder(self.widths, decoder_padding, self.skip, self.decoder_widths,
                                    self.upsample)
        channels = self.encoder.out_channels
        self.style_mean = nn.Parameter(torch.zeros(n_styles, channels))
        self.style_std = nn.Parameter(torch.ones(n_styles, channels))

    def config(self) -> dict:
        config = {"kind": KIND, "n_styles": self.n_styles, "width": self.width,
                  "widths": list(self.widths), "encoder_padding": self.encoder_padding,
                  "padding": self.decoder.padding}
        if self.skip:
            config["skip"] = self.skip
        if self.decoder_widths != self.widths:
            config["decoder_widths"] = list(self.decoder_widths)
        if self.upsample != "nearest":
            config["upsample"] = self.upsample
        return config

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """An image (sides multiples of 8) -> its relu4_1 features."""
        return self.encoder(x)

    def decode(self, t: torch.Tensor) -> torch.Tensor:
        """Restyled features -> RGB (not clamped)."""
        return self.decoder(t)

    def forward(self, x: torch.Tensor, style: torch.Tensor | int | None = None) -> torch.Tensor:
        v = style_vector(style, self.n_styles, x.shape[0], x.device)
        mean = v @ self.style_mean.float()
        std = (v @ self.style_std.float()).clamp_min(MIN_STD)
        # Out of training (the ONNX graph, an eval pass) with the lite network's right margin, as
        # the pipeline paints it (registry.NetworkSpec.right_margin); training sees the crop as is.
        w = x.shape[-1]
        margin = 0 if self.training else registry.spec(self.network_name).right_margin
        y = encode_transform_decode(self, pad_bottom_right(x, 0, margin),
                                    lambda f: _restyle(f, mean, std))
        return y[..., :w]

    def freeze(self, weights: torch.Tensor, device: torch.device | None = None,
               precision: str = "fp32", compile: bool = False) -> FrozenLiteFast:
        """The network for one fixed blend ``weights`` (``(n_styles,)``), for inference on
        ``device`` (None: the CPU) in ``precision``."""
        return FrozenLiteFast(self, weights, device or torch.device("cpu"), precision, compile)


class FrozenLiteFast:
    """A :class:`LiteFastNet` for inference with its style blend fixed: the AdaIN pipeline
    (:class:`painterly.adain.AdaINPipeline`) of a copy of its lite network, with the blend's
    statistics as the one fixed style target. Precision, layout, the folded decoder and the
    tiling of an image over the pixel budget are the pipeline's, as for the lite AdaIN network."""

    def __init__(self, net: LiteFastNet, weights: torch.Tensor, device: torch.device,
                 precision: str = "fp32", compile: bool = False) -> None:
        w = weights.detach().float().reshape(1, -1)
        if w.shape[1] != net.n_styles:
            raise PainterlyError(f"{w.shape[1]} style weight(s) for a network of {net.n_styles} styles")
        mean = w @ net.style_mean.detach().float()
        std = (w @ net.style_std.detach().float()).clamp_min(MIN_STD)
        #: The blend's ``(1, C, 1, 1)`` target statistics.
        self.target: Stats = (mean[:, :, None, None].to(device), std[:, :, None, None].to(device))
        self.width = net.width
        # a copy: the pipeline moves and casts its networks in place
        self.pipeline = AdaINPipeline(AdaINNetworks(copy.deepcopy(net), net.config(), device,
                                                    precision, compile=compile))

    def check_memory(self, n: int, width: int, height: int, what: str, extra: int = 0) -> int | None:
        """Refuse a pass over ``n`` images of ``width x height`` that cannot fit (one line naming
        the size and the free memory, ``extra`` bytes besides); the tile side it runs in (None:
        one pass). On a CPU above the pipeline's pixel budget the image goes in streamed
        windows (the working set follows the output: the pipeline's memory rule); one pass
        takes about four full-resolution fp32 maps of the first block's width."""
        nets = self.pipeline.nets
        pixels = n * width * height
        if nets.device.type == "cpu" and pixels > nets.pixel_budget():
            nets.check_memory(n, height, width, what, extra=extra)
            return nets.streamed_tile()
        check_memory(pixels, 16 * self.width, nets.device, what, extra=extra)
        return None

    def __call__(self, x: torch.Tensor, tile: int | None = None) -> torch.Tensor:
        """A batch ``(N, 3, H, W)`` in [0, 1] -> stylized, float32, not clamped (in windows of
        ``tile`` px when given)."""
        return self.pipeline.run(x, self.target, tile=tile, auto_tile=False)


@torch.no_grad()
def bake(lite: LiteNetwork, styles: Sequence[Image.Image], style_size: int = 512,
         decoder_widths: Sequence[int] | None = None, upsample: str | None = None) -> LiteFastNet:
    """A :class:`LiteFastNet` with ``lite``'s encoder and decoder and each style's statistics
    (its relu4_1 mean/std through the lite encoder, the style resized to ``style_size`` on its
    long side, as the AdaIN stylizer resizes styles). ``decoder_widths``: a narrower decoder
    (pruned from ``lite``'s: a faster network for a fine-tune to bring back) or a wider one;
    ``upsample``: the decoder's upsampling (None: ``lite``'s)."""
    from ..image import pil_to_tensor, resize

    if not styles:
        raise PainterlyError("baking a fast-lite network needs at least one style image")
    net = LiteFastNet(len(styles), lite.widths, lite.encoder_padding, lite.decoder.padding, lite.skip,
                      decoder_widths or lite.decoder_widths, upsample or lite.upsample)
    net.encoder.load_state_dict(lite.encoder.state_dict())
    fit_decoder(net.decoder, lite.decoder.state_dict())
    lite = lite.float().eval()
    for i, img in enumerate(styles):
        m, s = mean_std(lite.encoder(pil_to_tensor(resize(img, style_size))))
        net.style_mean[i] = m.flatten()
        net.style_std[i] = s.flatten()
    return net.eval()


@torch.no_grad()
def rebake(net: LiteFastNet, styles: Sequence[Image.Image], style_size: int = 512,
           upsample: str | None = None) -> LiteFastNet:
    """A network with ``net``'s encoder and decoder and the statistics of ``styles`` instead of
    its own (each through ``net``'s encoder, as :func:`bake`): a trained fast-lite network as the
    start of a run on other styles (a user's painting fine-tuned from the shipped eight);
    ``upsample``: the decoder's upsampling (None: ``net``'s)."""
    from ..image import pil_to_tensor, resize

    if not styles:
        raise PainterlyError("baking a fast-lite network needs at least one style image")
    out = LiteFastNet(len(styles), net.widths, net.encoder_padding, net.decoder.padding, net.skip,
                      net.decoder_widths, upsample or net.upsample)
    out.encoder.load_state_dict(net.encoder.state_dict())
    out.decoder.load_state_dict(net.decoder.state_dict())
    encoder = out.encoder.float().eval()
    for i, img in enumerate(styles):
        m, s = mean_std(encoder(padded(pil_to_tensor(resize(img, style_size)), MULTIPLE, MIN_PADDED)))
        out.style_mean[i] = m.flatten()
        out.style_std[i] = s.flatten()
    return out.eval()


@torch.no_grad()
def refit(net: LiteFastNet, decoder_widths: Sequence[int] | None,
          upsample: str | None = None) -> LiteFastNet:
    """``net`` with its decoder's block widths changed to ``decoder_widths`` (None or the same:
    ``net``'s) and its upsampling to ``upsample`` (None: ``net``'s): pruned where narrower,
    widened with the same function where wider; ``net`` itself when nothing changes."""
    widths = tuple(decoder_widths) if decoder_widths is not None else net.decoder_widths
    upsample = upsample or net.upsample
    if widths == net.decoder_widths and upsample == net.upsample:
        return net
    out = LiteFastNet(net.n_styles, net.widths, net.encoder_padding, net.decoder.padding, net.skip,
                      widths, upsample)
    out.encoder.load_state_dict(net.encoder.state_dict())
    out.style_mean.copy_(net.style_mean)
    out.style_std.copy_(net.style_std)
    fit_decoder(out.decoder, net.decoder.state_dict())
    return out.eval()


def is_fast_lite_config(config: dict) -> bool:
    """Whether a model file's config describes a fast-lite network."""
    return config.get("kind") == KIND


def save_fast_lite(net: LiteFastNet, path: str, style_names: list[str], config: dict | None = None,
                   half: bool = True) -> None:
    """Export as ``.safetensors`` (fp16 by default: the shipped form) plus its JSON config."""
    if len(style_names) != net.n_styles:
        raise PainterlyError(f"{len(style_names)} style names for {net.n_styles} styles")
    save_model_file(net.state_dict(), {**net.config(), "style_names": list(style_names),
                                       **(config or {})}, path, torch.float16 if half else None)


def fast_lite_from_state(state: dict[str, torch.Tensor], config: dict, path: str) -> LiteFastNet:
    """The network a loaded file holds, every shape checked (one-line errors)."""
    n = config.get("n_styles")
    if not isinstance(n, int) or not 0 < n <= 4096:
        raise PainterlyError(f"{path}: a fast-lite config needs a positive integer n_styles")
    widths, decoder_widths = config_widths(config, path)
    net = LiteFastNet(n, widths, str(config.get("encoder_padding", "zeros")),
                      str(config.get("padding", "reflect")), config_skip(config, path), decoder_widths,
                      config_upsample(config, path))
    load_exact(net, state, path, "fast-lite network")
    return net.eval()


def load_fast_lite(path: str) -> tuple[LiteFastNet, dict]:
    """Load a fast-lite file (kind checked)."""
    state, config = load_model_file(path)
    if not is_fast_lite_config(config):
        raise PainterlyError(f"{path} is not a fast-lite network (its kind is "
                             f"'{config.get('kind', 'unknown')}')")
    return fast_lite_from_state(state, config, path), config
