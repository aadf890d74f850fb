"""The one padding of every network (painterly.padding): pad to a stride and crop back."""

from __future__ import annotations

import torch

from painterly.padding import pad_to_multiple


def test_pad_to_multiple_round_trips():
    x = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).view(2, 3, 5, 7)
    y, (h, w) = pad_to_multiple(x, 8)
    assert y.shape[-2:] == (8, 8) and (h, w) == (5, 7)
    assert torch.equal(y[..., :h, :w], x)
    same, _ = pad_to_multiple(torch.zeros(1, 3, 8, 16), 8)
    assert same.shape[-2:] == (8, 16)
