"""3x3 convolutions as the networks run them: their border padding, and a ReLU fused in.

* **Border padding.** A 3x3 conv with one pixel of reflection or replication padding is
  :func:`conv3x3`: for a large image the conv's own zero padding, then its four border lines
  computed again from padded strips two pixels thick (no padded copy of a large image), and
  for a small one (:data:`PAD_FIRST_ELEMENTS`) the padded image and one conv, where the
  strips' eight small calls would cost more than the conv. The same function either way.
* **A fused ReLU.** Without autograd on a CPU, a conv followed by a ReLU is one oneDNN call with
  the ReLU as its post-op (``torch.ops.mkldnn._convolution_pointwise``, the op PyTorch's own
  compiler emits), not a conv and then a pass over its output: measured 15-30% off a 3x3
  conv + ReLU in bf16 (16 channels at 384x384: 1.38 -> 0.97 ms), 3-7% in fp32. Bit-identical
  to the two steps; anywhere else (autograd, tracing, another device) it is the two steps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_FUSED = getattr(getattr(torch.ops, "mkldnn", None), "_convolution_pointwise", None)

#: Up to this many values an image (C x H x W), :func:`conv3x3` pads first and runs one conv:
#: the four border strips cost about 0.5 ms of small calls whatever the size (measured, 2
#: threads, the lite decoder's layers at 384 px: 128->64 at 31x49 in bf16 1.07 -> 0.32 ms,
#: the full-size blur, 32x248x392, 1.15 -> 0.96 ms, a tie in fp32). Above it the strips win
#: where it counts, the padded copy's memory (a 1024 px image's last layers: 34M values).
PAD_FIRST_ELEMENTS = 1 << 22


def _tracing() -> bool:
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()


def _fusable(x: torch.Tensor, weight: torch.Tensor) -> bool:
    return (_FUSED is not None and not torch.is_grad_enabled() and x.device.type == "cpu"
            and x.dtype in (torch.float32, torch.bfloat16) and weight.dtype == x.dtype
            and torch.backends.mkldnn.is_available() and not _tracing())


def apply_relu(y: torch.Tensor) -> torch.Tensor:
    """A layer's ReLU: in place without autograd (no one else holds the conv output), a new
    tensor with it (its backward needs the output untouched)."""
    return F.relu(y) if torch.is_grad_enabled() else torch.relu_(y)


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
           padding: int = 0, groups: int = 1, relu: bool = False) -> torch.Tensor:
    """``F.conv2d`` (stride 1, zero ``padding``), with ``relu``: then a ReLU, fused into the
    conv where it can be (see the module doc)."""
    if relu and _fusable(x, weight):
        return _FUSED(x, weight, bias, [padding, padding], [1, 1], [1, 1], groups, "relu", [], "")
    y = F.conv2d(x, weight, bias, padding=padding, groups=groups)
    return apply_relu(y) if relu else y


def conv3x3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
            mode: str = "reflect", groups: int = 1, relu: bool = False) -> torch.Tensor:
    """``F.conv2d(F.pad(x, (1, 1, 1, 1), mode=mode), weight, bias, groups=groups)`` for a 3x3
    kernel (stride 1): padded first for an image of up to :data:`PAD_FIRST_ELEMENTS` values,
    else the zero-padded conv with its border lines redone (see the module doc); ``relu``: then
    a ReLU. Differentiable; under tracing it pads first (one graph, the same function)."""
    if mode == "zeros":
        return conv2d(x, weight, bias, 1, groups, relu)
    h, w = x.shape[-2], x.shape[-1]
    if (_tracing() or h < 2 or w < 2 or mode not in ("reflect", "replicate")
            or x[0].numel() <= PAD_FIRST_ELEMENTS):
        return conv2d(F.pad(x, (1, 1, 1, 1), mode=mode), weight, bias, 0, groups, relu)

    # With autograd the ReLU comes after the border lines are written (its backward needs its
    # output untouched); without, each part takes it in (fused on a CPU).
    late = relu and torch.is_grad_enabled()
    part = relu and not late

    def strip(s: torch.Tensor) -> torch.Tensor:
        return conv2d(F.pad(s, (1, 1, 1, 1), mode=mode), weight, bias, 0, groups, part)

    y = conv2d(x, weight, bias, 1, groups, part)
    y[..., :1, :] = strip(x[..., :2, :])[..., :1, :]
    y[..., -1:, :] = strip(x[..., -2:, :])[..., -1:, :]
    y[..., :, :1] = strip(x[..., :, :2])[..., :, :1]
    y[..., :, -1:] = strip(x[..., :, -2:])[..., :, -1:]
    return apply_relu(y) if late else y


def is_3x3_same(conv: nn.Conv2d) -> bool:
    """Whether ``conv`` is a 3x3, stride-1 conv with one pixel of padding (:func:`conv3x3`'s)."""
    return (conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.dilation == (1, 1)
            and conv.padding == (1, 1))


class PaddedConv2d(nn.Conv2d):
    """:class:`torch.nn.Conv2d` whose 3x3, stride-1, one-pixel reflect/replicate padding runs
    as :func:`conv3x3` (the same parameters and function, so files load unchanged)."""

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor,
                      bias: torch.Tensor | None) -> torch.Tensor:
        if is_3x3_same(self) and self.padding_mode in ("reflect", "replicate"):
            return conv3x3(x, weight, bias, self.padding_mode, self.groups)
        return super()._conv_forward(x, weight, bias)


def conv_relu(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``relu(conv(x))``, the ReLU fused in where it can be (see the module doc)."""
    if is_3x3_same(conv):
        return conv3x3(x, conv.weight, conv.bias, conv.padding_mode, conv.groups, relu=True)
    return apply_relu(conv(x))


class ConvReLU(nn.Module):
    """A conv and the ReLU after it as one module (inference forms of the decoders): the same
    function, the ReLU fused into the conv on a CPU. Holds the conv as ``conv``."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv_relu(self.conv, x)
