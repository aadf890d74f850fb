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

With ``skip="relu3_1"`` the encoder also hands its relu3_1 to the decoder (space-to-depth'ed
onto the relu4_1 grid and concatenated, so AdaIN normalizes it with the style's relu3_1
statistics too, and every front end still sees one feature map): the decoder gets the detail a
128-channel relu4_1 cannot carry (:class:`~painterly.adain.model.SkipDecoder`).

``decoder_widths`` lets the decoder's blocks differ from the encoder's (a wider last block paints
finer texture at full resolution); :func:`widen` starts a wider network from a narrower one with
the same function.

File: ``.safetensors`` (fp16) with ``encoder.*``, ``decoder.*`` (and the training-only
``embed.*``) and a JSON config of kind ``adain-lite`` holding the widths, the decoder's widths
when they differ, and the skip.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import PainterlyError, echo
from ..features import VGG, build_extractor
from ..options import UPSAMPLINGS
from ..weights import Preprocess, load_exact, load_model_file, save_model_file
from .model import (
    CONTENT_LAYER,
    DEFAULT_INPUT_SCALE,
    STYLE_LAYERS,
    Decoder,
    SkipDecoder,
    mirror_plan,
)

#: Channels of the lite network's four blocks (VGG19's are 64, 128, 256, 512).
LITE_WIDTHS = (16, 32, 64, 128)
#: The kind written into a lite network file's config.
KIND = "adain-lite"
#: The encoder layers a lite network can hand to its decoder besides relu4_1 ("": none).
SKIPS = ("", "relu3_1")


def check_skip(skip: str) -> str:
    """``skip`` if it is one of :data:`SKIPS` (one-line error otherwise)."""
    if skip not in SKIPS:
        raise PainterlyError(f"unknown lite skip {echo(skip)} (choose from none, relu3_1)")
    return skip


def config_widths(config: dict, path: str) -> tuple[list[int], list[int] | None]:
    """The encoder's and the decoder's widths a model file's config names (the decoder's: None
    when they are the encoder's), checked (one-line errors)."""
    out = []
    for key in ("widths", "decoder_widths"):
        w = config.get(key)
        if w is None and key == "decoder_widths":
            out.append(None)
            continue
        if (not isinstance(w, list) or len(w) != 4
                or not all(isinstance(x, int) and 0 < x <= 4096 for x in w)):
            raise PainterlyError(f"{path}: the config's {key} must be four positive integers")
        out.append(w)
    if out[1] is not None and out[1][3] != out[0][3]:
        raise PainterlyError(f"{path}: the config's decoder_widths must end with its widths' "
                             f"{out[0][3]}")
    return out[0], out[1]


def config_skip(config: dict, path: str) -> str:
    """The skip a model file's config names ("" when it names none: the first lite networks)."""
    skip = config.get("skip", "")
    if skip not in SKIPS:
        raise PainterlyError(f"{path}: the config names an unknown skip {echo(skip)}")
    return skip


def feature_channels(widths: Sequence[int], skip: str = "") -> int:
    """Channels of the lite encoder's output: relu4_1, plus relu3_1 space-to-depth'ed (x4)."""
    return int(widths[3]) + (4 * int(widths[2]) if skip else 0)


def check_widths(widths: Sequence[int], what: str = "lite widths") -> tuple[int, int, int, int]:
    """Four positive channel counts (one-line error otherwise)."""
    out = tuple(int(w) for w in widths)
    if len(out) != 4 or min(out) < 1 or max(out) > 4096:
        raise PainterlyError(f"{what} must be four positive numbers, got {list(widths)}")
    return out  # type: ignore[return-value]


def decoder_widths_for(widths: Sequence[int], decoder_widths: Sequence[int] | None) -> tuple:
    """The decoder's block widths: ``decoder_widths`` (checked: its deepest block reads the
    encoder's relu4_1, so it must have the encoder's width), else the encoder's."""
    if decoder_widths is None:
        return tuple(int(w) for w in widths)
    out = check_widths(decoder_widths, "lite decoder widths")
    if out[3] != int(widths[3]):
        raise PainterlyError(f"lite decoder widths must end with the encoder's relu4_1 width "
                             f"{int(widths[3])}, got {list(decoder_widths)}")
    return out


def lite_decoder(widths: Sequence[int], padding: str = "reflect", skip: str = "",
                 decoder_widths: Sequence[int] | None = None, upsample: str = "nearest") -> Decoder:
    """The mirror decoder of a lite encoder of ``widths`` (blocks of ``decoder_widths`` if given;
    with the skip's input if any; ``upsample``: :data:`~painterly.adain.model.UPSAMPLINGS`)."""
    plan = mirror_plan(decoder_widths_for(widths, decoder_widths))
    if skip:
        return SkipDecoder(padding, DEFAULT_INPUT_SCALE, plan, 4 * int(widths[2]), upsample)
    return Decoder(padding, DEFAULT_INPUT_SCALE, plan, upsample)


def config_upsample(config: dict, path: str) -> str:
    """The upsampling a model file's config names ("nearest" when it names none: every file
    written before the option)."""
    upsample = config.get("upsample", "nearest")
    if upsample not in UPSAMPLINGS:
        raise PainterlyError(f"{path}: the config names an unknown upsampling {echo(upsample)}")
    return upsample


def check_upsample(upsample: str) -> str:
    """``upsample`` if it is one of :data:`~painterly.adain.model.UPSAMPLINGS` (one line else)."""
    if upsample not in UPSAMPLINGS:
        raise PainterlyError(f"unknown upsampling {echo(upsample)} (choose {', '.join(UPSAMPLINGS)})")
    return upsample


class LiteEncoder(nn.Module):
    """A slim VGG19 to relu4_1 (same layer names and preprocessing), trainable.

    ``forward`` returns relu4_1 like :class:`~painterly.adain.model.Encoder` (with ``skip``: and
    the skip layer space-to-depth'ed, concatenated; :attr:`out_channels` in all); ``layers``
    every style layer.
    """

    def __init__(self, widths: Sequence[int] = LITE_WIDTHS, padding: str = "zeros",
                 layers: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
                 skip: str = "") -> None:
        super().__init__()
        self.widths = tuple(int(w) for w in widths)
        self.skip = check_skip(skip)
        self.out_channels = feature_channels(self.widths, self.skip)
        self.vgg = VGG("vgg19", layers, Preprocess.caffe(), padding=padding, max_layer=CONTENT_LAYER,
                       widths=self.widths + (self.widths[-1],))
        self.vgg.requires_grad_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.skip:
            return self.vgg(x, [CONTENT_LAYER])[CONTENT_LAYER]
        out = self.vgg(x, [self.skip, CONTENT_LAYER])
        deep = out[CONTENT_LAYER]
        # Pooling floors odd sides (a style image is not padded): the skip keeps relu4_1's grid.
        h, w = deep.shape[-2:]
        shallow = out[self.skip][..., : 2 * h, : 2 * w]
        return torch.cat([deep, F.pixel_unshuffle(shallow, 2)], 1)

    def layers(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.vgg(x, list(STYLE_LAYERS))


class LiteNetwork(nn.Module):
    """Encoder + decoder of the lite network, and the training-only linear embedding
    (``embed``: 1x1 conv from the lite relu4_1 to VGG19's 512 channels)."""

    #: The registered network it is (:mod:`painterly.adain.registry`).
    network_name = "lite"

    def __init__(self, widths: Sequence[int] = LITE_WIDTHS, encoder_padding: str = "zeros",
                 decoder_padding: str = "reflect", vgg_channels: int = 512, skip: str = "",
                 decoder_widths: Sequence[int] | None = None, upsample: str = "nearest") -> None:
        super().__init__()
        self.widths = check_widths(widths)
        self.decoder_widths = decoder_widths_for(self.widths, decoder_widths)
        self.skip = check_skip(skip)
        self.upsample = check_upsample(upsample)
        self.encoder = LiteEncoder(self.widths, encoder_padding, skip=self.skip)
        self.decoder = lite_decoder(self.widths, decoder_padding, self.skip, self.decoder_widths,
                                    self.upsample)
        self.embed = nn.Conv2d(self.widths[-1], vgg_channels, 1)
        self.encoder_padding = encoder_padding

    def config(self) -> dict:
        config = {"kind": KIND, "widths": list(self.widths), "encoder_padding": self.encoder_padding,
                  "padding": self.decoder.padding, "input_scale": float(self.decoder.input_scale)}
        if self.skip:  # files without the key (the first lite networks) have none
            config["skip"] = self.skip
        if self.decoder_widths != self.widths:
            config["decoder_widths"] = list(self.decoder_widths)
        if self.upsample != "nearest":  # files without the key upsample nearest
            config["upsample"] = self.upsample
        return config

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The training pass, whole (so DDP sees every parameter used): stylize ``content`` with
        ``style`` (batches of the same size, each item its own style) and return the output and
        the content's features embedded into VGG19's relu4_1 space."""
        from .core import adain, mean_std

        f = self.encoder(content)
        t = adain(f, *mean_std(self.encoder(style)))
        return self.decoder(t), self.embed(f[:, : self.widths[-1]])


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
                       encoder_padding: str = "zeros", skip: str = "",
                       decoder_widths: Sequence[int] | None = None,
                       upsample: str = "nearest") -> LiteNetwork:
    """A lite network initialised from VGG19 and ``teacher`` by L1 pruning (see the module doc);
    a skip's 1x1 conv starts at zero."""
    net = LiteNetwork(widths, encoder_padding, teacher.padding, skip=skip,
                      decoder_widths=decoder_widths, upsample=upsample)
    layers, keep = prune_vgg(widths)
    with torch.no_grad():
        convs = [m for m in net.encoder.vgg.features if isinstance(m, nn.Conv2d)]
        for conv, (w, b) in zip(convs, layers):
            conv.weight.copy_(w)
            conv.bias.copy_(b)
        widen(net.decoder, prune_decoder(teacher, keep, net.decoder_widths).state_dict())
        # The embedding starts as the inverse of the pruning: lite channel j -> VGG channel keep[j].
        net.embed.weight.zero_()
        net.embed.bias.zero_()
        net.embed.weight[keep, torch.arange(len(keep)), 0, 0] = 1.0
    return net


@torch.no_grad()
def widen(target: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load the weights of a network of the same kind, as wide or narrower, with or without a
    skip (``state``) into ``target``, with the same function: every tensor is copied into the
    leading part of target's; a conv's inputs
    beyond the narrow one's are zeroed for the filters it had (they do not read the new channels
    yet), the new filters keep target's random start, so the new channels get gradients at once.
    A tensor of ``target`` that ``state`` lacks may only be a skip's (zero at start)."""
    own = target.state_dict()
    for key, value in state.items():
        if key not in own:
            raise PainterlyError(f"state does not fit the network: {key}")
        dst = own[key]
        if dst.dim() != value.dim() or any(a < b for a, b in zip(dst.shape, value.shape)):
            raise PainterlyError(f"{key}: {tuple(value.shape)} does not fit in {tuple(dst.shape)}")
        if dst.dim() == 4:  # conv weight (out, in, kh, kw): old filters read only old channels
            dst[: value.shape[0], value.shape[1]:] = 0
        dst[tuple(slice(0, n) for n in value.shape)] = value.to(dst)
    missing = [k for k in own if k not in state and ".skip." not in f".{k}"]
    if missing:
        raise PainterlyError(f"state does not fit the network: {missing[0]}")
    target.load_state_dict(own)


def narrow(decoder: Decoder, state: dict[str, torch.Tensor]) -> None:
    """Load the state of a decoder of the same plan, as wide or wider (``state``: its
    ``state_dict``), into ``decoder``, pruning each conv that has fewer filters here to its filters
    of largest L1 norm (Li et al. 2017, as Collaborative Distillation starts its student) and the
    next conv's inputs (and a skip's outputs) to the same channels. Not the same function: a
    start that a short fine-tune brings back (the way to a faster network from a trained wider
    one)."""
    modules = list(decoder.net)
    convs = [i for i, m in enumerate(modules) if isinstance(m, nn.Conv2d)]
    pruned = dict(state)
    kept: torch.Tensor | None = None  # the previous conv's kept filters (None: all of them)
    kept_at: dict[int, torch.Tensor | None] = {}
    for i in convs:
        key = f"net.{i}"
        if f"{key}.weight" not in state or f"{key}.bias" not in state:
            raise PainterlyError(f"state does not fit the decoder: no {key}.weight")
        w, b = state[f"{key}.weight"], state[f"{key}.bias"]
        if kept is not None:
            w = w[:, kept]
        n = modules[i].out_channels
        if n > w.shape[0]:
            raise PainterlyError(f"decoder {key}.weight: {w.shape[0]} filters, this decoder has {n} "
                                 f"(a wider one: widen loads it)")
        kept = None if n == w.shape[0] else w.float().abs().sum((1, 2, 3)).topk(n).indices.sort().values
        if kept is not None:
            w, b = w[kept], b[kept]
        pruned[f"{key}.weight"], pruned[f"{key}.bias"] = w, b
        kept_at[i] = kept
    if isinstance(decoder, SkipDecoder) and "skip.weight" in state:
        joined = max(i for i in convs if i < decoder.split)  # the conv whose output the skip joins
        if kept_at[joined] is not None:
            for name in ("weight", "bias"):
                pruned[f"skip.{name}"] = state[f"skip.{name}"][kept_at[joined]]
    own = decoder.state_dict()
    for key, value in pruned.items():
        if key not in own or tuple(own[key].shape) != tuple(value.shape):
            raise PainterlyError(f"state does not fit the decoder: {key} {tuple(value.shape)}")
    missing = [k for k in own if k not in pruned and not k.startswith("skip.")]
    if missing:
        raise PainterlyError(f"state does not fit the decoder: no {missing[0]}")
    decoder.load_state_dict({**own, **{k: v.to(own[k]) for k, v in pruned.items()}})


def fit_decoder(decoder: Decoder, state: dict[str, torch.Tensor]) -> None:
    """Load a decoder state of the same plan into ``decoder``: as is, widened with the same
    function (:func:`widen`), or pruned (:func:`narrow`) where ``decoder`` is narrower."""
    own = decoder.state_dict()
    if all(k in own and own[k].shape == v.shape for k, v in state.items()):
        decoder.load_state_dict({**own, **state})
    elif any(k in own and own[k].dim() == 4 and own[k].shape[0] < v.shape[0] for k, v in state.items()):
        narrow(decoder, state)
    else:
        holder = nn.Module()
        holder.decoder = decoder
        widen(holder, {f"decoder.{k}": v for k, v in state.items()})


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
    widths, decoder_widths = config_widths(config, path)
    net = LiteNetwork(widths, str(config.get("encoder_padding", "zeros")),
                      str(config.get("padding", "reflect")), skip=config_skip(config, path),
                      decoder_widths=decoder_widths, upsample=config_upsample(config, path))
    load_exact(net, state, path, "lite AdaIN network", optional=("embed.",))  # embed: training's
    return net.eval(), config
