"""Padding an image to its network's stride, written once for every network and the ONNX graphs.

The AdaIN networks pool three times (sides to a multiple of 8), the fast transformer has two
stride-2 convs (a multiple of 4). An image is padded at its bottom and right edges, painted, and
cropped back, so any size round-trips. Reflection where the image is large enough to reflect,
replication where it is not; the smallest padded side can be raised (``min_side``: a network's
reflection pads need room). Under tracing (the ONNX export) the padding is traced with the
image's dynamic sizes, always by reflection (the graphs take at least ``image.MIN_SIDE`` px).
A 3x3 conv's own one-pixel border padding is :func:`painterly.conv.conv3x3`'s.
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


def padded(x: torch.Tensor, multiple: int, min_side: int = 0) -> torch.Tensor:
    """:func:`pad_to_multiple` without the size (the caller crops by its own)."""
    return pad_to_multiple(x, multiple, min_side)[0]
