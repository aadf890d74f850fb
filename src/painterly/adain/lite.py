"""The lite AdaIN network: a slim VGG19 encoder and its mirror decoder, real time on a CPU.

The same pipeline as the VGG network (encode to relu4_1, AdaIN, decode), with a quarter of the
channels in every block (16, 32, 64, 128 instead of 64, 128, 256, 512): about 1/16 of the
multiply-adds, so no frozen VGG19 runs at inference. As in Collaborative Distillation (Wang et
al., CVPR 2020) both halves start from the full networks: the encoder keeps, layer by layer, the
VGG19 filters with the largest L1 norm (and the input channels the previous layer kept), the
decoder the same of the shipped AdaIN decoder, whose first layer reads the channels the encoder
kept. Training (:mod:`painterly.training.lite`) then distils the full model with the frozen
VGG19 as loss network: the lite output's VGG features must match the VGG AdaIN target and the
style's VGG statistics, and a linear embedding ties the lite encoder's features to VGG's.

File: ``.safetensors`` (fp16) with ``encoder.*``, ``decoder.*`` (and the training-only
``embed.*``) and a JSON config of kind ``adain-lite`` holding the widths.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import PainterlyError
from ..features import VGG, build_extractor
from ..weights import Preprocess, load_model_file, save_model_file
from .model import CONTENT_LAYER, DEFAULT_INPUT_SCALE, STYLE_LAYERS, Decoder, mirror_plan

#: Channels of the lite network's four blocks (VGG19's are 64, 128, 256, 512).
LITE_WIDTHS = (16, 32, 64, 128)
#: The kind written into a lite network file's config.
KIND = "adain-lite"


class LiteEncoder(nn.Module):
    """A slim VGG19 to relu4_1 (same layer names and preprocessing), trainable.

    ``forward`` returns relu4_1 like :class:`~painterly.adain.model.Encoder`; ``layers`` every
    style layer.
    """

    def __init__(self, widths: Sequence[int] = LITE_WIDTHS, padding: str = "zeros",
                 layers: list[tuple[torch.Tensor, torch.Tensor]] | None = None) -> None:
        super().__init__()
        self.widths = tuple(int(w) for w in widths)
        self.vgg = VGG("vgg19", layers, Preprocess.caffe(), padding=padding, max_layer=CONTENT_LAYER,
                       widths=self.widths + (self.widths[-1],))
        self.vgg.requires_grad_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vgg(x, [CONTENT_LAYER])[CONTENT_LAYER]

    def layers(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.vgg(x, list(STYLE_LAYERS))


class LiteNetwork(nn.Module):
    """Encoder + decoder of the lite network, and the training-only linear embedding
    (``embed``: 1x1 conv from the lite relu4_1 to VGG19's 512 channels)."""

    def __init__(self, widths: Sequence[int] = LITE_WIDTHS, encoder_padding: str = "zeros",
                 decoder_padding: str = "reflect", vgg_channels: int = 512) -> None:
        super().__init__()
        self.widths = tuple(int(w) for w in widths)
        if len(self.widths) != 4 or min(self.widths) < 1:
            raise PainterlyError(f"lite widths must be four positive numbers, got {widths}")
        self.encoder = LiteEncoder(self.widths, encoder_padding)
        self.decoder = Decoder(decoder_padding, DEFAULT_INPUT_SCALE, mirror_plan(self.widths))
        self.embed = nn.Conv2d(self.widths[-1], vgg_channels, 1)
        self.encoder_padding = encoder_padding

    def config(self) -> dict:
        return {"kind": KIND, "widths": list(self.widths), "encoder_padding": self.encoder_padding,
                "padding": self.decoder.padding, "input_scale": float(self.decoder.input_scale)}

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The training pass, whole (so DDP sees every parameter used): stylize ``content`` with
        ``style`` (batches of the same size, each item its own style) and return the output and
        the content's features embedded into VGG19's relu4_1 space."""
        from .core import adain, mean_std

        f = self.encoder(content)
        t = adain(f, *mean_std(self.encoder(style)))
        return self.decoder(t), self.embed(f)


def _top_l1(weight: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (sorted) of the ``k`` output filters of a conv weight with the largest L1 norm."""
    norms = weight.abs().flatten(1).sum(1)
    return torch.sort(torch.topk(norms, k).indices).values


def _pruned(weight: torch.Tensor, bias: torch.Tensor, out_keep: torch.Tensor | None,
            in_keep: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """A conv's weight and bias restricted to ``out_keep`` filters and ``in_keep`` inputs; the
    kept inputs are rescaled by the L1 mass they carry of the full layer, so a pruned layer's
    output keeps about the full layer's magnitude."""
    w = weight if out_keep is None else weight[out_keep]
    b = bias if out_keep is None else bias[out_keep]
    if in_keep is not None:
        full = w.abs().sum().clamp_min(1e-12)
        w = w[:, in_keep]
        w = w * (full / w.abs().sum().clamp_min(1e-12))
    return w.contiguous().clone(), b.contiguous().clone()


def prune_vgg(widths: Sequence[int] = LITE_WIDTHS) -> tuple[list[tuple[torch.Tensor, torch.Tensor]],
                                                             torch.Tensor]:
    """L1-norm pruned VGG19 conv layers to relu4_1 (``widths`` per block) and the indices of the
    relu4_1 channels kept (the decoder's first layer reads those). Input channels of the first
    layer (RGB) and of each layer after the first are the previous layer's kept filters; inputs
    are not rescaled in the encoder (a kept channel means the same as in VGG19)."""
    vgg = build_extractor("vgg19", max_layer=CONTENT_LAYER)
    convs = [m for m in vgg.features if isinstance(m, nn.Conv2d)]
    blocks = [1, 1, 2, 2, 3, 3, 3, 3, 4]  # the block of each conv up to conv4_1
    layers, keep = [], None
    for conv, block in zip(convs, blocks):
        out_keep = _top_l1(conv.weight, int(widths[block - 1]))
        w = conv.weight[out_keep] if keep is None else conv.weight[out_keep][:, keep]
        layers.append((w.contiguous().clone(), conv.bias[out_keep].contiguous().clone()))
        keep = out_keep
    return layers, keep


def prune_decoder(teacher: Decoder, encoder_keep: torch.Tensor,
                  widths: Sequence[int] = LITE_WIDTHS) -> Decoder:
    """A lite decoder cut from ``teacher``: the first layer reads the relu4_1 channels the encoder
    kept, every layer keeps its largest-L1 filters (the last keeps RGB), inputs follow the
    previous layer's choice."""
    plan = mirror_plan(tuple(widths))
    student = Decoder(teacher.padding, float(teacher.input_scale), plan)
    t_convs = [m for m in teacher.net if isinstance(m, nn.Conv2d)]
    s_convs = [m for m in student.net if isinstance(m, nn.Conv2d)]
    keep = encoder_keep
    for i, (tc, sc) in enumerate(zip(t_convs, s_convs)):
        last = i == len(t_convs) - 1
        out_keep = None if last else _top_l1(tc.weight, sc.out_channels)
        w, b = _pruned(tc.weight.detach().float(), tc.bias.detach().float(), out_keep, keep)
        sc.weight.data.copy_(w)
        sc.bias.data.copy_(b)
        keep = out_keep
    return student


def lite_from_teachers(teacher: Decoder, widths: Sequence[int] = LITE_WIDTHS,
                       encoder_padding: str = "zeros") -> LiteNetwork:
    """A lite network initialised from VGG19 and ``teacher`` by L1 pruning (see the module doc)."""
    net = LiteNetwork(widths, encoder_padding, teacher.padding)
    layers, keep = prune_vgg(widths)
    with torch.no_grad():
        convs = [m for m in net.encoder.vgg.features if isinstance(m, nn.Conv2d)]
        for conv, (w, b) in zip(convs, layers):
            conv.weight.copy_(w)
            conv.bias.copy_(b)
        net.decoder.load_state_dict(prune_decoder(teacher, keep, widths).state_dict())
        # The embedding starts as the inverse of the pruning: lite channel j -> VGG channel keep[j].
        net.embed.weight.zero_()
        net.embed.bias.zero_()
        net.embed.weight[keep, torch.arange(len(keep)), 0, 0] = 1.0
    return net


def save_lite(net: LiteNetwork, path: str, config: dict | None = None, half: bool = True) -> None:
    """Export as ``.safetensors`` (fp16 by default) plus a JSON of its config."""
    save_model_file(net.state_dict(), {**net.config(), **(config or {})}, path,
                    torch.float16 if half else None)


def is_lite_config(config: dict) -> bool:
    """Whether a model file's config describes a lite network."""
    return config.get("kind") == KIND


def load_lite(path: str) -> tuple[LiteNetwork, dict]:
    """Load a lite network file, checking its kind and every shape (one-line errors)."""
    state, config = load_model_file(path)
    if not is_lite_config(config):
        raise PainterlyError(f"{path} is not a lite AdaIN network (its kind is "
                             f"'{config.get('kind', 'unknown')}')")
    widths = config.get("widths")
    if (not isinstance(widths, list) or len(widths) != 4
            or not all(isinstance(w, int) and 0 < w <= 4096 for w in widths)):
        raise PainterlyError(f"{path}: the config's widths must be four positive integers")
    net = LiteNetwork(widths, str(config.get("encoder_padding", "zeros")),
                      str(config.get("padding", "reflect")))
    own = net.state_dict()
    missing = [k for k in own if k not in state and not k.startswith("embed.")]
    wrong = [k for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    unknown = [k for k in state if k not in own]
    if missing or wrong or unknown:
        what = (f"missing {missing[0]}" if missing else f"wrong shape for {wrong[0]}" if wrong
                else f"unknown tensor {unknown[0]}")
        raise PainterlyError(f"{path} is not a valid lite AdaIN network ({what})")
    net.load_state_dict({**own, **{k: v.float() for k, v in state.items()}})
    return net.eval(), config
