"""Padding an image to its network's stride, written once for every network and the ONNX graphs.

The AdaIN networks pool three times (sides to a multiple of 8), the fast transformer has two
stride-2 convs (a multiple of 4). An image is padded at its bottom and right edges, painted, and
cropped back, so any size round-trips. Reflection where the image is large enough to reflect,
replication where it is not; the smallest padded side can be raised (``min_side``: a network's
reflection pads need room). Under tracing (the ONNX export) the padding is traced with the
image's dynamic sizes, always by reflection (the graphs take at least ``image.MIN_SIDE`` px).

Inside the networks, a 3x3 conv with one pixel of reflection or replication padding is
:func:`conv3x3`: the conv's own zero padding, then its four border lines computed again from
padded strips two pixels thick. The same function as padding first; on a CPU it skips oneDNN's
slow path for an explicitly padded input (measured in fp32: the bilinear blur, a depthwise 3x3,
on 64x96x96 from 1.6 to 0.3 ms; the lite network's 512 px call from 155 to 134 ms).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _tracing() -> bool:
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()


def pad_to_multiple(x: torch.Tensor, multiple: int,
                    min_side: int = 0) -> tuple[torch.Tensor, tuple[int, int]]:
    """``x`` padded (bottom/right) so H and W are multiples of ``multiple`` and at least
    ``min_side``, and its original ``(H, W)`` to crop back to. No copy when nothing is padded."""
    h, w = x.shape[-2], x.shape[-1]
    if _tracing():  # sizes are graph values: no branch on them
        return F.pad(x, (0, (-w) % multiple, 0, (-h) % multiple), mode="reflect"), (h, w)
    ph, pw = max((-h) % multiple, min_side - h), max((-w) % multiple, min_side - w)
    return pad_bottom_right(x, ph, pw), (h, w)


def pad_bottom_right(x: torch.Tensor, ph: int, pw: int) -> torch.Tensor:
    """``x`` with ``ph`` rows and ``pw`` columns added at the bottom and right (none: ``x``
    itself): reflected where the image is large enough to reflect, replicated where not."""
    ph, pw = max(ph, 0), max(pw, 0)
    if not (ph or pw):
        return x
    h, w = x.shape[-2], x.shape[-1]
    return F.pad(x, (0, pw, 0, ph), mode="reflect" if ph < h and pw < w else "replicate")


def conv3x3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
            mode: str = "reflect", groups: int = 1) -> torch.Tensor:
    """``F.conv2d(F.pad(x, (1, 1, 1, 1), mode=mode), weight, bias, groups=groups)`` for a 3x3
    kernel (stride 1), computed as the zero-padded conv with its border lines redone (see the
    module doc). Differentiable; under tracing it pads first (one graph, the same function)."""
    if mode == "zeros":
        return F.conv2d(x, weight, bias, padding=1, groups=groups)
    h, w = x.shape[-2], x.shape[-1]
    if _tracing() or h < 2 or w < 2 or mode not in ("reflect", "replicate"):
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode=mode), weight, bias, groups=groups)

    def strip(s: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(s, (1, 1, 1, 1), mode=mode), weight, bias, groups=groups)

    y = F.conv2d(x, weight, bias, padding=1, groups=groups)
    y[..., :1, :] = strip(x[..., :2, :])[..., :1, :]
    y[..., -1:, :] = strip(x[..., -2:, :])[..., -1:, :]
    y[..., :, :1] = strip(x[..., :, :2])[..., :, :1]
    y[..., :, -1:] = strip(x[..., :, -2:])[..., :, -1:]
    return y


class PaddedConv2d(torch.nn.Conv2d):
    """:class:`torch.nn.Conv2d` whose 3x3, stride-1, one-pixel reflect/replicate padding runs
    as :func:`conv3x3` (the same parameters and function, so files load unchanged)."""

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor,
                      bias: torch.Tensor | None) -> torch.Tensor:
        if (self.kernel_size == (3, 3) and self.stride == (1, 1) and self.dilation == (1, 1)
                and self.padding == (1, 1) and self.padding_mode in ("reflect", "replicate")):
            return conv3x3(x, weight, bias, self.padding_mode, self.groups)
        return super()._conv_forward(x, weight, bias)


def padded(x: torch.Tensor, multiple: int, min_side: int = 0) -> torch.Tensor:
    """:func:`pad_to_multiple` without the size (the caller crops by its own)."""
    return pad_to_multiple(x, multiple, min_side)[0]
