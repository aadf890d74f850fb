"""Nearest 2x upsampling followed by a 3x3 conv, as one stride-2 transposed conv (4x4 kernel).

Both decoders that upsample (the AdaIN decoder and the fast transformer network) use it when they
are frozen for inference, and the AdaIN decoder's training pass uses the same function.

Nearest upsampling repeats each pixel 2x2, so along each axis an input pixel reaches four output
pixels, with the 3x3 kernel's taps summed in pairs: ``[w2, w1 + w2, w0 + w1, w0]``. That is a
transposed conv of stride 2 with a 4x4 kernel (:func:`fold_weight`): 4/9 of the multiply-adds of
the conv on the upsampled image, the upsampled tensor never built, and one library call that
writes the output in the input's layout (the earlier form, four phase convs interleaved by
``stack``, spent more time interleaving than convolving: 36 ms against 6 ms for 32 channels at
512x512 in bf16 channels-last). Reflection padding of the upsampled image equals replicate
padding of the low-resolution one (zeros stays zeros), so the result is the same up to float
rounding.

Bilinear 2x upsampling (``align_corners=False``) is nearest 2x followed by the separable blur
``[1, 2, 1] / 4`` with replicated borders, and a blur commutes with the conv after it, so
``conv3x3(upsample_bilinear_2x(x))`` is the same folded transposed conv followed by that blur,
depthwise on the conv's output (``smooth=True``): the same multiply-adds as nearest plus 9 per
output channel and pixel, instead of 9/4 of them for the conv on the bilinear image. Exact away
from the borders; at the borders this form is the definition (training runs it too).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .conv import apply_relu, conv3x3

#: How the four taps of the transposed kernel sum the 3 taps of the conv's (along one axis).
_TAPS = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])


def fold_weight(weight: torch.Tensor) -> torch.Tensor:
    """The ``(in, out, 4, 4)`` transposed-conv kernel of a ``(out, in, 3, 3)`` conv kernel
    applied after a nearest 2x upsampling (differentiable)."""
    taps = _TAPS.to(weight.device, weight.dtype)
    return torch.einsum("ya,oiab,xb->ioyx", taps, weight, taps)


_BLUR = torch.tensor([1.0, 2.0, 1.0]) / 4.0


def smooth_2x(y: torch.Tensor, channels: int | None = None, relu: bool = False) -> torch.Tensor:
    """The ``[1, 2, 1] / 4`` blur (both axes, replicated borders, depthwise) that turns a
    nearest 2x upsampling into a bilinear one (``channels``: ``y``'s, given as a plain number
    where ``y``'s shape is symbolic, as in an ONNX trace); ``relu``: then the layer's ReLU."""
    c = int(channels) if channels is not None else y.shape[1]
    k = (_BLUR[:, None] * _BLUR[None, :]).to(y.device, y.dtype).expand(c, 1, 3, 3)
    return conv3x3(y, k, None, "replicate", groups=c, relu=relu)


def upsample_conv(x: torch.Tensor, folded_weight: torch.Tensor, bias: torch.Tensor | None,
                  padding: str, smooth: bool = False, relu: bool = False) -> torch.Tensor:
    """``conv3x3(upsample_nearest_2x(x))`` from the kernel of :func:`fold_weight`; ``padding``
    is the 3x3 conv's ("reflect" or "zeros"); ``smooth``: the bilinear upsampling instead (the
    blur after the conv, see the module doc); ``relu``: then the ReLU that follows the layer
    (fused into the blur on a CPU: painterly.conv). Differentiable, so training uses it too."""
    if padding == "reflect":
        y = F.conv_transpose2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), folded_weight, bias,
                               stride=2, padding=3)
    else:
        y = F.conv_transpose2d(x, folded_weight, bias, stride=2, padding=1)
    if smooth:
        return smooth_2x(y, folded_weight.shape[1], relu)
    return apply_relu(y) if relu else y


class UpsampleConv2d(nn.Module):
    """``conv3x3(upsample_2x(x))`` as one transposed conv (and, for a bilinear upsampling, the
    blur after it; inference only; see the module doc), built from the 3x3 conv it replaces."""

    def __init__(self, conv: nn.Conv2d, padding: str, smooth: bool = False,
                 relu: bool = False) -> None:
        super().__init__()
        w = conv.weight.detach().float()
        self.out_channels = w.shape[0]
        self.weight = nn.Parameter(fold_weight(w).contiguous(), requires_grad=False)
        self.bias = nn.Parameter(conv.bias.detach().float().clone(), requires_grad=False)
        self.padding = padding
        self.smooth = smooth
        self.relu = relu  # the ReLU after it, taken in (the inference decoders: model._folded)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upsample_conv(x, self.weight, self.bias, self.padding, self.smooth, self.relu)
