"""Feed-forward transformation network (Johnson, Alahi & Fei-Fei 2016) with conditional instance
normalization (Dumoulin, Shlens & Kudlur 2017), so that one network holds one or many styles.

Input and output: RGB in [0, 1] (the output is not clamped inside the network; callers clamp when
they save). With ``n_styles == 1`` conditional instance norm is ordinary affine instance norm.

:class:`FrozenFastNet` is the network for one fixed style blend: the per-layer ``(gamma, beta)``
pairs folded into constants, so each layer is conv -> affine instance norm -> ReLU with no
per-call style arithmetic, and the two "nearest upsample + 3x3 conv" layers rewritten as four 2x2
convolutions at the low resolution whose outputs interleave (the same result, 2.25x fewer
multiply-adds and no upsampled copy).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import PainterlyError
from ..padding import padded
from ..upsample import UpsampleConv2d
from ..weights import load_checked, load_model_file, save_model_file


class ConditionalInstanceNorm(nn.Module):
    """Instance norm with one (gamma, beta) pair per style, blended by a style-weight vector."""

    def __init__(self, channels: int, n_styles: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(n_styles, channels))
        self.beta = nn.Parameter(torch.zeros(n_styles, channels))

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """``style``: ``(N, n_styles)`` weights (one-hot to pick, fractional to blend)."""
        gamma = (style @ self.gamma)[:, :, None, None]
        beta = (style @ self.beta)[:, :, None, None]
        return F.instance_norm(x, eps=1e-5) * gamma + beta


class ConvNormAct(nn.Module):
    """Reflection-padded conv, conditional instance norm, optional ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, n_styles: int,
                 relu: bool = True, upsample: bool = False) -> None:
        super().__init__()
        self.upsample = upsample
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2,
                              padding_mode="reflect")
        self.norm = ConditionalInstanceNorm(cout, n_styles)
        self.relu = relu

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.norm(self.conv(x), style)
        return F.relu(x) if self.relu else x


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, n_styles: int) -> None:
        super().__init__()
        self.a = ConvNormAct(channels, channels, 3, 1, n_styles)
        self.b = ConvNormAct(channels, channels, 3, 1, n_styles, relu=False)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return x + self.b(self.a(x, style), style)


class TransformerNet(nn.Module):
    """3 downsampling convs, 5 residual blocks, 2 upsample+conv, a final 9x9 conv.

    ``width`` is the first layer's channel count (32 in the paper; 16 is a slimmer CPU variant).
    """

    def __init__(self, n_styles: int = 1, width: int = 32, n_residual: int = 5) -> None:
        super().__init__()
        w = width
        self.n_styles = n_styles
        self.width = width
        self.down = nn.ModuleList([
            ConvNormAct(3, w, 9, 1, n_styles),
            ConvNormAct(w, 2 * w, 3, 2, n_styles),
            ConvNormAct(2 * w, 4 * w, 3, 2, n_styles),
        ])
        self.res = nn.ModuleList([ResidualBlock(4 * w, n_styles) for _ in range(n_residual)])
        self.up = nn.ModuleList([
            ConvNormAct(4 * w, 2 * w, 3, 1, n_styles, upsample=True),
            ConvNormAct(2 * w, w, 3, 1, n_styles, upsample=True),
        ])
        self.out = nn.Conv2d(w, 3, 9, 1, padding=4, padding_mode="reflect")

    def style_vector(self, style: torch.Tensor | int | None, batch: int,
                     device: torch.device) -> torch.Tensor:
        """Index, weight vector or batch of weight vectors -> ``(N, n_styles)``."""
        if style is None:
            style = 0
        if isinstance(style, int):
            v = torch.zeros(batch, self.n_styles, device=device)
            v[:, style] = 1.0
            return v
        style = style.to(device=device, dtype=torch.float32)
        return style.expand(batch, -1) if style.dim() == 1 else style

    def freeze(self, weights: torch.Tensor) -> nn.Module:
        """The network for one fixed blend ``weights`` (``(n_styles,)``), for inference: the
        norms' affine pairs folded in (:class:`FrozenFastNet`)."""
        return FrozenFastNet(self, weights)

    def forward(self, x: torch.Tensor, style: torch.Tensor | int | None = None) -> torch.Tensor:
        s = self.style_vector(style, x.shape[0], x.device).to(x.dtype)
        h, w = x.shape[-2:]
        x = padded(x, 4)  # two stride-2 convs: pad so the output matches the input
        y = x
        for layer in self.down:
            y = layer(y, s)
        for block in self.res:
            y = block(y, s)
        for layer in self.up:
            y = layer(y, s)
        return self.out(y)[..., :h, :w]


def save_model(net: TransformerNet, path: str, style_names: list[str],
               config: dict | None = None) -> None:
    """Save a network as ``.safetensors`` + ``.json`` (style names, architecture, training)."""
    if len(style_names) != net.n_styles:
        raise PainterlyError(f"{len(style_names)} style names for {net.n_styles} styles")
    meta = {"kind": "fast-transformer", "n_styles": net.n_styles, "width": net.width,
            "n_residual": len(net.res), "style_names": list(style_names), **(config or {})}
    save_model_file(net.state_dict(), meta, path)


def load_model(path: str) -> tuple[nn.Module, dict]:
    """Load a fast network: a TransformerNet saved by :func:`save_model` (or a state dict with a
    ``.json`` beside it), or a ``fast-lite`` network (:mod:`painterly.fast.lite`); both take
    ``net(x, style)`` and ``net.freeze(weights)``."""
    state, config = load_model_file(path)
    if config.get("kind") == "fast-lite":
        from .lite import fast_lite_from_state

        return fast_lite_from_state(state, config, path), config
    try:
        net = TransformerNet(int(config["n_styles"]), int(config.get("width", 32)),
                             int(config.get("n_residual", 5)))
    except (KeyError, ValueError, TypeError):
        raise PainterlyError(f"{path} has no valid fast-network config (n_styles, width)") from None
    load_checked(net, state, path, "a fast network of this config")
    return net.eval(), config


# --------------------------------------------------------------------------------------------
# Frozen for one style blend (inference)


class _FrozenLayer(nn.Module):
    """Conv (reflect-padded, or sub-pixel for the upsampling layers) -> instance norm with a fixed
    affine -> optional ReLU."""

    def __init__(self, layer: ConvNormAct, style: torch.Tensor) -> None:
        super().__init__()
        conv = layer.conv
        self.subpixel = layer.upsample
        self.relu = layer.relu
        self.stride = conv.stride
        self.pad = conv.padding[0]
        weight = conv.weight.detach()
        if self.subpixel:
            if conv.kernel_size != (3, 3) or conv.stride != (1, 1):
                raise PainterlyError("sub-pixel rewrite needs a 3x3 stride-1 upsampling conv")
            # upsample + conv computed at the low resolution: 4/9 of the multiply-adds
            self.upconv = UpsampleConv2d(conv, "reflect")
        else:
            # The conv bias is dropped: instance norm subtracts each channel's mean, which removes it.
            self.register_buffer("weight", weight.contiguous().clone())
        self.register_buffer("gamma", (style @ layer.norm.gamma.detach()).clone())
        self.register_buffer("beta", (style @ layer.norm.beta.detach()).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.subpixel:
            y = self.upconv(x)
        else:
            y = F.conv2d(F.pad(x, (self.pad,) * 4, mode="reflect"), self.weight, None, self.stride)
        y = F.instance_norm(y, weight=self.gamma, bias=self.beta, eps=1e-5)
        return F.relu_(y) if self.relu else y


class FrozenFastNet(nn.Module):
    """A :class:`TransformerNet` with its style blend folded in, for inference only.

    Same input/output contract as the source network (RGB in [0, 1], any size; sizes not divisible
    by 4 are padded and cropped back) and the same result up to float rounding.
    """

    def __init__(self, net: TransformerNet, style: torch.Tensor) -> None:
        super().__init__()
        style = style.detach().to(torch.float32).reshape(-1)
        if style.numel() != net.n_styles:
            raise PainterlyError(f"{style.numel()} style weight(s) for a network with "
                                 f"{net.n_styles} style(s)")
        self.down = nn.ModuleList(_FrozenLayer(layer, style) for layer in net.down)
        self.res = nn.ModuleList(nn.ModuleList([_FrozenLayer(b.a, style), _FrozenLayer(b.b, style)])
                                 for b in net.res)
        self.up = nn.ModuleList(_FrozenLayer(layer, style) for layer in net.up)
        self.register_buffer("out_weight", net.out.weight.detach().clone())
        self.register_buffer("out_bias", net.out.bias.detach().clone())
        self.out_pad = net.out.padding[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        # As TransformerNet.forward: pad to a multiple of 4 and crop back; tiny images are padded
        # to 8 pixels so every reflection pad inside has room.
        x = padded(x, 4, min_side=8)
        y = x
        for layer in self.down:
            y = layer(y)
        for a, b in self.res:
            y = b(a(y)).add_(y)
        for layer in self.up:
            y = layer(y)
        y = F.pad(y, (self.out_pad,) * 4, mode="reflect")
        return F.conv2d(y, self.out_weight, self.out_bias)[..., :h, :w]
