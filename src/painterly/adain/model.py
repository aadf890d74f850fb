"""AdaIN model (Huang & Belongie, ICCV 2017): encoder, decoder and decoder files.

The AdaIN functions (statistics, transform, trade-off, blending, masks) are
:mod:`painterly.adain.core`; inference (networks on a device, tiles, the stylizer) is
:mod:`painterly.adain.networks`, :mod:`painterly.adain.tiling` and :mod:`painterly.adain.stylize`;
training lives in :mod:`painterly.training`.

Pixel convention: the encoder takes RGB in [0, 1] (it converts to what the VGG weights expect) and
the decoder returns RGB in the same [0, 1] convention, with **no** activation or clamp on its last
convolution: an output ReLU/sigmoid/clip is the classic cause of decoders that learn to output black
images (dead gradients on clipped pixels).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..conv import ConvReLU, PaddedConv2d
from ..features import FeatureExtractor, build_extractor
from ..options import UPSAMPLINGS
from ..upsample import UpsampleConv2d, fold_weight, upsample_conv
from ..weights import load_checked, load_model_file, save_model_file

#: Layers whose statistics the AdaIN style loss matches; the encoder stops at the last one.
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
CONTENT_LAYER = "relu4_1"

#: relu4_1 of the raw Caffe VGG19 averages about 514 on photographs; the decoder divides its input
#: by this so its first layer sees values of order 1 (as with the reference's normalized VGG).
DEFAULT_INPUT_SCALE = 1.0 / 512.0
#: The encoder/decoder need sides that are multiples of this (three 2x poolings).
MULTIPLE = 8


def mirror_plan(widths: tuple[int, int, int, int] = (64, 128, 256, 512)) -> tuple:
    """The decoder's layer plan mirroring a VGG19 to relu4_1 whose blocks have ``widths`` channels:
    (in, out) channels of each 3x3 conv, "up" for a 2x nearest upsample."""
    a, b, c, d = widths
    return ((d, c), "up", (c, c), (c, c), (c, c), (c, b), "up", (b, b), (b, a), "up", (a, a), (a, 3))


class Decoder(nn.Module):
    """Mirror of VGG19 up to relu4_1: reflection padding, nearest upsampling, no normalization.

    A plain ``nn.Sequential`` (``self.net``) that reads against the paper; the last conv has no
    activation. ``padding`` may be "reflect" (the paper's) or "zeros" (faster). ``plan``: the
    layer plan (default :data:`PLAN`, the full-width mirror; the lite network's is slimmer).
    """

    #: (in, out) channels of each 3x3 conv; "up" marks a 2x nearest upsample.
    PLAN = mirror_plan()
    #: The registered network a decoder on its own is (:mod:`painterly.adain.registry`).
    network_name = "vgg"

    def __init__(self, padding: str = "reflect", input_scale: float = DEFAULT_INPUT_SCALE,
                 plan: tuple | None = None, upsample: str = "nearest") -> None:
        super().__init__()
        if upsample not in UPSAMPLINGS:
            raise ValueError(f"unknown upsampling {upsample!r} (choose {', '.join(UPSAMPLINGS)})")
        self.plan = tuple(plan) if plan is not None else self.PLAN
        self.upsample = upsample
        layers: list[nn.Module] = []
        convs = [p for p in self.plan if p != "up"]
        for item in self.plan:
            if item == "up":
                layers.append(nn.Upsample(scale_factor=2, mode="nearest") if upsample == "nearest"
                              else nn.Upsample(scale_factor=2, mode=upsample, align_corners=False))
                continue
            cin, cout = item
            layers.append(PaddedConv2d(cin, cout, 3, padding=1, padding_mode=padding))
            if item is not convs[-1]:
                layers.append(nn.ReLU(inplace=True))
        self.net = nn.Sequential(*layers)
        self.padding = padding
        self.register_buffer("input_scale", torch.tensor(float(input_scale)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = features * self.input_scale.to(features.dtype)
        return self._run(list(self.net), x)

    def _run(self, modules: list[nn.Module], x: torch.Tensor) -> torch.Tensor:
        """``modules`` (a slice of ``self.net``) on ``x``. Training: each upsample+conv pair as
        one stride-2 transposed conv on the folded kernel (painterly.upsample; the same
        function, 4/9 of its multiply-adds, differentiable). A bilinear upsampling always runs
        that way (its blur after the conv, which defines it at the borders), so training and
        inference compute one function."""
        if not self.training and self.upsample == "nearest":
            for m in modules:
                x = m(x)
            return x
        i = 0
        while i < len(modules):
            m = modules[i]
            if isinstance(m, nn.Upsample):
                conv = modules[i + 1]
                x = upsample_conv(x, fold_weight(conv.weight), conv.bias, self.padding,
                                  smooth=self.upsample == "bilinear")
                i += 2
                continue
            x = m(x)
            i += 1
        return x


class SkipDecoder(Decoder):
    """A mirror decoder that also reads a shallower encoder layer (the lite network's relu3_1).

    Its input is relu4_1 with the skip layer space-to-depth'ed onto the same grid (``2x2`` pixels
    to channels, :func:`torch.nn.functional.pixel_unshuffle`), so AdaIN, masks, tiling and the
    ONNX graph see one feature map. The decoder splits it, runs its relu4_1 half up to the first
    quarter-resolution layer, adds a 1x1 conv of the depth-to-space'd skip there, and goes on.
    The 1x1 conv starts at zero, so a decoder warm-started from one without the skip computes
    the same function at first.
    """

    def __init__(self, padding: str = "reflect", input_scale: float = DEFAULT_INPUT_SCALE,
                 plan: tuple | None = None, skip_channels: int = 256,
                 upsample: str = "nearest") -> None:
        super().__init__(padding, input_scale, plan, upsample)
        self.main_channels = int(self.plan[0][0])
        modules = list(self.net)
        up = next(i for i, m in enumerate(modules) if isinstance(m, nn.Upsample))
        self.split = up + 3  # after the upsample, its conv and that conv's ReLU
        width = modules[up + 1].out_channels
        self.skip = nn.Conv2d(int(skip_channels) // 4, width, 1)
        nn.init.zeros_(self.skip.weight)
        nn.init.zeros_(self.skip.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = features * self.input_scale.to(features.dtype)
        modules = list(self.net)
        h = self._run(modules[: self.split], x[:, : self.main_channels])
        h = h + self.skip(F.pixel_shuffle(x[:, self.main_channels:], 2))
        return self._run(modules[self.split:], h)


class Encoder(nn.Module):
    """Frozen VGG19 up to relu4_1, returning relu4_1 or every style layer."""

    def __init__(self, extractor: FeatureExtractor | None = None, padding: str = "zeros",
                 weights: str | None = None) -> None:
        super().__init__()
        self.vgg = extractor or build_extractor("vgg19", weights, padding=padding,
                                                max_layer=CONTENT_LAYER)
        self.vgg.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> Encoder:  # the encoder never leaves eval mode
        super().train(False)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vgg(x, [CONTENT_LAYER])[CONTENT_LAYER]

    def layers(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """relu1_1 .. relu4_1 in one pass (for the style loss)."""
        return self.vgg(x, list(STYLE_LAYERS))


def save_decoder(decoder: Decoder, path: str, config: dict | None = None,
                 half: bool = True) -> None:
    """Export a decoder as ``.safetensors`` (fp16 by default) plus a JSON of its config."""
    meta = {"kind": "adain-decoder", "padding": decoder.padding,
            "input_scale": float(decoder.input_scale), **(config or {})}
    save_model_file(decoder.state_dict(), meta, path, torch.float16 if half else None)


def load_decoder(path: str) -> tuple[Decoder, dict]:
    """Load a decoder from ``.safetensors`` or a PyTorch state dict, checking every shape.

    Accepts painterly's own keys (``net.N.weight``) and the reference code's plain
    ``nn.Sequential`` keys (``N.weight``, with its explicit ReflectionPad layers).
    """
    state, config = load_model_file(path)
    decoder = Decoder(padding=config.get("padding", "reflect"),
                      input_scale=float(config.get("input_scale", DEFAULT_INPUT_SCALE)))
    own = decoder.state_dict()
    if "input_scale" not in state:
        state["input_scale"] = own["input_scale"]
    if not any(k.startswith("net.") for k in state):
        state = _from_reference_keys(state, decoder)
    load_checked(decoder, state, path, "an AdaIN decoder")
    return decoder.eval(), config


def _from_reference_keys(state: dict, decoder: Decoder) -> dict:
    """Map ``N.weight`` keys of an ``nn.Sequential`` with explicit padding layers onto ours."""
    theirs = sorted({int(k.split(".")[0]) for k in state if k.split(".")[0].isdigit()
                     and k.endswith(".weight")})
    ours = [i for i, m in enumerate(decoder.net) if isinstance(m, nn.Conv2d)]
    if len(theirs) != len(ours):
        return state
    out = {"input_scale": state["input_scale"]}
    for t, o in zip(theirs, ours):
        for kind in ("weight", "bias"):
            if f"{t}.{kind}" in state:
                out[f"net.{o}.{kind}"] = state[f"{t}.{kind}"]
    return out


def _folded(modules: list[nn.Module], padding: str) -> nn.Sequential:
    """``modules`` with every upsample+conv pair as one :class:`UpsampleConv2d` (a bilinear
    one with its blur), and every conv with the ReLU after it as one layer (the ReLU fused
    into the conv on a CPU: :mod:`painterly.conv`)."""
    def relu_after(k: int) -> bool:
        return k < len(modules) and isinstance(modules[k], nn.ReLU)

    layers: list[nn.Module] = []
    i = 0
    while i < len(modules):
        m = modules[i]
        if (isinstance(m, nn.Upsample) and i + 1 < len(modules)
                and isinstance(modules[i + 1], nn.Conv2d)):
            layers.append(UpsampleConv2d(modules[i + 1], padding, smooth=m.mode == "bilinear",
                                         relu=relu_after(i + 2)))
            i += 3 if relu_after(i + 2) else 2
            continue
        if isinstance(m, nn.Conv2d) and relu_after(i + 1):
            layers.append(ConvReLU(m))
            i += 2
            continue
        layers.append(m)
        i += 1
    return nn.Sequential(*layers)


def inference_decoder(decoder: Decoder) -> nn.Module:
    """The same function as ``decoder`` with every upsample+conv pair folded into an
    :class:`UpsampleConv2d` (one transposed conv: fewer multiply-adds, no upsampled tensor)."""
    scale = decoder.input_scale.detach().clone()
    modules = list(decoder.net)
    if isinstance(decoder, SkipDecoder):
        fast: nn.Module = _SkipSequential(_folded(modules[: decoder.split], decoder.padding),
                                          _folded(modules[decoder.split:], decoder.padding),
                                          decoder.skip, decoder.main_channels, scale)
    else:
        fast = _ScaledSequential(_folded(modules, decoder.padding), scale)
    return fast.eval().requires_grad_(False)


class _ScaledSequential(nn.Module):
    def __init__(self, net: nn.Sequential, input_scale: torch.Tensor) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("input_scale", input_scale)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features * self.input_scale.to(features.dtype))


class _SkipSequential(nn.Module):
    """:class:`SkipDecoder`'s inference form: folded head and tail around the skip."""

    def __init__(self, head: nn.Sequential, tail: nn.Sequential, skip: nn.Conv2d,
                 main_channels: int, input_scale: torch.Tensor) -> None:
        super().__init__()
        self.head = head
        self.tail = tail
        self.skip = skip
        self.main_channels = main_channels
        self.register_buffer("input_scale", input_scale)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = features * self.input_scale.to(features.dtype)
        h = self.head(x[:, : self.main_channels])
        h = h + self.skip(F.pixel_shuffle(x[:, self.main_channels:], 2))
        return self.tail(h)
