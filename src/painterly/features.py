"""Feature extractors (VGG19, VGG16, ResNet50) that return named intermediate activations.

``extractor(x, ["relu1_1", "conv4_2"])`` returns ``{"relu1_1": ..., "conv4_2": ...}`` for an RGB
batch ``x`` in [0, 1], running the network only as deep as the deepest layer asked for. VGG layer
names: ``convB_K``, ``reluB_K``, ``poolB``; Keras names are accepted too (``blockB_convK`` is
Keras' conv with its ReLU, so it means ``reluB_K``; ``blockB_pool`` means ``poolB``). ResNet50
layers: ``relu`` (the stem), ``maxpool``, ``layer1`` .. ``layer4``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from .conv import conv_relu
from .errors import PainterlyError, echo
from .weights import (
    Preprocess,
    download_torchvision,
    load_caffe_vgg19,
    load_checked,
    load_state_dict_file,
)

BACKBONES = ("vgg19", "vgg16", "resnet50")
POOLINGS = ("max", "avg")
PADDINGS = ("zeros", "reflect")

_VGG_BLOCKS = {"vgg19": (2, 2, 4, 4, 4), "vgg16": (2, 2, 3, 3, 3)}
_VGG_WIDTHS = (64, 128, 256, 512, 512)

#: Per-backbone default (content layers, style layers) for the optimization method.
DEFAULT_LAYERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "vgg19": (("conv4_2",), ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")),
    "vgg16": (("conv4_2",), ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")),
    "resnet50": (("layer3",), ("relu", "layer1", "layer2", "layer3")),
}


def vgg_layer_names(arch: str = "vgg19") -> list[str]:
    """Names of every module in a VGG ``features`` stack, in order (torchvision indices)."""
    names = []
    for b, n in enumerate(_VGG_BLOCKS[arch], start=1):
        for k in range(1, n + 1):
            names += [f"conv{b}_{k}", f"relu{b}_{k}"]
        names.append(f"pool{b}")
    return names


def canonical_layer(name: str) -> str:
    """Map Keras-style names to painterly's (``block4_conv1`` -> ``relu4_1``); others unchanged."""
    m = re.fullmatch(r"block(\d)_conv(\d)", name)
    if m:
        return f"relu{m[1]}_{m[2]}"
    m = re.fullmatch(r"block(\d)_pool", name)
    if m:
        return f"pool{m[1]}"
    return name


def _plain_relu(module: nn.Module) -> bool:
    """A ReLU with no hooks (its work may be done in place or inside the conv before it)."""
    return isinstance(module, nn.ReLU) and not (module._forward_hooks or module._forward_pre_hooks)


class FeatureExtractor(nn.Module):
    """Base class: preprocessing, layer-name checking and truncated forward passes."""

    layer_names: list[str]
    #: Without autograd, run a conv and the ReLU after it as one fused call (painterly.conv):
    #: set on the AdaIN inference encoders (adain.networks.AdaINNetworks). Off elsewhere, where
    #: targets computed without autograd must equal, to the bit, those of a pass with it (Gatys).
    fuse_relu: bool = False

    def __init__(self, preprocess: Preprocess) -> None:
        super().__init__()
        self.preprocess_spec = preprocess
        # (x * scale - mean) / std, channels reversed for BGR weights, as one 1x1 conv: one pass
        # over the image instead of four (flip, scale, shift, divide): 0.95 -> 0.25 ms for a
        # 392x288 frame cast to bf16, about 3% of the lite network's frame.
        mean = torch.tensor(preprocess.mean, dtype=torch.float32)
        std = torch.tensor(preprocess.std, dtype=torch.float32)
        weight = torch.zeros(3, 3, 1, 1)
        for out in range(3):
            weight[out, 2 - out if preprocess.bgr else out] = preprocess.scale / std[out]
        self.register_buffer("_pre_weight", weight, persistent=False)
        self.register_buffer("_pre_bias", -mean / std, persistent=False)
        self.requires_grad_(False)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """RGB [0, 1] -> what the weights expect: ``(x * scale - mean) / std``, BGR if asked."""
        return torch.nn.functional.conv2d(x, self._pre_weight.to(x.dtype), self._pre_bias.to(x.dtype))

    def cast_weights(self, dtype: torch.dtype) -> FeatureExtractor:
        """Cast the weights (not the preprocessing constants) to ``dtype``, in place: the input
        is then preprocessed in its own precision and cast once before the first layer, so a
        bf16 network needs no per-layer autocast casts (inference on a CPU)."""
        for p in self.parameters():
            p.data = p.data.to(dtype)
        return self

    def resolve(self, layers: Iterable[str]) -> list[str]:
        """Canonical names for ``layers``; a clear error for unknown ones."""
        out = []
        for name in layers:
            c = canonical_layer(name)
            if c not in self.layer_names:
                raise PainterlyError(
                    f"unknown layer {echo(name)} for {self.arch} "
                    f"(known: {', '.join(n for n in self.layer_names if not n.startswith('pool'))})")
            out.append(c)
        return out

    def forward(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        wanted = self.resolve(layers)
        index = {n: i for i, n in enumerate(self.layer_names)}
        last = max(index[n] for n in wanted)
        want = set(wanted)
        out: dict[str, torch.Tensor] = {}
        h = self.preprocess(x)
        weight = next(self.parameters(), None)
        if weight is not None and weight.dtype != h.dtype:
            h = h.to(weight.dtype)  # weights cast by cast_weights()
        # Without autograd, a ReLU may overwrite the conv output before it (no one else holds
        # it unless that conv layer was asked for): a 512 px style's first activations are
        # 67 MB in fp32, and allocating a fresh one for each ReLU cost 10% of an AdaIN call.
        # For the same reason a conv whose output no one asked for takes its ReLU in (fused
        # into oneDNN's conv on a CPU: painterly.conv).
        inplace_ok = not torch.is_grad_enabled()
        stages = list(self.named_stages())[: last + 1]
        fused = False
        for i, (name, module) in enumerate(stages):
            if fused:  # this ReLU ran inside the conv before it
                fused = False
            elif (inplace_ok and self.fuse_relu and isinstance(module, nn.Conv2d) and name not in want
                    and i + 1 < len(stages) and _plain_relu(stages[i + 1][1])
                    and not (module._forward_hooks or module._forward_pre_hooks)):
                h, fused = conv_relu(module, h), True
                continue
            elif inplace_ok and _plain_relu(module) and i > 0 and stages[i - 1][0] not in want:
                h = torch.relu_(h)
            else:
                h = module(h)
            if name in want:
                out[name] = h
        # Keras aliases map back to what the caller asked for.
        return {name: out[canonical_layer(name)] for name in layers}

    def named_stages(self) -> Iterable[tuple[str, nn.Module]]:
        raise NotImplementedError


class VGG(FeatureExtractor):
    """VGG19/VGG16 convolutional stack, module indices identical to torchvision's ``features``."""

    def __init__(self, arch: str, layers: list[tuple[torch.Tensor, torch.Tensor]] | None,
                 preprocess: Preprocess, pooling: str = "max", padding: str = "zeros",
                 max_layer: str | None = None, widths: Sequence[int] = _VGG_WIDTHS) -> None:
        super().__init__(preprocess)
        if pooling not in POOLINGS:
            raise PainterlyError(f"unknown pooling {echo(pooling)} (choose from max, avg)")
        if padding not in PADDINGS:
            raise PainterlyError(f"unknown padding {echo(padding)} (choose from zeros, reflect)")
        self.arch = arch
        self.widths = tuple(int(w) for w in widths)  # channels per block (a slim VGG: fewer)
        names = vgg_layer_names(arch)
        if max_layer is not None:
            max_layer = canonical_layer(max_layer)
            if max_layer not in names:
                raise PainterlyError(f"unknown layer {echo(max_layer)} for {arch}")
            names = names[: names.index(max_layer) + 1]
        self.layer_names = names
        modules: list[nn.Module] = []
        in_ch = 3
        conv_i = 0
        for name in names:
            if name.startswith("conv"):
                out_ch = self.widths[int(name[4]) - 1]
                if layers is not None:  # no random init just to overwrite it (start-up)
                    conv = nn.Conv2d(in_ch, out_ch, 3, padding=1, padding_mode=padding,
                                     device="meta")
                    w, b = layers[conv_i]
                    if tuple(w.shape) != tuple(conv.weight.shape):
                        raise PainterlyError(f"{name}: weight shape {tuple(w.shape)}, "
                                             f"expected {tuple(conv.weight.shape)}")
                    conv.weight = nn.Parameter(w.float().contiguous(), requires_grad=False)
                    conv.bias = nn.Parameter(b.float().contiguous(), requires_grad=False)
                else:
                    conv = nn.Conv2d(in_ch, out_ch, 3, padding=1, padding_mode=padding)
                modules.append(conv)
                in_ch = out_ch
                conv_i += 1
            elif name.startswith("relu"):
                modules.append(nn.ReLU(inplace=False))
            else:
                modules.append(nn.MaxPool2d(2, 2) if pooling == "max"
                               else nn.AvgPool2d(2, 2))
        self.features = nn.Sequential(*modules)
        self.requires_grad_(False)
        self.eval()

    def named_stages(self) -> Iterable[tuple[str, nn.Module]]:
        return zip(self.layer_names, self.features)

    def load_torchvision_state(self, state: dict[str, torch.Tensor], source: str) -> None:
        """Copy ``features.N.weight/bias`` from a torchvision state dict, checking every shape."""
        load_checked(self, state, source, f"a {self.arch} state dict")


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int, downsample: bool) -> None:
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = nn.Conv2d(in_ch, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU()
        self.downsample = (nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False),
                                         nn.BatchNorm2d(out_ch)) if downsample else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = self.downsample(x) if self.downsample is not None else x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNet50(FeatureExtractor):
    """ResNet50 trunk with torchvision's parameter names (so its state dicts load as they are)."""

    arch = "resnet50"

    def __init__(self) -> None:
        super().__init__(Preprocess.torchvision())
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        in_ch = 64
        for i, (width, blocks, stride) in enumerate(((64, 3, 1), (128, 4, 2), (256, 6, 2),
                                                     (512, 3, 2)), start=1):
            layer = []
            for j in range(blocks):
                layer.append(_Bottleneck(in_ch, width, stride if j == 0 else 1, j == 0))
                in_ch = width * 4
            setattr(self, f"layer{i}", nn.Sequential(*layer))
        self.layer_names = ["conv1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
        self.requires_grad_(False)
        self.eval()

    def named_stages(self) -> Iterable[tuple[str, nn.Module]]:
        stem = nn.Sequential(self.conv1, self.bn1)
        return [("conv1", stem), ("relu", self.relu), ("maxpool", self.maxpool),
                ("layer1", self.layer1), ("layer2", self.layer2), ("layer3", self.layer3),
                ("layer4", self.layer4)]

    def load_torchvision_state(self, state: dict[str, torch.Tensor], source: str) -> None:
        load_checked(self, state, source, "a resnet50 state dict")
        self.eval()


def build_extractor(arch: str = "vgg19", weights: str | os.PathLike | None = None, *,
                    pooling: str = "max", padding: str = "zeros",
                    max_layer: str | None = None) -> FeatureExtractor:
    """Build a frozen feature extractor in eval mode on the CPU.

    ``weights``: ``None`` means the default for ``arch`` ("caffe" for VGG19, "torchvision" for the
    others); "caffe" (VGG19 only), "torchvision" (download), or a path to a torchvision state dict.
    ``max_layer`` drops every layer after it (VGG only), to save memory when only shallow
    features are needed (the AdaIN encoder stops at ``relu4_1``).
    """
    if arch not in BACKBONES:
        raise PainterlyError(f"unknown backbone {echo(arch)} (choose from {', '.join(BACKBONES)})")
    if weights is None:
        weights = "caffe" if arch == "vgg19" else "torchvision"
    weights = str(weights)
    if arch == "resnet50":
        if pooling != "max":
            raise PainterlyError("resnet50 supports only max pooling")
        model = ResNet50()
    elif weights == "caffe":
        if arch != "vgg19":
            raise PainterlyError(f"the built-in Caffe weights are VGG19's; {arch} needs "
                                 f"--weights torchvision or a weight file")
        names = vgg_layer_names(arch)  # dequantize only the layers up to max_layer
        if max_layer is not None and canonical_layer(max_layer) in names:
            names = names[: names.index(canonical_layer(max_layer)) + 1]
        n_convs = sum(n.startswith("conv") for n in names)
        return VGG(arch, load_caffe_vgg19(n_layers=n_convs), Preprocess.caffe(), pooling, padding,
                   max_layer)
    else:
        model = VGG(arch, None, Preprocess.torchvision(), pooling, padding, max_layer)
    if weights == "torchvision":
        model.load_torchvision_state(download_torchvision(arch), f"torchvision {arch} weights")
    else:
        model.load_torchvision_state(load_state_dict_file(weights), weights)
    return model
