"""Nearest 2x upsampling followed by a 3x3 conv, computed at the low resolution (inference).

Both decoders that upsample (the AdaIN decoder and the fast transformer network) use it when they
are frozen for inference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: A[p] maps the 3 taps of output phase p onto 2 low-resolution rows.
_A = (torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]), torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))


def fold_weight(weight: torch.Tensor) -> torch.Tensor:
    """The ``(4*out, in, 2, 2)`` phase kernels of a ``(out, in, 3, 3)`` kernel (differentiable)."""
    a = [m.to(weight.device, weight.dtype) for m in _A]
    return torch.cat([torch.einsum("ay,oiyx,bx->oiab", a[py], weight, a[px])
                      for py in (0, 1) for px in (0, 1)])


def upsample_conv(x: torch.Tensor, folded_weight: torch.Tensor, folded_bias: torch.Tensor | None,
                  padding: str) -> torch.Tensor:
    """``conv3x3(upsample_nearest_2x(x))`` from the folded kernel of :func:`fold_weight` (and the
    bias repeated 4 times). Differentiable, so training uses it too."""
    h, w = x.shape[-2:]
    mode = "replicate" if padding == "reflect" else "constant"
    y = F.conv2d(F.pad(x, (1, 1, 1, 1), mode=mode), folded_weight, folded_bias)
    c = folded_weight.shape[0] // 4
    p = [y[:, k * c:(k + 1) * c, py:py + h, px:px + w]
         for k, (py, px) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1)))]
    rows = [torch.stack(p[0:2], dim=-1), torch.stack(p[2:4], dim=-1)]  # (N, C, h, w, 2)
    return torch.stack(rows, dim=3).reshape(x.shape[0], c, 2 * h, 2 * w)


class UpsampleConv2d(nn.Module):
    """``conv3x3(upsample_nearest_2x(x))`` computed at the low resolution (inference only).

    Nearest upsampling repeats each pixel 2x2, so each of the four output phases of the 3x3 conv
    is a 2x2 conv of the low-resolution input with summed taps: 4/9 of the multiply-adds, and the
    upsampled tensor is never built. Reflection padding of the upsampled image equals replicate
    padding of the low-resolution one (zeros stays zeros), so the result is the same up to float
    rounding. All four phases come from one conv with ``4 * out`` channels.
    """

    def __init__(self, conv: nn.Conv2d, padding: str) -> None:
        super().__init__()
        w = conv.weight.detach().float()
        self.out_channels = w.shape[0]
        self.conv = nn.Conv2d(w.shape[1], 4 * self.out_channels, 2)
        with torch.no_grad():
            self.conv.weight.copy_(fold_weight(w))
            self.conv.bias.copy_(conv.bias.detach().float().repeat(4))
        self.padding = padding
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upsample_conv(x, self.conv.weight, self.conv.bias, self.padding)
